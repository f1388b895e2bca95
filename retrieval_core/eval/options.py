"""The knobs of an evaluation run, in one place for the bench script, the Django command and the web UI.

`LadderOptions` is plain data (it round-trips through JSON, so a stored run says exactly how it was made);
`ladder_kwargs` turns it into `run_ladder` arguments and `add_arguments` exposes it on any argparse parser.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from typing import Any

from retrieval_core.eval.extraction import PatchConfig
from retrieval_core.eval.protocol import ProtocolConfig
from retrieval_core.eval.splits import SplitConfig
from retrieval_core.features.compact import LocalFeatureFormat
from retrieval_core.features.sift import SiftConfig
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.rerank.sift_scorer import VerificationConfig
from retrieval_core.search.tuning import DEFAULT_GRID

__all__ = ["LadderOptions"]


@dataclass(frozen=True)
class LadderOptions:
    """E1 = ``backbone`` with ImageNet weights; each checkpoint adds a row (E2, E4, ... or ``model_ids``)."""

    backbone: str = "tf_efficientnet_lite0"
    image_size: int = 384
    checkpoints: tuple[str, ...] = ()
    model_ids: tuple[str, ...] = ()
    sift_keypoints: int = 1000
    query_keypoints: int = 500  # as served (SIFT_QUERY_MAX_KEYPOINTS); 0: same as sift_keypoints
    sift_long_side: int = 640
    vlad_k: int = 64  # 0 skips E6
    patches: int = 32  # 0 skips E7
    top_k: int = 100
    grid: tuple[float, ...] = DEFAULT_GRID
    seed: int = 0
    train_fraction: float = 0.5
    validation_fraction: float = 0.1
    queries_per_landmark: int = 1
    validation_per_landmark: int = 2
    leave_one_out: bool = False
    whiten: int = 0  # PCA-whitening of the global vectors to this many dims, learnt without labels
    query_expansion: int = 0  # alpha-QE neighbours (0 = off)
    expansion_alpha: float = 3.0
    verified_first: int = 0  # SIFT: candidates with this many inliers rank above all others (0 = off)
    landmark_first: float = 0.1  # as served (RERANK_LANDMARK_FIRST): the recognised landmark first; 0 = off
    landmark_first_majority: float = 0.7  # as served: without verified votes, the top 10's majority (0 = off)
    landmark_first_lift: float = 3.0  # ... at least this many times the landmark's share of the index
    geometry: str = "fundamental"  # or "homography" (the served default is RERANK_GEOMETRY)
    min_inliers: int = 12
    upright: bool = False
    scales: tuple[float, ...] = ()  # extra multi-scale factors after 1.0
    rerank_depth: int = 0  # candidates re-ranked (0: top_k)
    dba: int = 0  # database-side augmentation neighbours (0 = off)
    verified_expansion: int = 5  # as served (RERANK_VERIFIED_EXPANSION); 0 = off
    verified_expansion_inliers: int = 15
    graph_verification: int = 0  # match-graph chains with links of this many inliers (0 = off)
    graph_neighbours: int = 10  # global neighbours each index image is verified against for the graph
    local_format: str = "2bit-uint16-k750"  # as served (LOCAL_FEATURES_FORMAT); "full" keeps every keypoint

    def ladder_kwargs(self) -> dict[str, Any]:
        scales = (1.0, *self.scales)
        models = [EmbeddingConfig(backbone=self.backbone, image_size=self.image_size, scales=scales)]
        models += [
            EmbeddingConfig(backbone=self.backbone, weights=path, image_size=self.image_size, scales=scales)
            for path in self.checkpoints
        ]
        return {
            "models": models,
            "model_ids": list(self.model_ids) or None,
            "sift": SiftConfig(
                max_keypoints=self.sift_keypoints, long_side=self.sift_long_side, upright=self.upright
            ),
            "query_sift": SiftConfig(
                max_keypoints=self.query_keypoints, long_side=self.sift_long_side, upright=self.upright
            )
            if self.query_keypoints
            else None,
            "local_format": LocalFeatureFormat.parse(self.local_format),
            "verification": VerificationConfig(geometry=self.geometry),  # type: ignore[arg-type]
            "fusion": FusionConfig(
                min_inliers=self.min_inliers,
                verified_first=self.verified_first,
                landmark_first=self.landmark_first,
                landmark_first_majority=self.landmark_first_majority,
                landmark_first_lift=self.landmark_first_lift,
            ),
            "whiten": self.whiten,
            "expansion_neighbours": self.query_expansion,
            "expansion_alpha": self.expansion_alpha,
            "rerank_depth": self.rerank_depth,
            "dba_neighbours": self.dba,
            "verified_expansion": self.verified_expansion,
            "verified_expansion_inliers": self.verified_expansion_inliers,
            "graph_verification": self.graph_verification,
            "graph_neighbours": self.graph_neighbours,
            "vlad_k": self.vlad_k,
            "patches": PatchConfig(top_n=self.patches) if self.patches else None,
            "fusion_grid": self.grid,
            "top_k": self.top_k,
            "protocol": ProtocolConfig(
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
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LadderOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown evaluation options: {', '.join(sorted(unknown))}")
        values = dict(raw)
        for name in ("checkpoints", "model_ids", "grid", "scales"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add one ``--option`` per field (``--checkpoint`` repeatable, ``--grid`` comma-separated)."""
        defaults = LadderOptions()
        parser.add_argument("--backbone", default=defaults.backbone)
        parser.add_argument("--image-size", type=int, default=defaults.image_size)
        parser.add_argument(
            "--checkpoint",
            "--model",
            dest="checkpoints",
            action="append",
            default=[],
            help="a trained checkpoint to evaluate as one more row (repeatable)",
        )
        parser.add_argument("--model-ids", default="", help="comma-separated row ids, one per model")
        parser.add_argument("--sift-keypoints", type=int, default=defaults.sift_keypoints)
        parser.add_argument(
            "--query-keypoints",
            type=int,
            default=defaults.query_keypoints,
            help="query SIFT keypoints, as SIFT_QUERY_MAX_KEYPOINTS (0: same as --sift-keypoints)",
        )
        parser.add_argument("--sift-long-side", type=int, default=defaults.sift_long_side)
        parser.add_argument("--vlad-k", type=int, default=defaults.vlad_k, help="0 skips E6")
        parser.add_argument(
            "--patches", type=int, default=defaults.patches, help="patches per image; 0 skips E7"
        )
        parser.add_argument("--top-k", type=int, default=defaults.top_k)
        parser.add_argument(
            "--grid", default="", help="comma-separated fusion weights (default 0, 0.05, ..., 1)"
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--train-fraction", type=float, default=defaults.train_fraction)
        parser.add_argument("--validation-fraction", type=float, default=defaults.validation_fraction)
        parser.add_argument("--queries-per-landmark", type=int, default=defaults.queries_per_landmark)
        parser.add_argument("--validation-per-landmark", type=int, default=defaults.validation_per_landmark)
        parser.add_argument("--whiten", type=int, default=0, help="PCA-whitening dims (0: off)")
        parser.add_argument("--query-expansion", type=int, default=0, help="alpha-QE neighbours (0: off)")
        parser.add_argument("--expansion-alpha", type=float, default=defaults.expansion_alpha)
        parser.add_argument(
            "--verified-first", type=int, default=0, help="SIFT inliers that rank a candidate first (0: off)"
        )
        parser.add_argument(
            "--landmark-first",
            type=float,
            default=defaults.landmark_first,
            help="confidence from which the recognised landmark's photos rank first (0: off)",
        )
        parser.add_argument(
            "--landmark-first-majority",
            type=float,
            default=defaults.landmark_first_majority,
            help="with landmark first on and nothing verified, the share of the top results one landmark "
            "must carry to move first (0: off)",
        )
        parser.add_argument(
            "--landmark-first-lift",
            type=float,
            default=defaults.landmark_first_lift,
            help="with --landmark-first-majority: the majority must also be this many times the landmark's "
            "share of the collection (0: off)",
        )
        parser.add_argument("--geometry", choices=["homography", "fundamental"], default=defaults.geometry)
        parser.add_argument("--min-inliers", type=int, default=defaults.min_inliers)
        parser.add_argument("--upright", action="store_true", help="upright SIFT (orientation 0)")
        parser.add_argument(
            "--dba", type=int, default=0, help="database-side augmentation neighbours (0: off)"
        )
        parser.add_argument(
            "--verified-expansion",
            type=int,
            default=defaults.verified_expansion,
            help="average the query with up to N verified candidates and fuse again (0: off)",
        )
        parser.add_argument(
            "--verified-expansion-inliers", type=int, default=defaults.verified_expansion_inliers
        )
        parser.add_argument(
            "--graph-verification",
            type=int,
            default=defaults.graph_verification,
            help="lift candidates chained to the query through the index's match graph by links of at "
            "least this many inliers (0: off)",
        )
        parser.add_argument("--graph-neighbours", type=int, default=defaults.graph_neighbours)
        parser.add_argument("--rerank-depth", type=int, default=0, help="candidates re-ranked (0: --top-k)")
        parser.add_argument(
            "--local-format",
            default=defaults.local_format,
            help="how index SIFT is stored: full, or <8|4|2>bit-<float32|uint16>[-k<keypoints>]",
        )
        parser.add_argument("--scales", default="", help="extra multi-scale factors, e.g. 0.707,0.5")
        parser.add_argument(
            "--leave-one-out",
            action="store_true",
            help="every labelled image is a query against all the others (itself removed); "
            "--validation-fraction of them are held out for tuning",
        )

    @classmethod
    def from_arguments(cls, values: dict[str, Any]) -> LadderOptions:
        """Options from parsed arguments (a namespace's ``vars`` or Django's ``options``)."""
        picked = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        picked["checkpoints"] = tuple(values.get("checkpoints") or ())
        picked["model_ids"] = tuple(v for v in (values.get("model_ids") or "").split(",") if v)
        grid = values.get("grid") or ""
        picked["grid"] = tuple(float(v) for v in grid.split(",")) if grid else DEFAULT_GRID
        picked["scales"] = tuple(float(v) for v in (values.get("scales") or "").split(",") if v)
        return cls(**picked)
