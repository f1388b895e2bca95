"""ANN at scale: N descriptors in a real Milvus server, recall@100 against exact search, latency, memory.

Vectors: the product's global embeddings of real photos (every image of the ``--dataset`` collections,
extracted once with the served `GlobalDescriptorExtractor` and cached in ``--cache``), split into
*anchors* and held-out *queries*. The N database vectors are anchors replicated with noise drawn from the
collection's own covariance::

    x = normalise(a + noise * U sqrt(L) z),   a: a random anchor,  z ~ N(0, I_r)

(U, L: eigenvectors and eigenvalues of the anchors' covariance, r = its rank). The noise lives in the
directions in which real photos differ, with their real spread, so a query's neighbours are replicates of
the anchors that resemble it (its landmark first): the same neighbour structure as the collection, grown
to N, not an isotropic cloud. Queries are held-out real photos: never inserted.

Everything goes through the product's `MilvusVectorStore` (upsert, flush, search, rebuild_index), against
a Milvus Lite server this script starts (as ``webapp/localstack.py`` does), or against Milvus standalone
/ cluster with ``--milvus-uri $MILVUS_URI`` (server memory then needs ``--server-pid``). For each index
configuration it prints insert and index-build time, recall@100 against exact brute force (torch, on the
same vectors), p50/p95 single-query latency and the server's RSS; then a Markdown table.

    .venv/bin/python bench/ann_scale.py --n 100000 --dataset ../shared/datasets/wonders7 \\
        ../shared/datasets/sfm_landmarks ../shared/datasets/holidays_partial --max-minutes 60
    .venv/bin/python bench/ann_scale.py --n 1000000 --configs best --dataset ...

Target at 1M: p50 <= 10 ms with recall@100 >= 0.98.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval_core.index.milvus_store import AnnIndexParams, MilvusVectorStore
from retrieval_core.index.vector_index import integer_id
from retrieval_core.models.embedding import EmbeddingConfig

K = 100
LITE_UNSUPPORTED = {"IVF_PQ": "Milvus Lite 3.2 has no product quantisation (its index factory refuses it)"}


@dataclass(frozen=True)
class Sweep:
    """One index build and the search settings tried on it (``ef`` for HNSW*, ``nprobe`` for IVF_*)."""

    build: AnnIndexParams
    search: tuple[int, ...] = ()

    def settings(self) -> list[AnnIndexParams]:
        if not self.search:
            return [self.build]
        if self.build.index_type.startswith("HNSW"):
            return [replace(self.build, ef_search=value) for value in self.search]
        return [replace(self.build, nprobe=value) for value in self.search]


def _hnsw(index_type: str, m: int, ef_construction: int, efs: tuple[int, ...]) -> Sweep:
    return Sweep(AnnIndexParams(index_type, m=m, ef_construction=ef_construction), efs)


def _ivf(index_type: str, nlist: int, nprobes: tuple[int, ...]) -> Sweep:
    return Sweep(AnnIndexParams(index_type, nlist=nlist), nprobes)


PRESETS: dict[str, list[Sweep]] = {
    "sweep": [  # most telling first: --max-minutes cuts the tail
        Sweep(AnnIndexParams("FLAT")),
        _hnsw("HNSW", 16, 200, (100, 128, 256, 512)),
        _ivf("IVF_FLAT", 1024, (16, 32, 64, 128)),
        _ivf("IVF_SQ8", 1024, (16, 32, 64, 128)),
        _hnsw("HNSW_SQ", 16, 200, (100, 256, 512)),
        _ivf("IVF_PQ", 1024, (32, 64)),
        _hnsw("HNSW", 32, 200, (100, 128, 256)),
        _hnsw("HNSW", 8, 100, (100, 256, 512)),
        _ivf("IVF_FLAT", 256, (8, 16, 32, 64)),
    ],
    "best": [
        _hnsw("HNSW", 16, 200, (100, 128, 256)),
        _ivf("IVF_FLAT", 1024, (32, 64, 128)),
        _hnsw("HNSW", 32, 200, (100, 256)),
    ],
    "rest": [  # the sweep's graphs after the first four builds
        _hnsw("HNSW_SQ", 16, 200, (100, 256, 512)),
        _hnsw("HNSW", 32, 200, (100, 128, 256)),
        _hnsw("HNSW", 8, 100, (100, 256, 512)),
    ],
    "served": [_hnsw("HNSW", 16, 200, (128, 256, 512))],  # the served graph and its beams
    "million": [  # what fits the time of a 1M run on 2 shared cores
        _ivf("IVF_FLAT", 1024, (16, 32, 64, 128)),
        _hnsw("HNSW", 16, 100, (100, 128, 256)),
        _ivf("IVF_SQ8", 1024, (32, 64)),
    ],
    "standalone": [  # Milvus standalone at 1M: the cells the target needs, and graphs built with more care
        _ivf("IVF_FLAT", 1024, (8, 16, 32)),
        _ivf("IVF_SQ8", 1024, (16, 32)),
        _hnsw("HNSW", 16, 200, (256, 512)),
        _hnsw("HNSW", 32, 200, (256, 512)),
    ],
    "quick": [  # the fast test: every code path, small parameters
        Sweep(AnnIndexParams("FLAT")),
        _hnsw("HNSW", 8, 40, (100, 200)),
        _ivf("IVF_FLAT", 16, (2, 16)),
    ],
}


@dataclass(frozen=True)
class Row:
    """One measured index setting."""

    engine: str
    n: int
    dim: int
    index: str
    insert_s: float
    build_s: float
    recall: float
    p50_ms: float
    p95_ms: float
    rss_gib: float | None
    segments: int | None


class Progress:
    """Timestamped progress lines on stdout, and the wall-clock budget (``--max-minutes``)."""

    def __init__(self, max_minutes: float) -> None:
        self.started = time.monotonic()
        self.max_s = max_minutes * 60

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {message}", flush=True)

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.max_s


# ---- vectors ---------------------------------------------------------------------------------------------


def real_embeddings(datasets: Sequence[Path], cache: Path, progress: Progress) -> np.ndarray:
    """``(M, D)`` unit embeddings of every photo of the collections, extracted with the served model and
    decode policy; cached per collection and model in the folder ``cache``."""
    if not datasets:
        raise SystemExit("pass --dataset DIR ... (photo collections to embed) or --embeddings FILE.npz")
    embedding = EmbeddingConfig()
    vectors = []
    for root in datasets:
        cached = cache / f"{root.resolve().name}-{embedding.version_key}.npy"
        if not cached.exists():
            vectors_of_root = _embed_collection(root, embedding, progress)
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, vectors_of_root)
        vectors.append(np.load(cached))
        progress(f"embeddings of {root}: {vectors[-1].shape} ({cached})")
    return np.concatenate(vectors)


def _embed_collection(root: Path, embedding: EmbeddingConfig, progress: Progress) -> np.ndarray:
    from retrieval_core.datasets.collection import read_collection
    from retrieval_core.features.global_ import GlobalDescriptorExtractor
    from retrieval_core.search.decode import DecodePolicy, decode

    extractor = GlobalDescriptorExtractor.from_config(embedding)
    policy = DecodePolicy.for_embedding(embedding)
    items = read_collection(root)
    progress(f"embedding {len(items)} photos of {root} ({embedding.version_key})")
    result = extractor.extract_paths(
        [item.path for item in items],
        decode=lambda source: decode(source, policy),
        progress=lambda done, total: progress(f"  {done}/{total} embedded"),
    )
    return result.vectors.astype(np.float32)


def split_queries(
    vectors: np.ndarray, n_queries: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out real queries (at most a quarter of the photos) and the anchors the database grows from."""
    order = rng.permutation(len(vectors))
    n_queries = min(n_queries, len(vectors) // 4)
    return vectors[order[n_queries:]], vectors[order[:n_queries]]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def replicate(
    anchors: np.ndarray, n: int, noise: float, rng: np.random.Generator, chunk: int = 50_000
) -> Iterator[np.ndarray]:
    """``n`` database vectors in chunks ``(<= chunk, D)``: random anchors plus noise of the anchors' own
    covariance (scaled by ``noise``), re-normalised; see the module docstring."""
    centred = anchors - anchors.mean(axis=0)
    _, singular, basis = np.linalg.svd(centred, full_matrices=False)
    factor = (singular[:, None] / np.sqrt(len(anchors) - 1)) * basis  # (r, D): z @ factor ~ N(0, cov)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        picked = anchors[rng.integers(0, len(anchors), size)]
        z = rng.standard_normal((size, len(factor))).astype(np.float32)
        yield _unit(picked + noise * (z @ factor))


# ---- exact search and recall -----------------------------------------------------------------------------


def exact_top_k(database: np.ndarray, queries: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k by inner product: ids ``(Q, k)`` and scores ``(Q, k)``, best first."""
    db = torch.from_numpy(database)
    q = torch.from_numpy(queries)
    best_scores = torch.full((len(q), 0), -torch.inf)
    best_ids = torch.zeros((len(q), 0), dtype=torch.int64)
    for start in range(0, len(db), 200_000):
        scores = q @ db[start : start + 200_000].T
        top = scores.topk(min(k, scores.shape[1]), dim=1)
        best_scores = torch.cat([best_scores, top.values], dim=1)
        best_ids = torch.cat([best_ids, top.indices + start], dim=1)
        keep = best_scores.topk(min(k, best_scores.shape[1]), dim=1).indices
        best_scores, best_ids = best_scores.gather(1, keep), best_ids.gather(1, keep)
    order = best_scores.argsort(dim=1, descending=True)
    return best_ids.gather(1, order).numpy(), best_scores.gather(1, order).numpy()


def recall_at_k(
    found: Sequence[Sequence[int]],
    database: np.ndarray,
    queries: np.ndarray,
    exact_scores: np.ndarray,
    tolerance: float = 1e-5,
) -> float:
    """Mean fraction of the true top-k that the ANN returned.

    A returned id counts when its true score reaches the exact k-th score (less ``tolerance``), so an
    exact tie or float rounding at the boundary is not a miss; duplicates count once and at most k per
    query count.
    """
    k = exact_scores.shape[1]
    total = 0.0
    for ids, query, kth in zip(found, queries, exact_scores[:, -1], strict=True):
        unique = np.unique(np.asarray(ids, dtype=np.int64))
        if len(unique):
            true_scores = database[unique] @ query
            total += min(k, int((true_scores >= kth - tolerance).sum())) / k
    return total / len(queries)


# ---- the server --------------------------------------------------------------------------------------------


@contextmanager
def milvus_server(
    uri: str | None, pid: int | None, data_dir: Path, standalone: bool = False
) -> Iterator[tuple[str, int | None]]:
    """The given URI (Milvus standalone / cluster elsewhere: its server process id for memory, if local),
    or a server of our own on a free port: Milvus Lite as `make run` and the tests start it, or with
    ``standalone`` real Milvus standalone from the ``milvus`` package (``localstack``)."""
    if uri:
        yield uri, pid
        return
    from webapp import localstack

    port = localstack.free_port()
    start = localstack.start_milvus_standalone if standalone else localstack.start_milvus
    process = start(port, data_dir)
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        localstack.stop(process, timeout=30)


def _process_tree(pid: int) -> list[int]:
    """The process and its descendants (Linux /proc)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            pending += [int(child) for child in task.read_text().split()]
    return tree


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) if "VmRSS:" in status else 0


def server_rss_gib(pid: int | None) -> float | None:
    """Resident memory of the server process and its children, GiB (None: remote server)."""
    if pid is None:
        return None
    return sum(_rss_kib(member) for member in _process_tree(pid)) / 2**20


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its children so far."""
    ticks = 0
    for member in _process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until_indexed(store: MilvusVectorStore, pid: int | None, quiet_s: float = 2.0) -> None:
    """Block until the server has built the indexes of every sealed segment.

    Milvus Lite builds them in a background thread after a flush (its ``describe_index`` always says
    finished) and searches brute force meanwhile: wait until its process has been idle ``quiet_s``.
    Milvus standalone / cluster: wait until ``describe_index`` reports no pending rows (and, when its
    process is ours, until it is idle too).
    """
    while int(store.describe_index().get("pending_index_rows", "0")) > 0:
        time.sleep(1.0)
    if pid is None:
        return
    idle_since = time.monotonic()
    last = _cpu_seconds(pid)
    while time.monotonic() - idle_since < quiet_s:
        time.sleep(0.5)
        now = _cpu_seconds(pid)
        if now - last > 0.05:  # more than 10 % of a core in the last half second
            idle_since = time.monotonic()
        last = now


def lite_segments(data_dir: Path, collection: str) -> int | None:
    """Sealed segments of a Milvus Lite collection (each has its own index; a search visits all)."""
    if not data_dir.exists():
        return None
    return sum(1 for path in data_dir.rglob("data_*.parquet") if collection in path.parts)


# ---- the benchmark -------------------------------------------------------------------------------------


def insert(store: MilvusVectorStore, chunks: Iterator[np.ndarray], n: int, progress: Progress) -> float:
    """Upsert every chunk in batches (about 10 MB of floats each) and flush; seconds spent."""
    batch = max(500, min(20_000, 2_500_000 // store.dim))
    started, done, last_report = time.perf_counter(), 0, 0.0
    for chunk in chunks:
        for start in range(0, len(chunk), batch):
            part = chunk[start : start + batch]
            store.upsert(list(range(done, done + len(part))), part, [None] * len(part))
            done += len(part)
            if time.perf_counter() - last_report > 15:
                last_report = time.perf_counter()
                rate = done / (last_report - started)
                progress(f"  inserted {done}/{n} ({rate:.0f} vectors/s)")
    store.flush()
    return time.perf_counter() - started


def time_queries(
    search: Callable[[np.ndarray], list[int]], queries: np.ndarray
) -> tuple[list[list[int]], np.ndarray]:
    """Each query alone (as a search request sends it) after 5 warm-up queries: ids and seconds."""
    for query in queries[:5]:
        search(query)
    found, seconds = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(search(query))
        seconds.append(time.perf_counter() - started)
    return found, np.asarray(seconds)


class MilvusEngine:
    """The product's `MilvusVectorStore` on a Milvus server: vectors inserted once, then each index
    configuration built on them in turn (``rebuild_index``)."""

    def __init__(self, uri: str, pid: int | None, data_dir: Path | None, collection: str, keep: bool) -> None:
        """``data_dir``: the Milvus Lite server's folder, None for standalone / cluster."""
        self.uri, self.pid, self.data_dir, self.collection, self.keep = uri, pid, data_dir, collection, keep
        self.name = "milvus-lite" if data_dir is not None else "milvus"
        self.store: MilvusVectorStore | None = None

    def unsupported(self, index_type: str) -> str | None:
        return LITE_UNSUPPORTED.get(index_type) if self.data_dir is not None else None

    def build(self, params: AnnIndexParams, database: np.ndarray, progress: Progress) -> tuple[float, float]:
        """(insert seconds, 0 when already inserted; index build seconds)."""
        insert_s, started = 0.0, time.perf_counter()
        if self.store is None:
            dim = database.shape[1]
            self.store = MilvusVectorStore(self.uri, self.collection, dim, index=params, timeout=600)
            self.store.drop()
            self.store.ensure_collection()
            progress(f"inserting {len(database)} vectors with {params.index_type} ({self.uri})")
            insert_s = insert(self.store, iter([database]), len(database), progress)
            started = time.perf_counter()  # the first build runs in the background after the flush
        else:
            self.store.index = params
            self.store.rebuild_index()  # builds while the call is open
        wait_until_indexed(self.store, self.pid)
        return insert_s, time.perf_counter() - started

    def searcher(self, setting: AnnIndexParams) -> Callable[[np.ndarray], list[int]]:
        store = self.store
        assert store is not None
        store.index = store.served_index = setting
        return lambda query: [integer_id(hit.image_id) for hit in store.search(query, k=K)[0]]

    def memory_gib(self) -> float | None:
        return server_rss_gib(self.pid)

    def segments(self) -> int | None:
        return None if self.data_dir is None else lite_segments(self.data_dir, self.collection)

    def close(self) -> None:
        if self.store is not None:
            if not self.keep:
                self.store.drop()
            self.store.close()


class FaissEngine:
    """The same index types built in this process with FAISS (the library Milvus Lite wraps; Milvus
    standalone's knowhere implements the same algorithms in C++): what the index itself costs at N, without
    Milvus Lite's per-query Python work over every row. Not the product's serving path."""

    name = "faiss"

    def __init__(self) -> None:
        import faiss

        self.faiss = faiss
        # One thread: on 2 busy cores, OpenMP's spinning threads built HNSW 2x slower.
        faiss.omp_set_num_threads(1)
        self.index: Any = None  # a faiss index of the type `build` chose: hnsw, nprobe exist on some only

    def unsupported(self, index_type: str) -> str | None:
        return None

    def build(self, params: AnnIndexParams, database: np.ndarray, progress: Progress) -> tuple[float, float]:
        faiss, dim = self.faiss, database.shape[1]
        self.index = None
        started = time.perf_counter()
        ip = faiss.METRIC_INNER_PRODUCT
        kind = params.index_type
        if kind == "FLAT":
            index = faiss.IndexFlatIP(dim)
        elif kind == "HNSW":
            index = faiss.IndexHNSWFlat(dim, params.m, ip)
        elif kind == "HNSW_SQ":
            index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, params.m, ip)
        else:
            quantizer = faiss.IndexFlatIP(dim)
            if kind == "IVF_FLAT":
                index = faiss.IndexIVFFlat(quantizer, dim, params.nlist, ip)
            elif kind == "IVF_SQ8":
                sq8 = faiss.ScalarQuantizer.QT_8bit
                index = faiss.IndexIVFScalarQuantizer(quantizer, dim, params.nlist, sq8, ip)
            else:
                index = faiss.IndexIVFPQ(quantizer, dim, params.nlist, params.pq_m, 8, ip)
            index.own_fields = True
            quantizer.this.disown()
        if kind.startswith("HNSW"):
            index.hnsw.efConstruction = params.ef_construction
        if not index.is_trained:
            sample = database[np.random.default_rng(0).permutation(len(database))[: 64 * params.nlist]]
            index.train(sample)
        index.add(database)
        self.index = index
        return 0.0, time.perf_counter() - started

    def searcher(self, setting: AnnIndexParams) -> Callable[[np.ndarray], list[int]]:
        index = self.index
        if setting.index_type.startswith("HNSW"):
            index.hnsw.efSearch = setting.search_params(K)["ef"]
        elif setting.index_type.startswith("IVF"):
            index.nprobe = setting.search_params(K)["nprobe"]

        def search(query: np.ndarray) -> list[int]:
            _, ids = index.search(query[None, :], K)
            return [int(i) for i in ids[0] if i >= 0]

        return search

    def memory_gib(self) -> float | None:
        """Size of the built index, serialised (GiB): vectors or codes, graph links, inverted lists."""
        return None if self.index is None else float(self.faiss.serialize_index(self.index).nbytes) / 2**30

    def segments(self) -> int | None:
        return None

    def close(self) -> None:
        self.index = None


