from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "webapp.operations"
    label = "operations"
    verbose_name = "Operations (reconciler)"

    def ready(self) -> None:
        """Every process that loads Django (web, workers, beat, commands) records its tasks' metrics and
        carries request ids into the tasks it sends."""
        from webapp import request_id
        from webapp.operations import task_metrics

        request_id.connect_celery()
        task_metrics.connect_celery()
