"""Quality signals and exact duplicates, on generated photos, through the analysis service."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import encode_jpeg
from webapp.catalog.services import register_image
from webapp.curation.analysis import analyse_quality
from webapp.curation.models import ImageAnalysis
from webapp.curation.quality import AnalysisConfig, Neighbour, measure_quality, noise_evidence

CONFIG = AnalysisConfig()


def _decoded(content: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(content)).convert("RGB"))


def test_single_channel_and_equal_channel_photos_are_grayscale(photo: Callable[..., bytes]) -> None:
    colour = _decoded(photo(1))
    gray = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)
    buffer = io.BytesIO()
    PILImage.fromarray(gray).save(buffer, format="JPEG")
    single = measure_quality(buffer.getvalue())
    rgb_gray = measure_quality(encode_jpeg(np.stack([gray] * 3, axis=-1)))
    coloured = measure_quality(photo(1))
    assert single.single_channel and single.is_grayscale(CONFIG)
    assert not rgb_gray.single_channel and rgb_gray.is_grayscale(CONFIG)
    assert not coloured.is_grayscale(CONFIG) and coloured.channel_spread > 20


def test_blurred_photo_has_a_low_laplacian_variance(photo: Callable[..., bytes]) -> None:
    sharp = measure_quality(photo(2))
    blurred = measure_quality(encode_jpeg(cv2.GaussianBlur(_decoded(photo(2)), (0, 0), 3)))
    assert not sharp.is_blurred(CONFIG)
    assert blurred.is_blurred(CONFIG)
    assert blurred.sharpness < sharp.sharpness / 5


@pytest.mark.django_db
def test_analysis_flags_grayscale_small_and_exact_duplicates(photo: Callable[..., bytes]) -> None:
    colour = photo(3)
    original = register_image(colour, original_name="x.jpg", source="a/x.jpg", schedule=False).image
    copy = register_image(colour, original_name="x.jpg", source="b/x-copy.jpg", schedule=False).image
    gray = register_image(
        encode_jpeg(np.stack([cv2.cvtColor(_decoded(photo(4)), cv2.COLOR_RGB2GRAY)] * 3, axis=-1)),
        original_name="g.jpg",
        source="g.jpg",
        schedule=False,
    ).image
    small = register_image(photo(5, (90, 120)), original_name="s.jpg", source="s.jpg", schedule=False).image

    result = analyse_quality([original.pk, copy.pk, gray.pk, small.pk])

    assert result == {"analysed": 4, "grayscale": 1, "duplicates": 1, "unreadable": 0}
    rows = ImageAnalysis.objects.in_bulk()
    assert rows[copy.pk].exact_duplicate_of_id == original.pk
    assert rows[original.pk].exact_duplicate_of_id is None  # the first copy is the one to keep
    assert rows[gray.pk].is_grayscale and not rows[original.pk].is_grayscale
    assert rows[small.pk].is_too_small and not rows[original.pk].is_too_small
    assert not any(row.is_blurred for row in rows.values())


@pytest.mark.django_db
def test_analysis_is_rerunnable_and_survives_a_lost_file(photo: Callable[..., bytes]) -> None:
    image = register_image(photo(6), original_name="x.jpg", source="x.jpg", schedule=False).image
    analyse_quality([image.pk])
    first = ImageAnalysis.objects.get(pk=image.pk)
    os.remove(image.file.path)

    assert analyse_quality([image.pk]) == {"analysed": 1, "grayscale": 0, "duplicates": 0, "unreadable": 1}
    again = ImageAnalysis.objects.get(pk=image.pk)
    assert "file not found" in again.quality_error.lower()  # the reason is kept
    assert again.quality_analysed_at >= first.quality_analysed_at
    assert ImageAnalysis.objects.count() == 1


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float64)
    return vector / np.linalg.norm(vector)


def test_an_intruder_scores_higher_than_the_honest_images_of_its_landmark() -> None:
    """Two scenes along the x and y axes; image 3 looks like scene y but is labelled x (landmark 1)."""
    vectors = {
        1: _unit(1, 0.3, 0),
        2: _unit(1, -0.3, 0.2),
        3: _unit(0.2, 1, 0.4),
        4: _unit(0, 1, -0.3),
        5: _unit(-0.3, 1, 0),
    }
    labels = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2}
    landmark_sum = vectors[1] + vectors[2] + vectors[3]

    def evidence(image_id: int) -> object:
        neighbours = sorted(
            (
                Neighbour(other, float(vectors[image_id] @ vector), labels[other])
                for other, vector in vectors.items()
            ),
            key=lambda n: -n.similarity,
        )
        return noise_evidence(
            image_id,
            1,
            vectors[image_id],
            neighbours,
            landmark_size=3,
            landmark_sum=landmark_sum,
            config=CONFIG,
        )

    intruder, honest = evidence(3), evidence(1)
    assert intruder.noise_score > CONFIG.suspect_noise_score > honest.noise_score
    assert intruder.suggested_landmark_id == 2 and honest.suggested_landmark_id is None
    assert intruder.disagreement > 0.9 and honest.centroid_similarity > intruder.centroid_similarity


def test_near_duplicates_point_at_the_earlier_copy_and_do_not_vote() -> None:
    vector = _unit(1, 0, 0)
    neighbours = [Neighbour(7, 0.99, 5), Neighbour(9, 0.99, 5), Neighbour(3, 0.5, 1)]
    later = noise_evidence(
        8, 1, vector, neighbours, landmark_size=2, landmark_sum=vector + _unit(0.5, 0.8, 0), config=CONFIG
    )
    assert later.near_duplicate_of == 7  # the earlier image is the one to keep
    assert later.disagreement == 0.0  # the copies labelled 5 do not outvote its own landmark
    alone = noise_evidence(8, 1, vector, neighbours, landmark_size=1, landmark_sum=vector, config=CONFIG)
    assert alone.noise_score is None  # a landmark of one image cannot be judged
