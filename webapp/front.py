"""The nginx front of the one-machine stack: ``python -m webapp.front`` (the Procfile's ``front``).

nginx answers the refusals of a flooding client (``limit_req``/``limit_conn`` per address, 429 with
``Retry-After``), reads slow uploads and keeps the connections of clients that open one per request, so
none of that takes a gunicorn thread or the GIL from the searches. The rules are in one file,
deploy/nginx/templates/landmarks.conf.template, shared with docker-compose.yml and deploy/k8s; here it is
rendered the way the official nginx image renders it (``${NAME}`` from the environment) into a prefix of
its own under ``--data-dir``, with a main configuration for an unprivileged, foreground nginx.

Without nginx installed, ``make run`` serves without the front and says so (see the Makefile).
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "landmarks.conf.template"

# The template's variables and their defaults: the front's policy when the environment says nothing.
# A search costs about a core for 0.4-0.8 s (SIFT re-ranking): one address gets two at once and about one a
# second, the rest of a burst of 10 is refused by nginx itself.
DEFAULTS: dict[str, str] = {
    "FRONT_LISTEN": "127.0.0.1:8000",
    "FRONT_UPSTREAM": "127.0.0.1:8001",
    "FRONT_SEARCH_RATE": "60r/m",
    "FRONT_SEARCH_BURST": "10",
    "FRONT_SEARCH_CONN": "2",
    "FRONT_CONN": "32",
    "FRONT_REAL_IP_FROM": "unix:",  # nginx is the first hop: trust no X-Forwarded-For
}
_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def nginx_binary() -> str | None:
    """nginx on PATH, or where distributions install it (/usr/sbin is often not on a user's PATH)."""
    candidates = (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx"))
    return shutil.which("nginx") or next((str(path) for path in candidates if path.exists()), None)


def render(template: str, values: Mapping[str, str]) -> str:
    """``${NAME}`` replaced by its value (nginx's own ``$name`` variables untouched); an unknown name is an
    error here rather than a config nginx rejects at start."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{TEMPLATE.name} uses ${{{name}}}, which has no value")
        return values[name]

    return _VARIABLE.sub(value, template)


def settings_from(environ: Mapping[str, str], **overrides: str) -> dict[str, str]:
    """The template's values: ``overrides``, else the environment, else `DEFAULTS`."""
    return {name: overrides.get(name) or environ.get(name) or default for name, default in DEFAULTS.items()}


def write_config(prefix: Path, values: Mapping[str, str]) -> Path:
    """Write nginx.conf (main context) and conf.d/landmarks.conf under ``prefix``; the main file's path."""
    for folder in ("conf.d", "logs", "tmp"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    (prefix / "conf.d" / "landmarks.conf").write_text(render(TEMPLATE.read_text(), values))
    # Run by root (a container, CI), nginx would hand its workers to an unprivileged user that cannot
    # write the body buffers under this prefix: keep them as the user who started it.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"    {kind}_temp_path tmp/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = (
        f"# Rendered by python -m webapp.front from {TEMPLATE.relative_to(ROOT)}.\n"
        f"{user}worker_processes 1;\n"
        "daemon off;\n"
        "pid nginx.pid;\n"
        "error_log stderr warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n"
        "    default_type application/octet-stream;\n"
        f"{temp_paths}"
        "    include conf.d/*.conf;\n"
        "}\n"
    )
    path = prefix / "nginx.conf"
    path.write_text(main)
    return path


def nginx_command(binary: str, prefix: Path, config: Path, *, test: bool = False) -> list[str]:
    return [binary, "-p", f"{prefix}/", "-c", str(config), *(["-t", "-q"] if test else [])]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", help="address:port of the front (default: FRONT_LISTEN)")
    parser.add_argument("--upstream", help="gunicorn's host:port (default: FRONT_UPSTREAM)")
    parser.add_argument("--data-dir", type=Path, required=True, help="nginx's prefix: config, temp files")
    args = parser.parse_args(argv)
    binary = nginx_binary()
    if binary is None:
        parser.exit(1, "webapp.front: nginx is not installed (apt install nginx)\n")
    overrides = {"FRONT_LISTEN": args.listen or "", "FRONT_UPSTREAM": args.upstream or ""}
    prefix = args.data_dir.resolve()
    config = write_config(prefix, settings_from(os.environ, **overrides))
    command = nginx_command(binary, prefix, config)
    os.execv(command[0], command)  # replace this process so the supervisor's signals reach nginx


if __name__ == "__main__":
    main()
