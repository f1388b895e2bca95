from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.eval.report import LadderReport, LadderRow, interpolated_precision

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _report(root: Path) -> LadderReport:
    """Two queries on a 2 landmark x 3 view collection; E1 gets the first one half right, E5 both right."""
    a = [f"landmark_000/view_{i:03d}.jpg" for i in range(3)]
    b = [f"landmark_001/view_{i:03d}.jpg" for i in range(3)]
    queries = (
        EvalQuery(a[0], frozenset(a[1:])),
        EvalQuery(b[0], frozenset(b[1:2]), junk=frozenset(b[2:])),
    )
    e1 = LadderRow(
        id="E1",
        method="pretrained",
        map_at_k=0.75,
        precision_at_10=0.15,
        recall_at_k=1.0,
        median_latency_ms=12.3,
        p95_latency_ms=19.6,
        index_bytes=4 * 1280 * 4,
        weight_global=None,
        validation_map=0.5,
        per_query_ap={a[0]: 0.5, b[0]: 1.0},
        rankings={a[0]: (b[1], a[1], a[2], b[2]), b[0]: (b[2], b[1], a[1], a[2])},
    )
    e5 = LadderRow(
        id="E5",
        method="E1 + SIFT",
        map_at_k=1.0,
        precision_at_10=0.15,
        recall_at_k=1.0,
        median_latency_ms=250.0,
        index_bytes=3 * 1024 * 1024,
        weight_global=0.35,
        validation_map=0.8,
        per_query_ap={a[0]: 1.0, b[0]: 1.0},
        rankings={a[0]: (a[2], a[1], b[1], b[2]), b[0]: (b[1], b[2], a[1], a[2])},
        tuning=((0.35, 0.8), (1.0, 0.5)),
    )
    return LadderReport(
        root=root,
        protocol="labels_csv: 2 reported queries",
        top_k=100,
        rows=(e1, e5),
        queries=queries,
        settings={"sift": "rootsift-n1000"},
        extracted={"model": 6},
    )


def test_markdown_table(tmp_path: Path) -> None:
    text = _report(tmp_path).to_markdown()
    lines = text.splitlines()
    assert lines[2].startswith("| id | method | mAP@100 | P@10 | R@100 | val mAP@100 | v | GAP (threshold) |")
    assert lines[4] == "| E1 | pretrained | 75.00 | 15.00 | 100.00 | 50.00 | - | - | 12 / 20 ms | 20.0 kB |"
    assert lines[5] == "| E5 | E1 + SIFT | 100.00 | 15.00 | 100.00 | 80.00 | 0.35 | - | 250 ms | 3.0 MB |"


def test_json_keeps_per_query_ap_and_optionally_rankings(tmp_path: Path) -> None:
    report = _report(tmp_path)
    data = json.loads(report.to_json())
    assert [row["id"] for row in data["rows"]] == ["E1", "E5"]
    assert data["rows"][0]["per_query_ap"]["landmark_000/view_000.jpg"] == 0.5
    assert data["rows"][1]["tuning"] == [[0.35, 0.8], [1.0, 0.5]]
    assert data["rows"][0]["rankings"] == {}
    assert data["queries"][1]["junk"] == ["landmark_001/view_002.jpg"]
    full = json.loads(report.to_json(rankings=True))
    assert full["rows"][1]["rankings"]["landmark_000/view_000.jpg"][0] == "landmark_000/view_002.jpg"


def test_write_creates_every_file(tmp_path: Path) -> None:
    write_collection(tmp_path / "c", 2, 3, seed=0, image_size=(60, 80))
    paths = _report(tmp_path / "c").write(tmp_path / "out", worst_of="E1")
    names = sorted(path.name for path in paths)
    assert names == [
        "ap_histograms.png",
        "precision_recall.png",
        "report.json",
        "report.md",
        "worst_queries_E1.png",
    ]
    for path in paths:
        assert path.stat().st_size > 100
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert json.loads((tmp_path / "out" / "report.json").read_text())["rows"][0]["rankings"]


def test_interpolated_precision() -> None:
    levels = np.array([0.0, 0.5, 1.0])
    # hit, miss, hit: precision 1 up to recall 0.5, 2/3 at recall 1.
    curve = interpolated_precision(["p1", "n1", "p2"], frozenset({"p1", "p2"}), levels=levels)
    np.testing.assert_allclose(curve, [1.0, 1.0, 2 / 3])
    # Junk is removed before ranking; a positive never retrieved caps recall at 0.5.
    curve = interpolated_precision(["j", "n1", "p1"], frozenset({"p1", "p2"}), frozenset({"j"}), levels)
    np.testing.assert_allclose(curve, [0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="without positives"):
        interpolated_precision(["a"], frozenset())
