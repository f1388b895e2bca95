from django.urls import path

from webapp.operations import collection_page, views

app_name = "operations"
urlpatterns = [
    path("collection/", collection_page.collection, name="collection"),
    path("healthz/", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
