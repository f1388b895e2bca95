"""Dataset analysis through the real worker and Milvus: a mislabelled view is its landmark's top suspect."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from retrieval_core.datasets.synthetic import make_scene, render_view, write_collection
from tests.conftest import encode_jpeg
from webapp.catalog.models import Image, Landmark
from webapp.catalog.services import register_image
from webapp.curation.models import ImageAnalysis
from workers.tasks.analysis import analyse_landmarks
from workers.tasks.gpu import index_images

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _wait_for_analysis(expected: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = ImageAnalysis.objects.filter(
            quality_analysed_at__isnull=False, neighbours_analysed_at__isnull=False
        ).count()
        if done >= expected:
            return
        time.sleep(1)
    raise AssertionError(f"only {done} of {expected} images analysed after {timeout}s")


@pytest.fixture
def noisy_collection(tmp_path: Path) -> Path:
    """4 scenes x 6 views; a view of scene 1 filed under landmark 0; a copy, a near copy, a grey scan."""
    root = tmp_path / "collection"
    write_collection(root, n_landmarks=4, views_per_landmark=6, seed=21)
    (root / "landmark_001" / "view_005.jpg").rename(root / "landmark_000" / "intruder.jpg")
    shutil.copy(root / "landmark_002" / "view_000.jpg", root / "landmark_002" / "zz_copy.jpg")
    original = np.asarray(PILImage.open(root / "landmark_003" / "view_001.jpg"))
    smaller = cv2.resize(original, (288, 216), interpolation=cv2.INTER_AREA)
    PILImage.fromarray(smaller).save(root / "landmark_003" / "zz_near.jpg", quality=85)
    buffer = io.BytesIO()
    PILImage.open(root / "landmark_003" / "view_002.jpg").convert("L").save(buffer, format="JPEG")
    (root / "landmark_003" / "scan.jpg").write_bytes(buffer.getvalue())
    return root


def test_import_analyses_quality_duplicates_and_label_noise(
    noisy_collection: Path, celery_worker_process: object, empty_vector_store: None
) -> None:
    call_command("import_images", str(noisy_collection), "--timeout", "600", verbosity=0)
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 27
    _wait_for_analysis(27)  # dispatched by the import itself, on commit

    analysis = {row.image.source: row for row in ImageAnalysis.objects.select_related("image")}
    by_source = {image.source: image.pk for image in Image.objects.all()}
    landmark_0 = {source: row for source, row in analysis.items() if source.startswith("landmark_000/")}
    top = max(landmark_0, key=lambda source: landmark_0[source].noise_score)
    assert top == "landmark_000/intruder.jpg", {s: round(r.noise_score, 3) for s, r in landmark_0.items()}
    intruder = landmark_0[top]
    assert intruder.is_suspected_noise
    assert intruder.suggested_landmark == Landmark.objects.get(name="landmark_001")

    copy = analysis["landmark_002/zz_copy.jpg"]
    assert copy.exact_duplicate_of_id == by_source["landmark_002/view_000.jpg"]
    assert analysis["landmark_003/zz_near.jpg"].near_duplicate_of_id == by_source["landmark_003/view_001.jpg"]
    assert analysis["landmark_003/zz_near.jpg"].exact_duplicate_of_id is None
    assert [source for source, row in analysis.items() if row.is_grayscale] == ["landmark_003/scan.jpg"]
    assert not any(row.is_blurred or row.is_too_small for row in analysis.values())


def test_neighbour_analysis_is_rerunnable_per_landmark(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None
) -> None:
    write_collection(tmp_path, n_landmarks=2, views_per_landmark=3, seed=3)
    call_command("import_images", str(tmp_path), "--timeout", "600", verbosity=0)
    _wait_for_analysis(6)
    landmark = Landmark.objects.get(name="landmark_000")
    rows = ImageAnalysis.objects.filter(image__landmark=landmark).order_by("pk")
    first = {row.pk: (row.noise_score, row.neighbours_analysed_at) for row in rows}
    untouched = dict(
        ImageAnalysis.objects.exclude(image__landmark=landmark).values_list("pk", "neighbours_analysed_at")
    )

    assert analyse_landmarks.delay([landmark.pk]).get(timeout=120)["analysed"] == 3
    again = {row.pk: (row.noise_score, row.neighbours_analysed_at) for row in rows.all()}
    assert [again[pk][0] for pk in first] == pytest.approx([first[pk][0] for pk in first])  # same vectors
    assert all(again[pk][1] > first[pk][1] for pk in first)
    assert dict(
        ImageAnalysis.objects.exclude(image__landmark=landmark).values_list("pk", "neighbours_analysed_at")
    ) == (untouched)  # per landmark: the others are left alone


def test_neighbour_analysis_waits_until_its_landmark_is_indexed(
    celery_worker_process: object, empty_vector_store: None
) -> None:
    landmark = Landmark.objects.create(name="Waiting")
    scene = make_scene(5, (240, 320))
    rng = np.random.default_rng(5)
    ids = [
        register_image(
            encode_jpeg(render_view(scene, rng, out_size=(240, 320))[0]),
            original_name=f"{n}.jpg",
            source=f"w/{n}.jpg",
            landmark=landmark,
            schedule=False,
        ).image.pk
        for n in range(3)
    ]
    analysis = analyse_landmarks.delay([landmark.pk])  # queued before the images are even sent to indexing
    index_images.delay(ids)
    assert analysis.get(timeout=180)["analysed"] == 3
    assert ImageAnalysis.objects.filter(pk__in=ids, neighbours_analysed_at__isnull=False).count() == 3
