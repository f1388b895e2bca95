"""Training the global embedding: PxK batches, contrastive / classification losses, resumable runs.

The thesis's recipes are one `TrainConfig` field apart: ``e2`` (classifier fine-tuning), ``e3`` (contrastive
from ImageNet) and ``e4`` (contrastive from an ``e2`` checkpoint). `train` writes checkpoints that
`retrieval_core.models.embedding.build_embedding_net` loads directly.
"""

from retrieval_core.training.checkpoint import checkpoint_embedding_config
from retrieval_core.training.config import Recipe, TrainConfig
from retrieval_core.training.losses import ArcFaceHead, LinearClassifierHead, contrastive_loss
from retrieval_core.training.sampler import PKSampler
from retrieval_core.training.trainer import TrainEvent, TrainResult, train
from retrieval_core.training.validation import ValidationSet, score_validation

__all__ = [
    "ArcFaceHead",
    "LinearClassifierHead",
    "PKSampler",
    "Recipe",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "ValidationSet",
    "checkpoint_embedding_config",
    "contrastive_loss",
    "score_validation",
    "train",
]
