"""Soak: mixed traffic on the one-machine stack for N minutes, a worker killed and Milvus restarted midway;
afterwards the catalogue, Milvus and the feature store must agree exactly.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 0.5] \
        [--dataset ../shared/datasets/sfm_landmarks] [--ports 8201,6402,19602] [--var-dir /tmp/soak-var]

Not part of ``make test``: a run takes the minutes asked for plus the start, the import and the wait for
the reconciler (about 5 more). What it does:

1. a fresh stack in ``--var-dir`` (wiped first; only a folder this bench made or an empty one): migrate and
   collectstatic as ``make run`` does, then every process of the Procfile on the given ports
   (web, Redis, Milvus Lite), each restarted when it exits as a deployment's restart policy would
   (bench/soak_stack.py; honcho would stop the whole stack instead). As with ``make run``, the Procfile's
   nginx ``front`` (if it has one, and nginx is installed) takes the web port, gunicorn the one after.
   The reconciler runs every ``RECONCILE_INTERVAL_SECONDS`` = 15 s and counts work lost after
   ``RECONCILE_STALE_SECONDS`` = 60 s (production: 300 / 600 s), so recovery is seen within the run;
2. a staff user with an API token, and ``manage.py import_images`` of ``--limit`` photos of the dataset,
   waited for until every photo is indexed with its local features;
3. ``--minutes`` of open-loop traffic at ``--rate`` requests/s from ``--clients`` clients, a
   loopback address each (127.0.0.20, .21, ...: a user each, as the per-address limits see them):
   photo searches (``POST /api/search/``, served defaults), "more like this"
   (``GET /api/images/<id>/similar/``), uploads of new photos (``POST /api/images/`` with the token, a
   re-encoded crop of a dataset photo each, so every upload is a new image), and curation actions of the
   dataset pages (``POST /dataset/curate/`` logged in: relabel, remove from the index, restore, mark as
   noise, confirm the label). Clients are polite: a refusal with ``Retry-After`` (429, or 503 when
   the server is saturated or a service is away) is tried again after that wait, twice at most; every
   try counts in the figures;
4. at 40 % of the run ``kill -9`` of the gpu worker (restarted at once), at 55 % ``kill -9`` of the Milvus
   Lite server (restarted at once); the restart window lasts until ``/readyz`` answers 200 again, plus 10 s;
5. traffic stops; the bench waits (``--settle-minutes``) until a reconcile pass that started after the
   traffic finds no drift and the catalogue, Milvus and the feature store agree:
   the ids of indexed images = the ids in the active Milvus collection = the indexed ids with a recorded,
   stored SIFT file; nothing pending or failed; no stored feature file without an image; every upload
   answered 201 is in the catalogue.

Prints (and writes as JSON to ``--json``) the requests per kind and status, p50/p95 per kind, the faults,
and the agreement check. Exits 1 when a request got a 5xx other than 503 with ``Retry-After``, got no
answer, or the stores disagree; 2 when the stack could not be set up.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak_stack import ProcfileStack  # noqa: E402  (no Django import at module level)
from webapp import localstack  # noqa: E402

KIND_WEIGHTS = {"search": 0.5, "similar": 0.25, "upload": 0.1, "curate": 0.15}
CURATION_WEIGHTS = {"relabel": 0.25, "remove_from_index": 0.25, "restore": 0.25, "mark_noise": 0.1,
                    "confirm_label": 0.15}  # fmt: skip
FAST_RECONCILE = {
    "RECONCILE_INTERVAL_SECONDS": "15",
    "RECONCILE_STALE_SECONDS": "60",
    "CELERY_VISIBILITY_TIMEOUT": "60",
}
WORKER_KILL_AT, MILVUS_RESTART_AT = 0.40, 0.55
READY_GRACE_S = 10.0
CLIENT_ADDRESS_BASE = 20  # client n sends from 127.0.0.(20 + n)
TRIES, MAX_RETRY_WAIT_S = 3, 5.0  # a refused operation is tried again after Retry-After, twice at most
REQUEST_TIMEOUT_S = 120.0  # gunicorn's own timeout: slower is an answer that never comes
MARKER = ".soak-bench"
NO_ANSWER, TIMED_OUT = 0, -1


@dataclass(frozen=True)
class Record:
    """One request: its kind, HTTP status (0: connection failed, -1: timed out), seconds, when it was sent
    (seconds since the traffic started) and whether a 429/503 carried ``Retry-After``."""

    kind: str
    status: int
    seconds: float
    at: float
    retry_after: bool = False
    detail: str = ""
    wait_s: float = 0.0  # the Retry-After asked for


@dataclass
class Window:
    what: str
    start: float
    end: float | None = None

    def holds(self, record: Record) -> bool:
        """Whether the request was in flight at some time of the window (one sent just before a fault
        may be answered during it)."""
        end = self.end if self.end is not None else float("inf")
        return record.at <= end and record.at + record.seconds >= self.start


@dataclass
class Agreement:
    """The catalogue, Milvus and the feature store compared by ids, after the reconciler settled."""

    catalogue_images: int = 0
    catalogue_indexed: int = 0
    milvus_rows: int = 0
    indexed_with_features: int = 0
    feature_files: int = 0
    excluded: int = 0
    pending: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    missing_in_milvus: list[int] = field(default_factory=list)
    not_searchable_in_milvus: list[int] = field(default_factory=list)
    indexed_without_features: list[int] = field(default_factory=list)
    feature_files_without_image: list[int] = field(default_factory=list)
    lost_uploads: list[int] = field(default_factory=list)
    last_reconcile: str = ""
    error: str = ""

    def problems(self) -> list[str]:
        found = []
        for name in ("pending", "failed", "missing_in_milvus", "not_searchable_in_milvus",
                     "indexed_without_features", "feature_files_without_image", "lost_uploads"):  # fmt: skip
            ids = getattr(self, name)
            if ids:
                found.append(f"{name.replace('_', ' ')}: {len(ids)} ({', '.join(map(str, ids[:10]))})")
        if self.catalogue_indexed != self.milvus_rows:
            found.append(f"catalogue indexed {self.catalogue_indexed} != Milvus rows {self.milvus_rows}")
        if self.catalogue_indexed != self.indexed_with_features:
            found.append(
                f"catalogue indexed {self.catalogue_indexed} != with features {self.indexed_with_features}"
            )
        if self.error:
            found.append(self.error)
        return found


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    return round(1000 * float(np.percentile(values, q)), 1) if values else None


def busy(record: Record) -> bool:
    """A 503 that refuses work because the server is saturated (admission control), not because a
    service is away."""
    return record.status == 503 and "busy" in record.detail.lower()


def acceptable(record: Record) -> bool:
    """An answer, and no 5xx but a 503 that says when to retry."""
    if record.status in (NO_ANSWER, TIMED_OUT):
        return False
    return record.status < 500 or (record.status == 503 and record.retry_after)


def summarise(records: Sequence[Record], windows: Sequence[Window]) -> dict[str, object]:
    """Counts per kind and status, p50/p95 per kind (successful requests: 2xx, and 302 of a curation
    action), and every unacceptable answer, with whether it fell in a fault's window."""
    kinds: dict[str, dict[str, object]] = {}
    for kind in sorted({r.kind for r in records}):
        mine = [r for r in records if r.kind == kind]
        ok = [r.seconds for r in mine if 200 <= r.status < 400]
        statuses: dict[str, int] = {}
        for r in mine:
            label = {NO_ANSWER: "no answer", TIMED_OUT: "timeout"}.get(r.status, str(r.status))
            statuses[label] = statuses.get(label, 0) + 1
        kinds[kind] = {
            "requests": len(mine),
            "statuses": dict(sorted(statuses.items())),
            "ok": len(ok),
            "p50_ms": percentile_ms(ok, 50),
            "p95_ms": percentile_ms(ok, 95),
        }
    bad = [
        {**asdict(r), "in_window": [w.what for w in windows if w.holds(r)]}
        for r in records
        if not acceptable(r)
    ]
    in_windows = [r for r in records if r.status == 503 and any(w.holds(r) for w in windows)]
    # A service still away after its window (503 "unavailable", not "busy"): recovery did not happen.
    late = [
        {**asdict(r), "in_window": []}
        for r in records
        if r.status == 503 and not busy(r) and not any(w.holds(r) for w in windows)
    ]
    return {
        "kinds": kinds,
        "unacceptable": bad,
        "unavailable_outside_fault_windows": late,
        "refused_503_in_fault_windows": len(in_windows),
        "refused_503_busy": sum(busy(r) for r in records),
        "search_back_after_s": {w.what: back_after(records, w) for w in windows},
    }


