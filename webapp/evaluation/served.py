"""``evaluate ROOT --served``: the live, already-imported collection evaluated through the served search.

Every reported query of ROOT's protocol (``ground_truth.json``, GLDv2 CSVs or ``split=query``) is sent, as
file bytes, to ``search_by_photo`` — the function ``POST /api/search/`` calls — with k = 100. Each ranking
keeps only images of the protocol's index (the query itself, other queries and images of other
collections are dropped, as junk is), then AP@100 is computed as everywhere else (GLDv2 definition). In a
leave-one-out protocol the query's own imported image is excluded from its search, as the ladder excludes
it.

On a collection with positions (EXIF GPS or ``labels.csv`` columns), each row also reports geolocation: the
served answer's ``location`` and the first result's position (1-NN) against the query's own position,
as shares within 25 m, 100 m and 1 km and the median error (``retrieval_core.eval.geolocation``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval_core.datasets.positions import Position
from retrieval_core.eval.evaluation_protocol import EvalProtocol, ProtocolConfig, build_protocol
from retrieval_core.eval.geolocation import geolocation_scores, protocol_positions
from retrieval_core.eval.metrics import average_precision_at_k
from retrieval_core.rerank.scorer import RerankMethod
from retrieval_core.search.geolocation import Location, distance_m
from webapp.catalog.models import Image
from webapp.search.services import search_by_photo

__all__ = ["ServedRow", "evaluate_served", "protocol_ranking"]

K = 100


@dataclass(frozen=True)
class ServedRow:
    """One re-ranking method over every reported query: mAP@100, per-query AP and search milliseconds."""

    method: str
    map_at_100: float
    per_query_ap: dict[str, float]
    latency_ms: list[float] = field(repr=False)
    missing_queries: list[str] = field(default_factory=list)
    geolocation: dict[str, object] | None = None
    """``{estimator, first_result}`` shares within 25 m / 100 m / 1 km and median errors (None: no GPS)."""

    def as_dict(self) -> dict[str, object]:
        latency = np.array(self.latency_ms) if self.latency_ms else np.array([np.nan])
        return {
            "id": f"served {self.method}",
            "method": self.method,
            "map@100": self.map_at_100,
            "queries": len(self.per_query_ap),
            "p50_ms": float(np.nanpercentile(latency, 50)),
            "p95_ms": float(np.nanpercentile(latency, 95)),
            "missing_queries": self.missing_queries,
            "geolocation": self.geolocation,
            "per_query_ap": self.per_query_ap,
        }


def protocol_ranking(
    result_ids: Sequence[int], relpath_of: dict[int, str], index: frozenset[str], query: str
) -> list[str]:
    """Result image ids -> relpaths, keeping only the protocol's index images (never the query itself)."""
    ranking = [relpath_of.get(pk) for pk in result_ids]
    return [name for name in ranking if name is not None and name in index and name != query]


def catalogue_relpaths(proto: EvalProtocol) -> dict[int, str]:
    """Image pk -> relpath for the collection's images that were imported (``Image.source``)."""
    names = set(proto.images)
    rows = Image.objects.filter(source__in=names).values_list("pk", "source")
    return {pk: source for pk, source in rows}


def evaluate_served(
    root: Path,
    methods: Sequence[RerankMethod],
    *,
    protocol: ProtocolConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, object]:
    """One row per method; see the module docstring. Raises ValueError when nothing was imported."""
    proto = build_protocol(root, protocol or ProtocolConfig())
    relpath_of = catalogue_relpaths(proto)
    if not relpath_of:
        raise ValueError(f"none of the images of {root} is in the catalogue: import it first")
    imported = set(relpath_of.values())
    pk_of = {relpath: pk for pk, relpath in relpath_of.items()}
    index = frozenset(proto.index)
    positions = protocol_positions(proto.root, proto.images)
    rows = []
    for method in methods:
        per_query: dict[str, float] = {}
        latency: list[float] = []
        errors: dict[str, list[float]] = {"estimator": [], "first_result": []}
        missing = [q.relpath for q in proto.queries if q.relpath not in imported]
        for done, query in enumerate(proto.queries, start=1):
            itself = [pk_of[query.relpath]] if proto.reported.leave_one_out and query.relpath in pk_of else []
            response = search_by_photo(
                proto.path(query.relpath).read_bytes(),
                k=K,
                method=method,
                keep_query=False,
                exclude_ids=itself,
            )
            ranking = protocol_ranking(
                [hit.image.pk for hit in response.hits], relpath_of, index, query.relpath
            )
            per_query[query.relpath] = float(
                average_precision_at_k(ranking, query.positives, K, query.junk) or 0.0
            )
            latency.append(response.timings_ms.get("total", np.nan))
            if query.relpath in positions:
                truth = positions[query.relpath]
                location = response.location
                errors["estimator"].append(
                    distance_m(location.position, truth) if isinstance(location, Location) else math.inf
                )
                errors["first_result"].append(_first_result_error(ranking, positions, truth))
            if progress is not None:
                progress(f"served {method}", done, len(proto.queries))
        mean = float(np.mean(list(per_query.values()))) if per_query else float("nan")
        geolocation: dict[str, object] | None = (
            {name: geolocation_scores(values).as_dict() for name, values in errors.items()}
            if errors["estimator"]
            else None
        )
        rows.append(ServedRow(method, mean, per_query, latency, missing, geolocation))
    return {
        "root": str(proto.root),
        "protocol": proto.summary(),
        "k": K,
        "rows": [row.as_dict() for row in rows],
    }


def _first_result_error(ranking: Sequence[str], positions: dict[str, Position], truth: Position) -> float:
    """Metres from the first result's position to the truth (inf: no result, or it has no position)."""
    if not ranking or ranking[0] not in positions:
        return math.inf
    return distance_m(positions[ranking[0]], truth)
