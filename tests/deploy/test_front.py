"""The nginx front (deploy/nginx): its configuration parses, and a real nginx in front of a test server
refuses a flooding address itself while it forwards everyone else with the client's address.

Bounded: every wait has a timeout, and nothing here asserts a speed (bench/load.py --mixed measures it).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from webapp import front, localstack

NGINX = front.nginx_binary()
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt install nginx)")


class Upstream(ThreadingHTTPServer):
    """Stands in for gunicorn: records what reaches it; while ``hold`` is set, searches wait for
    ``release``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.in_flight = threading.Semaphore(0)
        self.hold = threading.Event()
        self.release = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append({name.lower(): value for name, value in self.headers.items()})
        if self.server.hold.is_set():
            self.server.in_flight.release()
            self.server.release.wait(20)
        body = b'{"results": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def _start_nginx(prefix: Path, upstream_port: int, **values: str) -> tuple[subprocess.Popen[bytes], int]:
    assert NGINX is not None
    port = localstack.free_port()
    config = front.write_config(
        prefix,
        front.settings_from(
            {}, FRONT_LISTEN=f"127.0.0.1:{port}", FRONT_UPSTREAM=f"127.0.0.1:{upstream_port}", **values
        ),
    )
    process = subprocess.Popen(
        front.nginx_command(NGINX, prefix, config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    localstack.wait_for_port(port, process, timeout=20)
    return process, port


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _search(port: int, source: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    connection.request("POST", "/api/search/", body=b"photo bytes", headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_the_shipped_template_renders_to_a_configuration_nginx_accepts(tmp_path: Path) -> None:
    assert NGINX is not None
    config = front.write_config(tmp_path, front.settings_from({}))
    result = subprocess.run(
        front.nginx_command(NGINX, tmp_path, config, test=True), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "conf.d" / "landmarks.conf").read_text()
    assert "${" not in rendered and "proxy_set_header X-Real-IP $remote_addr;" in rendered


def test_an_unknown_template_variable_is_an_error_not_a_broken_config() -> None:
    with pytest.raises(KeyError, match="FRONT_TYPO"):
        front.render("listen ${FRONT_TYPO};", front.DEFAULTS)


def test_nginx_refuses_a_flooding_address_itself_and_forwards_the_client_address(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Two searches of 127.0.0.2 held upstream: its third is refused by nginx (429, Retry-After, the app
    never sees it) while 127.0.0.3 is served, with X-Real-IP naming it even when it sent its own."""
    process, port = _start_nginx(tmp_path, upstream.server_address[1], FRONT_SEARCH_CONN="2")
    try:
        upstream.hold.set()
        held = [threading.Thread(target=_search, args=(port, "127.0.0.2")) for _ in range(2)]
        for thread in held:
            thread.start()
        for _ in held:
            assert upstream.in_flight.acquire(timeout=20)
        refused = _search(port, "127.0.0.2")
        assert refused.status == 429 and refused.getheader("Retry-After") == "1"
        assert len(upstream.seen) == 2  # answered by nginx: the app never saw it
        upstream.hold.clear()
        served = _search(port, "127.0.0.3", {"X-Real-IP": "203.0.113.9"})
        assert served.status == 200
        assert upstream.seen[-1]["x-real-ip"] == "127.0.0.3"  # overwritten, never the client's own claim
        upstream.release.set()
        for thread in held:
            thread.join(20)
        assert [seen["x-real-ip"] for seen in upstream.seen[:2]] == ["127.0.0.2", "127.0.0.2"]
    finally:
        localstack.stop(process)


def test_nginx_rate_limits_searches_per_address_and_answers_json(tmp_path: Path, upstream: Upstream) -> None:
    """A rate of one a minute with a burst of 2: the fourth search at once is refused, other pages pass."""
    process, port = _start_nginx(
        tmp_path, upstream.server_address[1], FRONT_SEARCH_RATE="1r/m", FRONT_SEARCH_BURST="2"
    )
    try:
        statuses = [_search(port, "127.0.0.4").status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        connection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=20, source_address=("127.0.0.4", 0)
        )
        connection.request("POST", "/api/search/", body=b"photo bytes")
        response = connection.getresponse()
        assert response.status == 429 and response.getheader("Retry-After") == "1"
        assert "retry" in json.loads(response.read())["error"]
        connection.close()
        assert _search(port, "127.0.0.5").status == 200  # another address has its own allowance
        assert len(upstream.seen) == 4
    finally:
        localstack.stop(process)