def back_after(records: Sequence[Record], window: Window) -> float | None:
    """Seconds from a fault to the first search or "more like this" sent after it that was answered."""
    answered = [
        r.at for r in records if r.kind in ("search", "similar") and r.status == 200 and r.at >= window.start
    ]
    return round(min(answered) - window.start, 1) if answered else None


def verdict(summary: dict[str, object], agreement: Agreement, records: Sequence[Record]) -> list[str]:
    """Everything that makes the soak fail (empty: it passed)."""
    problems = []
    bad = summary["unacceptable"]
    assert isinstance(bad, list)
    if bad:
        counts: dict[str, int] = {}
        for entry in bad:
            key = f"{entry['kind']} {entry['status']}{'' if entry['retry_after'] else ' (no Retry-After)'}"
            counts[key] = counts.get(key, 0) + 1
        problems.append("unacceptable answers: " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
    late = summary["unavailable_outside_fault_windows"]
    assert isinstance(late, list)
    if late:
        kinds = sorted({str(entry["kind"]) for entry in late})
        problems.append(f"503 (a service away) outside the fault windows: {len(late)} ({', '.join(kinds)})")
    if not records:
        problems.append("no request was sent")
    problems.extend(f"agreement: {p}" for p in agreement.problems())
    return problems


# --- the stack ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    """Where clients connect (the front, or gunicorn without one), Redis, Milvus, and gunicorn behind
    the front (default: the next port)."""

    web: int
    redis: int
    milvus: int
    upstream: int

    @classmethod
    def parse(cls, text: str) -> Ports:
        numbers = [int(p) for p in text.split(",")]
        if len(numbers) not in (3, 4):
            raise argparse.ArgumentTypeError("web,redis,milvus[,upstream]")
        web, redis, milvus = numbers[:3]
        return cls(web, redis, milvus, numbers[3] if len(numbers) == 4 else web + 1)


def nginx_available() -> bool:
    places = (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx"))  # often not on a user's PATH
    return bool(shutil.which("nginx")) or any(path.exists() for path in places)


def stack_processes(procfile: Path, front: str) -> list[str]:
    """The Procfile's processes; its ``front`` (nginx) as ``make run`` decides: when nginx is installed,
    unless ``--front off``."""
    from bench.soak_stack import procfile_commands

    names = list(procfile_commands(procfile))
    if "front" in names and (front == "off" or not nginx_available()):
        names.remove("front")
    return names


def stack_environment(var_dir: Path, ports: Ports, front: bool) -> dict[str, str]:
    # With the front, clients reach nginx on the web port and gunicorn listens behind it; the rate limit
    # reads the address nginx writes (as make run sets it).
    behind_front = {"FRONT_HOST": "127.0.0.1", "FRONT_PORT": str(ports.web), "WEB_PORT": str(ports.upstream),
                    "CLIENT_IP_HEADER": "HTTP_X_REAL_IP"}  # fmt: skip
    return {
        **os.environ,
        **FAST_RECONCILE,
        "VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "FEATURES_ROOT": str(var_dir / "features"),
        "STATIC_ROOT": str(var_dir / "static"),
        "DATABASE_URL": f"sqlite:///{var_dir / 'landmarks.sqlite3'}",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(ports.web),
        "REDIS_PORT": str(ports.redis),
        "MILVUS_PORT": str(ports.milvus),
        "REDIS_URL": f"redis://127.0.0.1:{ports.redis}/0",
        "MILVUS_URI": f"http://127.0.0.1:{ports.milvus}",
        "GPU_WORKER_METRICS_PORT": "0",  # no fixed metrics ports: another stack may hold 9101/9102
        "CPU_WORKER_METRICS_PORT": "0",
        "OMP_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        # The stack runs this tree's code, whichever checkout the virtual environment was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        **(behind_front if front else {}),
    }


def fresh_var_dir(var_dir: Path) -> None:
    """Empty ``var_dir`` for a fresh stack; refuses a non-empty folder this bench did not make."""
    if var_dir.exists() and any(var_dir.iterdir()):
        if not (var_dir / MARKER).exists():
            raise SystemExit(f"{var_dir} is not empty and not made by this bench: choose another --var-dir")
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / MARKER).write_text("made by bench/soak.py; wiped by its next run\n")


def port_taken(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def manage(env: dict[str, str], *args: str, log: Path) -> None:
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out,
                       stderr=subprocess.STDOUT, check=True)  # fmt: skip


def wait_http(url: str, ok: Callable[[requests.Response], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok(requests.get(url, timeout=10)):
                return
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise SystemExit(f"{url}: not ready within {timeout:.0f} s")


def setup_django(env: dict[str, str]) -> None:
    """This process reads the stack's database and stores directly, configured by the same environment."""
    os.environ.update(env)
    import django

    django.setup()
    logging.getLogger("pymilvus").setLevel(logging.ERROR)  # its iterator warns on every agreement check


@dataclass(frozen=True)
class Curator:
    username: str
    password: str
    token: str


def create_curator() -> Curator:
    from django.contrib.auth import get_user_model

    from webapp.accounts.services import issue_token

    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_superuser("soak", "soak@example.invalid", password)
    return Curator("soak", password, issue_token(user, "soak").token)


def import_dataset(
    env: dict[str, str], dataset: Path, limit: int, var_dir: Path, timeout: float
) -> list[int]:
    """``manage.py import_images`` of ``limit`` photos (spread over the dataset), then wait until each is
    indexed with its local features."""
    from bench.ingest_throughput import subset, unfinished
    from webapp.catalog.models import Image

    root = subset(dataset.resolve(), limit, var_dir / "import")
    manage(env, "import_images", str(root), "--no-wait", log=var_dir / "import.log")
    ids = list(Image.objects.order_by("pk").values_list("pk", flat=True))
    deadline = time.monotonic() + timeout
    while unfinished(ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"import: {unfinished(ids)} of {len(ids)} photos not indexed in {timeout:.0f} s")
        time.sleep(2.0)
    return ids


# --- traffic -----------------------------------------------------------------------------------------


class Traffic:
    """Open-loop mixed traffic: a request every 1/rate s on average (exponential gaps), at most
    ``clients`` in flight (a request due while all are busy waits for one: the achieved rate says so)."""

    def __init__(self, base: str, photos: list[Path], image_ids: list[int], landmarks: list[int],
                 curator: Curator, clients: int, seed: int) -> None:  # fmt: skip
        self.base = base
        self.photos = photos
        self.known = list(image_ids)
        self.removed: set[int] = set()
        self.uploaded: list[int] = []
        self.landmarks = landmarks
        self.curator = curator
        self.clients = clients
        self.rng = random.Random(seed)
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.local = threading.local()
        self.addresses: list[str] = []
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def address(self) -> str:
        """This client thread's own loopback address: each of the ``clients`` is a user of its own, as
        the rate limits (per address) see it, not one address asking for everyone."""
        if not hasattr(self.local, "address"):
            with self.lock:
                self.local.address = f"127.0.0.{CLIENT_ADDRESS_BASE + len(self.addresses)}"
                self.addresses.append(self.local.address)
        address: str = self.local.address
        return address

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = closing_session(self.address())
        session: requests.Session = self.local.session
        return session

    def curator_session(self) -> requests.Session:
        """A logged-in session (the admin login form, CSRF cookie and token), one per thread."""
        if not hasattr(self.local, "curator"):
            session = closing_session(self.address())
            session.get(f"{self.base}/admin/login/", timeout=REQUEST_TIMEOUT_S)
            answer = session.post(
                f"{self.base}/admin/login/",
                data={"username": self.curator.username, "password": self.curator.password,
                      "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""), "next": "/admin/"},
                allow_redirects=False, timeout=REQUEST_TIMEOUT_S,
            )  # fmt: skip
            if answer.status_code != 302:
                raise RuntimeError(f"curator login answered {answer.status_code}")
            self.local.curator = session
        curator: requests.Session = self.local.curator
        return curator

    def run(self, seconds: float, rate: float) -> None:
        self.t0 = time.monotonic()
        slots = threading.BoundedSemaphore(self.clients)
        kinds, weights = zip(*KIND_WEIGHTS.items(), strict=True)
        due = 0.0
        with ThreadPoolExecutor(self.clients, thread_name_prefix="client") as pool:
            while True:
                due += self.rng.expovariate(rate)
                if due >= seconds:
                    break
                time.sleep(max(0.0, due - self.now()))
                slots.acquire()
                kind = self.rng.choices(kinds, weights)[0]
                seed = self.rng.randrange(2**32)
                pool.submit(self._one, kind, seed, slots)

    def _one(self, kind: str, seed: int, slots: threading.BoundedSemaphore) -> None:
        """One operation, as a polite client does it: a refusal with ``Retry-After`` (429, 503) is tried
        again after that wait (at most MAX_RETRY_WAIT_S), up to TRIES times. Every try is a record."""
        try:
            for _ in range(TRIES):
                record = self._try(kind, random.Random(seed))
                with self.lock:
                    self.records.append(record)
                if record.status not in (429, 503) or not record.retry_after:
                    return
                time.sleep(min(record.wait_s, MAX_RETRY_WAIT_S))
        finally:
            slots.release()

    def _try(self, kind: str, rng: random.Random) -> Record:
        at = self.now()
        start = time.monotonic()
        wait = 0.0
        try:
            response, detail = getattr(self, f"_{kind}")(rng)
            status = response.status_code
            retry_after = response.headers.get("Retry-After", "")
            wait = float(retry_after) if retry_after.isdigit() else 1.0
            if status >= 500:
                detail = f"{detail} {response.text[:200]}".strip()
        except requests.Timeout:
            status, retry_after, detail = TIMED_OUT, "", "timed out"
        except (requests.ConnectionError, RuntimeError) as error:
            status, retry_after, detail = NO_ANSWER, "", str(error)[:200]
        except Exception as error:  # the bench's own failure: recorded (and failing the run), not lost
            status, retry_after, detail = NO_ANSWER, "", f"client error {error!r}"[:200]
        seconds = round(time.monotonic() - start, 4)
        return Record(kind, status, seconds, round(at, 2), bool(retry_after), detail, wait)

    def _pick(self, rng: random.Random, n: int = 1) -> list[int]:
        with self.lock:
            return rng.sample(self.known, min(n, len(self.known)))

    def _search(self, rng: random.Random) -> tuple[requests.Response, str]:
        photo = rng.choice(self.photos)
        with open(photo, "rb") as handle:
            files = {"image": (photo.name, handle.read(), "image/jpeg")}
        return self.session().post(f"{self.base}/api/search/", files=files, timeout=REQUEST_TIMEOUT_S), ""

    def _similar(self, rng: random.Random) -> tuple[requests.Response, str]:
        (pk,) = self._pick(rng)
        url = f"{self.base}/api/images/{pk}/similar/"
        return self.session().get(url, timeout=REQUEST_TIMEOUT_S), f"image {pk}"

    def _upload(self, rng: random.Random) -> tuple[requests.Response, str]:
        photo = rng.choice(self.photos)
        response = self.session().post(
            f"{self.base}/api/images/",
            files={"images": (f"soak-{rng.randrange(10**9)}.jpg", new_photo(photo, rng), "image/jpeg")},
            data={"landmark": photo.parent.name},
            headers={"Authorization": f"Token {self.curator.token}"},
            timeout=REQUEST_TIMEOUT_S,
        )
        if response.status_code == 201:
            ids = [int(image["id"]) for image in response.json()["images"]]
            with self.lock:
                self.uploaded.extend(ids)
                self.known.extend(ids)
            return response, f"images {ids}"
        return response, ""

    def _curate(self, rng: random.Random) -> tuple[requests.Response, str]:
        action = rng.choices(list(CURATION_WEIGHTS), list(CURATION_WEIGHTS.values()))[0]
        with self.lock:
            removed = sorted(self.removed)
        if action == "restore" and removed:
            ids = rng.sample(removed, min(len(removed), rng.randint(1, 3)))
        else:
            ids = self._pick(rng, rng.randint(1, 3))
        session = self.curator_session()
        data: dict[str, object] = {
            "action": action,
            "image": [str(pk) for pk in ids],
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
            "note": "soak",
        }
        if action == "relabel":
            data["landmark_id"] = str(rng.choice(self.landmarks))
        response = session.post(f"{self.base}/dataset/curate/", data=data, allow_redirects=False,
                                timeout=REQUEST_TIMEOUT_S)  # fmt: skip
        if response.status_code == 302:
            with self.lock:
                if action == "remove_from_index":
                    self.removed.update(ids)
                elif action == "restore":
                    self.removed.difference_update(ids)
        return response, f"{action} {ids}"


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connections from one local address (every 127.0.0.x is on the loopback interface on Linux)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def closing_session(address: str) -> requests.Session:
    """A session (cookies) from ``address`` that opens a connection per request. A kept-alive
    connection that the server closes as idle (gunicorn after ``keepalive`` = 2 s) while the client sends
    on it is reset, and requests retries no POST: with keep-alive, 7 of 124 requests of a 2-minute run
    failed that way, on the client's side of the race, which says nothing about the stack."""
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(address))
    session.headers["Connection"] = "close"
    return session


def new_photo(photo: Path, rng: random.Random) -> bytes:
    """A photo no upload sent before: a random crop of ``photo``, at most 800 px, re-encoded."""
    from PIL import Image as PILImage

    with PILImage.open(photo) as original:
        image = original.convert("RGB")
    image.thumbnail((800, 800))
    width, height = image.size
    dx, dy = rng.randint(0, width // 10), rng.randint(0, height // 10)
    image = image.crop((dx, dy, width - rng.randint(0, width // 10), height - rng.randint(0, height // 10)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=rng.randint(80, 92))
    return buffer.getvalue()


# --- faults and agreement ----------------------------------------------------------------------------


def inject_faults(stack: ProcfileStack, traffic: Traffic, seconds: float, base: str, worker: str,
                  windows: list[Window], log: Callable[[str], None]) -> None:  # fmt: skip
    """Kill -9 ``worker`` at WORKER_KILL_AT of the run and the Milvus server at MILVUS_RESTART_AT; the
    supervisor restarts both. Milvus's window ends READY_GRACE_S after /readyz answers 200 again."""
    time.sleep(max(0.0, WORKER_KILL_AT * seconds - traffic.now()))
    window = Window(f"kill -9 {worker}", traffic.now())
    windows.append(window)
    pid = stack.kill(worker)
    log(f"{window.start:7.1f} s  kill -9 {worker} (pid {pid}); restarted as pid {stack.pid(worker)}")
    window.end = traffic.now() + 60.0  # its lost batch is the reconciler's after RECONCILE_STALE_SECONDS
    time.sleep(max(0.0, MILVUS_RESTART_AT * seconds - traffic.now()))
    window = Window("Milvus restart", traffic.now())
    windows.append(window)
    pid = stack.kill("milvus")
    log(f"{window.start:7.1f} s  kill -9 milvus (pid {pid}); restarted as pid {stack.pid('milvus')}")
    wait_http(f"{base}/readyz", lambda r: r.status_code == 200, timeout=300)
    log(f"{traffic.now():7.1f} s  /readyz answers 200 again")
    window.end = traffic.now() + READY_GRACE_S


def check_agreement(uploaded: Sequence[int]) -> Agreement:
    """Compare the catalogue, the active Milvus collection and the SIFT store by ids."""
    from webapp.catalog.models import Image
    from webapp.embeddings.models import EmbeddingModelVersion
    from webapp.operations.selectors import latest_drift
    from webapp.operations.services import milvus_ids
    from webapp.reranking.local_features import sift_store

    result = Agreement()
    version = EmbeddingModelVersion.objects.filter(is_active=True).first()
    if version is None:
        result.error = "no active model version"
        return result
    try:
        in_milvus = milvus_ids(version.collection_name)
    except Exception as error:  # the server away: a failed check, not a crashed bench
        result.error = f"Milvus unreadable: {error}"
        return result
    rows = list(Image.objects.values_list("pk", "status", "local_features_at"))
    store = sift_store()
    stored = {int(name) for name in store.ids() if name.isdigit()}
    all_ids = {pk for pk, _, _ in rows}
    indexed = {pk for pk, status, _ in rows if status == Image.Status.INDEXED}
    with_features = {pk for pk, status, at in rows if status == Image.Status.INDEXED and at and pk in stored}
    result.catalogue_images = len(rows)
    result.catalogue_indexed = len(indexed)
    result.milvus_rows = len(in_milvus)
    result.indexed_with_features = len(with_features)
    result.feature_files = len(stored)
    result.excluded = sum(status == Image.Status.EXCLUDED for _, status, _ in rows)
    result.pending = sorted(pk for pk, status, _ in rows if status == Image.Status.PENDING)
    result.failed = sorted(pk for pk, status, _ in rows if status == Image.Status.FAILED)
    result.missing_in_milvus = sorted(indexed - in_milvus)
    result.not_searchable_in_milvus = sorted(in_milvus - indexed)
    result.indexed_without_features = sorted(indexed - with_features)
    result.feature_files_without_image = sorted(stored - all_ids)
    result.lost_uploads = sorted(set(uploaded) - all_ids)
    run = latest_drift()
    if run is not None:
        result.last_reconcile = (
            f"run {run.pk} at {run.started_at:%H:%M:%S}: drift {run.drift}, "
            f"catalogue indexed / Milvus rows {run.catalogue_indexed} / {run.vector_rows}"
            + (f", error {run.error}" if run.error else "")
        )
    return result


def settle(uploaded: Sequence[int], after: datetime, timeout: float) -> Agreement:
    """Wait until a reconcile pass that started after ``after`` found no drift and the stores agree (or
    ``timeout``); the last comparison either way."""
    from webapp.operations.models import ReconcileRun

    deadline = time.monotonic() + timeout
    while True:
        agreement = check_agreement(uploaded)
        clean = ReconcileRun.objects.filter(
            started_at__gt=after, finished_at__isnull=False, error=""
        ).order_by("-started_at").first()
        if clean is not None and clean.drift == 0 and not agreement.problems():
            return agreement
        if time.monotonic() > deadline:
            if clean is None:
                agreement.error = f"no clean reconcile pass within {timeout:.0f} s of the traffic's end"
            return agreement
        time.sleep(5.0)


# --- the run -----------------------------------------------------------------------------------------


@contextmanager
def running_stack(
    env: dict[str, str], var_dir: Path, ports: Ports, names: list[str]
) -> Iterator[ProcfileStack]:
    stack = ProcfileStack(ROOT / "Procfile", env, var_dir / "logs", names)
    stack.start_all()
    try:
        behind = [ports.upstream] if "front" in names else []
        for port in (ports.redis, ports.milvus, *behind, ports.web):
            localstack.wait_for_port(port, timeout=180)
        yield stack
    finally:
        stack.stop()


def report_text(result: dict[str, object]) -> str:
    lines = [f"soak {result['started']} .. {result['finished']}: {result['command']}"]
    lines.append(f"stack: {', '.join(result['processes'])}; front: {result['front']}")  # type: ignore[arg-type]
    lines.append(
        f"traffic {result['traffic_s']} s, {result['requests']} requests "
        f"({result['achieved_rate']}/s, asked {result['rate']}/s), clients {result['clients']}"
    )
    lines.append(f"{'kind':<8} {'requests':>8} {'ok':>6} {'p50 ms':>8} {'p95 ms':>8}  statuses")
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    for kind, row in kinds.items():
        statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
        lines.append(f"{kind:<8} {row['requests']:>8} {row['ok']:>6} {row['p50_ms'] or '-':>8} "
                     f"{row['p95_ms'] or '-':>8}  {statuses}")  # fmt: skip
    lines.append(f"faults: {'; '.join(result['faults_log'])}")  # type: ignore[arg-type]
    lines.append(f"503 in fault windows: {result['refused_503_in_fault_windows']}; 503 busy (admission): "
                 f"{result['refused_503_busy']}; process restarts: {result['restarts']}")  # fmt: skip
    lines.append(f"search answered again after (s): {result['search_back_after_s']}")
    agreement = result["agreement"]
    assert isinstance(agreement, dict)
    lines.append(
        f"agreement: catalogue {agreement['catalogue_images']} images, {agreement['catalogue_indexed']} "
        f"indexed, {agreement['excluded']} excluded; Milvus {agreement['milvus_rows']} rows; "
        f"{agreement['indexed_with_features']} indexed with features ({agreement['feature_files']} files); "
        f"{result['uploaded']} uploaded, {len(agreement['lost_uploads'])} lost"
    )
    lines.append(f"last reconcile: {agreement['last_reconcile']} (settled after {result['settle_s']} s)")
    problems = result["problems"]
    assert isinstance(problems, list)
    lines.append("PASS" if not problems else "FAIL\n  " + "\n  ".join(problems))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="traffic duration")
    parser.add_argument("--rate", type=float, default=0.5, help="operations/s, all kinds together")
    parser.add_argument("--clients", type=int, default=4, help="requests in flight at most")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/sfm_landmarks")
    parser.add_argument("--limit", type=int, default=150, help="photos of the dataset to import")
    parser.add_argument(
        "--ports", type=Ports.parse, default=Ports(8201, 6402, 19602, 8202),
        help="web,redis,milvus[,upstream]: clients, Redis, Milvus, gunicorn behind the front (web + 1)"
    )
    parser.add_argument(
        "--front", choices=["auto", "off"], default="auto",
        help="the Procfile's nginx front, if it has one and nginx is installed (auto), or gunicorn direct",
    )  # fmt: skip
    parser.add_argument("--var-dir", type=Path, default=Path("/tmp/soak-var"))
    parser.add_argument("--worker", default="worker-gpu", help="the Procfile process to kill -9")
    parser.add_argument("--settle-minutes", type=float, default=6.0, help="wait for the reconciler at most")
    parser.add_argument("--json", type=Path, default=None, help="result file (default VAR_DIR/soak.json)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ports: Ports = args.ports
    names = stack_processes(ROOT / "Procfile", args.front)
    front = "front" in names
    used = (ports.web, ports.redis, ports.milvus, *([ports.upstream] if front else []))
    taken = [port for port in used if port_taken(port)]
    if taken:
        parser.error(f"ports in use: {taken}")
    started = datetime.now(UTC)
    seconds = args.minutes * 60

    def log(message: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)

    var_dir: Path = args.var_dir.resolve()
    fresh_var_dir(var_dir)
    env = stack_environment(var_dir, ports, front)
    base = f"http://127.0.0.1:{ports.web}"
    try:
        manage(env, "migrate", "--noinput", log=var_dir / "setup.log")
        manage(env, "collectstatic", "--noinput", "-v", "0", log=var_dir / "setup.log")
    except subprocess.CalledProcessError as error:
        log(f"setup failed ({error}); see {var_dir / 'setup.log'}")
        return 2
    setup_django(env)
    windows: list[Window] = []
    faults_log: list[str] = []
    with running_stack(env, var_dir, ports, names) as stack:
        log(f"stack up in {var_dir}: {', '.join(names)} (logs in {var_dir / 'logs'})")
        curator = create_curator()
        image_ids = import_dataset(env, args.dataset, args.limit, var_dir, timeout=1800)
        log(f"imported and indexed {len(image_ids)} photos")
        wait_http(f"{base}/readyz", lambda r: r.status_code == 200, timeout=300)
        from webapp.catalog.models import Landmark

        photos = sorted(p for p in (var_dir / "import").rglob("*.jpg")) or sorted(args.dataset.rglob("*.jpg"))
        traffic = Traffic(base, photos, image_ids, list(Landmark.objects.values_list("pk", flat=True)),
                          curator, args.clients, args.seed)  # fmt: skip

        def fault_log(message: str) -> None:
            faults_log.append(message.strip())
            log(message)

        faults = threading.Thread(
            target=inject_faults, args=(stack, traffic, seconds, base, args.worker, windows, fault_log),
            daemon=True,
        )  # fmt: skip
        log(f"traffic: {args.minutes} min at {args.rate}/s")
        traffic.t0 = time.monotonic()
        faults.start()
        traffic.run(seconds, args.rate)
        traffic_s = traffic.now()
        faults.join(timeout=300)
        ended = datetime.now(UTC)
        log(f"traffic done: {len(traffic.records)} requests; waiting for the reconciler")
        settle_start = time.monotonic()
        agreement = settle(traffic.uploaded, ended, timeout=args.settle_minutes * 60)
        settle_s = round(time.monotonic() - settle_start, 1)
        restarts = stack.restarts()
    summary = summarise(traffic.records, windows)
    problems = verdict(summary, agreement, traffic.records)
    result: dict[str, object] = {
        "started": f"{started:%Y-%m-%d %H:%M:%S} UTC",
        "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        "command": " ".join([Path(sys.executable).name, "bench/soak.py", *(argv or sys.argv[1:])]),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "processes": names,
        "front": "nginx" if front else "none (gunicorn serves the clients)",
        "minutes": args.minutes,
        "rate": args.rate,
        "clients": args.clients,
        "traffic_s": round(traffic_s, 1),
        "requests": len(traffic.records),
        "achieved_rate": round(len(traffic.records) / max(traffic_s, 1e-9), 3),
        "uploaded": len(traffic.uploaded),
        **summary,
        "windows": [asdict(w) for w in windows],
        "faults_log": faults_log,
        "restarts": restarts,
        "agreement": asdict(agreement),
        "settle_s": settle_s,
        "problems": problems,
        "passed": not problems,
        "records": [asdict(r) for r in traffic.records],  # every try, to judge a run again
    }
    out = args.json or var_dir / "soak.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(report_text(result))
    print(f"result: {out}")
    return 0 if not problems else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a TERM still stops the stack (finally)
    sys.exit(main())
