"""Mined validation is scored like the real leave-one-out evaluation: every member of a held-out
component is a query, searched against the whole collection."""

from __future__ import annotations

from pathlib import Path

from retrieval_core.datasets.collection import UNLABELLED
from retrieval_core.eval.splits import relevant_index_images
from retrieval_core.training.pair_mining import MiningResult
from retrieval_core.training.self_supervised import mined_split


def _result() -> MiningResult:
    components = {f"mined-{n:04d}": [f"c{n}_{m}.jpg" for m in range(3)] for n in range(1, 6)}
    uncovered = [f"alone_{n}.jpg" for n in range(7)]
    covered = [image for members in components.values() for image in members]
    return MiningResult(
        ids=tuple(sorted(covered + uncovered)),
        labels={image: name for name, members in components.items() for image in members},
        positives=(),
        negatives=(),
        statistics={},
    )


def test_every_member_of_a_held_out_component_is_a_query_against_the_whole_collection() -> None:
    result = _result()
    split = mined_split(result, {i: Path(f"/photos/{i}") for i in result.ids}, validation_fraction=0.4)
    queries = {q.relpath for q in split.val_queries}
    held = {q.landmark for q in split.val_queries}
    assert len(held) == 2 and len(queries) == 6  # two whole components, every member a query
    assert not queries & {item.relpath for item in split.train}
    assert {item.relpath for item in split.val_index} == set(result.ids)  # the whole collection
    alone = [item for item in split.val_index if item.relpath.startswith("alone")]
    assert len(alone) == 7 and all(item.landmark == UNLABELLED for item in alone)
    truth = relevant_index_images(split.val_queries, split.val_index)
    for query in split.val_queries:  # positives: the query's component mates, never itself
        assert truth[query.relpath] == {
            i for i in result.ids if result.labels.get(i) == query.landmark and i != query.relpath
        }


def test_distractors_cap_the_rest_of_the_collection_and_fixed_queries_stay_available() -> None:
    result = _result()
    split = mined_split(
        result,
        {i: Path(f"/photos/{i}") for i in result.ids},
        validation_fraction=0.2,
        queries_per_component=1,
        distractors=4,
    )
    assert len(split.val_queries) == 1
    # 2 positives of the one held-out component + 4 distractors (no hard negatives were mined).
    assert len(split.val_index) == 6
