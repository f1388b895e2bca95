"""Reads about users: their tokens, what they may write."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from webapp.accounts.models import ApiToken

AnyUser = AbstractBaseUser | AnonymousUser


def tokens_of(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def can_upload(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.has_perm("catalog.add_image"))  # type: ignore[union-attr]
