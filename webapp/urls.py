from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("webapp.catalog.urls")),
    path("", include("webapp.search.urls")),
    path("", include("webapp.evaluation.urls")),
    path("", include("webapp.training.urls")),
    path("", include("webapp.embeddings.urls")),
    path("", include("webapp.curation.urls")),
    path("", include("webapp.accounts.urls")),
    path("", include("webapp.operations.urls")),
]
if settings.SERVE_MEDIA:
    # The one-machine stack serves uploads itself; behind a proxy set SERVE_MEDIA=0 and let it serve them.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
