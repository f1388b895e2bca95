"""Reads about users: their tokens, what they may write."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from webapp.accounts.models import ApiToken
from webapp.catalog.models import Landmark

AnyUser = AbstractBaseUser | AnonymousUser


def tokens_of(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def can_upload(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.has_perm("catalog.add_image"))  # type: ignore[union-attr]


def landmark_refusal(user: AnyUser, name: str) -> str | None:
    """Why ``user`` may not file photos under the landmark ``name`` (None: they may).

    Naming an existing landmark needs nothing more; creating one needs ``catalog.add_landmark``.
    """
    name = name.strip()
    if not name or Landmark.objects.filter(name=name).exists():
        return None
    if user.has_perm("catalog.add_landmark"):  # type: ignore[union-attr]
        return None
    return f"You may not create the landmark {name!r}: pick an existing one or ask a curator."
