from __future__ import annotations

import random
from pathlib import Path

import pytest

from retrieval_core.datasets import UNLABELLED, CollectionItem
from retrieval_core.eval import SplitConfig, relevant_index_images, split_by_landmark


def _item(landmark: str, name: str) -> CollectionItem:
    relpath = f"{landmark or 'unlabelled'}/{name}.jpg"
    return CollectionItem(Path("/data") / relpath, relpath, landmark, None)


def _collection() -> list[CollectionItem]:
    items = [_item(f"lm{i:02d}", f"img{j}") for i in range(10) for j in range(4)]
    items.append(_item("single", "only"))
    items += [_item(UNLABELLED, f"d{j}") for j in range(3)]
    return items


def _landmarks(items: tuple[CollectionItem, ...]) -> set[str]:
    return {item.landmark for item in items}


def test_every_item_gets_exactly_one_role() -> None:
    items = _collection()
    split = split_by_landmark(items)
    roles = split.role_of()
    assert sorted(roles) == sorted(item.relpath for item in items)
    total = sum(len(getattr(split, role)) for role in ("train", "validation", "query", "index"))
    assert total == len(items)


def test_landmark_counts_and_disjointness() -> None:
    split = split_by_landmark(_collection(), SplitConfig(seed=3))
    # 11 labelled landmarks: floor(5.5) = 5 train, round(1.1) = 1 validation, 5 test
    train = _landmarks(split.train)
    assert len(train) == 5
    assert _landmarks(split.validation) & _landmarks(split.query) == set()
    assert train & (_landmarks(split.validation) | _landmarks(split.query) | _landmarks(split.index)) == set()
    assert {item.landmark for item in split.index if item.landmark == UNLABELLED} == {UNLABELLED}
    assert len(split.validation) == 1  # one query from the one validation landmark
    assert 4 <= len(split.query) <= 5  # "single" has no index partner, so it cannot give a query


def test_every_query_has_a_relevant_index_image_and_not_itself() -> None:
    split = split_by_landmark(_collection(), SplitConfig(seed=1, queries_per_landmark=2))
    for queries in (split.validation, split.query):
        truth = relevant_index_images(queries, split.index)
        assert set(truth) == {item.relpath for item in queries}
        for query, positives in truth.items():
            assert len(positives) == 2  # 4 images, 2 are queries
            assert query not in positives
            assert all(p.split("/")[0] == query.split("/")[0] for p in positives)


def test_deterministic_regardless_of_order_and_seed_sensitive() -> None:
    items = _collection()
    shuffled = items[:]
    random.Random(5).shuffle(shuffled)
    assert split_by_landmark(items, SplitConfig(seed=7)) == split_by_landmark(shuffled, SplitConfig(seed=7))
    roles = [split_by_landmark(items, SplitConfig(seed=seed)).role_of() for seed in range(4)]
    assert any(roles[0] != other for other in roles[1:])


def test_adding_a_landmark_keeps_most_assignments() -> None:
    items = _collection()
    before = split_by_landmark(items).role_of()
    after = split_by_landmark([*items, *(_item("new", f"n{j}") for j in range(4))]).role_of()
    changed = sum(before[key] != after[key] for key in before)
    assert changed <= 8  # at most the landmarks at the two boundaries move


def test_unlabelled_images_are_never_relevant() -> None:
    query = _item("a", "q")
    index = [_item("a", "x"), _item(UNLABELLED, "d"), _item("b", "y")]
    assert relevant_index_images([query, _item(UNLABELLED, "u")], index) == {
        "a/q.jpg": frozenset({"a/x.jpg"})
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train_fraction": 1.0},
        {"validation_fraction": -0.1},
        {"train_fraction": 0.6, "validation_fraction": 0.4},
        {"queries_per_landmark": 0},
    ],
)
def test_bad_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SplitConfig(**kwargs)


def test_no_training_landmarks_when_fraction_is_zero() -> None:
    split = split_by_landmark(_collection(), SplitConfig(train_fraction=0.0, validation_fraction=0.0))
    assert split.train == () and split.validation == ()
    assert len(split.query) == 10
