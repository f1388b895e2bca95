from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from retrieval_core.datasets.collection import CollectionFormatError
from retrieval_core.datasets.gldv2_retrieval import SOLUTION_FILENAME, read_gldv2_retrieval
from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.eval.evaluation_protocol import (
    EvalProtocol,
    EvalQuery,
    ProtocolConfig,
    QuerySet,
    build_protocol,
    parse_ground_truth,
)
from retrieval_core.eval.splits import SplitConfig

SMALL = (48, 64)


def _views(landmark: int, *views: int) -> list[str]:
    return [f"landmark_{landmark:03d}/view_{v:03d}.jpg" for v in views]


def _assert_disjoint(protocol: EvalProtocol) -> None:
    reported = {q.relpath for q in protocol.queries}
    validation = {q.relpath for q in protocol.validation.queries}
    assert reported and validation and not reported & validation
    assert not reported & set(protocol.index)
    assert not validation & set(protocol.validation.index)


def test_ground_truth_json_with_junk_and_validation(tmp_path: Path) -> None:
    write_collection(tmp_path, 3, 4, seed=0, image_size=SMALL)
    (tmp_path / "ground_truth.json").write_text(
        json.dumps(
            {
                "queries": [
                    {"image": _views(0, 0)[0], "positives": _views(0, 1, 2), "junk": _views(0, 3)},
                    {"image": _views(1, 0)[0], "positives": _views(1, 1, 2, 3)},
                ],
                "validation": [{"image": _views(2, 0)[0], "positives": _views(2, 1, 2, 3)}],
            }
        )
    )
    protocol = build_protocol(tmp_path)

    assert protocol.source == "ground_truth_json"
    first = protocol.queries[0]
    assert first == EvalQuery(_views(0, 0)[0], frozenset(_views(0, 1, 2)), frozenset(_views(0, 3)))
    assert [q.relpath for q in protocol.validation.queries] == _views(2, 0)
    # Index: every image that is not a query (reported or validation), junk included.
    assert len(protocol.index) == 12 - 3 and _views(0, 3)[0] in protocol.index
    _assert_disjoint(protocol)


def test_ground_truth_without_validation_holds_some_queries_out(tmp_path: Path) -> None:
    write_collection(tmp_path, 5, 3, seed=0, image_size=SMALL)
    entries = [{"image": _views(i, 0)[0], "positives": _views(i, 1, 2)} for i in range(5)]
    (tmp_path / "ground_truth.json").write_text(json.dumps({"queries": entries}))

    protocol = build_protocol(tmp_path, ProtocolConfig(validation_fraction=0.4))

    assert len(protocol.validation.queries) == 2 and len(protocol.queries) == 3
    assert {q.relpath for q in (*protocol.queries, *protocol.validation.queries)} == {
        e["image"] for e in entries
    }
    assert protocol.validation.index == protocol.index
    _assert_disjoint(protocol)
    assert "held out" in " ".join(protocol.notes)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"image": "a/1.jpg", "positives": ["a/9.jpg"]}, "not an image of the collection"),
        ({"image": "a/1.jpg", "positives": ["a/2.jpg"], "junk": ["a/2.jpg"]}, "both positive and junk"),
        ({"image": "a/1.jpg", "positives": ["a/1.jpg"]}, "lists itself"),
        ({"image": "../a/1.jpg", "positives": []}, "leaves the collection"),
        ({"positives": ["a/2.jpg"]}, "needs an 'image'"),
        ({"image": "a/1.jpg", "positives": "a/2.jpg"}, "must be a list"),
    ],
)
def test_ground_truth_errors_name_the_problem(entry: dict, message: str) -> None:
    with pytest.raises(CollectionFormatError, match=message):
        parse_ground_truth({"queries": [entry]}, ["a/1.jpg", "a/2.jpg", "a/3.jpg"])


def test_labels_csv_queries_and_validation_from_the_index(tmp_path: Path) -> None:
    write_collection(tmp_path, 3, 5, seed=1, layout="labels_csv", image_size=SMALL, queries_per_landmark=1)
    protocol = build_protocol(tmp_path, ProtocolConfig(validation_per_landmark=2))

    assert protocol.source == "labels_csv"
    assert [q.relpath for q in protocol.queries] == [_views(i, 0)[0] for i in range(3)]
    assert protocol.queries[0].positives == frozenset(_views(0, 1, 2, 3, 4))
    assert len(protocol.index) == 12
    # Validation: two index images per landmark, searched against the index without them.
    assert len(protocol.validation.queries) == 6
    assert len(protocol.validation.index) == 6
    for query in protocol.validation.queries:
        landmark = query.relpath.split("/")[0]
        assert len(query.positives) == 2 and all(p.startswith(landmark) for p in query.positives)
    _assert_disjoint(protocol)
    # Reported results are over the full index, validation images included.
    assert {q.relpath for q in protocol.validation.queries} <= set(protocol.index)


def test_labels_csv_split_validation_rows_are_used(tmp_path: Path) -> None:
    write_collection(tmp_path, 2, 4, seed=1, layout="labels_csv", image_size=SMALL, queries_per_landmark=1)
    rows = list(csv.reader((tmp_path / "labels.csv").open()))
    for row in rows[1:]:
        if row[0].endswith("view_001.jpg"):
            row[2] = "validation"
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)

    protocol = build_protocol(tmp_path)

    assert [q.relpath for q in protocol.validation.queries] == [*_views(0, 1), *_views(1, 1)]
    assert protocol.validation.index == protocol.index and len(protocol.index) == 4
    _assert_disjoint(protocol)


