"""One served configuration: ``retrieval_core.search.served.SERVED`` states every served default, and the
settings, the evaluation options and the benchmarks take theirs from it instead of stating it again."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval_core.eval.options import LadderOptions
from retrieval_core.search.served import SERVED, replace_given

ROOT = Path(__file__).resolve().parents[3]

# Every setting whose default is served, and the preset's value for it.
SERVED_SETTINGS: dict[str, object] = {
    "IMAGE_MAX_PIXELS": SERVED.search.decode.max_pixels,
    "DECODE_DRAFT_LONG_SIDE": SERVED.search.decode.draft_long_side,
    "EMBEDDING_BACKBONE": SERVED.embedding.backbone,
    "EMBEDDING_WEIGHTS": SERVED.embedding.weights,
    "EMBEDDING_IMAGE_SIZE": SERVED.embedding.image_size,
    "EMBEDDING_GEM_P": SERVED.embedding.gem_p,
    "SEARCH_TOP_K": SERVED.search.k,
    "RECOGNITION_TOP_N": SERVED.search.recognition.top_n,
    "RECOGNITION_THRESHOLD": SERVED.search.recognition.threshold,
    "RERANK_METHOD": SERVED.rerank_method,
    "RERANK_TOP_K": SERVED.search.fusion.top_k,
    "FUSION_WEIGHT_GLOBAL": SERVED.search.fusion.weight_global,
    "SIFT_MAX_KEYPOINTS": SERVED.index_sift.max_keypoints,
    "SIFT_QUERY_MAX_KEYPOINTS": SERVED.query_sift.max_keypoints,
    "SIFT_LONG_SIDE": SERVED.index_sift.long_side,
    "SIFT_UPRIGHT": SERVED.index_sift.upright,
    "LOCAL_FEATURES_FORMAT": SERVED.local_format,
    "RERANK_GEOMETRY": SERVED.verification.geometry,
    "RERANK_MIN_INLIERS": SERVED.search.fusion.min_inliers,
    "RERANK_LANDMARK_FIRST": SERVED.search.fusion.landmark_first,
    "RERANK_LANDMARK_FIRST_MAJORITY": SERVED.search.fusion.landmark_first_majority,
    "RERANK_LANDMARK_FIRST_LIFT": SERVED.search.fusion.landmark_first_lift,
    "RERANK_VERIFIED_EXPANSION": SERVED.search.verified_expansion,
    "RERANK_VERIFIED_EXPANSION_INLIERS": SERVED.search.verified_expansion_inliers,
    "VLAD_CLUSTERS": SERVED.vlad_clusters,
    "PATCHES_TOP_N": SERVED.search.patch_top_n,
}

# Command-line options that name a served setting: left out, they must mean "as served" (default None).
SERVED_FLAGS = frozenset(
    {
        "--backbone",
        "--image-size",
        "--sift-keypoints",
        "--index-keypoints",
        "--query-keypoints",
        "--sift-long-side",
        "--long-side",
        "--candidates",
        "--weight-global",
        "--geometry",
        "--min-inliers",
        "--landmark-first",
        "--landmark-first-majority",
        "--landmark-first-lift",
        "--verified-expansion",
        "--verified-expansion-inliers",
        "--vlad-k",
        "--patches",
        "--rerank-depth",
        "--local-format",
        "--method",
        "--rerank",
        "--upright",
    }
)
# Same flag name, another concept: training chooses its own model, input size and mining threshold.
NOT_SERVED = {
    ("bench/gpu_check.py", "--min-inliers"): "the mining threshold for training pairs",
    ("bench/self_supervised.py", "--image-size"): "the training input size",
    ("bench/self_supervised.py", "--min-inliers"): "the mining threshold for training pairs",
    ("webapp/training/management/commands/train.py", "--backbone"): "the model trained (training defaults)",
    ("webapp/training/management/commands/train.py", "--image-size"): "the training input size",
    ("webapp/training/management/commands/train.py", "--min-inliers"): "the mining threshold",
    ("bench/train_demo.py", "--image-size"): "the training input size",
    ("bench/train_throughput.py", "--image-size"): "the training input size",
}
# LadderOptions fields that only evaluation has (everything else must come from the preset).
EVALUATION_ONLY = frozenset(
    {
        "checkpoints",
        "model_ids",
        "top_k",
        "grid",
        "seed",
        "train_fraction",
        "validation_fraction",
        "queries_per_landmark",
        "validation_per_landmark",
        "leave_one_out",
    }
)


def _command_sources() -> Iterator[Path]:
    yield ROOT / "retrieval_core" / "eval" / "options.py"
    yield from sorted((ROOT / "bench").glob("*.py"))
    yield from sorted((ROOT / "webapp").glob("*/management/commands/*.py"))


def _mentions_preset(node: ast.AST) -> bool:
    """True when the expression reads the preset (``SERVED...``) instead of stating a value."""
    return any(isinstance(n, ast.Name) and n.id in {"SERVED", "_SEARCH", "_FUSION"} for n in ast.walk(node))


def restated_settings(source: str) -> list[str]:
    """``env_*("NAME", default)`` calls of a served setting whose default does not read the preset."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("env_")
        ):
            continue
        if len(node.args) < 2 or not isinstance(node.args[0], ast.Constant):
            continue
        name = node.args[0].value
        if name in SERVED_SETTINGS and not _mentions_preset(node.args[1]):
            found.append(f"{name} = {ast.unparse(node.args[1])}")
    return found


