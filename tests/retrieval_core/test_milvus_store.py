"""MilvusVectorStore against a real Milvus Lite server."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval_core.index.milvus_store import MilvusVectorStore

pytestmark = pytest.mark.services


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def store(live_services, request) -> MilvusVectorStore:
    name = "unit_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:60]
    store = MilvusVectorStore(live_services.milvus_uri, name, dim=16)
    store.drop()
    store.ensure_collection()
    yield store
    store.drop()
    store.close()


def test_upsert_search_filter_delete(store: MilvusVectorStore) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(50, 16)))
    ids = list(range(100, 150))
    landmarks = [i % 5 for i in range(50)]
    assert store.upsert(ids, vectors, landmarks) == 50
    store.flush()
    assert store.count() == 50

    hits = store.search(vectors[:3], k=5)
    assert [h[0].image_id for h in hits] == [100, 101, 102]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert all(a.score >= b.score for a, b in zip(hits[0], hits[0][1:], strict=False))

    within = store.search(vectors[0], k=20, landmark_id=3)[0]
    assert within and {h.landmark_id for h in within} == {3}
    excluded = store.search(vectors[0], k=3, exclude_ids=[100])[0]
    assert 100 not in [h.image_id for h in excluded]

    # Upserting the same ids again overwrites, never duplicates.
    store.upsert(ids[:10], _unit(rng.normal(size=(10, 16))), [None] * 10)
    store.flush()
    assert store.count() == 50
    assert store.search(vectors[0], k=50)[0][-1].landmark_id in {None, 0, 1, 2, 3, 4}

    fetched = store.get_vectors([110, 111, 999])
    assert set(fetched) == {110, 111}
    np.testing.assert_allclose(fetched[111], vectors[11], atol=1e-6)

    store.delete(ids[:20])
    store.flush()
    assert store.count() == 30
    assert all(h.image_id >= 120 for h in store.search(vectors[25], k=30)[0])


def test_bad_shapes_and_names_are_refused(store: MilvusVectorStore, live_services) -> None:
    with pytest.raises(ValueError, match="shape"):
        store.upsert([1], np.zeros((1, 8), np.float32), [None])
    with pytest.raises(ValueError, match="same length"):
        store.upsert([1, 2], np.zeros((1, 16), np.float32), [None])
    with pytest.raises(ValueError, match="collection name"):
        MilvusVectorStore(live_services.milvus_uri, "bad-name!", dim=16)
    other_dim = MilvusVectorStore(live_services.milvus_uri, store.collection, dim=32)
    with pytest.raises(ValueError, match="16-d"):
        other_dim.ensure_collection()
