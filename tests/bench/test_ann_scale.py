"""bench/ann_scale.py end to end against a real Milvus Lite server, its recall arithmetic, and the ANN index
settings reaching Milvus (store parameters and MILVUS_INDEX_* settings)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from bench import ann_scale
from retrieval_core.index.milvus_store import AnnIndexParams, MilvusVectorStore

pytestmark = pytest.mark.services


def _clustered_embeddings(path: Path, seed: int = 0) -> Path:
    """A stand-in for real embeddings: 40 "landmarks" of 6 photos each around random centres, 64-d."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, 64))
    vectors = np.repeat(centres, 6, axis=0) + 0.6 * rng.standard_normal((240, 64))
    np.savez(path, vectors=vectors.astype(np.float32))
    return path


def test_recall_counts_the_true_top_k_and_tolerates_ties() -> None:
    rng = np.random.default_rng(1)
    database = ann_scale._unit(rng.standard_normal((500, 16)))
    queries = ann_scale._unit(rng.standard_normal((4, 16)))
    exact_ids, exact_scores = ann_scale.exact_top_k(database, queries, k=10)
    brute = np.argsort(-(queries @ database.T), axis=1)[:, :10]
    np.testing.assert_array_equal(exact_ids, brute)

    assert ann_scale.recall_at_k(exact_ids.tolist(), database, queries, exact_scores) == 1.0
    # Half of each list replaced by ids far down the ranking: recall 0.5; duplicates count once.
    far = np.argsort(-(queries @ database.T), axis=1)[:, 400:405]
    half = np.concatenate([exact_ids[:, :5], far], axis=1)
    assert ann_scale.recall_at_k(half.tolist(), database, queries, exact_scores) == pytest.approx(0.5)
    doubled = np.concatenate([exact_ids[:, :5], exact_ids[:, :5]], axis=1)
    assert ann_scale.recall_at_k(doubled.tolist(), database, queries, exact_scores) == pytest.approx(0.5)
    # A copy of a true neighbour under another id ties with it: not a miss.
    with_copy = np.concatenate([database, database[exact_ids[:, 9]]])
    tied = exact_ids.copy()
    tied[:, 9] = np.arange(500, 504)
    assert ann_scale.recall_at_k(tied.tolist(), with_copy, queries, exact_scores) == 1.0


def test_exact_search_merges_chunks() -> None:
    """The brute force works through the database in chunks: the merged top-k equals one big sort."""
    rng = np.random.default_rng(2)
    database = ann_scale._unit(rng.standard_normal((450_000, 4)))
    queries = ann_scale._unit(rng.standard_normal((3, 4)))
    ids, scores = ann_scale.exact_top_k(database, queries, k=7)
    expected = np.sort(queries @ database.T, axis=1)[:, ::-1][:, :7]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(queries @ database.T, ids, axis=1), expected, rtol=1e-6)


def test_bench_runs_end_to_end_on_a_milvus_lite_server(tmp_path: Path) -> None:
    """2k replicated vectors into a Milvus Lite server of the bench's own: FLAT is exact (recall 1.0), every
    setting is measured, and a lower HNSW beam or fewer IVF probes never finds more."""
    embeddings = _clustered_embeddings(tmp_path / "embeddings.npz")
    out = tmp_path / "rows.json"
    rows = ann_scale.main(
        [
            "--n", "2000", "--embeddings", str(embeddings), "--configs", "quick", "--queries", "30",
            "--json", str(out), "--tmp", str(tmp_path),
        ]
    )
    assert [r.index for r in rows] == [
        "FLAT", "HNSW M=8 efC=40 ef=100", "HNSW M=8 efC=40 ef=200",
        "IVF_FLAT nlist=16 nprobe=2", "IVF_FLAT nlist=16 nprobe=16",
    ]
    by_index = {r.index: r for r in rows}
    assert by_index["FLAT"].recall == 1.0
    assert by_index["IVF_FLAT nlist=16 nprobe=16"].recall == 1.0  # every cell probed: exhaustive
    assert by_index["IVF_FLAT nlist=16 nprobe=2"].recall < 1.0
    assert 0.0 < by_index["HNSW M=8 efC=40 ef=100"].recall <= by_index["HNSW M=8 efC=40 ef=200"].recall
    assert all(r.n == 2000 and r.dim == 64 and 0 < r.p50_ms <= r.p95_ms for r in rows)
    assert all(r.rss_gib is not None and r.rss_gib > 0.05 for r in rows)
    assert json.loads(out.read_text())[0]["index"] == "FLAT"


