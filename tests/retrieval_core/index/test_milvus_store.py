"""MilvusVectorStore against a real Milvus Lite server and real Milvus standalone: the same code serves
`make run` and a deployment (only ``MILVUS_URI`` differs)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from retrieval_core.index.milvus_store import MilvusVectorStore

pytestmark = pytest.mark.services


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def store(milvus_uri: str, request) -> MilvusVectorStore:
    """An empty 16-d collection on the Milvus Lite server, then on Milvus standalone."""
    uri = milvus_uri
    name = "unit_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:60]
    store = MilvusVectorStore(uri, name, dim=16)
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
        MilvusVectorStore(store.uri, "bad-name!", dim=16)
    other_dim = MilvusVectorStore(store.uri, store.collection, dim=32)
    with pytest.raises(ValueError, match="16-d"):
        other_dim.ensure_collection()


def test_filters_on_landmark_date_and_radius_are_applied_before_the_top_k(store: MilvusVectorStore) -> None:
    """Milvus filters on the stored scalar fields: the k best *matching* images come back, even when
    every one of them ranks far below images that do not match."""
    from datetime import datetime

    from retrieval_core.index.filters import GeoRadius, SearchFilters, epoch_seconds
    from retrieval_core.index.milvus_store import PhotoScalars

    rng = np.random.default_rng(3)
    query = _unit(rng.normal(size=(1, 16)))
    near_query = _unit(query + 0.05 * rng.normal(size=(30, 16)))  # the 30 most similar: no GPS, no date
    far = _unit(rng.normal(size=(6, 16)))  # dissimilar but matching the filters
    paris, rome = (48.8584, 2.2945), (41.8902, 12.4922)
    scalars = [PhotoScalars()] * 30 + [
        PhotoScalars(datetime(2020, 5, 1, 12), *paris),  # 130: Eiffel tower
        PhotoScalars(datetime(2020, 5, 2, 12), paris[0] + 0.004, paris[1]),  # 131: ~445 m north
        PhotoScalars(datetime(2021, 1, 1), paris[0] + 0.02, paris[1]),  # 132: ~2.2 km north
        PhotoScalars(datetime(2019, 7, 1), *rome),  # 133
        PhotoScalars(datetime(2020, 5, 3)),  # 134: date, no GPS
        PhotoScalars(None, *paris),  # 135: GPS, no date
    ]
    ids = list(range(100, 136))
    store.upsert(ids, np.vstack([near_query, far]), [1] * 30 + [2, 2, 2, 3, 2, None], scalars)
    store.flush()

    def found(filters: SearchFilters, k: int = 5) -> set[int]:
        return {int(h.image_id) for h in store.search(query, k=k, filters=filters)[0]}

    assert found(SearchFilters(near=GeoRadius(*paris, 500.0))) == {130, 131, 135}
    assert found(SearchFilters(near=GeoRadius(*paris, 3000.0))) == {130, 131, 132, 135}
    assert found(SearchFilters(near=GeoRadius(*rome, 1000.0))) == {133}
    may = SearchFilters(
        taken_from=epoch_seconds(datetime(2020, 5, 1)), taken_to=epoch_seconds(datetime(2020, 5, 31))
    )
    assert found(may) == {130, 131, 134}
    assert found(SearchFilters(taken_to=epoch_seconds(datetime(2019, 12, 31)))) == {
        133
    }  # unknown dates excluded
    assert found(SearchFilters(landmark_id=2, near=GeoRadius(*paris, 3000.0))) == {130, 131, 132}
    assert found(SearchFilters(landmark_id=3)) == {133}
    assert not SearchFilters() and SearchFilters().expression() == ""


def test_a_radius_keeps_only_the_ball_and_widens_until_k_match(store: MilvusVectorStore) -> None:
    """Milvus is sent the box around the ball (standalone cannot add two fields); photos in its corners
    are dropped, and when they fill the first limit the store searches wider until k photos match."""
    from retrieval_core.index.filters import GeoRadius, SearchFilters, unit_sphere
    from retrieval_core.index.milvus_store import PhotoScalars

    paris = (48.8584, 2.2945)
    near = GeoRadius(*paris, 1000.0)
    corner = (paris[0] + 0.007, paris[1] + 0.0095)  # ~1043 m north-east: inside the box, outside the ball
    centre, corner_xyz = unit_sphere(*paris), unit_sphere(*corner)
    assert all(abs(a - b) <= near.chord for a, b in zip(corner_xyz, centre, strict=True))
    assert not near.contains(*corner_xyz)

    rng = np.random.default_rng(11)
    query = _unit(rng.normal(size=(1, 16)))
    in_corner = _unit(query + 0.05 * rng.normal(size=(20, 16)))  # the 20 most similar photos
    inside = _unit(query + 0.6 * rng.normal(size=(4, 16)))  # less similar, within ~300 m
    scalars = [PhotoScalars(None, *corner)] * 20 + [
        PhotoScalars(None, paris[0] + 0.001 * i, paris[1]) for i in range(4)
    ]
    store.upsert(list(range(200, 224)), np.vstack([in_corner, inside]), [None] * 24, scalars)
    store.flush()

    hits = store.search(query, k=3, filters=SearchFilters(near=near))[0]
    assert len(hits) == 3 and {h.image_id for h in hits} <= set(range(220, 224))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert {h.image_id for h in store.search(query, k=10, filters=SearchFilters(near=near))[0]} == set(
        range(220, 224)
    )


def test_a_collection_without_filter_fields_still_serves_and_says_to_rebuild(live_services) -> None:
    from pymilvus import DataType, MilvusClient

    from retrieval_core.index.filters import SearchFilters
    from retrieval_core.index.milvus_store import OutdatedCollectionError

    name = "unit_outdated_schema"
    client = MilvusClient(uri=live_services.milvus_uri)
    if client.has_collection(name):
        client.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("landmark_id", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=16)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="HNSW", metric_type="IP", params={"M": 16})
    client.create_collection(name, schema=schema, index_params=index)
    store = MilvusVectorStore(live_services.milvus_uri, name, dim=16)
    try:
        store.ensure_collection()
        assert store.outdated
        vectors = _unit(np.random.default_rng(1).normal(size=(3, 16)))
        store.upsert([1, 2, 3], vectors, [7, 7, None])
        store.flush()
        assert [h.image_id for h in store.search(vectors[0], k=1)[0]] == [1]
        assert {h.image_id for h in store.search(vectors[0], k=3, landmark_id=7)[0]} == {1, 2}
        with pytest.raises(OutdatedCollectionError, match="rebuild_index"):
            store.search(vectors[0], k=3, filters=SearchFilters(taken_from=0))
    finally:
        store.drop()
        store.close()
        client.close()
