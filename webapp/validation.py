"""One sentence for a refused request: the first problem pydantic found, said the way a person fixes it
("k must be an integer", "taken_after must be a date as YYYY-MM-DD"), for the JSON API's 400s and the
pages that validate their forms with the same schemas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

__all__ = ["DatabaseId", "first_problem"]

DatabaseId = Annotated[int, Field(ge=0, le=2**63 - 1)]
"""A row id: any integer a database key column can hold (a bigger one is a 400, not a database error)."""

_WHERE = frozenset({"query", "form", "file", "body", "path", "header", "cookie"})
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "date": "a date as YYYY-MM-DD",
    "datetime": "a date and time (ISO 8601)",
    "bool": "true or false",
}


def _field(location: Sequence[Any]) -> str:
    names = [str(part) for part in location if isinstance(part, str) and part not in _WHERE]
    return names[-1] if names else ""


def _sentence(error: Mapping[str, Any]) -> str:
    name = _field(error.get("loc", ()))
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if kind == "missing":
        return f"'{name}' is required"
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    if kind == "finite_number":
        return f"{name} must be a finite number"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{name} must be {words} {context.get(key)}"
    if kind in ("literal_error", "enum"):
        return f"{name} must be one of {context.get('expected')}"
    for prefix, expected in _KINDS.items():
        if kind.startswith(prefix + "_") or kind == prefix:
            return f"{name} must be {expected}"
    message = str(error.get("msg", "is not valid"))
    return f"{name}: {message}" if name else message


def first_problem(errors: Sequence[Mapping[str, Any]]) -> str:
    """The first error of a pydantic (or django-ninja) ``errors()`` list, as one sentence."""
    return _sentence(errors[0]) if errors else "the request is not valid"
