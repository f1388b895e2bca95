"""What users of a landmark search expect, on the real stack (Celery worker, Milvus Lite, Redis): an
unlabelled folder imported and proposed a landmark, the predicted landmark, filters done in Milvus, batch
search, "more like this", GPS maps, and every JSON response checked against the generated OpenAPI document."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from PIL import ExifTags
from PIL import Image as PILImage

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import encode_jpeg, write_query_split
from tests.contract import Contract
from webapp.catalog.models import Image, Landmark

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# landmark_000 in Paris (2018), landmark_001 in Rome (2019), landmark_002 2 km from landmark_000 (2020)
PLACES = {
    "landmark_000": ((48.8584, 2.2945), datetime(2018, 6, 1, 12)),
    "landmark_001": ((41.8902, 12.4922), datetime(2019, 6, 1, 12)),
    "landmark_002": ((48.8764, 2.2945), datetime(2020, 6, 1, 12)),
}


def _exif(lat: float, lon: float, taken: datetime) -> bytes:
    exif = PILImage.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    for ref, value, tag, neg in (
        (ExifTags.GPS.GPSLatitudeRef, lat, ExifTags.GPS.GPSLatitude, "S"),
        (ExifTags.GPS.GPSLongitudeRef, lon, ExifTags.GPS.GPSLongitude, "W"),
    ):
        gps[ref] = neg if value < 0 else ("N" if neg == "S" else "E")
        degrees = abs(value)
        minutes = (degrees - int(degrees)) * 60
        gps[tag] = (float(int(degrees)), float(int(minutes)), round((minutes - int(minutes)) * 60, 4))
    return exif.tobytes()


def _with_exif(path: Path, lat: float, lon: float, taken: datetime) -> None:
    pixels = np.asarray(PILImage.open(path).convert("RGB"))
    path.write_bytes(encode_jpeg(pixels, exif=_exif(lat, lon, taken)))


def test_unlabelled_import_recognition_filters_batch_similar_and_contract(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    queries = write_query_split(tmp_path, n_landmarks=3, views=5, seed=31)
    collection = tmp_path / "collection"
    for name, ((lat, lon), taken) in PLACES.items():
        for path in sorted((collection / name).glob("*.jpg")):
            _with_exif(path, lat, lon, taken)
        _with_exif(queries[name], lat, lon, taken)
    # A flat folder of new views of landmark_000 without any label (with GPS, as phones take them).
    unlabelled_dir = tmp_path / "phone"
    unlabelled_dir.mkdir()
    scene = make_scene(int(np.random.SeedSequence([31, 0]).generate_state(1)[0]), (240, 320))
    rng = np.random.default_rng(99)
    for i in range(2):
        view, _ = render_view(scene, rng, out_size=(240, 320))
        (unlabelled_dir / f"IMG_{i:04d}.jpg").write_bytes(
            encode_jpeg(view, exif=_exif(*PLACES["landmark_000"][0], PLACES["landmark_000"][1]))
        )
    call_command("import_images", str(collection), "--timeout", "600", verbosity=0)
    call_command("import_images", str(unlabelled_dir), "--timeout", "600", verbosity=0)
    unlabelled = list(Image.objects.filter(landmark__isnull=True).order_by("pk"))
    assert len(unlabelled) == 2 and all(image.status == Image.Status.INDEXED for image in unlabelled)
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 14
    contract = Contract(client)
    landmarks = {lm.name: lm.pk for lm in Landmark.objects.all()}

    def search(name: str, **fields: str) -> dict[str, Any]:
        with queries[name].open("rb") as photo:
            response = client.post("/api/search/", {"image": photo, **fields})
        assert response.status_code == 200, response.content
        return contract.check("/api/search/", "post", response)

    # Recognition: the answer, with the votes of verified neighbours behind it.
    for name in PLACES:
        payload = search(name)
        prediction = payload["prediction"]
        assert prediction["recognised"] and prediction["landmark"]["name"] == name
        assert prediction["confidence"] > 0.5
        assert prediction["evidence"]["weighted_by"] == "inliers" and prediction["evidence"]["inliers"] > 30
        assert payload["results"][0]["image_id"] in prediction["evidence"]["voters"]
        assert payload["query"]["position"]["latitude"] == pytest.approx(PLACES[name][0][0], abs=1e-4)
        assert all(hit["position"] is not None for hit in payload["results"])
        # Where it was taken: the verified matches' place (landmark_000 and _002 are 2 km apart).
        location = payload["location"]
        assert location["method"] == "verified_group" and payload["location_reason"] is None
        assert location["latitude"] == pytest.approx(PLACES[name][0][0], abs=2e-4)
        assert location["longitude"] == pytest.approx(PLACES[name][0][1], abs=2e-4)
        assert payload["results"][0]["image_id"] in location["supporting_image_ids"]
        assert location["radius_m"] >= 10 and 0.5 < location["confidence"] <= 1
    stranger = encode_jpeg(render_view(make_scene(4242, (240, 320)), rng, out_size=(240, 320))[0])
    response = client.post("/api/search/", {"image": io.BytesIO(stranger)})
    unknown = contract.check("/api/search/", "post", response)["prediction"]
    assert not unknown["recognised"] and unknown["landmark"] is None and unknown["confidence"] < 0.25

    # Filters are applied by Milvus before the top-k: k=10 asked, only matching images come back.
    by_landmark = search("landmark_000", landmark=str(landmarks["landmark_001"]))
    assert {hit["landmark"]["name"] for hit in by_landmark["results"]} == {"landmark_001"}
    assert len(by_landmark["results"]) == 4
    assert by_landmark["filters"] == {"landmark": landmarks["landmark_001"]}
    in_2020 = search("landmark_000", taken_after="2020-01-01", taken_before="2020-12-31")
    assert {hit["landmark"]["name"] for hit in in_2020["results"]} == {"landmark_002"}
    near_paris = search("landmark_000", lat="48.8584", lon="2.2945", radius_m="1000")
    names = [hit["landmark"]["name"] if hit["landmark"] else None for hit in near_paris["results"]]
    assert sorted(names, key=str) == sorted(["landmark_000"] * 4 + [None, None], key=str)
    assert {
        h["landmark"]["name"]
        for h in search("landmark_000", lat="48.8584", lon="2.2945", radius_m="5000")["results"]
        if h["landmark"]
    } == {
        "landmark_000",
        "landmark_002",
    }
    assert search("landmark_001", lat="0", lon="0", radius_m="1000")["results"] == []
    bad = client.post("/api/search/", {"image": queries["landmark_000"].open("rb"), "radius_m": "10"})
    assert "together" in contract.check("/api/search/", "post", bad)["error"]

    # The page answers and draws the offline map.
    with queries["landmark_001"].open("rb") as photo:
        page = client.post("/", {"image": photo})
    assert b"This is <strong>landmark_001</strong>" in page.content
    assert b'id="search-response"' in page.content and b"https://" not in page.content

    # Batch: one result list (or one error) per photo, in order.
    files = [
        queries["landmark_000"].open("rb"),
        io.BytesIO(b"not a photo"),
        queries["landmark_002"].open("rb"),
    ]
    response = client.post("/api/search/batch/", {"images": files})
    batch = contract.check("/api/search/batch/", "post", response)
    assert [s["status"] for s in batch["searches"]] == [200, 400, 200]
    assert batch["searches"][0]["result"]["prediction"]["landmark"]["name"] == "landmark_000"
    assert batch["searches"][2]["result"]["prediction"]["landmark"]["name"] == "landmark_002"
    assert batch["searches"][2]["result"]["location"]["latitude"] == pytest.approx(48.8764, abs=2e-4)
    assert "not an image" in batch["searches"][1]["error"]
    contract.check("/api/search/batch/", "post", client.post("/api/search/batch/", {}))

    # More like this: from a collection image's own file, itself excluded.
    source = Image.objects.filter(landmark__name="landmark_001").order_by("pk").first()
    assert source is not None
    response = client.get(f"/api/images/{source.pk}/similar/", {"k": "5"})
    similar = contract.check("/api/images/{image_id}/similar/", "get", response)
    ids = [hit["image_id"] for hit in similar["results"]]
    assert source.pk not in ids and len(ids) == 5
    assert [hit["landmark"]["name"] for hit in similar["results"][:3]] == ["landmark_001"] * 3
    assert (
        similar["query"]["image_id"] == source.pk
        and similar["prediction"]["landmark"]["name"] == "landmark_001"
    )
    assert similar["query"]["position"]["latitude"] == pytest.approx(41.8902, abs=1e-4)
    assert similar["location"]["latitude"] == pytest.approx(41.8902, abs=2e-4)
    assert source.pk not in similar["location"]["supporting_image_ids"]
    filtered = client.get(f"/api/images/{source.pk}/similar/", {"landmark": str(landmarks["landmark_000"])})
    assert {
        h["landmark"]["name"]
        for h in contract.check("/api/images/{image_id}/similar/", "get", filtered)["results"]
    } == {"landmark_000"}
    contract.check("/api/images/{image_id}/similar/", "get", client.get("/api/images/999999/similar/"))
    contract.check("/api/images/{image_id}/similar/", "get", client.get("/api/images/1/similar/?k=x"))
    detail = client.get(source.get_absolute_url())
    assert b'id="more-like-this"' in detail.content and b'class="position-map"' in detail.content
    more = client.get("/", {"similar": str(source.pk)})
    assert more.status_code == 200 and b"This is <strong>landmark_001</strong>" in more.content

    # Curation: unlabelled images are counted and proposed the landmark of their verified neighbours.
    staff = get_user_model().objects.create_superuser("curator", "c@example.com", "pw")
    client.force_login(staff)
    dashboard = client.get("/dataset/")
    assert b"<b>2</b> unlabelled" in dashboard.content
    review = client.get("/dataset/unlabelled/")
    assert review.status_code == 200
    for image in unlabelled:
        assert f'id="unlabelled-{image.pk}"'.encode() in review.content
    assert review.content.count(b"Label as landmark_000") == 2
    # Accepting a proposal relabels through the audited action; Milvus keeps the image's place and date.
    response = client.post(
        "/dataset/curate/",
        {"action": "relabel", "image": str(unlabelled[0].pk), "landmark_id": str(landmarks["landmark_000"])},
    )
    assert response.status_code == 302
    relabelled = search(
        "landmark_000",
        landmark=str(landmarks["landmark_000"]),
        lat="48.8584",
        lon="2.2945",
        radius_m="1000",
        taken_after="2018-01-01",
        taken_before="2018-12-31",
    )
    assert unlabelled[0].pk in [hit["image_id"] for hit in relabelled["results"]]
    assert unlabelled[1].pk not in [hit["image_id"] for hit in relabelled["results"]]

    progress = client.get("/api/collection/progress/")
    contract.check("/api/collection/progress/", "get", progress)
    contract.check("/api/collection/progress/", "get", client.get("/api/collection/progress/?ids=x"))
    # Every search endpoint of the document was exercised (the others: webapp/search/test_api_contract.py
    # and webapp/api/, where schemathesis runs every operation).
    assert {path for path, _, _ in contract.checked} == {
        "/api/search/",
        "/api/search/batch/",
        "/api/images/{image_id}/similar/",
        "/api/collection/progress/",
    }
