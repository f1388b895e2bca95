from django.urls import path

from webapp.curation import views

app_name = "curation"
urlpatterns = [
    path("dataset/", views.dashboard, name="dashboard"),
    path("dataset/landmarks/<int:pk>/", views.landmark_review, name="landmark-review"),
    path("dataset/unlabelled/", views.unlabelled, name="unlabelled"),
    path("dataset/curate/", views.curate_images, name="curate"),
    path("dataset/actions/<int:pk>/undo/", views.undo_action, name="undo"),
    path("dataset/analyse/", views.rerun_analysis, name="analyse"),
]
