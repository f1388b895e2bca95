from django.apps import AppConfig


class RerankingConfig(AppConfig):
    name = "webapp.reranking"
    label = "reranking"
    verbose_name = "Re-ranking"
