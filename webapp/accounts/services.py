"""Issuing, revoking and checking API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from webapp.accounts.models import ApiToken

TOKEN_BYTES = 32
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # no write per request


@dataclass(frozen=True)
class IssuedToken:
    record: ApiToken
    token: str  # shown once; only its hash is stored


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, name: str) -> IssuedToken:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    record = ApiToken.objects.create(
        user=user, name=name[:100] or "api", prefix=token[:8], key_hash=_digest(token)
    )
    return IssuedToken(record, token)


def revoke_token(record: ApiToken) -> None:
    ApiToken.objects.filter(pk=record.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def user_for_token(token: str) -> User | None:
    """The active user a token belongs to, or None (unknown, revoked, inactive user)."""
    if not token:
        return None
    record = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_digest(token), revoked_at__isnull=True)
        .first()
    )
    if record is None or not record.user.is_active:
        return None
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
    return record.user
