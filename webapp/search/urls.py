from django.urls import path

from webapp.search import views

app_name = "search"
urlpatterns = [
    path("", views.search_page, name="search"),
    path("api/search/", views.search_api, name="api-search"),
    path("queries/<uuid:query_id>/matches/<int:image_id>.png", views.matches_image, name="matches"),
]
