"""Guards for writes: a logged-in user with the matching permission (pages) or a valid API token (API).

Every URL that accepts a POST is one of three kinds, and ``tests/webapp/accounts/test_write_guards.py``
walks the URL resolver to check that no fourth kind creeps in:

- a write guarded by `write_permission` (pages) or `token_required` (API): the view carries the permission
  it checks as ``view.write_permission``;
- an entry of `OPEN_POSTS`: a POST that writes nothing shared (a search) or acts on the user's own account;
- a view that refuses POST (405).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

from webapp.accounts.services import user_for_token

View = Callable[..., HttpResponse]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# POSTs anyone (or any logged-in user, for their own account) may send, with the reason.
OPEN_POSTS: dict[str, str] = {
    "search:search": "a search stores nothing shared (rate-limited, webapp/throttling.py)",
    "api:search": "a search stores nothing shared (rate-limited)",
    "api:search-batch": "a batch of searches stores nothing shared (rate-limited)",
    "accounts:login": "logging in",
    "accounts:logout": "logging out of one's own session",
    "accounts:tokens": "a logged-in user issues a token of their own (it carries only their permissions)",
    "accounts:revoke": "a logged-in user revokes a token of their own",
}


def write_denied(request: HttpRequest, permission: str) -> HttpResponse | None:
    """For a page's write: anonymous visitors are sent to log in, users without ``permission`` get 403."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.has_perm(permission):
        return HttpResponse(
            f"Forbidden: you ({request.user.get_username()}) need the permission {permission} to do this; "
            "an administrator can grant it in Admin → Users.",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return None


def write_permission(permission: str) -> Callable[[View], View]:
    """Page views: a POST (or any unsafe method) needs a logged-in user with ``permission``
    (``app_label.codename``); safe methods (GET, HEAD) pass untouched, so a page that lists and creates
    stays readable by whoever may read it."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if request.method in UNSAFE_METHODS:
                denied = write_denied(request, permission)
                if denied is not None:
                    return denied
            return view(request, *args, **kwargs)

        guarded.write_permission = permission  # type: ignore[attr-defined]  # read by the write-guards test
        return guarded

    return decorate


def bearer_token(request: HttpRequest) -> str:
    """The token of ``Authorization: Token <t>`` (or ``Bearer <t>``); empty if none."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() in {"token", "bearer"} else ""


def token_required(permission: str) -> Callable[[View], View]:
    """API views: the request's user comes from its API token only (no cookies, hence no CSRF), 401 without
    a valid one, 403 without ``permission``."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            user = user_for_token(bearer_token(request))
            if user is None:
                response = JsonResponse(
                    {"error": "send a valid API token: Authorization: Token <token>"}, status=401
                )
                response["WWW-Authenticate"] = 'Token realm="api"'
                return response
            if not user.has_perm(permission):
                return JsonResponse(
                    {"error": f"this token's user lacks the permission {permission}"}, status=403
                )
            request.user = user
            return view(request, *args, **kwargs)

        guarded.write_permission = permission  # type: ignore[attr-defined]  # read by the write-guards test
        return guarded

    return decorate
