"""Guards for writes: a logged-in user with the matching permission (pages) or a valid API token (API)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

from webapp.accounts.services import user_for_token

View = Callable[..., HttpResponse]


def write_denied(request: HttpRequest, permission: str) -> HttpResponse | None:
    """For a page's write: anonymous visitors are sent to log in, users without ``permission`` get 403."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.has_perm(permission):
        return HttpResponse(f"You need the permission {permission} to do this.", status=403)
    return None


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

        return guarded

    return decorate
