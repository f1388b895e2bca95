from django.urls import path

from webapp.search import api, image_page, map_context, views

app_name = "search"
urlpatterns = [
    path("", views.search_page, name="search"),
    path("images/<int:pk>/", image_page.image_detail, name="image-detail"),
    path("map/positions.json", map_context.collection_positions_json, name="map-positions"),
    path("api/search/", views.search_api, name="api-search"),
    path("api/search/batch/", api.search_batch_api, name="api-search-batch"),
    path("api/images/<int:image_id>/similar/", api.similar_api, name="api-similar"),
    path("api/schema/", api.openapi_schema, name="api-schema"),
    path("queries/<uuid:query_id>/matches/<int:image_id>.png", views.matches_image, name="matches"),
]
