"""Load test of a running stack: C concurrent clients searching by photo for D seconds.

    python bench/load.py --url http://127.0.0.1:8000 --images ../shared/datasets/sfm_landmarks \
        --clients 50 --duration 60 [--rerank sift]

Each client posts a photo to ``/api/search/``, waits for the answer, and starts the next one; a refusal
(429 or 503) is honoured as a polite client would: it waits ``Retry-After`` (capped at 2 s) before its next
search. Prints requests/s, p50/p95 of the accepted searches, the refusals (and how fast they came back) and
anything that should not happen: timeouts, connection errors, 5xx without Retry-After. For the refusals it
also prints the server's own time (its ``Server-Timing`` header, from the throttle's start to the answer),
so a slow refusal shows whether the time went inside Django or in waiting for a thread / the client.

Bounded and local on purpose: loopback URLs only, at most 200 clients and 600 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import requests

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_CLIENTS, MAX_DURATION_S = 200, 600


@dataclass
class Tally:
    accepted_s: list[float] = field(default_factory=list)
    refused: dict[int, list[float]] = field(default_factory=dict)
    refused_server_s: list[float] = field(default_factory=list)  # Server-Timing of the refusals
    refused_without_retry_after: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    other: dict[int, int] = field(default_factory=dict)  # unexpected statuses (4xx other than 429, 5xx)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(url: str, photos: list[tuple[str, bytes]], rerank: str | None, stop_at: float, timeout: float,
            tally: Tally, seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    session = requests.Session()
    while time.monotonic() < stop_at:
        name, content = rng.choice(photos)
        start = time.monotonic()
        try:
            response = session.post(
                url,
                files={"image": (name, content, "image/jpeg")},
                data={"rerank": rerank} if rerank else {},  # none named: the server's RERANK_METHOD
                timeout=timeout,
            )
        except requests.Timeout:
            with tally.lock:
                tally.timeouts += 1
            continue
        except requests.ConnectionError:
            with tally.lock:
                tally.connection_errors += 1
            time.sleep(0.1)
            continue
        elapsed = time.monotonic() - start
        wait = 0.0
        with tally.lock:
            if response.status_code == 200:
                tally.accepted_s.append(elapsed)
            elif response.status_code in (429, 503) and response.headers.get("Retry-After"):
                tally.refused.setdefault(response.status_code, []).append(elapsed)
                server_ms = _server_timing_ms(response.headers.get("Server-Timing", ""))
                if server_ms is not None:
                    tally.refused_server_s.append(server_ms / 1000)
                wait = min(2.0, float(response.headers["Retry-After"]))
            else:
                if response.status_code in (429, 503):
                    tally.refused_without_retry_after += 1
                tally.other[response.status_code] = tally.other.get(response.status_code, 0) + 1
        if wait:
            time.sleep(min(wait, max(0.0, stop_at - time.monotonic())))


def _server_timing_ms(header: str) -> float | None:
    """The ``dur`` of a ``Server-Timing: name;dur=12.3`` header, in ms; None without one."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "dur":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * float(np.percentile(values, q)):.0f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--images", type=Path, required=True, help="folder of query photos (searched at random)"
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--rerank", default=None, help="re-ranking method (default: the server's)")
    parser.add_argument("--timeout", type=float, default=30.0, help="a request slower than this is a timeout")
    parser.add_argument("--limit-photos", type=int, default=40)
    args = parser.parse_args(argv)
    host = urlparse(args.url).hostname or ""
    if host not in LOOPBACK:
        parser.error(f"loopback only (got {host!r}): this bench saturates the server it is pointed at")
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"at most {MAX_CLIENTS} clients and {MAX_DURATION_S} s")
    paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    paths = random.Random(0).sample(paths, min(len(paths), args.limit_photos))
    if not paths:
        parser.error(f"no photos under {args.images}")
    photos = [(p.name, p.read_bytes()) for p in paths]
    url = args.url.rstrip("/") + "/api/search/"
    tally = Tally()
    start = time.monotonic()
    stop_at = start + args.duration
    threads = [
        threading.Thread(target=_client, args=(url, photos, args.rerank, stop_at, args.timeout, tally, i))
        for i in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    refused = [s for values in tally.refused.values() for s in values]
    answered = len(tally.accepted_s) + len(refused) + sum(tally.other.values())
    print(
        f"{args.clients} clients x {args.duration:.0f} s, rerank={args.rerank or 'served'}, "
        f"{len(photos)} photos, {url}"
    )
    print(f"answered {answered} requests in {wall:.1f} s: {answered / wall:.1f} req/s")
    print(
        f"accepted {len(tally.accepted_s)} ({len(tally.accepted_s) / wall:.2f} searches/s): "
        f"p50 {_ms(tally.accepted_s, 50)} ms, p95 {_ms(tally.accepted_s, 95)} ms, "
        f"max {_ms(tally.accepted_s, 100)} ms"
    )
    for status, values in sorted(tally.refused.items()):
        print(
            f"refused {status} with Retry-After: {len(values)}, answered in p50 {_ms(values, 50)} ms, "
            f"p95 {_ms(values, 95)} ms, max {_ms(values, 100)} ms"
        )
    if tally.refused_server_s:
        server = tally.refused_server_s
        print(
            f"  of which inside the server (Server-Timing): p50 {_ms(server, 50)} ms, "
            f"p95 {_ms(server, 95)} ms, max {_ms(server, 100)} ms"
        )
    print(
        f"timeouts (> {args.timeout:.0f} s) {tally.timeouts}, connection errors {tally.connection_errors}, "
        f"refusals without Retry-After {tally.refused_without_retry_after}, other statuses {tally.other or 0}"
    )
    bad = tally.timeouts + tally.connection_errors + sum(tally.other.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
