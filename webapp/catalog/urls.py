from django.urls import path

from webapp.catalog import upload_api, views

app_name = "catalog"
urlpatterns = [
    path("api/collection/progress/", views.progress, name="progress"),
    path("api/images/", upload_api.upload_images, name="api-upload"),
]
