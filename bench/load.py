"""Load test of a running stack: clients searching by photo, polite or not, with or without keep-alive.

    # C polite clients for D seconds (the default mode)
    python bench/load.py --url http://127.0.0.1:8000 --images ../shared/datasets/sfm_landmarks \
        --clients 50 --duration 60 [--rerank sift] [--impolite] [--no-keepalive]

    # mixed: N polite clients, alone and while one address floods (alternating), in one run
    python bench/load.py --url http://127.0.0.1:8000 --images ../shared/datasets/sfm_landmarks \
        --mixed --clients 4 --flood-connections 50 --duration 60

Each client posts a photo to ``/api/search/``, waits for the answer, and starts the next one. A polite
client honours a refusal (429 or 503): it waits ``Retry-After`` (capped at 2 s) before its next search;
``--impolite`` ones retry at once (a buggy script, or a hostile one). ``--no-keepalive`` clients open a new
connection per request, as ``urllib``, one-shot scripts and many API clients do.

``--mixed`` measures what one misbehaving address costs everybody else. Every client class has its own
loopback address (the polite clients 127.0.0.11, .12, ...; the flood 127.0.0.2), bound as the source of
its connections, so the server's per-address limits see them as the different clients they are. The
polite clients run for 2 x ``--duration`` seconds; every ``--slice`` seconds ``--flood-connections``
impolite connections from the one flooding address (retrying at once after every refusal) are switched on
or off, so "alone" and "under the flood" alternate and whatever else loads the machine weighs on both
alike; a polite request counts in the phase its middle falls in. It prints goodput (accepted searches/s)
and p95 per class and phase, and the polite clients' goodput and p95 under the flood relative to alone
(the targets: at least 80 % and at most 2x). The flood runs in a process of its own at the lowest CPU
priority (``--flood-nice``, 19 by default): a real flood comes from other machines, and on this one the
load generator's own Python (hundreds of requests a second) should take as little as possible from the
server it measures. ``--flood-cgroup`` puts it in a cgroup of your own (e.g. with a CPU quota of a
quarter core): closer to a flood from other machines, which takes nothing of this one.

For the refusals it also prints the server's own time (its ``Server-Timing`` header, from the throttle's
start to the answer), so a slow refusal shows whether the time went inside Django or in waiting for a
thread / the client; refusals without that header came from a front (nginx) before the app.

Bounded and local on purpose: loopback URLs only, at most 200 clients and 600 s per phase.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import requests
from requests.adapters import HTTPAdapter

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_CLIENTS, MAX_DURATION_S = 200, 600
FLOOD_ADDRESS = "127.0.0.2"
POLITE_FIRST_ADDRESS = 11  # 127.0.0.11, .12, ...


@dataclass(frozen=True)
class ClientClass:
    """Clients that behave alike: how many, from where, and how they treat refusals and connections."""

    name: str
    clients: int
    polite: bool = True
    keepalive: bool = True
    addresses: tuple[str, ...] = ()  # source address per client, cycled; empty: the system's choice


TIMEOUT, CONNECTION_ERROR = -1, -2  # the status of a request that got no answer


@dataclass(frozen=True)
class Event:
    """One request: when it started (monotonic, the same clock in every process), how long it took, its
    status, whether a refusal said Retry-After, and the server's own time for it (Server-Timing, ms)."""

    start: float
    elapsed: float
    status: int
    retry_after: bool
    server_ms: float | None

    @property
    def middle(self) -> float:
        return self.start + self.elapsed / 2


@dataclass
class Tally:
    accepted_s: list[float] = field(default_factory=list)
    refused: dict[int, list[float]] = field(default_factory=dict)
    refused_server_s: list[float] = field(default_factory=list)  # Server-Timing of the refusals
    refused_by_front: int = 0  # refusals without Server-Timing: answered before the app (nginx)
    refused_without_retry_after: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    other: dict[int, int] = field(default_factory=dict)  # unexpected statuses (4xx other than 429, 5xx)
    wall_s: float = 0.0

    @classmethod
    def of(cls, events: list[Event], wall_s: float) -> Tally:
        tally = cls(wall_s=wall_s)
        for event in events:
            if event.status == 200:
                tally.accepted_s.append(event.elapsed)
            elif event.status == TIMEOUT:
                tally.timeouts += 1
            elif event.status == CONNECTION_ERROR:
                tally.connection_errors += 1
            elif event.status in (429, 503) and event.retry_after:
                tally.refused.setdefault(event.status, []).append(event.elapsed)
                if event.server_ms is None:
                    tally.refused_by_front += 1
                else:
                    tally.refused_server_s.append(event.server_ms / 1000)
            else:
                if event.status in (429, 503):
                    tally.refused_without_retry_after += 1
                tally.other[event.status] = tally.other.get(event.status, 0) + 1
        return tally

    @property
    def goodput(self) -> float:
        return len(self.accepted_s) / self.wall_s if self.wall_s else 0.0

    @property
    def bad(self) -> int:
        return self.timeouts + self.connection_errors + sum(self.other.values())


