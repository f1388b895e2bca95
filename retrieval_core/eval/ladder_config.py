"""What only the evaluation ladder has: its rows, its fusion grid and its protocol.

How each row searches (fusion, verification, SIFT, expansion, ...) is a ``ServedConfig``, the served
preset unless told otherwise, so the ladder measures what serving runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from retrieval_core.eval.evaluation_protocol import ProtocolConfig
from retrieval_core.eval.extraction import PatchConfig
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.search.served import SERVED
from retrieval_core.search.tuning import DEFAULT_GRID

__all__ = ["LadderConfig"]


@dataclass(frozen=True)
class LadderConfig:
    """models: the global rows, the first one pretrained (E1; empty: the served embedding alone);
    model_ids: one row id per model (empty: E1, E2, ...);
    vlad_k: VLAD codebook size of E6 (0 skips it); vlad_whiten > 0 PCA-whitens its VLADs to that many
    dimensions, as ``build_local_features --vlad-whiten`` does;
    patches: CNN patches of E7 (None skips it);
    fusion_grid: fusion weights tried on the validation queries;
    top_k: candidates per query and the k of mAP@k (at least 10);
    protocol: queries, validation queries and index; batch_size: images per embedding batch."""

    models: tuple[EmbeddingConfig, ...] = ()
    model_ids: tuple[str, ...] = ()
    vlad_k: int = SERVED.vlad_clusters
    vlad_whiten: int = 0
    patches: PatchConfig | None = field(default_factory=lambda: _served_patches())
    fusion_grid: tuple[float, ...] = DEFAULT_GRID
    top_k: int = 100
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.top_k < 10:
            raise ValueError(f"top_k must be at least 10, got {self.top_k}")
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "model_ids", tuple(self.model_ids))
        object.__setattr__(self, "fusion_grid", tuple(self.fusion_grid))

    def rows(self, served: EmbeddingConfig) -> tuple[Sequence[EmbeddingConfig], list[str]]:
        """The global models and their row ids (``served`` alone when no model is named)."""
        models = self.models or (served,)
        return models, list(self.model_ids) or [f"E{i}" for i in range(1, len(models) + 1)]


def _served_patches() -> PatchConfig | None:
    top_n = SERVED.search.patch_top_n
    return PatchConfig(top_n=top_n) if top_n else None
