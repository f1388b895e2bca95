"""Admin for the audit trail (read-only, with undo), and the catalogue's Image and Landmark admin: the
curators' bulk tool (filters on the analysis, thumbnails, audited actions), which is why it lives here,
above the catalogue."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django_stubs_ext import WithAnnotations
from pymilvus.exceptions import MilvusException

from webapp.catalog.models import Image, ImageExif, Landmark
from webapp.curation import actions, selectors
from webapp.curation.analysis import queue_collection_analysis
from webapp.curation.follow_up import analysis_message, reindexing_note
from webapp.curation.models import CurationAction, CurationChange, ImageAnalysis, ImageCuration
from webapp.dispatch import recording

if TYPE_CHECKING:
    _Inline = admin.options.InlineModelAdmin[Any, Any]
else:
    _Inline = object


class _Counted(TypedDict):
    image_count: int


class _ReadOnly(_Inline):
    """Shown, never edited here: verdicts change only through audited actions, analysis only by tasks."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return selectors.can_curate(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ImageAnalysisInline(_ReadOnly, admin.StackedInline[ImageAnalysis, Image]):
    model = ImageAnalysis
    fk_name = "image"


class ImageCurationInline(_ReadOnly, admin.StackedInline[ImageCuration, Image]):
    model = ImageCuration


class ImageHistoryInline(_ReadOnly, admin.TabularInline[CurationChange, Image]):
    model = CurationChange
    verbose_name_plural = "curation history"
    fields = readonly_fields = ("action", "before", "after")


class CurationChangeInline(_ReadOnly, admin.TabularInline[CurationChange, CurationAction]):
    model = CurationChange
    fields = readonly_fields = ("image", "before", "after")


@admin.register(CurationAction)
class CurationActionAdmin(admin.ModelAdmin[CurationAction]):
    list_display = ["id", "created_at", "user", "kind", "summary", "images", "undone"]
    list_filter = ["kind", "user"]
    search_fields = ["summary", "note", "user__username"]
    readonly_fields = ["kind", "user", "created_at", "summary", "note", "reverts"]
    inlines = [CurationChangeInline]
    actions = ["undo_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CurationAction]:
        return super().get_queryset(request).select_related("user").annotate(image_count=Count("changes"))

    @admin.display(ordering="image_count")
    def images(self, action: WithAnnotations[CurationAction, _Counted]) -> int:
        return action.image_count

    @admin.display(boolean=True)
    def undone(self, action: CurationAction) -> bool:
        return action.is_undone

    def has_module_permission(self, request: HttpRequest) -> bool:
        return selectors.can_curate(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: CurationAction | None = None) -> bool:
        """Whoever may curate may read the trail of curation (theirs and their colleagues')."""
        return selectors.can_curate(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CurationAction | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CurationAction | None = None) -> bool:
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


# -- the catalogue: images and landmarks ---------------------------------------------------------------------


@admin.register(Landmark)
class LandmarkAdmin(admin.ModelAdmin[Landmark]):
    list_display = ["name", "external_id", "image_count", "review", "created_at"]
    search_fields = ["name", "external_id"]
    actions = ["rerun_analysis"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Landmark]:
        return super().get_queryset(request).annotate(image_count=Count("images"))

    @admin.display(ordering="image_count")
    def image_count(self, landmark: WithAnnotations[Landmark, _Counted]) -> int:
        return landmark.image_count

    @admin.display(description="")
    def review(self, landmark: Landmark) -> str:
        return format_html('<a href="{}">review</a>', reverse("curation:landmark-review", args=[landmark.pk]))

    def has_curate_permission(self, request: HttpRequest) -> bool:
        return selectors.can_curate(request.user)

    @admin.action(description="Re-run the dataset analysis of the selected landmarks", permissions=["curate"])
    def rerun_analysis(self, request: HttpRequest, queryset: QuerySet[Landmark]) -> None:
        with recording() as sends:
            queued = queue_collection_analysis(list(queryset.values_list("pk", flat=True)))
        level, message = analysis_message("the selected landmarks", queued["images"], sends)
        self.message_user(request, message, level)


class ImageExifInline(admin.StackedInline[ImageExif, Image]):
    model = ImageExif
    extra = 0


class CurationActionForm(ActionForm):
    """The action bar: the relabel target and an optional note for the audit trail."""

    landmark = forms.CharField(required=False, label="Landmark (relabel)", max_length=255)
    note = forms.CharField(required=False, label="Note", max_length=500)


class FlagFilter(admin.SimpleListFilter):
    title = "flag"
    parameter_name = "flag"
    FLAGS: dict[str, tuple[str, Q]] = {
        "suspected": ("suspected label noise, no verdict", selectors.open_suspect()),
        "grayscale": ("grayscale", Q(analysis__is_grayscale=True)),
        "too_small": ("too small", Q(analysis__is_too_small=True)),
        "blurred": ("blurred", Q(analysis__is_blurred=True)),
        "exact_duplicate": ("exact duplicate", Q(analysis__exact_duplicate_of__isnull=False)),
        "near_duplicate": ("near-duplicate", Q(analysis__near_duplicate_of__isnull=False)),
        "noise": ("marked noise", Q(curation__is_noise=True)),
        "no_training": ("excluded from training", Q(curation__exclude_from_training=True)),
        "confirmed": ("label confirmed", Q(curation__label_confirmed=True)),
        "not_analysed": ("not analysed yet", Q(analysis__isnull=True)),
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Image]) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.FLAGS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Image]) -> QuerySet[Image]:
        flag = self.FLAGS.get(self.value() or "")
        return queryset if flag is None else queryset.filter(flag[1])


