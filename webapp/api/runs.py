"""The live state of an evaluation or a training run, which their pages poll (staff, by session)."""

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema

from webapp.api.auth import StaffSession
from webapp.api.errors import Error
from webapp.evaluation.models import EvaluationRun
from webapp.training.models import MiningRun, TrainingRun
from webapp.validation import DatabaseId

router = Router(tags=["runs"], auth=StaffSession())

_STAFF_ONLY = {401: Error, 403: Error, 404: Error}


class EvaluationProgress(Schema):
    status: str
    stage: str
    done: int
    total: int
    error: str


class MiningState(Schema):
    """The self-supervised recipe's mining stage."""

    status: str
    stage: str
    done: int
    total: int
    statistics: dict[str, Any]
    error: str


class TrainingState(Schema):
    status: str
    epoch: int
    step: int
    total_steps: int
    images_per_s: float | None
    losses: list[Any] = Field(description="[[step, loss], ...] (thinned to about 500 points)")
    epochs: list[Any] = Field(description="[{epoch, step, loss, validation_map, is_best}, ...]")
    initial_map: float | None
    best_map: float | None
    error: str
    cancel_requested: bool
    mining: MiningState | None = Field(description="self-supervised recipe: its mining stage (else null)")

    @staticmethod
    def resolve_mining(run: TrainingRun) -> MiningRun | None:
        return MiningRun.objects.filter(training_run=run).first()


@router.get(
    "/evaluations/{int:run_id}/progress/",
    url_name="evaluation-progress",
    summary="An evaluation run's progress (staff)",
    response={200: EvaluationProgress, **_STAFF_ONLY},
)
def evaluation_progress(request: HttpRequest, run_id: DatabaseId) -> EvaluationRun:
    return get_object_or_404(EvaluationRun, pk=run_id)


@router.get(
    "/training/{int:run_id}/",
    url_name="training-state",
    summary="A training run's live state (staff)",
    response={200: TrainingState, **_STAFF_ONLY},
)
def training_state(request: HttpRequest, run_id: DatabaseId) -> TrainingRun:
    return get_object_or_404(TrainingRun, pk=run_id)
