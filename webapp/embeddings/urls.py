from django.urls import path

from webapp.embeddings import views

app_name = "embeddings"
urlpatterns = [
    path("models/", views.version_list, name="versions"),
    path("models/<int:pk>/activate/", views.activate, name="activate"),
    path("models/<int:pk>/drop/", views.drop, name="drop"),
]
