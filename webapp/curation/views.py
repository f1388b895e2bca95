"""The dataset dashboard (anyone), the per-landmark review page and curation actions (curators only)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from pymilvus.exceptions import MilvusException

from retrieval_core.index.vector_index import CollectionMissingError
from webapp.accounts.permissions import write_permission
from webapp.catalog.models import Landmark
from webapp.curation import actions, analysis, proposals, selectors
from webapp.curation.actions import CurationError
from webapp.curation.charts import overview_charts
from webapp.curation.follow_up import analysis_message, reindexing_note
from webapp.curation.models import CurationAction
from webapp.dispatch import Sends, recording
from webapp.reranking.scoring import RerankUnavailable

View = Callable[..., HttpResponse]
_STORE_DOWN = (MilvusException, ConnectionError, TimeoutError)
REVIEW_PAGE_SIZE = 60
UNLABELLED_PAGE_SIZE = 12


def curator_required(view: View) -> View:
    """Anonymous visitors are sent to log in; logged-in users who may not curate get 403."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not selectors.can_curate(request.user):
            return HttpResponse(
                "Forbidden: curating needs a staff account with the permission catalog.change_image.",
                status=403,
                content_type="text/plain; charset=utf-8",
            )
        return view(request, *args, **kwargs)

    return guarded


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    overview = selectors.dataset_overview()
    curator = selectors.can_curate(request.user)
    return render(
        request,
        "curation/dashboard.html",
        {
            "overview": overview,
            "charts": overview_charts(overview),
            "curator": curator,
            "landmarks": selectors.landmarks_to_review() if curator else [],
            "actions": selectors.recent_actions() if curator else [],
        },
    )


@require_GET
@curator_required
def landmark_review(request: HttpRequest, pk: int) -> HttpResponse:
    landmark = get_object_or_404(Landmark, pk=pk)
    page = Paginator(selectors.landmark_review(landmark), REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "curation/review.html",
        {"landmark": landmark, "page": page, "landmark_names": selectors.landmark_names()},
    )


@require_GET
@curator_required
def unlabelled(request: HttpRequest) -> HttpResponse:
    """Unlabelled indexed images with the landmark their verified neighbours propose (one search each, so
    a page holds ``UNLABELLED_PAGE_SIZE``)."""
    page = Paginator(proposals.unlabelled_images(), UNLABELLED_PAGE_SIZE).get_page(request.GET.get("page"))
    try:
        found = [proposals.propose_landmark(image) for image in page]
        problem = ""
    except (*_STORE_DOWN, CollectionMissingError, RerankUnavailable) as error:
        found, problem = [], f"Proposals need the search index, which is unavailable ({error})."
    return render(request, "curation/unlabelled.html", {"page": page, "proposals": found, "problem": problem})


@require_POST
@curator_required
@write_permission("catalog.change_image")
def curate_images(request: HttpRequest) -> HttpResponse:
    try:
        kind = request.POST.get("action", "")
        landmark = _target_landmark(request.POST) if kind == CurationAction.Kind.RELABEL else None
        with recording() as sends:
            action = actions.curate(
                kind,
                _image_ids(request.POST),
                user=request.user,
                landmark=landmark,
                note=request.POST.get("note", ""),
            )
    except CurationError as error:
        return _problem(request, str(error), error.status)
    except _STORE_DOWN as error:
        return _problem(request, f"The vector store is unavailable ({error}); nothing was changed.", 503)
    if action is None:
        messages.info(request, "Nothing to change: the selected images were already in that state.")
    else:
        _report(request, action, sends)
    return redirect(_next_url(request))


@require_POST
@curator_required
@write_permission("catalog.change_image")
def undo_action(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        with recording() as sends:
            action = actions.undo(pk, user=request.user)
    except CurationError as error:
        return _problem(request, str(error), error.status)
    except _STORE_DOWN as error:
        return _problem(request, f"The vector store is unavailable ({error}); nothing was changed.", 503)
    _report(request, action, sends)
    return redirect(_next_url(request))


@require_POST
@curator_required
@write_permission("catalog.change_image")
def rerun_analysis(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("landmark", "").strip()
    if raw and not raw.isdigit():
        return _problem(request, "landmark must be a landmark id", 400)
    landmark = get_object_or_404(Landmark, pk=int(raw)) if raw else None
    with recording() as sends:
        queued = analysis.queue_collection_analysis(None if landmark is None else [landmark.pk])
    scope = landmark.name if landmark else "the whole collection"
    messages.add_message(request, *analysis_message(scope, queued["images"], sends))
    return redirect(_next_url(request))


def _report(request: HttpRequest, action: CurationAction, sends: Sends) -> None:
    level, note = reindexing_note(sends)
    messages.add_message(request, level, f"Action #{action.pk}: {action.summary}. {note}".rstrip())


def _image_ids(data: QueryDict) -> list[int]:
    raw = [value for value in data.getlist("image") if value.strip()]
    if not raw:
        raise CurationError("Select at least one image.")
    try:
        return [int(value) for value in raw]
    except ValueError:
        raise CurationError("Image ids must be integers.") from None


def _target_landmark(data: QueryDict) -> Landmark:
    """The landmark to relabel to: ``landmark_id`` (one-click buttons) or ``landmark_name`` (typed)."""
    raw_id, name = data.get("landmark_id", "").strip(), data.get("landmark_name", "").strip()
    if raw_id:
        if not raw_id.isdigit():
            raise CurationError("landmark_id must be an integer.")
        landmark = Landmark.objects.filter(pk=int(raw_id)).first()
        if landmark is None:
            raise CurationError(f"There is no landmark #{raw_id}.", status=404)
        return landmark
    if not name:
        raise CurationError("Relabelling needs the name of the landmark to relabel to.")
    landmark = selectors.landmark_by_name(name)
    if landmark is None:
        raise CurationError(f"There is no landmark named {name!r}; create it first in the admin.")
    return landmark


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return reverse("curation:dashboard")


def _problem(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(
        request, "curation/problem.html", {"message": message, "back": _next_url(request)}, status=status
    )
