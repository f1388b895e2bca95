"""Curation through the admin and the review page: permissions, audit records, undo, clear 4xx errors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.catalog.models import Image, Landmark
from webapp.curation.models import CurationAction, ImageAnalysis, ImageCuration
from webapp.curation.selectors import as_collection_items, evaluation_images, training_images
from webapp.media import local_media_paths

pytestmark = pytest.mark.django_db
ADMIN_IMAGES = "/admin/catalog/image/"


def _admin_action(client: Client, action: str, images: list[Image], **extra: str):
    return client.post(
        ADMIN_IMAGES,
        {"action": action, "_selected_action": [image.pk for image in images], "index": 0, **extra},
    )


def test_admin_relabel_changes_the_label_and_records_who_what_and_when(
    curator_client: Client, curator: User, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    response = _admin_action(curator_client, "relabel", images[:2], landmark="Gamma", note="wrong folder")
    assert response.status_code == 302
    assert {image.landmark.name for image in Image.objects.filter(pk__in=[i.pk for i in images[:2]])} == {
        "Gamma"
    }
    action = CurationAction.objects.get()
    assert (action.kind, action.user, action.note) == ("relabel", curator, "wrong folder")
    assert action.summary == "relabelled 2 image(s) to Gamma"
    changes = {change.image_id: change for change in action.changes.all()}
    assert set(changes) == {images[0].pk, images[1].pk}
    assert changes[images[0].pk].before["landmark_id"] == landmarks["Alpha"].pk
    assert changes[images[0].pk].after["landmark_id"] == landmarks["Gamma"].pk
    assert changes[images[0].pk].after["label_confirmed"] is True
    assert ImageCuration.objects.get(pk=images[0].pk).label_confirmed


def test_admin_relabel_to_an_unknown_landmark_changes_nothing(
    curator_client: Client, images: list[Image]
) -> None:
    response = _admin_action(curator_client, "relabel", images[:1], landmark="Atlantis")
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("no landmark named 'Atlantis'" in m for m in messages)
    assert Image.objects.get(pk=images[0].pk).landmark.name == "Alpha"
    assert not CurationAction.objects.exists()


def test_people_who_may_not_curate_change_nothing(
    client: Client, visitor_client: Client, images: list[Image]
) -> None:
    staff_without_permission = Client()
    staff_without_permission.force_login(User.objects.create_user("intern", is_staff=True))
    for who in (client, visitor_client):  # the admin sends them to its login page
        response = _admin_action(who, "mark_noise", images)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert _admin_action(staff_without_permission, "mark_noise", images).status_code == 403

    anonymous_page = client.post("/dataset/curate/", {"action": "mark_noise", "image": [images[0].pk]})
    assert anonymous_page.status_code == 302 and "/admin/login/" in anonymous_page["Location"]
    for who in (visitor_client, staff_without_permission):
        assert (
            who.post("/dataset/curate/", {"action": "mark_noise", "image": [images[0].pk]}).status_code == 403
        )
        assert who.get(f"/dataset/landmarks/{images[0].landmark_id}/").status_code == 403
    assert not CurationAction.objects.exists()
    assert not ImageCuration.objects.exists()


def test_review_page_lists_suspected_intruders_first(
    curator_client: Client, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    honest, intruder = images[0], images[1]
    ImageAnalysis.objects.create(image=honest, noise_score=0.2)
    ImageAnalysis.objects.create(
        image=intruder, noise_score=0.8, is_suspected_noise=True, suggested_landmark=landmarks["Beta"]
    )
    page = curator_client.get(f"/dataset/landmarks/{landmarks['Alpha'].pk}/").content.decode()
    assert page.index(f'id="image-{intruder.pk}"') < page.index(f'id="image-{honest.pk}"')
    assert "Relabel to Beta" in page and 'flag bad">suspected intruder' in page

    # Once confirmed, it is no longer an open suspect: the one-click fix posts the same form.
    response = curator_client.post("/dataset/curate/", {"action": "confirm_label", "image": intruder.pk})
    assert response.status_code == 302
    page = curator_client.get(f"/dataset/landmarks/{landmarks['Alpha'].pk}/").content.decode()
    assert 'flag bad">suspected intruder' not in page
    assert curator_client.get("/dataset/landmarks/999999/").status_code == 404


def test_one_click_relabel_to_the_suggested_landmark(
    curator_client: Client, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    response = curator_client.post(
        "/dataset/curate/",
        {
            "action": "relabel",
            "image": images[1].pk,
            "landmark_id": landmarks["Beta"].pk,
            "next": "/collection/",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/collection/"
    assert Image.objects.get(pk=images[1].pk).landmark == landmarks["Beta"]


@pytest.mark.parametrize(
    ("data", "status", "phrase"),
    [
        ({"action": "mark_noise"}, 400, "select at least one image"),
        ({"action": "mark_noise", "image": "abc"}, 400, "must be integers"),
        ({"action": "delete_everything", "image": "1"}, 400, "unknown action"),
        ({"action": "relabel", "image": "1"}, 400, "needs the name"),
        ({"action": "relabel", "image": "1", "landmark_name": "Atlantis"}, 400, "no landmark named"),
        ({"action": "relabel", "image": "1", "landmark_id": "x"}, 400, "must be an integer"),
        ({"action": "relabel", "image": "1", "landmark_id": "999999"}, 404, "no landmark #999999"),
        ({"action": "mark_noise", "image": "999999"}, 404, "no image with id 999999"),
    ],
)
def test_bad_curation_requests_get_a_clear_message(
    curator_client: Client, images: list[Image], data: dict[str, str], status: int, phrase: str
) -> None:
    response = curator_client.post("/dataset/curate/", data)
    assert response.status_code == status
    assert phrase in response.content.decode().lower()
    assert not CurationAction.objects.exists()


def test_wrong_methods_and_bad_analysis_requests(curator_client: Client) -> None:
    assert curator_client.get("/dataset/curate/").status_code == 405
    assert curator_client.post("/dataset/analyse/", {"landmark": "abc"}).status_code == 400
    assert curator_client.post("/dataset/analyse/", {"landmark": "999999"}).status_code == 404
    assert curator_client.post("/dataset/actions/999999/undo/").status_code == 404


def test_curation_decides_what_training_and_evaluation_see(
    curator_client: Client, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    noisy, excluded, relabelled = images
    assert set(training_images()) == set(images)
    curator_client.post("/dataset/curate/", {"action": "mark_noise", "image": noisy.pk})
    curator_client.post("/dataset/curate/", {"action": "exclude_from_training", "image": excluded.pk})
    curator_client.post(
        "/dataset/curate/", {"action": "relabel", "image": relabelled.pk, "landmark_name": "Gamma"}
    )

    assert list(training_images()) == [relabelled]
    with local_media_paths() as local_path:
        items = as_collection_items(training_images(), local_path)
    assert [item.landmark for item in items] == ["Gamma"] and items[0].path.is_file()
    assert set(evaluation_images(splits=["train"])) == {
        excluded,
        relabelled,
    }  # noise never; exclusion: training only
    assert list(training_images(splits=["validation"])) == []


def test_undo_restores_the_previous_state_and_is_itself_recorded(
    curator_client: Client, curator: User, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    image = images[0]
    curator_client.post("/dataset/curate/", {"action": "mark_noise", "image": image.pk})
    curator_client.post("/dataset/curate/", {"action": "remove_from_index", "image": image.pk})
    curator_client.post("/dataset/curate/", {"action": "relabel", "image": image.pk, "landmark_name": "Beta"})
    image.refresh_from_db()
    assert image.status == Image.Status.EXCLUDED and image.landmark == landmarks["Beta"]
    relabel, removal = CurationAction.objects.order_by("-id")[:2]

    response = curator_client.post(f"/dataset/actions/{relabel.pk}/undo/")
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.landmark == landmarks["Alpha"]
    verdict = ImageCuration.objects.get(pk=image.pk)
    assert (
        verdict.is_noise and not verdict.label_confirmed
    )  # relabelling had cleared noise; undo brings it back
    undo = CurationAction.objects.get(kind="undo")
    assert undo.reverts == relabel and undo.user == curator and relabel.is_undone

    assert curator_client.post(f"/dataset/actions/{relabel.pk}/undo/").status_code == 409  # not twice
    curator_client.post(f"/dataset/actions/{removal.pk}/undo/")
    image.refresh_from_db()
    assert image.status == Image.Status.PENDING  # back in the queue to be indexed

    # Undoing the undo re-applies the relabel: every action, undo included, is reversible.
    curator_client.post(f"/dataset/actions/{undo.pk}/undo/")
    image.refresh_from_db()
    assert image.landmark == landmarks["Beta"]


def test_undo_keeps_what_later_actions_changed(
    curator_client: Client, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    image = images[0]
    curator_client.post("/dataset/curate/", {"action": "relabel", "image": image.pk, "landmark_name": "Beta"})
    curator_client.post(
        "/dataset/curate/", {"action": "relabel", "image": image.pk, "landmark_name": "Gamma"}
    )
    first = CurationAction.objects.order_by("id").first()

    curator_client.post(f"/dataset/actions/{first.pk}/undo/")
    image.refresh_from_db()
    assert image.landmark == landmarks["Gamma"]  # the later relabel stands
    assert not ImageCuration.objects.get(pk=image.pk).label_confirmed  # what only the first one did is undone

    response = curator_client.post(f"/dataset/actions/{CurationAction.objects.order_by('id')[1].pk}/undo/")
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.landmark == landmarks["Beta"]


def test_admin_undo_action_and_audit_pages(
    curator_client: Client, images: list[Image], landmarks: dict[str, Landmark]
) -> None:
    _admin_action(curator_client, "exclude_from_training", images)
    action = CurationAction.objects.get()
    assert curator_client.get("/admin/curation/curationaction/").status_code == 200
    detail = curator_client.get(f"/admin/curation/curationaction/{action.pk}/change/")
    assert detail.status_code == 200 and "excluded 3 image(s) from training" in detail.content.decode()
    image_page = curator_client.get(f"/admin/catalog/image/{images[0].pk}/change/")
    assert image_page.status_code == 200 and "curation history" in image_page.content.decode().lower()

    curator_client.post(
        "/admin/curation/curationaction/",
        {"action": "undo_selected", "_selected_action": [action.pk], "index": 0},
    )
    assert not ImageCuration.objects.filter(exclude_from_training=True).exists()
    assert CurationAction.objects.filter(kind="undo", reverts=action).exists()


@pytest.mark.parametrize("flag", ["suspected", "grayscale", "noise", "not_analysed", "exact_duplicate"])
def test_admin_list_filters_by_flag(curator_client: Client, images: list[Image], flag: str) -> None:
    ImageAnalysis.objects.create(image=images[0], is_grayscale=True, is_suspected_noise=True)
    ImageCuration.objects.create(image=images[1], is_noise=True)
    response = curator_client.get(ADMIN_IMAGES, {"flag": flag})
    assert response.status_code == 200
    shown = {image.pk for image in response.context["cl"].result_list}
    expected = {
        "suspected": {images[0].pk},
        "grayscale": {images[0].pk},
        "noise": {images[1].pk},
        "not_analysed": {images[1].pk, images[2].pk},
        "exact_duplicate": set(),
    }[flag]
    assert shown == expected
