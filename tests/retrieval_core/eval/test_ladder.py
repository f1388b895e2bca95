from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.eval.evaluation_protocol import ProtocolConfig
from retrieval_core.eval.extraction import PatchConfig
from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.ladder_config import LadderConfig
from retrieval_core.eval.report import LadderReport
from retrieval_core.eval.splits import SplitConfig
from retrieval_core.features.sift import SiftConfig
from retrieval_core.models.embedding import EmbeddingConfig, build_embedding_net
from retrieval_core.rerank.sift_scorer import VerificationConfig
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.decode import DecodePolicy, local_features_key
from retrieval_core.search.served import ServedConfig

PRETRAINED = EmbeddingConfig(image_size=160)
SIFT = SiftConfig(max_keypoints=300)
PROTOCOL = ProtocolConfig(split=SplitConfig(seed=1, train_fraction=0.0, validation_fraction=0.25))
FIRST_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# Small and fast: the library's building-block defaults, 300 SIFT keypoints for index and queries alike.
SEARCH = ServedConfig(
    search=SearchConfig(),
    rerank_method="sift",
    embedding=PRETRAINED,
    index_sift=SIFT,
    query_sift=SIFT,
    verification=VerificationConfig(),
    local_format="full",
    vlad_clusters=8,
)
ONE_MODEL = LadderConfig(vlad_k=0, patches=None, fusion_grid=FIRST_GRID, protocol=PROTOCOL)


@dataclass(frozen=True)
class World:
    root: Path
    cache: Path
    checkpoint: EmbeddingConfig
    report: LadderReport