def _curation_action(kind: str, description: str) -> Callable[..., None]:
    """One admin action per curation kind, all going through curation.actions.curate."""

    @admin.action(description=description, permissions=["curate"])
    def action(model_admin: ImageAdmin, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        model_admin.curate(request, queryset, kind)

    action.__name__ = kind
    return action


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin[Image]):
    list_display = ["preview", "id", "original_name", "landmark", "split", "status", "noise", "flags"]
    list_filter = [FlagFilter, "status", "split", ("landmark", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["original_name", "source", "sha256", "landmark__name"]
    readonly_fields = [
        "landmark",
        "status",
        "sha256",
        "width",
        "height",
        "file_size",
        "format",
        "indexed_at",
        "index_error",
    ]
    list_select_related = ["landmark", "analysis", "curation"]
    inlines = [ImageExifInline, ImageAnalysisInline, ImageCurationInline, ImageHistoryInline]
    action_form = CurationActionForm
    actions = [
        _curation_action(CurationAction.Kind.RELABEL, "Relabel to the landmark typed above"),
        _curation_action(CurationAction.Kind.CONFIRM_LABEL, "Confirm the label"),
        _curation_action(CurationAction.Kind.MARK_NOISE, "Mark as noise"),
        _curation_action(CurationAction.Kind.EXCLUDE_FROM_TRAINING, "Exclude from training"),
        _curation_action(CurationAction.Kind.REMOVE_FROM_INDEX, "Remove from the search index"),
        _curation_action(CurationAction.Kind.RESTORE, "Restore (not noise, back in training and the index)"),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # photos are registered by upload or import, which validate and store them

    def has_curate_permission(self, request: HttpRequest) -> bool:
        return selectors.can_curate(request.user)

    @admin.display(description="")
    def preview(self, image: Image) -> str:
        return format_html('<img src="{}" style="height:48px;border-radius:4px">', image.thumbnail_url)

    @admin.display(description="noise score", ordering="analysis__noise_score")
    def noise(self, image: Image) -> str:
        analysis = getattr(image, "analysis", None)
        return "-" if analysis is None or analysis.noise_score is None else f"{analysis.noise_score:.2f}"

    @admin.display(description="flags")
    def flags(self, image: Image) -> str:
        analysis, verdict = getattr(image, "analysis", None), getattr(image, "curation", None)
        names = [
            name
            for name, on in (
                ("suspected", analysis is not None and analysis.is_suspected_noise),
                ("grayscale", analysis is not None and analysis.is_grayscale),
                ("small", analysis is not None and analysis.is_too_small),
                ("blurred", analysis is not None and analysis.is_blurred),
                ("duplicate", analysis is not None and analysis.is_duplicate),
                ("confirmed", verdict is not None and verdict.label_confirmed),
                ("noise", verdict is not None and verdict.is_noise),
                ("no training", verdict is not None and verdict.exclude_from_training),
            )
            if on
        ]
        return ", ".join(names)

    def curate(self, request: HttpRequest, queryset: QuerySet[Image], kind: str) -> None:
        landmark = None
        if kind == CurationAction.Kind.RELABEL:
            name = request.POST.get("landmark", "").strip()
            landmark = selectors.landmark_by_name(name) if name else None
            if landmark is None:
                message = (
                    f"There is no landmark named {name!r}." if name else "Type the landmark to relabel to."
                )
                self.message_user(request, message, messages.ERROR)
                return
        try:
            with recording() as sends:
                action = actions.curate(
                    kind,
                    list(queryset.values_list("pk", flat=True)),
                    user=request.user,
                    landmark=landmark,
                    note=request.POST.get("note", ""),
                )
        except actions.CurationError as error:
            self.message_user(request, str(error), messages.ERROR)
        except (MilvusException, ConnectionError) as error:
            self.message_user(
                request, f"Vector store unavailable ({error}); nothing changed.", messages.ERROR
            )
        else:
            if action is None:
                self.message_user(request, "Nothing to change.", messages.INFO)
            else:
                link = reverse("admin:curation_curationaction_change", args=[action.pk])
                level, note = reindexing_note(sends)
                self.message_user(
                    request,
                    format_html('<a href="{}">#{}</a>: {}. {}', link, action.pk, action.summary, note),
                    level,
                )