def test_seeded_split_without_marked_queries(tmp_path: Path) -> None:
    write_collection(tmp_path, 8, 3, seed=2, image_size=SMALL)
    config = ProtocolConfig(split=SplitConfig(seed=3, train_fraction=0.25, validation_fraction=0.25))
    protocol = build_protocol(tmp_path, config)

    assert protocol.source == "seeded_split"
    assert len(protocol.queries) == 4 and len(protocol.validation.queries) == 2
    _assert_disjoint(protocol)
    landmarks_of = {q.relpath.split("/")[0] for q in (*protocol.queries, *protocol.validation.queries)}
    index_landmarks = {name.split("/")[0] for name in protocol.index}
    assert len(index_landmarks) == 6 and landmarks_of <= index_landmarks  # 2 training landmarks left out
    assert build_protocol(tmp_path, config) == protocol  # deterministic


def test_protocol_refuses_tuning_on_reported_queries(tmp_path: Path) -> None:
    query = EvalQuery("a/1.jpg", frozenset({"a/2.jpg"}))
    with pytest.raises(ValueError, match="validation queries are reported queries"):
        EvalProtocol(tmp_path, "labels_csv", (query,), ("a/2.jpg",), QuerySet((query,), ("a/2.jpg",)))
    with pytest.raises(ValueError, match="also in its index"):
        QuerySet((query,), ("a/1.jpg", "a/2.jpg"))
    with pytest.raises(ValueError, match="positives outside"):
        QuerySet((query,), ("a/3.jpg",))


def _gldv2(root: Path) -> None:
    """Index ids idx001..idx004, tests tst001..tst004 (tst004's file missing), and a solution file."""
    for subdir, ids in (
        ("index", ["idx001", "idx002", "idx003", "idx004"]),
        ("test", ["tst001", "tst002", "tst003"]),
    ):
        for image_id in ids:
            path = root / subdir / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 24), (10, 20, 30)).save(path)
    (root / "index.csv").write_text("id\nidx001\nidx002\nidx003\nidx004\nidx005\n")
    (root / "test.csv").write_text("id\ntst001\ntst002\ntst003\ntst004\n")
    (root / SOLUTION_FILENAME).write_text(
        "id,images,Usage\n"
        "tst001,idx001 idx002,Private\n"
        "tst002,idx003 idx005,Public\n"  # idx005 is not on disk
        "tst003,None,Ignored\n"
        "tst004,idx004,Private\n"  # query file missing
    )


def test_gldv2_retrieval_files(tmp_path: Path) -> None:
    _gldv2(tmp_path)
    data = read_gldv2_retrieval(tmp_path)
    assert [q.image_id for q in data.queries] == ["tst001", "tst002"]
    assert data.queries[1].positives == frozenset({"index/i/d/x/idx003.jpg"})
    assert any("idx005" in line for line in data.skipped) and any("tst004" in line for line in data.skipped)

    protocol = build_protocol(tmp_path)
    assert protocol.source == "gldv2"
    assert [q.relpath for q in protocol.queries] == ["test/t/s/t/tst001.jpg"]  # Private
    assert [q.relpath for q in protocol.validation.queries] == ["test/t/s/t/tst002.jpg"]  # Public
    assert len(protocol.index) == 4
    _assert_disjoint(protocol)


def test_gldv2_bad_usage_is_an_error(tmp_path: Path) -> None:
    _gldv2(tmp_path)
    (tmp_path / SOLUTION_FILENAME).write_text("id,images,Usage\ntst001,idx001,Secret\n")
    with pytest.raises(CollectionFormatError, match="Usage 'Secret'"):
        read_gldv2_retrieval(tmp_path)


def test_leave_one_out_every_labelled_image_is_a_query_against_all_others(tmp_path: Path) -> None:
    write_collection(tmp_path, 3, 4, seed=0, image_size=SMALL)
    protocol = build_protocol(tmp_path, ProtocolConfig(leave_one_out=True, validation_fraction=0.25))
    assert protocol.source == "leave_one_out" and protocol.leave_one_out
    reported = {q.relpath for q in protocol.queries}
    validation = {q.relpath for q in protocol.validation.queries}
    assert len(reported) == 9 and len(validation) == 3 and not reported & validation
    assert set(protocol.index) == reported | validation  # every image is in the index
    for query in (*protocol.queries, *protocol.validation.queries):
        landmark = query.relpath.split("/")[0]
        assert query.relpath not in query.positives and len(query.positives) == 3
        assert all(p.startswith(landmark) for p in query.positives)
    assert "leave-one-out" in protocol.summary()


def test_ground_truth_whose_positives_are_queries_is_evaluated_leave_one_out(tmp_path: Path) -> None:
    write_collection(tmp_path, 2, 3, seed=0, image_size=SMALL)
    views = [*_views(0, 0, 1, 2), *_views(1, 0, 1, 2)]
    entries = [
        {"image": image, "positives": [v for v in views if v != image and v[:12] == image[:12]]}
        for image in views
    ]
    (tmp_path / "ground_truth.json").write_text(json.dumps({"queries": entries}))
    protocol = build_protocol(tmp_path, ProtocolConfig(validation_fraction=0.34))
    assert protocol.leave_one_out and set(protocol.index) == set(views)
    assert len(protocol.queries) + len(protocol.validation.queries) == 6
    assert any("leave-one-out" in note for note in protocol.notes)
    with pytest.raises(ValueError, match="also in its index"):
        QuerySet(protocol.queries, protocol.index)  # without the flag, as before
