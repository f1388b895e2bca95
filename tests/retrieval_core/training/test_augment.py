import numpy as np
import pytest
import torch
from PIL import Image

from retrieval_core.datasets.collection import UNLABELLED, CollectionItem, read_collection
from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.training.augment import EvalTransform, TrainTransform
from retrieval_core.training.data import CollectionDataset


def _checkerboard(width: int, height: int, cell: int = 10) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width]
    on = ((xs // cell + ys // cell) % 2).astype(np.uint8) * 255
    return Image.fromarray(np.stack([on] * 3, axis=-1))


def _transitions(line: np.ndarray) -> int:
    binary = line > 127
    return int(np.count_nonzero(binary[1:] != binary[:-1]))


@pytest.mark.parametrize("size", [(200, 100), (100, 200), (40, 30)])
def test_train_transform_gives_square_uint8_crops(size):
    out = TrainTransform(64)(_checkerboard(*size), np.random.default_rng(0))
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8


def test_train_transform_is_a_function_of_its_generator():
    image = _checkerboard(160, 120)
    transform = TrainTransform(48)
    a = transform(image, np.random.default_rng(1))
    assert torch.equal(a, transform(image, np.random.default_rng(1)))
    assert not torch.equal(a, transform(image, np.random.default_rng(2)))


def test_train_transform_keeps_the_aspect_of_the_content():
    """Square cells stay square (a 2:1 image squashed to a square would show twice as many columns)."""
    image = _checkerboard(400, 200)
    transform = TrainTransform(96, scale=(0.5, 1.0), max_aspect_change=1.0, jitter=0.0)
    for seed in range(5):
        out = transform(image, np.random.default_rng(seed))[0].numpy()
        across, down = _transitions(out[48, :]), _transitions(out[:, 48])
        assert abs(across - down) <= 1, (seed, across, down)
    squashed = np.asarray(image.resize((96, 96), Image.Resampling.BICUBIC))[..., 0]
    assert _transitions(squashed[48, :]) >= 2 * _transitions(squashed[:, 48]) - 1


def test_train_transform_rejects_bad_settings():
    with pytest.raises(ValueError):
        TrainTransform(64, scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        TrainTransform(64, max_aspect_change=0.5)


def test_eval_transform_resizes_the_long_side_and_keeps_the_aspect():
    out = EvalTransform(64)(_checkerboard(100, 200))
    assert out.shape == (3, 64, 32) and out.dtype == torch.uint8


def test_collection_dataset_labels_and_seeded_samples(tmp_path):
    write_collection(tmp_path, n_landmarks=3, views_per_landmark=2, seed=0, image_size=(60, 80))
    items = read_collection(tmp_path)
    dataset = CollectionDataset(items, TrainTransform(32), seed=4)
    assert len(dataset) == 6 and dataset.classes == ("landmark_000", "landmark_001", "landmark_002")
    assert dataset.labels == [0, 0, 1, 1, 2, 2]
    image, label = dataset[(3, 17)]
    assert image.shape == (3, 32, 32) and label == 1
    assert torch.equal(image, dataset[(3, 17)][0])  # same sample seed, same draw
    assert not torch.equal(image, dataset[(3, 18)][0])
    assert torch.equal(dataset[3][0], dataset[3][0])

    unlabelled = CollectionItem(items[0].path, "x.jpg", UNLABELLED, "index")
    with pytest.raises(ValueError, match="unlabelled"):
        CollectionDataset([*items, unlabelled], TrainTransform(32))
