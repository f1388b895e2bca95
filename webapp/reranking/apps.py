from django.apps import AppConfig


class RerankingConfig(AppConfig):
    name = "webapp.reranking"
    label = "reranking"
    verbose_name = "Re-ranking"

    def ready(self) -> None:
        from retrieval_core.runtime import limit_native_threads

        limit_native_threads()  # web and workers: see retrieval_core.runtime
