"""Retrieval evaluation: GLDv2 mAP@k, the revisited Oxford/Paris protocol, seeded evaluation splits."""

from retrieval_core.eval.metrics import (
    MAPResult,
    average_precision_at_k,
    first_hit_rank,
    mean_average_precision_at_k,
    precision_at_k,
    rank_by_score,
    recall_at_k,
)
from retrieval_core.eval.revisited import (
    QueryGroundTruth,
    RankingScores,
    RevisitedGroundTruth,
    RevisitedResult,
    compute_ap,
    compute_map,
    evaluate_revisited,
    load_revisited_gnd,
    parse_revisited_gnd,
)
from retrieval_core.eval.splits import CollectionSplit, SplitConfig, relevant_index_images, split_by_landmark

__all__ = [
    "CollectionSplit",
    "MAPResult",
    "QueryGroundTruth",
    "RankingScores",
    "RevisitedGroundTruth",
    "RevisitedResult",
    "SplitConfig",
    "average_precision_at_k",
    "compute_ap",
    "compute_map",
    "evaluate_revisited",
    "first_hit_rank",
    "load_revisited_gnd",
    "mean_average_precision_at_k",
    "parse_revisited_gnd",
    "precision_at_k",
    "rank_by_score",
    "recall_at_k",
    "relevant_index_images",
    "split_by_landmark",
]
