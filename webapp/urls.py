from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path

from webapp.api.site import urlpatterns as api_urlpatterns
from webapp.media import serve_media

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("api/", include((api_urlpatterns(), "ninja"), namespace="api")),  # the JSON API (webapp.api)
    path("", include("webapp.search.urls")),
    path("", include("webapp.evaluation.urls")),
    path("", include("webapp.training.urls")),
    path("", include("webapp.embeddings.urls")),
    path("", include("webapp.curation.urls")),
    path("", include("webapp.accounts.urls")),
    path("", include("webapp.operations.urls")),
]
if settings.SERVE_MEDIA:
    # The web server streams media from the storage (MEDIA_ROOT or the bucket); behind a proxy that serves
    # /media/ itself (from the folder, or mapped to the bucket's STORAGE_PREFIX/media/) set SERVE_MEDIA=0.
    urlpatterns += [re_path(r"^media/(?P<name>.+)$", serve_media)]
