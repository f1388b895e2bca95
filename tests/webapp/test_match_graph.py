"""The served match graph on the real Milvus server: photos link to the views of their own place when their
features are stored, the links are kept once per pair, and the search lifts a result through them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.test import Client

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import encode_jpeg
from webapp import task_names
from webapp.catalog.services import register_image
from webapp.dispatch import recording
from webapp.embeddings import services
from webapp.reranking import local_features, match_graph
from webapp.reranking.models import ImageMatch, MatchGraphScan

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SIZE = (240, 320)


def _views(scene: int, n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode_jpeg(render_view(make_scene(scene, SIZE), rng, out_size=SIZE)[0]) for _ in range(n)]


def _register(photos: list[bytes], prefix: str) -> list[int]:
    return [
        register_image(photo, original_name=f"{prefix}{i}.jpg", schedule=False).image.pk
        for i, photo in enumerate(photos)
    ]


def test_photos_link_to_their_own_place_and_the_search_lifts_through_the_links(
    settings, tmp_path: Path, empty_vector_store: None, client: Client, django_capture_on_commit_callbacks
) -> None:
    settings.FEATURES_ROOT = tmp_path / "features"
    settings.RERANK_GRAPH_VERIFICATION = 15
    settings.RERANK_GRAPH_NEIGHBOURS = 4
    a = _register(_views(600, 3, seed=1), "a")
    b = _register(_views(601, 2, seed=2), "b")
    ids = a + b
    waiting = match_graph.link_images(ids)  # neither vectors nor local features yet: nothing to link
    assert waiting["linked"] == 0 and waiting["waiting"] == ids

    services.index_images(ids)
    with recording() as sends, django_capture_on_commit_callbacks(execute=False):
        local_features.extract_local_features(ids)
    assert [(s.name, s.args) for s in sends.tasks] == [(task_names.LINK_IMAGES, (ids,))]
    assert match_graph.unlinked_image_ids() == ids

    counts = match_graph.link_images(ids)
    assert counts["linked"] == 5 and counts["waiting"] == []
    pairs = {frozenset((m.image_a_id, m.image_b_id)): m.inliers for m in ImageMatch.objects.all()}
    expected = {frozenset((a[0], a[1])), frozenset((a[0], a[2])), frozenset((a[1], a[2])), frozenset(b)}
    assert set(pairs) == expected and min(pairs.values()) >= 15
    assert MatchGraphScan.objects.count() == 5 and match_graph.unlinked_image_ids() == []
    match_graph.link_images(ids)  # idempotent: the same pairs, once each
    assert {frozenset((m.image_a_id, m.image_b_id)) for m in ImageMatch.objects.all()} == expected
    assert ImageMatch.objects.count() == 4

    graph = match_graph.served_match_graph()
    assert graph is not None and set(graph.neighbours([a[0]])[a[0]]) == {a[1], a[2]}
    settings.RERANK_GRAPH_VERIFICATION = 0
    assert match_graph.served_match_graph() is None

    # A link the verifier found between a[0] and b[0] (the same place seen across a wide baseline):
    # searching with a new view of a's place lifts b[0] through a[0]; b[1], linked only to b[0], is not.
    ImageMatch.objects.create(
        image_a_id=min(a[0], b[0]),
        image_b_id=max(a[0], b[0]),
        inliers=60,
        features_key=local_features.sift_store().extractor_key,
    )
    query = _views(600, 1, seed=9)[0]

    def search(threshold: int) -> dict:
        settings.RERANK_GRAPH_VERIFICATION = threshold
        response = client.post("/api/search/", {"image": io.BytesIO(query), "k": 5, "rerank": "sift"})
        assert response.status_code == 200, response.content
        return response.json()

    lifted, plain = search(15), search(0)
    via = {hit["image_id"]: hit["matched_via"] for hit in lifted["results"]}
    assert via[b[0]] == a[0] and via[b[1]] is None and all(via[i] is None for i in a)
    assert lifted["rerank"]["match_graph"] == {"min_inliers": 15, "lifted": 1}
    assert plain["rerank"]["match_graph"] is None
    assert all(hit["matched_via"] is None for hit in plain["results"])
    ranked = [hit["image_id"] for hit in lifted["results"]]
    assert set(ranked[:3]) == set(a) and ranked[3] == b[0]
    b0_plain = next(hit for hit in plain["results"] if hit["image_id"] == b[0])
    b0_lifted = next(hit for hit in lifted["results"] if hit["image_id"] == b[0])
    assert b0_lifted["score"] > b0_plain["score"]

    services.delete_vectors(services.get_active_version(), [a[0]])
    from webapp.catalog.models import Image

    Image.objects.filter(pk=a[0]).delete()  # its links go with it
    assert not ImageMatch.objects.filter(image_a_id=a[0]).exists()
    assert not ImageMatch.objects.filter(image_b_id=a[0]).exists()
