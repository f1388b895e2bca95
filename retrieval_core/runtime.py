"""Process-wide thread settings for serving: on a few cores, nested thread pools oversubscribe them.

Re-ranking multiplies small matrices for 100 candidates; letting BLAS and OpenCV each spawn a pool per
call next to torch's own threads made matching 10x slower on 2 busy cores. Serving processes cap both at
one thread and leave torch's intra-op pool (the embedding forward pass) as configured.
"""

from __future__ import annotations

import cv2
from threadpoolctl import threadpool_limits


def limit_native_threads(blas: int = 1, opencv: int = 1) -> None:
    """Cap BLAS (numpy's) and OpenCV thread pools for the rest of the process."""
    threadpool_limits(limits=blas, user_api="blas")
    cv2.setNumThreads(opencv)
