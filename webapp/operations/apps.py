from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "webapp.operations"
    label = "operations"
    verbose_name = "Operations (reconciler)"

    def ready(self) -> None:
        """Every process that loads Django (web, workers, beat, commands) records its tasks' metrics and
        carries request ids into the tasks it sends; the system checks warn about variables of removed
        features."""
        from webapp import request_id
        from webapp.operations import removed_settings, task_metrics  # noqa: F401 (registers its check)

        request_id.connect_celery()
        task_metrics.connect_celery()
