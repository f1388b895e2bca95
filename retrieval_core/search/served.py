"""What the product serves: the one place its search defaults are written.

``SERVED`` is read by ``webapp/settings.py`` (each environment variable overrides one field), and by the
evaluation ladder, ``tune_fusion``, ``manage.py evaluate`` and every benchmark for any option they are not
told. A served default changes here and nowhere else (``tests/retrieval_core/search/test_served_preset.py``
fails on a second statement). The library's own dataclass defaults (``FusionConfig()``, ``SiftConfig()``,
...) are building blocks for tests and experiments, not the served configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from retrieval_core.features.sift import SiftConfig
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.rerank.sift_scorer import VerificationConfig
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.decode import DecodePolicy
from retrieval_core.search.geolocation import GeolocationConfig
from retrieval_core.search.recognition import RecognitionConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["SERVED", "ServedConfig", "replace_given"]

_Config = TypeVar("_Config", bound="DataclassInstance")


@dataclass(frozen=True)
class ServedConfig:
    """One search as served, and what indexing stores for it.

    search: results, fusion (weight, re-rank depth, inlier floor, landmark first), patches,
    decoding, the query-side levers and recognition (how many results vote for the landmark, and the
    confidence below which none is named) (``SearchConfig``);
    rerank_method: the re-ranking a search runs when it names none;
    embedding: the global model E1 (the pretrained backbone a new deployment indexes with);
    index_sift / query_sift: SIFT of index photos and of a query (fewer keypoints: matching cost halves);
    verification: matching and geometric verification of the SIFT re-rank;
    local_format: how index photos' SIFT is stored (``LocalFeatureFormat.parse`` name);
    vlad_clusters: codebook size of the VLAD re-rank;
    geolocation: how a search estimates where its photo was taken from its matches' positions.
    """

    search: SearchConfig
    rerank_method: RerankMethod
    embedding: EmbeddingConfig
    index_sift: SiftConfig
    query_sift: SiftConfig
    verification: VerificationConfig
    local_format: str
    vlad_clusters: int
    geolocation: GeolocationConfig = field(default_factory=GeolocationConfig)

    def __post_init__(self) -> None:
        if self.search.fusion.local_method != self.rerank_method and self.rerank_method != "none":
            raise ValueError(
                f"fusion.local_method {self.search.fusion.local_method!r} must be the served rerank_method "
                f"{self.rerank_method!r}"
            )
        index, query = self.index_sift, self.query_sift
        if dataclasses.replace(query, max_keypoints=index.max_keypoints) != index:
            # One SIFT for both sides (the settings have one SIFT_LONG_SIDE, SIFT_UPRIGHT, ...): only the
            # keypoint budget may differ, or query and index descriptors would not match.
            raise ValueError(f"query_sift {query} may differ from index_sift {index} in max_keypoints only")


SERVED = ServedConfig(
    search=SearchConfig(
        k=10,
        fusion=FusionConfig(
            weight_global=0.5,
            top_k=100,
            local_method="sift",
            min_inliers=12,
            landmark_first=0.1,
            landmark_first_majority=0.7,
            landmark_first_lift=3.0,
        ),
        patch_top_n=16,
        decode=DecodePolicy(draft_long_side=768, max_pixels=64_000_000),
        verified_expansion=5,
        verified_expansion_inliers=15,
        recognition=RecognitionConfig(top_n=10, threshold=0.25),
    ),
    rerank_method="sift",
    embedding=EmbeddingConfig(
        backbone="tf_efficientnet_lite0", weights="imagenet", image_size=384, gem_p=3.0
    ),
    index_sift=SiftConfig(max_keypoints=1000, long_side=640, upright=False),
    query_sift=SiftConfig(max_keypoints=500, long_side=640, upright=False),
    verification=VerificationConfig(geometry="fundamental"),
    local_format="2bit-uint16-k750",
    vlad_clusters=64,
    geolocation=GeolocationConfig(
        top_n=50,
        group_radius_m=25.0,
        verified_inliers=10,
        verified_weight=3.0,
        inlier_saturation=4.0,
        score_temperature=0.02,
        min_radius_m=10.0,
        confidence_weights=(-1.868, 0.676, 3.292),
    ),
)
"""The served configuration (see the module docstring)."""


def replace_given(config: _Config, **changes: Any) -> _Config:
    """``dataclasses.replace`` with only the changes that are not None: a command-line option left out
    (argparse default None) keeps the served value."""
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
