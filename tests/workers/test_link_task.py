"""The match-graph task through a real worker (cpu queue): it links photos whose vector and local features
the workers stored, and a re-run keeps one row per pair."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from tests.conftest import encode_jpeg
from webapp.catalog.services import register_image
from webapp.reranking.models import ImageMatch, MatchGraphScan
from workers.tasks.cpu import extract_local_features, link_images
from workers.tasks.gpu import index_images

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_worker_links_the_views_of_one_place(
    celery_worker_process: object, empty_vector_store: None
) -> None:
    rng = np.random.default_rng(11)
    scene = make_scene(700, (240, 320))
    photos = [encode_jpeg(render_view(scene, rng, out_size=(240, 320))[0]) for _ in range(3)]
    ids = [
        register_image(photo, original_name=f"v{i}.jpg", schedule=False).image.pk
        for i, photo in enumerate(photos)
    ]
    assert index_images.delay(ids).get(timeout=120)["indexed"] == 3
    assert extract_local_features.delay(ids).get(timeout=120)["extracted"] == 3

    first = link_images.delay(ids).get(timeout=120)
    assert first["linked"] == 3 and first["waiting"] == [] and first["matches"] >= 3
    pairs = {frozenset((a, b)) for a, b in ImageMatch.objects.values_list("image_a_id", "image_b_id")}
    assert pairs == {frozenset((ids[0], ids[1])), frozenset((ids[0], ids[2])), frozenset((ids[1], ids[2]))}
    link_images.delay(ids).get(timeout=120)
    assert ImageMatch.objects.count() == 3 and MatchGraphScan.objects.count() == 3
