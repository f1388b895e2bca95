"""Who may call an operation: the hashed per-user API tokens (``webapp.accounts``) for writes, the session
of a logged-in staff member for the run pages' polling; every other operation is open to anyone."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.security import APIKeyHeader, SessionAuth

from webapp.accounts.permissions import bearer_token
from webapp.accounts.services import user_for_token
from webapp.api.errors import ApiRefusal

__all__ = ["ApiToken", "StaffSession"]


class ApiToken(APIKeyHeader):
    """``Authorization: Token <token>`` (or ``Bearer <token>``) of an active user holding ``permission``.

    Cookies are never looked at, so there is no CSRF to forge: 401 without a valid token, 403 when its user
    lacks the permission. ``permission`` is read by the write-guards test (as ``write_permission``).
    """

    param_name = "Authorization"
    openapi_description = "Authorization: Token <token> (or Bearer <token>), issued on /accounts/tokens/"

    def __init__(self, permission: str) -> None:
        super().__init__()
        self.permission = permission

    def authenticate(self, request: HttpRequest, key: str | None) -> User:
        user = user_for_token(bearer_token(request))
        if user is None:
            raise ApiRefusal(
                401,
                "send a valid API token: Authorization: Token <token>",
                {"WWW-Authenticate": 'Token realm="api"'},
            )
        if not user.has_perm(self.permission):
            raise ApiRefusal(403, f"this token's user lacks the permission {self.permission}")
        request.user = user
        return user


class StaffSession(SessionAuth):
    """The session of a logged-in staff member (the training and evaluation pages poll with it)."""

    openapi_description = "the session cookie of a staff member logged in on /accounts/login/"

    def __init__(self) -> None:
        super().__init__(csrf=True)  # only safe methods use it: nothing for CSRF to protect, but kept on

    def authenticate(self, request: HttpRequest, key: str | None) -> object:
        user = request.user
        if not user.is_authenticated:
            raise ApiRefusal(401, "log in first: only staff may read this")
        if not user.is_staff:
            raise ApiRefusal(403, "only staff may read this")
        return user