def run(args: argparse.Namespace, progress: Progress) -> list[Row]:
    rng = np.random.default_rng(args.seed)
    if args.embeddings:
        stored = np.load(args.embeddings)
        vectors = stored["vectors"].astype(np.float32)
        progress(f"embeddings from {args.embeddings}: {vectors.shape}")
    else:
        vectors = real_embeddings(args.dataset, args.cache, progress)
    anchors, real_queries = split_queries(_unit(vectors), args.queries, rng)
    dim = vectors.shape[1]
    queries = real_queries
    progress(
        f"{len(anchors)} anchors, {len(queries)} held-out queries; generating {args.n} x {dim}-d vectors "
        f"(noise {args.noise})"
    )
    database = np.concatenate(list(replicate(anchors, args.n, args.noise, rng)))
    _, exact_scores = exact_top_k(database, queries)
    real_nn = np.sort(anchors @ queries.T, axis=0)[::-1]
    progress(
        "neighbour structure: median cosine of a query to its 1st / 100th exact neighbour "
        f"{np.median(exact_scores[:, 0]):.3f} / {np.median(exact_scores[:, -1]):.3f} "
        f"(to its 1st / 10th real photo: {np.median(real_nn[0]):.3f} / {np.median(real_nn[9]):.3f})"
    )

    sweeps = [sweep for name in args.configs.split(",") for sweep in PRESETS[name]]
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.engine == "faiss":
            return sweep_engine(FaissEngine(), sweeps, database, queries, exact_scores, args, progress)
        data_dir = Path(tmp) / "milvus"
        lite = not (args.milvus_uri or args.server == "standalone")
        with milvus_server(args.milvus_uri, args.server_pid, data_dir, not lite) as (uri, pid):
            collection = f"ann_scale_{args.n}_{dim}"
            engine = MilvusEngine(uri, pid, data_dir if lite else None, collection, args.keep)
            return sweep_engine(engine, sweeps, database, queries, exact_scores, args, progress)


