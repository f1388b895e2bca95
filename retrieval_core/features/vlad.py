"""VLAD: local descriptors aggregated into one vector, compared by a dot product.

Done as in Arandjelović & Zisserman, "All about VLAD" (CVPR 2013), which the thesis skipped: residuals
summed per visual word, each word's block L2-normalised (intra-normalisation, so bursty repeated
texture cannot dominate), signed square root (power normalisation), then global L2. A 64-word codebook
(the thesis used 16) and optional PCA-whitening (Jégou & Chum, ECCV 2012) then L2 again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval_core.atomic import atomic_write
from retrieval_core.features.sift import descriptors_to_float

__all__ = [
    "PcaWhitening",
    "VladEncoder",
    "apply_pca_whitening",
    "codebook_from_bytes",
    "codebook_to_bytes",
    "fit_pca_whitening",
    "load_codebook",
    "pca_whitening_from_bytes",
    "pca_whitening_to_bytes",
    "save_codebook",
    "train_codebook",
    "vlad",
]


def train_codebook(
    descriptors: np.ndarray,
    k: int = 64,
    seed: int = 0,
    max_samples: int = 200_000,
    n_iter: int = 25,
) -> np.ndarray:
    """k-means visual words of (N, D) descriptors (uint8 codes or float) -> (k, D) float32 centroids.

    At most ``max_samples`` rows (drawn with ``seed``) are clustered: more adds time, not quality. Uses
    faiss when importable (fast, multi-threaded), else scikit-learn's MiniBatchKMeans.
    """
    x = descriptors_to_float(np.asarray(descriptors))
    if x.ndim != 2 or len(x) < k:
        raise ValueError(f"need at least k={k} descriptors of shape (N, D), got {x.shape}")
    rng = np.random.default_rng(seed)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    try:
        import faiss
    except ImportError:
        from sklearn.cluster import MiniBatchKMeans

        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, max_iter=n_iter, batch_size=4096)
        return km.fit(x).cluster_centers_.astype(np.float32)
    kmeans = faiss.Kmeans(
        x.shape[1], k, niter=n_iter, seed=seed, verbose=False, max_points_per_centroid=max_samples
    )
    kmeans.train(np.ascontiguousarray(x, np.float32))
    return np.asarray(kmeans.centroids, np.float32).reshape(k, x.shape[1])


def vlad(descriptors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """(N, D) descriptors + (k, D) codebook -> (k * D,) float32 unit-L2 VLAD (zeros if N == 0)."""
    k, dim = codebook.shape
    if len(descriptors) == 0:
        return np.zeros(k * dim, np.float32)
    x = descriptors_to_float(descriptors)
    centroids = np.asarray(codebook, np.float32)
    # Nearest word by argmax of x.c - |c|^2 / 2 (one matrix product).
    words = np.argmax(x @ centroids.T - 0.5 * np.einsum("kd,kd->k", centroids, centroids), axis=1)
    sums = np.zeros((k, dim), np.float32)
    np.add.at(sums, words, x)
    residuals = sums - np.bincount(words, minlength=k)[:, None].astype(np.float32) * centroids
    residuals /= np.maximum(np.linalg.norm(residuals, axis=1, keepdims=True), 1e-12)  # intra-norm
    v = np.sign(residuals) * np.sqrt(np.abs(residuals))  # power (signed sqrt)
    v = v.ravel()
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class PcaWhitening:
    """mean: (D,); projection: (D, dim), whitening folded in (columns scaled by 1/sqrt(eigenvalue))."""

    mean: np.ndarray
    projection: np.ndarray


def fit_pca_whitening(vlads: np.ndarray, dim: int, eps: float = 1e-6) -> PcaWhitening:
    """Learn PCA-whitening of (N, D) VLADs down to ``dim`` <= min(N - 1, D) dimensions."""
    n, d = vlads.shape
    if not 0 < dim <= min(n - 1, d):
        raise ValueError(f"dim must be in 1..{min(n - 1, d)} for {n} vectors of {d} dims, got {dim}")
    mean = vlads.mean(axis=0)
    # Economy SVD of the centred data: right singular vectors are the covariance eigenvectors.
    _, singular, vt = np.linalg.svd(vlads - mean, full_matrices=False)
    eigenvalues = singular[:dim] ** 2 / max(n - 1, 1)
    projection = vt[:dim].T / np.sqrt(eigenvalues + eps)
    return PcaWhitening(mean.astype(np.float32), projection.astype(np.float32))


def apply_pca_whitening(vlads: np.ndarray, pca: PcaWhitening) -> np.ndarray:
    """(N, D) or (D,) VLADs -> (N, dim) or (dim,) whitened, re-L2-normalised float32."""
    out = (np.asarray(vlads, np.float32) - pca.mean) @ pca.projection
    norms = np.linalg.norm(out, axis=-1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class VladEncoder:
    """A (k, 128) codebook and an optional PCA-whitening: local descriptors -> the vector that is stored at
    index time and compared at query time (one function for both sides)."""

    centroids: np.ndarray
    whitening: PcaWhitening | None = None

    @property
    def dim(self) -> int:
        return int(self.whitening.projection.shape[1] if self.whitening else self.centroids.size)

    def encode(self, descriptors: np.ndarray) -> np.ndarray:
        """(N, 128) descriptors -> (dim,) float32 unit vector (zeros when N == 0)."""
        vector = vlad(descriptors, self.centroids)
        if self.whitening is None or not vector.any():
            return vector
        return apply_pca_whitening(vector, self.whitening)


def codebook_to_bytes(codebook: np.ndarray, settings: Mapping[str, object]) -> tuple[bytes, bytes]:
    """``(.npy centroids, .json settings)`` as bytes, for a store that is not a folder (an S3 bucket)."""
    meta = {"k": int(codebook.shape[0]), "dim": int(codebook.shape[1]), **settings}
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(codebook, np.float32))
    return buffer.getvalue(), json.dumps(meta, indent=2).encode()


def codebook_from_bytes(
    npy: bytes, settings: bytes, *, name: str = "codebook"
) -> tuple[np.ndarray, dict[str, object]]:
    """Read what `codebook_to_bytes` gave: ``(centroids (k, D) float32, settings)``; ``name`` names it."""
    centroids = np.load(io.BytesIO(npy), allow_pickle=False).astype(np.float32)
    meta = json.loads(settings)
    if centroids.shape != (meta["k"], meta["dim"]):
        raise ValueError(f"{name}: centroids {centroids.shape} disagree with settings {meta}")
    return centroids, meta


def pca_whitening_to_bytes(pca: PcaWhitening) -> bytes:
    """The ``.npz`` (``mean``, ``projection``) a codebook's whitening is stored as."""
    buffer = io.BytesIO()
    np.savez(buffer, mean=pca.mean, projection=pca.projection)
    return buffer.getvalue()


def pca_whitening_from_bytes(data: bytes) -> PcaWhitening:
    with np.load(io.BytesIO(data), allow_pickle=False) as saved:
        return PcaWhitening(mean=saved["mean"], projection=saved["projection"])


def save_codebook(path: Path, codebook: np.ndarray, settings: Mapping[str, object]) -> None:
    """Write ``path`` (.npy centroids) and ``path.with_suffix('.json')`` (settings: extractor key, k, seed…).

    Both are written atomically; the settings let a loader refuse a codebook trained on other features.
    """
    path = Path(path)
    npy, meta = codebook_to_bytes(codebook, settings)
    atomic_write(path, lambda handle: handle.write(npy))
    atomic_write(path.with_suffix(".json"), lambda handle: handle.write(meta))


def load_codebook(path: Path) -> tuple[np.ndarray, dict[str, object]]:
    """Read what ``save_codebook`` wrote: ``(centroids (k, D) float32, settings)``."""
    path = Path(path)
    return codebook_from_bytes(path.read_bytes(), path.with_suffix(".json").read_bytes(), name=str(path))
