"""The API itself: its routers under ``/api/``, the generated document at ``/api/schema/``, Swagger UI at
``/api/docs/`` (django-ninja's bundled files, served by this site: no CDN), and the one exception handler
(``webapp.api.errors.api_error``) every operation's refusals go through."""

from __future__ import annotations

from django.http import Http404
from django.urls import URLPattern, URLResolver
from django.views.decorators.http import require_safe
from ninja import NinjaAPI, Swagger
from ninja.errors import HttpError, ValidationError

from webapp.api import catalog, runs, search
from webapp.api.auth import ApiToken
from webapp.api.errors import api_error

__all__ = ["api", "urlpatterns"]

api = NinjaAPI(
    title="Landmark photo search",
    version="1",
    description="Search a landmark collection by photo: ranked matches with their evidence, the predicted "
    "landmark and where it was taken; the collection page by page; adding photos with an API token. "
    "Every refusal answers {\"error\": \"<message>\"}.",
    urls_namespace="api",
    openapi_url="/schema/",
    docs=Swagger(settings={"defaultModelsExpandDepth": 0}),
    docs_url="/docs/",
    docs_decorator=require_safe,  # the document and its page are read, never posted to
)
api.add_router("/", search.router)
api.add_router("/", catalog.router)
api.add_router("/", runs.router)
# One handler: django-ninja's own (a 422 for bad input, {"detail": ...} bodies) are replaced by it.
for kind in (Exception, ValidationError, HttpError, Http404):
    api.exception_handler(kind)(api_error)


def urlpatterns() -> list[URLPattern | URLResolver]:
    """The API's URLs. Each view that writes carries the permission its token must hold as
    ``write_permission`` (every write of the site does; tests/webapp/accounts/test_write_guards.py checks),
    and the API root (a 404 that only names the docs) refuses POST like the document does."""
    patterns, _, _ = api.urls
    permissions = {
        operation.url_name: auth.permission
        for router in (search.router, catalog.router, runs.router)
        for path_view in router.path_operations.values()
        for operation in path_view.operations
        for auth in operation.auth_callbacks
        if isinstance(auth, ApiToken) and set(operation.methods) - {"GET", "HEAD"}
    }
    for pattern in patterns:
        if isinstance(pattern, URLPattern) and pattern.name in permissions:
            pattern.callback.write_permission = permissions[pattern.name]  # type: ignore[attr-defined]
        elif isinstance(pattern, URLPattern) and pattern.name == "api-root":
            pattern.callback = require_safe(pattern.callback)
    return patterns