def sweep_engine(
    engine: MilvusEngine | FaissEngine,
    sweeps: Sequence[Sweep],
    database: np.ndarray,
    queries: np.ndarray,
    exact_scores: np.ndarray,
    args: argparse.Namespace,
    progress: Progress,
) -> list[Row]:
    """Build each configuration, then time and score each of its search settings."""
    rows: list[Row] = []
    insert_s = 0.0
    try:
        for sweep in sweeps:
            label = sweep.build.describe()
            reason = engine.unsupported(sweep.build.index_type)
            if reason:
                progress(f"{sweep.build.index_type}: skipped, {reason}")
                continue
            if progress.out_of_time():
                progress(f"{label}: skipped, past --max-minutes {args.max_minutes}")
                continue
            inserted, build_s = engine.build(sweep.build, database, progress)
            insert_s = inserted or insert_s
            rss, segments = engine.memory_gib(), engine.segments()
            memory = "n/a" if rss is None else f"{rss:.2f} GiB"
            progress(
                f"{sweep.build.index_type} built in {build_s:.1f} s (insert {insert_s:.1f} s), "
                f"{engine.name} memory {memory}, segments {segments}"
            )
            for setting in sweep.settings():
                found, seconds = time_queries(engine.searcher(setting), queries)
                row = Row(
                    engine=engine.name,
                    n=len(database),
                    dim=database.shape[1],
                    index=setting.describe(),
                    insert_s=round(insert_s, 1),
                    build_s=round(build_s, 1),
                    recall=round(recall_at_k(found, database, queries, exact_scores), 4),
                    p50_ms=round(float(np.percentile(seconds, 50)) * 1000, 2),
                    p95_ms=round(float(np.percentile(seconds, 95)) * 1000, 2),
                    rss_gib=None if rss is None else round(rss, 2),
                    segments=segments,
                )
                rows.append(row)
                progress(
                    f"  {row.index}: recall@{K} {row.recall:.4f}, p50 {row.p50_ms} ms, p95 {row.p95_ms} ms"
                )
                if args.json:
                    args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    finally:
        engine.close()
    return rows


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        f"| engine | N | dim | index | insert s | build s | recall@{K} | p50 ms | p95 ms | memory GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rss = "n/a" if r.rss_gib is None else f"{r.rss_gib:.2f}"
        lines.append(
            f"| {r.engine} | {r.n:,} | {r.dim} | {r.index} | {r.insert_s:.0f} | {r.build_s:.0f} "
            f"| {r.recall:.3f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {rss} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, required=True, help="database vectors")
    parser.add_argument("--dataset", type=Path, nargs="*", default=[], help="collections to embed")
    parser.add_argument("--cache", type=Path, default=Path("var/bench/ann_scale"), help="embeddings folder")
    parser.add_argument("--embeddings", type=Path, help="an .npz with 'vectors' (M, D) instead of photos")
    parser.add_argument("--configs", default="sweep", help=f"comma-separated presets: {', '.join(PRESETS)}")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries (at most M/4)")
    parser.add_argument("--noise", type=float, default=0.5, help="replica noise, in collection spreads")
    parser.add_argument(
        "--engine", choices=["milvus", "faiss"], default="milvus",
        help="milvus: the product's store on a Milvus server; faiss: the bare index in this process",
    )
    parser.add_argument(
        "--server", choices=["lite", "standalone"], default="lite",
        help="the Milvus server the bench starts: Milvus Lite (make run's) or Milvus standalone",
    )
    parser.add_argument("--milvus-uri", help="a running Milvus standalone/cluster instead of our own server")
    parser.add_argument("--server-pid", type=int, help="that server's process id, for its memory")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="start no index build after this")
    parser.add_argument("--json", type=Path, help="also write the rows here (rewritten after each one)")
    parser.add_argument("--tmp", type=Path, help="where the Milvus Lite server keeps its data")
    parser.add_argument("--keep", action="store_true", help="keep the collection afterwards")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (extraction, exact search)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    progress = Progress(args.max_minutes)
    progress(f"ann_scale {' '.join(sys.argv[1:] if argv is None else argv)} (pid {os.getpid()})")
    rows = run(args, progress)
    print(markdown(rows), flush=True)
    return rows


if __name__ == "__main__":
    main()
