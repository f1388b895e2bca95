from django.urls import path

from webapp.operations import collection_page, jobs_page, views

app_name = "operations"
urlpatterns = [
    path("collection/", collection_page.collection, name="collection"),
    path("jobs/", jobs_page.jobs_page, name="jobs"),
    path("jobs/<str:task_id>/retry/", jobs_page.retry, name="jobs-retry"),
    path("healthz/", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
