"""A variable of a removed feature left in the environment gives a system-check warning, naming it."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


def test_a_removed_variable_in_the_environment_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INDEX_DBA_NEIGHBOURS", raising=False)
    monkeypatch.delenv("INDEX_DBA_ALPHA", raising=False)
    monkeypatch.delenv("EMBEDDING_SCALES", raising=False)
    quiet = io.StringIO()
    call_command("check", stdout=quiet, stderr=quiet)
    assert "no longer read" not in quiet.getvalue()

    monkeypatch.setenv("INDEX_DBA_NEIGHBOURS", "3")
    told = io.StringIO()
    call_command("check", stdout=told, stderr=told)
    assert "operations.W001" in told.getvalue()
    assert "INDEX_DBA_NEIGHBOURS is set but no longer read" in told.getvalue()
    assert "EMBEDDING_SCALES" not in told.getvalue()