def _run(
    world_root: Path, cache: Path, models: list[EmbeddingConfig], grid: tuple[float, ...]
) -> LadderReport:
    ladder = LadderConfig(
        models=tuple(models), vlad_k=8, patches=PatchConfig(), fusion_grid=grid, protocol=PROTOCOL
    )
    return run_ladder(world_root, SEARCH, ladder, cache_dir=cache, device="cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """4 landmarks x 4 views at 160 px; E1 pretrained and E2 a "checkpoint" with mean pooling (GeM p=1)."""
    base = tmp_path_factory.mktemp("ladder")
    write_collection(base / "collection", 4, 4, seed=5, image_size=(120, 160))
    net = build_embedding_net(PRETRAINED)
    net.pool.p.data.fill_(1.0)
    torch.save(net.state_dict(), base / "mean_pooled.pt")
    checkpoint = EmbeddingConfig(weights=str(base / "mean_pooled.pt"), image_size=160)
    report = _run(base / "collection", base / "cache", [PRETRAINED, checkpoint], FIRST_GRID)
    return World(base / "collection", base / "cache", checkpoint, report)


def test_every_rung_is_reported_with_sane_numbers(world: World) -> None:
    report = world.report
    assert [row.id for row in report.rows] == ["E1", "E2", "E5", "E6", "E7", "best"]
    reported = {q.relpath for q in report.queries}
    assert len(reported) == 3  # one query per test landmark; the validation landmark is not reported
    for row in report.rows:
        assert (
            0.0 <= row.map_at_k <= 1.0 and 0.0 <= row.precision_at_10 <= 1.0 and 0.0 <= row.recall_at_k <= 1.0
        )
        assert set(row.per_query_ap) == reported
        assert row.map_at_k == pytest.approx(sum(row.per_query_ap.values()) / len(reported))
        assert 0 < row.median_latency_ms <= row.p95_latency_ms and row.index_bytes > 0
        for query, ranking in row.rankings.items():
            assert query not in ranking and len(ranking) == len(set(ranking)) == 12
    for row in report.rows[2:]:
        assert row.weight_global in FIRST_GRID and [v for v, _ in row.tuning] == list(FIRST_GRID)
        assert row.validation_map == dict(row.tuning)[row.weight_global]
    e1, e5 = report.row("E1"), report.row("E5")
    for row in report.rows:  # recognition GAP next to mAP, its threshold chosen on the validation queries
        assert row.gap is not None and 0.0 <= row.gap <= 1.0
        assert row.recognition_threshold is not None and 0.0 <= row.recognition_threshold < 1.0
    assert e5.gap is not None and e5.gap >= 2 / 3  # the verified re-rank names at least 2 of the 3 queries
    assert "GAP (threshold)" in report.to_markdown()
    assert e1.weight_global is None and e1.validation_map is not None
    assert e5.map_at_k >= e1.map_at_k
    assert e5.index_bytes > e1.index_bytes  # global vectors plus SIFT
    assert report.row("E1").map_at_k != report.row("E2").map_at_k or e1.rankings != report.row("E2").rankings
    assert report.extracted[PRETRAINED.version_key] == 16
    assert report.extracted[world.checkpoint.version_key] == 16
    assert report.extracted[local_features_key(SIFT, DecodePolicy.for_embedding(PRETRAINED))] == 16


def test_second_run_with_another_grid_extracts_nothing(world: World) -> None:
    grid = (0.1, 0.6, 0.9)
    again = _run(world.root, world.cache, [PRETRAINED, world.checkpoint], grid)
    assert sum(again.extracted.values()) == 0
    assert again.row("E1").per_query_ap == world.report.row("E1").per_query_ap
    for row_id in ("E5", "E6", "E7"):
        assert again.row(row_id).weight_global in grid


def test_model_ids_and_top_k_are_checked(world: World) -> None:
    with pytest.raises(ValueError, match="model ids"):
        run_ladder(
            world.root, SEARCH, LadderConfig(models=(PRETRAINED,), model_ids=("E5",)), cache_dir=world.cache
        )
    with pytest.raises(ValueError, match="model ids"):
        run_ladder(world.root, SEARCH, LadderConfig(model_ids=("E1", "E2")), cache_dir=world.cache)
    with pytest.raises(ValueError, match="top_k"):
        LadderConfig(top_k=5)
    # No model named: the search configuration's own embedding is E1.
    assert LadderConfig().rows(PRETRAINED) == ((PRETRAINED,), ["E1"])


def test_leave_one_out_searches_every_query_against_all_others(world: World) -> None:
    loo = dataclasses.replace(
        ONE_MODEL, protocol=ProtocolConfig(leave_one_out=True, validation_fraction=0.25)
    )
    report = run_ladder(world.root, SEARCH, loo, cache_dir=world.cache, device="cpu")
    reported = {q.relpath for q in report.queries}
    assert len(reported) == 12  # 16 images, 4 held out for validation
    for row in report.rows:
        for query, ranking in row.rankings.items():
            assert query not in ranking and len(ranking) == 15  # all the others
    assert report.row("E5").map_at_k >= report.row("E1").map_at_k


def test_gps_tagged_collection_reports_geolocation_against_the_first_result(
    world: World, tmp_path: Path
) -> None:
    """Each landmark's photos carry one position (labels.csv columns): the 1-NN figure is the share of
    queries whose first result is of their own landmark, and the estimator is measured beside it."""
    root = tmp_path / "gps"
    shutil.copytree(world.root, root)
    images = sorted(path.relative_to(root).as_posix() for path in root.rglob("*.jpg"))
    rows = [f"{name},{name.split('/')[0]},,{48 + 0.01 * int(name[9:12])},11.5" for name in images]
    (root / "labels.csv").write_text("image,landmark,split,latitude,longitude\n" + "\n".join(rows) + "\n")
    report = run_ladder(root, SEARCH, ONE_MODEL, cache_dir=tmp_path / "cache", device="cpu")
    for row in report.rows:
        assert row.geolocation is not None and {"reported", "validation"} <= set(row.geolocation)
        reported = row.geolocation["reported"]
        own_landmark_first = [
            ranking[0].split("/")[0] == query.split("/")[0] for query, ranking in row.rankings.items()
        ]
        assert reported["first_result"]["queries"] == len(report.queries)
        assert reported["first_result"]["within"]["25m"] == pytest.approx(
            sum(own_landmark_first) / len(own_landmark_first)
        )
        within = reported["estimator"]["within"]
        assert 0.0 <= within["25m"] <= within["100m"] <= within["1000m"] <= 1.0
    assert report.row("E5").geolocation["reported"]["estimator"]["within"]["25m"] >= 2 / 3  # type: ignore[index]
    assert "Geolocation (estimated position" in report.to_markdown()
    assert world.report.rows[0].geolocation is None  # no positions: nothing claimed
