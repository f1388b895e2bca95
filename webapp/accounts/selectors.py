"""Reads about users: their tokens, what they may write."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from webapp.accounts.models import ApiToken

AnyUser = User | AnonymousUser  # request.user


def tokens_of(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def can_upload(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.has_perm("catalog.add_image"))
