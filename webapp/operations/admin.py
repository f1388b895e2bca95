from django.contrib import admin
from django.http import HttpRequest

from webapp.operations.models import ReconcileRun


@admin.register(ReconcileRun)
class ReconcileRunAdmin(admin.ModelAdmin[ReconcileRun]):
    list_display = (
        "started_at",
        "finished_at",
        "requeued_pending",
        "missing_local_features",
        "unreadable_local_features",
        "missing_vectors",
        "orphan_vectors",
        "stale_analysis",
        "error",
    )
    readonly_fields = [field.name for field in ReconcileRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
