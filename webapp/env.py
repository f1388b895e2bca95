"""Typed access to environment variables that remembers which ones the settings read.

The record lets a test check that docker-compose sets exactly the variables the code reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

READ_VARIABLES: set[str] = set()
Choice = TypeVar("Choice", bound=str)


def env_str(name: str, default: str) -> str:
    READ_VARIABLES.add(name)
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = env_str(name, str(default))
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from error


def env_float(name: str, default: float) -> float:
    raw = env_str(name, str(default))
    try:
        return float(raw)
    except ValueError as error:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from error


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name, "1" if default else "0").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"environment variable {name} must be a boolean, got {raw!r}")


def env_choice(name: str, default: Choice, choices: Sequence[Choice]) -> Choice:
    """One of ``choices`` (e.g. a ``Literal``'s values, so the setting keeps that type); anything else stops
    the start-up."""
    raw = env_str(name, default)
    for choice in choices:
        if raw == choice:
            return choice
    raise ImproperlyConfigured(f"{name} must be {' or '.join(choices)}, not {raw!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    return Path(env_str(name, str(default))).expanduser().resolve()