class SourceAddressAdapter(HTTPAdapter):
    """Connections from one local address (any 127.0.0.x is on the loopback interface on Linux)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(pool_connections=1, pool_maxsize=1)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _session(address: str | None, keepalive: bool) -> requests.Session:
    session = requests.Session()
    if address:
        adapter = SourceAddressAdapter(address)
        session.mount("http://", adapter)
    if not keepalive:  # the server closes after each answer, the next request opens a new connection
        session.headers["Connection"] = "close"
    return session


def _client(url: str, photos: list[tuple[str, bytes]], rerank: str | None, stop_at: float, timeout: float,
            events: list[Event], seed: int, polite: bool, keepalive: bool, address: str | None,
            active: Any = None) -> None:  # fmt: skip
    """One client until ``stop_at``; with ``active`` (an Event), it sends only while that is set."""
    rng = random.Random(seed)
    session = _session(address, keepalive)
    while time.monotonic() < stop_at:
        if active is not None and not active.is_set():
            active.wait(0.2)
            continue
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
            events.append(Event(start, time.monotonic() - start, TIMEOUT, False, None))
            continue
        except requests.ConnectionError:
            events.append(Event(start, time.monotonic() - start, CONNECTION_ERROR, False, None))
            time.sleep(0.1)
            continue
        retry_after = response.headers.get("Retry-After")
        server_ms = _server_timing_ms(response.headers.get("Server-Timing", ""))
        elapsed = time.monotonic() - start
        events.append(Event(start, elapsed, response.status_code, bool(retry_after), server_ms))
        if polite and retry_after and response.status_code in (429, 503):
            time.sleep(min(2.0, float(retry_after), max(0.0, stop_at - time.monotonic())))


def run_class(url: str, photos: list[tuple[str, bytes]], kind: ClientClass, duration: float,
              rerank: str | None, timeout: float, seed: int = 0,
              active: Any = None) -> list[Event]:  # fmt: skip
    """``kind``'s clients for ``duration`` seconds, each on a thread of this process: their requests."""
    events: list[Event] = []  # list.append is atomic: the threads share it without a lock
    stop_at = time.monotonic() + duration
    threads = [
        threading.Thread(
            target=_client,
            args=(url, photos, rerank, stop_at, timeout, events, seed + i, kind.polite, kind.keepalive,
                  kind.addresses[i % len(kind.addresses)] if kind.addresses else None, active),
        )
        for i in range(kind.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return events


def _flood_process(url: str, photos: list[tuple[str, bytes]], kind: ClientClass, duration: float,
                   rerank: str | None, timeout: float, nice: int, active: Any, results: Any,
                   cgroup: str | None = None) -> None:  # fmt: skip
    os.nice(nice)
    if cgroup:  # before any thread starts: every thread of this process is in it
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    results.put(run_class(url, photos, kind, duration, rerank, timeout, seed=1000, active=active))


def _polite_addresses(clients: int) -> tuple[str, ...]:
    """127.0.0.11, .12, ...: one loopback address per client (at most 200 clients: .11 to .210)."""
    return tuple(f"127.0.0.{POLITE_FIRST_ADDRESS + i}" for i in range(clients))


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


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def report(label: str, tally: Tally) -> None:
    """The class's lines: goodput, latency of the accepted searches, refusals, what went wrong."""
    refused = [s for values in tally.refused.values() for s in values]
    answered = len(tally.accepted_s) + len(refused) + sum(tally.other.values())
    wall = tally.wall_s or 1.0
    print(f"[{label}] answered {answered} requests in {wall:.1f} s: {answered / wall:.1f} req/s")
    print(
        f"[{label}] accepted {len(tally.accepted_s)} ({tally.goodput:.2f} searches/s): "
        f"p50 {_ms(tally.accepted_s, 50)} ms, p95 {_ms(tally.accepted_s, 95)} ms, "
        f"max {_ms(tally.accepted_s, 100)} ms"
    )
    for status, values in sorted(tally.refused.items()):
        print(
            f"[{label}] refused {status} with Retry-After: {len(values)}, "
            f"answered in p50 {_ms(values, 50)} ms, p95 {_ms(values, 95)} ms, max {_ms(values, 100)} ms"
        )
    if tally.refused_server_s:
        server = tally.refused_server_s
        print(
            f"[{label}]   of which in the app (Server-Timing): {len(server)}, p50 {_ms(server, 50)} ms, "
            f"p95 {_ms(server, 95)} ms, max {_ms(server, 100)} ms; by the front: {tally.refused_by_front}"
        )
    elif tally.refused_by_front:
        print(f"[{label}]   all {tally.refused_by_front} refused by the front (no Server-Timing)")
    print(
        f"[{label}] timeouts {tally.timeouts}, connection errors {tally.connection_errors}, "
        f"refusals without Retry-After {tally.refused_without_retry_after}, other statuses {tally.other or 0}"
    )


def run_mixed(url: str, photos: list[tuple[str, bytes]], polite: ClientClass, flood: ClientClass,
              duration: float, rerank: str | None, timeout: float, flood_nice: int = 19,
              slice_s: float = 10.0, flood_url: str | None = None,
              flood_cgroup: str | None = None) -> tuple[Tally, Tally, Tally]:  # fmt: skip
    """``polite`` clients for 2 x ``duration`` seconds while the ``flood`` (a process of its own) is switched
    off and on every ``slice_s`` seconds: alone and under the flood alternate, so the load of anything else
    on the machine weighs on both alike. A polite request counts in the phase its middle falls in.
    Returns (polite alone, polite under the flood, the flood)."""
    slices = max(1, round(duration / slice_s))
    context = multiprocessing.get_context("spawn")
    active, results = context.Event(), context.Queue()
    total = 2 * slices * slice_s
    flooder = context.Process(
        target=_flood_process,
        args=(flood_url or url, photos, flood, total + 5.0, rerank, timeout, flood_nice, active, results,
              flood_cgroup),
    )
    flooder.start()
    time.sleep(3.0)  # the flood's process has started (idle until switched on)
    events: list[Event] = []
    worker = threading.Thread(
        target=lambda: events.extend(run_class(url, photos, polite, total, rerank, timeout))
    )
    begin = time.monotonic()
    worker.start()
    phases: list[tuple[float, float, bool]] = []  # (from, to, flooding)
    for i in range(2 * slices):
        flooding = i % 2 == 1
        (active.set if flooding else active.clear)()
        start = time.monotonic()
        time.sleep(max(0.0, begin + (i + 1) * slice_s - start))
        phases.append((start, time.monotonic(), flooding))
    active.clear()
    worker.join()
    flood_events: list[Event] = results.get(timeout=timeout + 60)
    flooder.join(30)

    def during(flooding: bool) -> tuple[list[Event], float]:
        spans = [(a, b) for a, b, f in phases if f == flooding]
        chosen = [e for e in events if any(a <= e.middle < b for a, b in spans)]
        return chosen, sum(b - a for a, b in spans)

    alone, under_flood = during(False), during(True)
    return Tally.of(*alone), Tally.of(*under_flood), Tally.of(flood_events, under_flood[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--images", type=Path, required=True, help="folder of query photos (searched at random)"
    )
    parser.add_argument("--clients", type=int, default=50, help="clients (--mixed: the polite ones)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (--mixed: per phase)")
    parser.add_argument("--rerank", default=None, help="re-ranking method (default: the server's)")
    parser.add_argument("--timeout", type=float, default=30.0, help="a request slower than this is a timeout")
    parser.add_argument("--limit-photos", type=int, default=40)
    parser.add_argument("--impolite", action="store_true", help="retry at once after a refusal")
    parser.add_argument(
        "--no-keepalive", action="store_true", help="a new connection per request (--mixed: polite clients)"
    )
    parser.add_argument(
        "--own-addresses",
        action="store_true",
        help="each client from its own loopback address (127.0.0.11, .12, ...), as different users are "
        "(--mixed always does)",
    )
    parser.add_argument("--mixed", action="store_true", help="polite clients alone, then under a flood")
    parser.add_argument("--flood-connections", type=int, default=50, help="--mixed: the flood's connections")
    parser.add_argument(
        "--flood-no-keepalive", action="store_true", help="--mixed: the flood opens a connection per request"
    )
    parser.add_argument(
        "--flood-url",
        help="--mixed: send the flood here instead (a control: a server of its own that only refuses, so "
        "what the polite clients lose is the machine's, not the server's)",
    )
    parser.add_argument(
        "--flood-cgroup",
        help="--mixed: a cgroup (v1 cpu or v2 folder) the flood process joins, e.g. one with a CPU quota "
        "of a quarter core: the flood then takes about as little of this machine as one from elsewhere",
    )
    parser.add_argument(
        "--slice", type=float, default=10.0, help="--mixed: seconds between switching the flood on and off"
    )
    parser.add_argument(
        "--flood-nice", type=int, default=19, help="--mixed: the flood process's nice (0: same priority)"
    )
    args = parser.parse_args(argv)
    host = urlparse(args.url).hostname or ""
    if host not in LOOPBACK:
        parser.error(f"loopback only (got {host!r}): this bench saturates the server it is pointed at")
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"at most {MAX_CLIENTS} clients and {MAX_DURATION_S} s")
    if args.mixed and not 1 <= args.flood_connections <= MAX_CLIENTS:
        parser.error(f"at most {MAX_CLIENTS} flood connections")
    if (args.mixed or args.own_addresses) and host != "127.0.0.1":
        parser.error("--mixed and --own-addresses bind clients to 127.0.0.x addresses: use a 127.0.0.1 URL")
    if args.flood_url and urlparse(args.flood_url).hostname != "127.0.0.1":
        parser.error("--flood-url: a 127.0.0.1 URL")
    paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    paths = random.Random(0).sample(paths, min(len(paths), args.limit_photos))
    if not paths:
        parser.error(f"no photos under {args.images}")
    photos = [(p.name, p.read_bytes()) for p in paths]
    url = args.url.rstrip("/") + "/api/search/"
    print(f"{url}, rerank={args.rerank or 'served'}, {len(photos)} photos")
    if not args.mixed:
        kind = ClientClass(
            "clients",
            args.clients,
            polite=not args.impolite,
            keepalive=not args.no_keepalive,
            addresses=_polite_addresses(args.clients) if args.own_addresses else (),
        )
        print(
            f"{kind.clients} {'polite' if kind.polite else 'impolite'} clients "
            f"{'with' if kind.keepalive else 'without'} keep-alive"
            f"{', each from its own address' if kind.addresses else ''} x {args.duration:.0f} s"
        )
        start = time.monotonic()
        events = run_class(url, photos, kind, args.duration, args.rerank, args.timeout)
        tally = Tally.of(events, time.monotonic() - start)
        report(kind.name, tally)
        return 1 if tally.bad else 0
    polite = ClientClass(
        "polite",
        args.clients,
        polite=not args.impolite,
        keepalive=not args.no_keepalive,
        addresses=_polite_addresses(args.clients),
    )
    flood = ClientClass(
        "flood",
        args.flood_connections,
        polite=False,
        keepalive=not args.flood_no_keepalive,
        addresses=(FLOOD_ADDRESS,),
    )
    print(
        f"mixed: {polite.clients} polite clients ({'with' if polite.keepalive else 'without'} keep-alive, "
        f"one address each), {args.duration:.0f} s alone and {args.duration:.0f} s while {flood.clients} "
        f"impolite connections ({'with' if flood.keepalive else 'without'} keep-alive, nice "
        f"{args.flood_nice}) flood from {FLOOD_ADDRESS}, alternating every {args.slice:.0f} s"
        + (f"; the flood goes to {args.flood_url} instead" if args.flood_url else "")
    )
    alone, under_flood, flood_tally = run_mixed(
        url, photos, polite, flood, args.duration, args.rerank, args.timeout, args.flood_nice, args.slice,
        None if args.flood_url is None else args.flood_url.rstrip("/") + "/api/search/",
        args.flood_cgroup,
    )
    report("polite alone", alone)
    report("polite under flood", under_flood)
    report("flood", flood_tally)
    share = under_flood.goodput / alone.goodput if alone.goodput else float("nan")
    slower = _p95(under_flood.accepted_s) / _p95(alone.accepted_s) if alone.accepted_s else float("nan")
    print(
        f"polite under the flood: goodput {under_flood.goodput:.2f} vs {alone.goodput:.2f} searches/s alone "
        f"= {100 * share:.0f} % (target >= 80 %), p95 {_ms(under_flood.accepted_s, 95)} vs "
        f"{_ms(alone.accepted_s, 95)} ms = {slower:.2f}x (target <= 2x)"
    )
    return 1 if alone.bad or under_flood.bad else 0


if __name__ == "__main__":
    sys.exit(main())
