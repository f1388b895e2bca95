from django.urls import path

from webapp.catalog import views

app_name = "catalog"
urlpatterns = [
    path("collection/", views.collection, name="collection"),
    path("images/<int:pk>/", views.image_detail, name="image-detail"),
    path("api/collection/progress/", views.progress, name="progress"),
]