def test_replicas_keep_the_neighbour_structure() -> None:
    """A query's exact neighbours among the replicas come mostly from anchors of its own cluster."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((10, 32)) * 3
    anchors = ann_scale._unit(np.repeat(centres, 8, axis=0) + rng.standard_normal((80, 32)))
    database = np.concatenate(list(ann_scale.replicate(anchors, 4000, 0.5, np.random.default_rng(4))))
    assert database.shape == (4000, 32)
    np.testing.assert_allclose(np.linalg.norm(database, axis=1), 1.0, rtol=1e-5)
    query = ann_scale._unit(centres[:1] + rng.standard_normal((1, 32)))
    top = np.argsort(-(database @ query[0]))[:100]
    own = ann_scale._unit(np.repeat(centres, 8, axis=0))[:8]
    assert (database[top] @ own.mean(axis=0)).mean() > (database @ own.mean(axis=0)).mean() + 0.2


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            AnnIndexParams("HNSW", m=8, ef_construction=64),
            {"index_type": "HNSW", "M": "8", "efConstruction": "64"},
        ),
        (AnnIndexParams("IVF_SQ8", nlist=37), {"index_type": "IVF_SQ8", "nlist": "37"}),
    ],
)
def test_index_params_reach_milvus(milvus_uri: str, params: AnnIndexParams, expected: dict[str, str]) -> None:
    store = MilvusVectorStore(milvus_uri, f"params_{uuid.uuid4().hex[:8]}", dim=8, index=params)
    try:
        store.ensure_collection()
        described = store.describe_index()
        assert {key: described.get(key) for key in expected} == expected
    finally:
        store.drop()
        store.close()


def test_an_existing_collection_keeps_its_index_until_rebuilt(milvus_uri: str) -> None:
    name = f"rebuilt_{uuid.uuid4().hex[:8]}"
    first = MilvusVectorStore(milvus_uri, name, dim=8, index=AnnIndexParams("HNSW", m=8))
    try:
        first.ensure_collection()
        vectors = ann_scale._unit(np.random.default_rng(5).standard_normal((300, 8)))
        first.upsert(list(range(300)), vectors, [None] * 300)
        first.flush()
        reconfigured = MilvusVectorStore(
            milvus_uri, name, dim=8, index=AnnIndexParams("IVF_FLAT", nlist=12, nprobe=12)
        )
        reconfigured.ensure_collection()
        assert reconfigured.served_index.index_type == "HNSW"  # searched with ef, not nprobe
        reconfigured.rebuild_index()
        assert reconfigured.describe_index()["nlist"] == "12"
        assert reconfigured.served_index.index_type == "IVF_FLAT"
        assert [h[0].image_id for h in reconfigured.search(vectors[:3], k=5)] == [0, 1, 2]
        assert reconfigured.count() == 300
        reconfigured.close()
    finally:
        first.drop()
        first.close()


def test_product_quantisation_builds_and_searches_on_milvus_standalone(milvus_standalone_uri: str) -> None:
    """IVF_PQ, which Milvus Lite refuses, is an index a deployment on standalone can choose."""
    params = AnnIndexParams("IVF_PQ", nlist=8, nprobe=8, pq_m=4)
    store = MilvusVectorStore(milvus_standalone_uri, f"pq_{uuid.uuid4().hex[:8]}", dim=8, index=params)
    try:
        store.ensure_collection()
        vectors = ann_scale._unit(np.random.default_rng(7).standard_normal((400, 8)))
        store.upsert(list(range(400)), vectors, [None] * 400)
        store.flush()
        described = store.describe_index()
        assert (described["index_type"], described["m"], described["nlist"]) == ("IVF_PQ", "4", "8")
        hits = store.search(vectors[:20], k=10)
        # 4 sub-quantisers of 8 bits are coarse: most queries still find themselves among their top 10.
        assert sum(i in [h.image_id for h in row] for i, row in enumerate(hits)) >= 15
    finally:
        store.drop()
        store.close()


def test_bad_index_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="index type"):
        AnnIndexParams("ANNOY")
    with pytest.raises(ValueError, match="nprobe=0"):
        AnnIndexParams("IVF_FLAT", nprobe=0)


def test_milvus_index_settings_build_the_served_store(live_services, settings) -> None:
    from webapp.embeddings import services

    settings.MILVUS_URI = live_services.milvus_uri
    settings.MILVUS_INDEX_TYPE = "IVF_FLAT"
    settings.MILVUS_INDEX_NLIST = 21
    settings.MILVUS_INDEX_NPROBE = 5
    store = services.collection_store(f"settings_{uuid.uuid4().hex[:8]}", 8)
    try:
        assert store.index == AnnIndexParams("IVF_FLAT", nlist=21, nprobe=5)
        assert store.describe_index()["nlist"] == "21"
        assert store.served_index.search_params(k=100) == {"nprobe": 5}
    finally:
        store.drop()


def test_faiss_engine_measures_the_same_settings(tmp_path: Path) -> None:
    """The in-process FAISS engine runs the same presets on the same vectors: FLAT exact, every IVF cell
    probed exact, memory of the built index counted."""
    embeddings = _clustered_embeddings(tmp_path / "embeddings.npz", seed=6)
    rows = ann_scale.main(
        ["--engine", "faiss", "--n", "2000", "--embeddings", str(embeddings), "--configs", "quick",
         "--queries", "30"]
    )
    by_index = {r.index: r for r in rows}
    assert {r.engine for r in rows} == {"faiss"}
    assert by_index["FLAT"].recall == 1.0
    assert by_index["IVF_FLAT nlist=16 nprobe=16"].recall == 1.0
    assert by_index["IVF_FLAT nlist=16 nprobe=2"].recall < 1.0
