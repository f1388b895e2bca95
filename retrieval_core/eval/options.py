"""The knobs of an evaluation run, in one place for the bench script, the Django command and the web UI.

`LadderOptions` is plain data (it round-trips through JSON, so a stored run says exactly how it was made).
Every option that serving also has defaults to the served preset (``retrieval_core.search.served.SERVED``);
`configs` turns the options into ``run_ladder``'s ``ServedConfig`` and ``LadderConfig``, and
`add_arguments` exposes them on any argparse parser with ``None`` defaults, meaning "as served".
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

from retrieval_core.eval.evaluation_protocol import ProtocolConfig
from retrieval_core.eval.extraction import PatchConfig
from retrieval_core.eval.ladder_config import LadderConfig
from retrieval_core.eval.splits import SplitConfig
from retrieval_core.rerank.verification import GeometryMethod
from retrieval_core.search.served import SERVED, ServedConfig
from retrieval_core.search.tuning import DEFAULT_GRID

__all__ = ["LadderOptions"]

_FUSION, _SEARCH = SERVED.search.fusion, SERVED.search
_GEOMETRIES: tuple[GeometryMethod, ...] = ("homography", "fundamental")


@dataclass(frozen=True)
class LadderOptions:
    """E1 = ``backbone`` with ImageNet weights; each checkpoint adds a row (E2, E4, ... or ``model_ids``).

    Search options default to the served preset; ``top_k``, the protocol, ``grid`` and the checkpoints
    are the evaluation's own. ``query_keypoints`` 0: as ``sift_keypoints``; ``vlad_k`` 0 skips
    E6, ``patches`` 0 skips E7; ``rerank_depth`` 0: ``top_k``."""

    backbone: str = SERVED.embedding.backbone
    image_size: int = SERVED.embedding.image_size
    checkpoints: tuple[str, ...] = ()
    model_ids: tuple[str, ...] = ()
    sift_keypoints: int = SERVED.index_sift.max_keypoints
    query_keypoints: int = SERVED.query_sift.max_keypoints
    sift_long_side: int = SERVED.index_sift.long_side
    vlad_k: int = SERVED.vlad_clusters
    patches: int = _SEARCH.patch_top_n
    top_k: int = 100
    grid: tuple[float, ...] = DEFAULT_GRID
    seed: int = 0
    train_fraction: float = 0.5
    validation_fraction: float = 0.1
    queries_per_landmark: int = 1
    validation_per_landmark: int = 2
    leave_one_out: bool = False
    landmark_first: float = _FUSION.landmark_first
    landmark_first_majority: float = _FUSION.landmark_first_majority
    landmark_first_lift: float = _FUSION.landmark_first_lift
    geometry: str = SERVED.verification.geometry
    min_inliers: int = _FUSION.min_inliers
    upright: bool = SERVED.index_sift.upright
    rerank_depth: int = _FUSION.top_k
    verified_expansion: int = _SEARCH.verified_expansion
    verified_expansion_inliers: int = _SEARCH.verified_expansion_inliers
    local_format: str = SERVED.local_format

    def __post_init__(self) -> None:
        if self.geometry not in _GEOMETRIES:
            raise ValueError(f"geometry must be one of {', '.join(_GEOMETRIES)}, got {self.geometry!r}")

    def configs(self) -> tuple[ServedConfig, LadderConfig]:
        """How every row searches (the served preset with these options) and what the ladder runs."""
        embedding = dataclasses.replace(SERVED.embedding, backbone=self.backbone, image_size=self.image_size)
        models = (embedding, *(dataclasses.replace(embedding, weights=path) for path in self.checkpoints))
        index_sift = dataclasses.replace(
            SERVED.index_sift,
            max_keypoints=self.sift_keypoints,
            long_side=self.sift_long_side,
            upright=self.upright,
        )
        fusion = dataclasses.replace(
            _FUSION,
            top_k=self.rerank_depth or self.top_k,
            min_inliers=self.min_inliers,
            landmark_first=self.landmark_first,
            landmark_first_majority=self.landmark_first_majority,
            landmark_first_lift=self.landmark_first_lift,
        )
        search = dataclasses.replace(
            _SEARCH,
            fusion=fusion,
            verified_expansion=self.verified_expansion,
            verified_expansion_inliers=self.verified_expansion_inliers,
        )
        served = dataclasses.replace(
            SERVED,
            search=search,
            embedding=embedding,
            index_sift=index_sift,
            query_sift=dataclasses.replace(
                index_sift, max_keypoints=self.query_keypoints or self.sift_keypoints
            ),
            verification=dataclasses.replace(
                SERVED.verification, geometry=cast(GeometryMethod, self.geometry)
            ),
            local_format=self.local_format,
        )
        ladder = LadderConfig(
            models=models,
            model_ids=self.model_ids,
            vlad_k=self.vlad_k,
            patches=PatchConfig(top_n=self.patches) if self.patches else None,
            fusion_grid=self.grid,
            top_k=self.top_k,
            protocol=self.protocol(),
        )
        return served, ladder

    def ladder_kwargs(self) -> dict[str, Any]:
        """``run_ladder(root, cache_dir=..., **options.ladder_kwargs())``."""
        config, ladder = self.configs()
        return {"config": config, "ladder": ladder}

    def protocol(self) -> ProtocolConfig:
        """Which images are queries, validation queries and index."""
        return ProtocolConfig(
            split=SplitConfig(
                seed=self.seed,
                train_fraction=self.train_fraction,
                validation_fraction=self.validation_fraction,
                queries_per_landmark=self.queries_per_landmark,
            ),
            seed=self.seed,
            validation_per_landmark=self.validation_per_landmark,
            validation_fraction=self.validation_fraction if self.leave_one_out else 0.2,
            leave_one_out=self.leave_one_out,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LadderOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown evaluation options: {', '.join(sorted(unknown))}")
        values = dict(raw)
        for name in ("checkpoints", "model_ids", "grid"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add one ``--option`` per field (``--checkpoint`` repeatable, ``--grid`` comma-separated). An
        option left out is None: the served value (or the evaluation's own default)."""
        served = LadderOptions()

        def option(flag: str, kind: type, what: str = "") -> None:
            name = flag.removeprefix("--").replace("-", "_")
            default = getattr(served, name)
            parser.add_argument(flag, type=kind, default=None, help=f"{what} (default: {default})".lstrip())

        option("--backbone", str)
        option("--image-size", int)
        parser.add_argument(
            "--checkpoint",
            "--model",
            dest="checkpoints",
            action="append",
            default=[],
            help="a trained checkpoint to evaluate as one more row (repeatable)",
        )
        parser.add_argument("--model-ids", default="", help="comma-separated row ids, one per model")
        option("--sift-keypoints", int, "index SIFT keypoints")
        option("--query-keypoints", int, "query SIFT keypoints (0: same as --sift-keypoints)")
        option("--sift-long-side", int)
        option("--vlad-k", int, "VLAD words; 0 skips E6")
        option("--patches", int, "patches per image; 0 skips E7")
        option("--top-k", int, "candidates per query, and the k of mAP@k")
        parser.add_argument(
            "--grid", default="", help="comma-separated fusion weights (default 0, 0.05, ..., 1)"
        )
        option("--seed", int)
        option("--train-fraction", float)
        option("--validation-fraction", float)
        option("--queries-per-landmark", int)
        option("--validation-per-landmark", int)
        option(
            "--landmark-first",
            float,
            "confidence from which the recognised landmark's photos rank first (0: off)",
        )
        option(
            "--landmark-first-majority",
            float,
            "with landmark first on and nothing verified, the share of the top results one landmark must "
            "carry to move first (0: off)",
        )
        option(
            "--landmark-first-lift",
            float,
            "with --landmark-first-majority: the majority must also be this many times the landmark's share "
            "of the collection (0: off)",
        )
        parser.add_argument(
            "--geometry", choices=_GEOMETRIES, default=None, help=f"(default: {served.geometry})"
        )
        option("--min-inliers", int)
        parser.add_argument(
            "--upright",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"upright SIFT (orientation 0; default: {served.upright})",
        )
        option(
            "--verified-expansion",
            int,
            "average the query with up to N verified candidates and fuse again (0: off)",
        )
        option("--verified-expansion-inliers", int)
        option("--rerank-depth", int, "candidates re-ranked (0: --top-k)")
        option(
            "--local-format",
            str,
            "how index SIFT is stored: full, or <8|4|2>bit-<float32|uint16>[-k<keypoints>]",
        )
        parser.add_argument(
            "--leave-one-out",
            action="store_true",
            default=None,
            help="every labelled image is a query against all the others (itself removed); "
            "--validation-fraction of them are held out for tuning",
        )

    @classmethod
    def from_arguments(cls, values: dict[str, Any]) -> LadderOptions:
        """Options from parsed arguments (a namespace's ``vars`` or Django's ``options``); an option that
        is absent or None keeps its default."""
        picked = {f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None}
        picked["checkpoints"] = tuple(values.get("checkpoints") or ())
        picked["model_ids"] = tuple(v for v in (values.get("model_ids") or "").split(",") if v)
        grid = values.get("grid") or ""
        picked["grid"] = tuple(float(v) for v in grid.split(",")) if grid else DEFAULT_GRID
        return cls(**picked)