def restated_flags(source: str, path: str) -> list[str]:
    """``add_argument("--served-flag", default=<not None>)`` calls."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "add_argument":
            continue
        flags = {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
        for flag in flags & SERVED_FLAGS:
            if (path, flag) in NOT_SERVED:
                continue
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if default is not None and not (isinstance(default, ast.Constant) and default.value is None):
                found.append(f"{path}: {flag} default={ast.unparse(default)}")
    return found


def restated_options(source: str) -> list[str]:
    """``LadderOptions`` fields that serving also has whose default does not read the preset."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "LadderOptions":
            return [
                f"{item.target.id} = {ast.unparse(item.value)}"
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value
                if item.target.id not in EVALUATION_ONLY and not _mentions_preset(item.value)
            ]
    raise AssertionError("no LadderOptions class")


def test_the_checks_catch_a_second_statement_of_a_default() -> None:
    assert restated_settings('RERANK_MIN_INLIERS = env_int("RERANK_MIN_INLIERS", 12)') == [
        "RERANK_MIN_INLIERS = 12"
    ]
    assert restated_settings('X = env_int("RERANK_MIN_INLIERS", SERVED.search.fusion.min_inliers)') == []
    assert restated_flags('p.add_argument("--min-inliers", type=int, default=12)', "bench/x.py") == [
        "bench/x.py: --min-inliers default=12"
    ]
    assert restated_flags('p.add_argument("--min-inliers", type=int)', "bench/x.py") == []
    bad = "class LadderOptions:\n    seed: int = 0\n    min_inliers: int = 12\n    k: int = _SEARCH.k\n"
    assert restated_options(bad) == ["min_inliers = 12"]


def test_settings_state_no_served_default() -> None:
    assert restated_settings((ROOT / "webapp" / "settings.py").read_text()) == []


def test_no_command_line_option_states_a_served_default() -> None:
    found = []
    for path in _command_sources():
        found += restated_flags(path.read_text(), path.relative_to(ROOT).as_posix())
    assert found == []


def test_evaluation_options_take_the_preset() -> None:
    assert restated_options((ROOT / "retrieval_core" / "eval" / "options.py").read_text()) == []
    config, ladder = LadderOptions().configs()
    assert config == SERVED  # evaluate without options runs what is served
    assert ladder.vlad_k == SERVED.vlad_clusters and ladder.patches is not None
    assert ladder.patches.top_n == SERVED.search.patch_top_n
    parser = argparse.ArgumentParser()
    LadderOptions.add_arguments(parser)
    assert LadderOptions.from_arguments(vars(parser.parse_args([]))) == LadderOptions()
    told = LadderOptions.from_arguments(vars(parser.parse_args(["--min-inliers", "20", "--no-upright"])))
    assert told == dataclasses.replace(LadderOptions(), min_inliers=20, upright=False)


def test_settings_without_the_environment_are_the_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SERVED_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    values = runpy.run_path(str(ROOT / "webapp" / "settings.py"))
    assert {name: values[name] for name in SERVED_SETTINGS} == SERVED_SETTINGS
    monkeypatch.setenv("RERANK_MIN_INLIERS", "20")  # an environment variable still overrides one value
    assert runpy.run_path(str(ROOT / "webapp" / "settings.py"))["RERANK_MIN_INLIERS"] == 20


def test_replace_given_keeps_the_served_value_for_an_option_left_out() -> None:
    assert replace_given(SERVED.index_sift, max_keypoints=None) == SERVED.index_sift
    assert replace_given(SERVED.index_sift, max_keypoints=7).max_keypoints == 7


def test_query_and_index_sift_differ_in_their_keypoint_budget_only() -> None:
    with pytest.raises(ValueError, match="max_keypoints only"):
        dataclasses.replace(SERVED, query_sift=dataclasses.replace(SERVED.query_sift, long_side=320))
    with pytest.raises(ValueError, match="rerank_method"):
        dataclasses.replace(SERVED, rerank_method="vlad")
