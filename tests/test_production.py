"""Production settings: `manage.py check --deploy` passes with HTTPS=1, and they do what they say."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEBUG": "0",
        "HTTPS": "1",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "search.example.org",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Without HTTPS (the dev default) the same check names what production must set.
    env.pop("HTTPS")
    dev = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dev.returncode != 0 and "SECURE_SSL_REDIRECT" in dev.stdout + dev.stderr


@pytest.mark.django_db
def test_behind_a_tls_proxy_plain_http_is_redirected_but_health_checks_are_not(settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    client = Client()
    plain = client.get("/collection/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    proxied = client.get("/collection/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200 and proxied["Strict-Transport-Security"].startswith("max-age=3600")
    assert client.get("/healthz/").content == b"ok"
