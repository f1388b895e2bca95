from django.urls import path

from webapp.evaluation import views

app_name = "evaluation"
urlpatterns = [
    path("evaluations/", views.run_list, name="list"),
    path("evaluations/compare/", views.compare, name="compare"),
    path("evaluations/<int:pk>/", views.run_detail, name="detail"),
]
