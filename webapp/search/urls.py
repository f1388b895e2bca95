from django.urls import path

from webapp.search import image_page, map_context, views

app_name = "search"
urlpatterns = [
    path("", views.search_page, name="search"),
    path("images/<int:pk>/", image_page.image_detail, name="image-detail"),
    path("map/positions.json", map_context.collection_positions_json, name="map-positions"),
    path("queries/<uuid:query_id>/matches/<int:image_id>.png", views.matches_image, name="matches"),
]
