"""Admin for the audit trail (read-only, with undo) and the read-only inlines the Image admin shows."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from pymilvus.exceptions import MilvusException

from webapp.curation import actions, selectors
from webapp.curation.follow_up import reindexing_note
from webapp.curation.models import CurationAction, CurationChange, ImageAnalysis, ImageCuration
from workers.dispatch import recording


class _ReadOnly:
    """Shown, never edited here: verdicts change only through audited actions, analysis only by tasks."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return selectors.can_curate(request.user) or super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ImageAnalysisInline(_ReadOnly, admin.StackedInline):
    model = ImageAnalysis
    fk_name = "image"


class ImageCurationInline(_ReadOnly, admin.StackedInline):
    model = ImageCuration


class ImageHistoryInline(_ReadOnly, admin.TabularInline):
    model = CurationChange
    verbose_name_plural = "curation history"
    fields = ["action", "before", "after"]
    readonly_fields = fields


class CurationChangeInline(_ReadOnly, admin.TabularInline):
    model = CurationChange
    fields = ["image", "before", "after"]
    readonly_fields = fields


@admin.register(CurationAction)
class CurationActionAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "user", "kind", "summary", "images", "undone"]
    list_filter = ["kind", "user"]
    search_fields = ["summary", "note", "user__username"]
    readonly_fields = ["kind", "user", "created_at", "summary", "note", "reverts"]
    inlines = [CurationChangeInline]
    actions = ["undo_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CurationAction]:
        return super().get_queryset(request).select_related("user").annotate(image_count=Count("changes"))

    @admin.display(ordering="image_count")
    def images(self, action: CurationAction) -> int:
        return action.image_count  # type: ignore[attr-defined]

    @admin.display(boolean=True)
    def undone(self, action: CurationAction) -> bool:
        return action.is_undone

    def has_module_permission(self, request: HttpRequest) -> bool:
        return selectors.can_curate(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Whoever may curate may read the trail of curation (theirs and their colleagues')."""
        return selectors.can_curate(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the audit trail is not editable

    def has_curate_permission(self, request: HttpRequest) -> bool:
        return selectors.can_curate(request.user)

    @admin.action(description="Undo the selected actions (newest first)", permissions=["curate"])
    def undo_selected(self, request: HttpRequest, queryset: QuerySet[CurationAction]) -> None:
        for action in queryset.order_by("-created_at", "-id"):
            try:
                with recording() as sends:
                    undo = actions.undo(action.pk, user=request.user)
            except actions.CurationError as error:
                self.message_user(request, str(error), messages.WARNING)
            except (MilvusException, ConnectionError) as error:
                self.message_user(request, f"vector store unavailable: {error}", messages.ERROR)
                return
            else:
                level, note = reindexing_note(sends)
                self.message_user(request, format_html("#{}: {}. {}", undo.pk, undo.summary, note), level)
