from collections import Counter

import pytest

from retrieval_core.training.sampler import PKSampler

# 6 landmarks: sizes 10, 7, 5, 3 (fewer than K), 1, 8.
LABELS = [label for label, size in zip("abcdef", (10, 7, 5, 3, 1, 8), strict=True) for _ in range(size)]


def _check_batch(batch: list[int], p: int, k: int) -> None:
    counts = Counter(LABELS[i] for i in batch)
    assert len(batch) == p * k
    assert len(counts) == p and set(counts.values()) == {k}


def test_every_batch_holds_p_landmarks_times_k_images():
    sampler = PKSampler(LABELS, p=3, k=4, seed=0, batches_per_epoch=20)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20
    for batch in batches:
        _check_batch(batch, 3, 4)
        labels = [LABELS[i] for i in batch]
        assert any(labels.count(label) >= 2 for label in labels)  # positives in every batch


def test_images_are_distinct_when_a_landmark_has_k_and_repeated_only_when_it_has_fewer():
    sampler = PKSampler(LABELS, p=6, k=4, seed=1, batches_per_epoch=5)
    for batch in sampler:
        by_label: dict[str, list[int]] = {}
        for i in batch:
            by_label.setdefault(LABELS[i], []).append(i)
        for label, indices in by_label.items():
            size = LABELS.count(label)
            assert len(set(indices)) == min(size, 4), (label, indices)


def test_landmarks_and_images_are_covered_evenly():
    # p divides the 6 landmarks: every 2 consecutive batches show each landmark exactly once.
    batches = PKSampler(LABELS, p=3, k=2, seed=2, batches_per_epoch=10).epoch_batches(0)
    for start in range(0, 10, 2):
        assert Counter(LABELS[i] for b in batches[start : start + 2] for i in b[::2]) == Counter("abcdef")
    # Landmark "a" (10 images, 2 per visit): its first 5 visits show all 10 images once.
    a_images = [i for b in batches for i in b if LABELS[i] == "a"]
    assert sorted(a_images) == list(range(10))


def test_deterministic_per_seed_and_epoch():
    a = PKSampler(LABELS, 3, 4, seed=5)
    b = PKSampler(LABELS, 3, 4, seed=5)
    assert a.epoch_batches(0) == b.epoch_batches(0)
    assert a.epoch_batches(0) != a.epoch_batches(1)
    assert a.epoch_batches(0) != PKSampler(LABELS, 3, 4, seed=6).epoch_batches(0)
    assert len(a) == len(LABELS) // 12


def test_iterating_an_epoch_moves_to_the_next():
    sampler = PKSampler(LABELS, 2, 2, seed=0, batches_per_epoch=3)
    first, second = list(sampler), list(sampler)
    assert first == sampler.epoch_batches(0) and second == sampler.epoch_batches(1)
    assert sampler.state_dict()["epoch"] == 2 and sampler.state_dict()["position"] == 0


def test_state_dict_resumes_mid_epoch_exactly():
    reference = PKSampler(LABELS, 3, 2, seed=9, batches_per_epoch=6)
    uninterrupted = list(reference) + list(reference)

    sampler = PKSampler(LABELS, 3, 2, seed=9, batches_per_epoch=6)
    it = iter(sampler)
    seen = [next(it) for _ in range(4)]
    state = sampler.state_dict()
    assert state["epoch"] == 0 and state["position"] == 4

    resumed = PKSampler(LABELS, 3, 2, seed=9, batches_per_epoch=6)
    resumed.load_state_dict(state)
    seen += list(resumed) + list(resumed)  # the rest of epoch 0, then epoch 1
    assert seen == uninterrupted
    with pytest.raises(ValueError, match="seed"):
        PKSampler(LABELS, 3, 2, seed=10).load_state_dict(state)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="k must"):
        PKSampler(LABELS, 2, 1)
    with pytest.raises(ValueError, match="p must"):
        PKSampler(LABELS, 7, 2)
