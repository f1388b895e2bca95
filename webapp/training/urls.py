from django.urls import path

from webapp.training import views

app_name = "training"
urlpatterns = [
    path("training/", views.run_list, name="list"),
    path("training/<int:pk>/", views.run_detail, name="detail"),
    path("training/<int:pk>/cancel/", views.cancel, name="cancel"),
]
