"""Training runs from the terminal and the web, on a real worker; blue/green roll-out of the result."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from pymilvus import MilvusClient

from retrieval_core.datasets.synthetic import write_collection
from tests.conftest import write_query_split
from webapp.embeddings.models import EmbeddingModelVersion
from webapp.embeddings.services import get_active_version
from webapp.training.models import TrainingRun
from webapp.training.services import run_dir

TINY = {"epochs": "1", "steps_per_epoch": "2", "p": "2", "k": "2", "image_size": "64", "lr": "0.0001"}


def _wait(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("timed out")


@pytest.mark.django_db
def test_train_command_keeps_the_best_checkpoint_as_a_new_model_version(tmp_path: Path) -> None:
    write_collection(tmp_path / "c", n_landmarks=3, views_per_landmark=8, seed=2)
    out = io.StringIO()
    call_command(
        "train",
        str(tmp_path / "c"),
        "--recipe",
        "e3",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--p",
        "2",
        "--k",
        "2",
        "--image-size",
        "64",
        stdout=out,
        verbosity=0,
    )
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.DONE
    assert run.step == 2 and len(run.losses) == 2 and len(run.epochs) == 1
    assert run.initial_map is not None and run.best_map >= run.initial_map
    assert Path(run.best_checkpoint).is_file()
    version = run.model_version
    assert version is not None and not version.is_active
    assert version.state == EmbeddingModelVersion.State.NEW and version.weights == run.best_checkpoint
    assert "model version" in out.getvalue()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_web_training_cancel_then_train_activate_and_drop_without_a_failed_search(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None
) -> None:
    queries = write_query_split(tmp_path, n_landmarks=3, views=7, seed=8)
    call_command("import_images", str(tmp_path / "collection"), "--timeout", "300", verbosity=0)
    old = get_active_version()
    assert Client().get("/training/").status_code == 302
    client = Client()
    ml = User.objects.create_user("ml", password="x", is_staff=True)
    writes = ["add_trainingrun", "change_trainingrun", "change_embeddingmodelversion"]
    ml.user_permissions.add(*Permission.objects.filter(codename__in=writes))
    client.force_login(ml)

    # A long run is cancelled at its next step and leaves a resumable checkpoint.
    client.post("/training/", {**TINY, "epochs": "50", "steps_per_epoch": "50", "recipe": "e3"})
    long_run = TrainingRun.objects.get()
    _wait(lambda: client.get(f"/api/training/{long_run.pk}/").json()["step"] >= 1, timeout=120)
    client.post(f"/training/{long_run.pk}/cancel/")
    _wait(lambda: client.get(f"/api/training/{long_run.pk}/").json()["status"] == "cancelled")
    assert (run_dir(long_run) / "last.pt").is_file()
    assert client.post(f"/training/{long_run.pk}/cancel/", follow=True).status_code == 200  # already ended

    client.post("/training/", {**TINY, "recipe": "e3"})
    run = TrainingRun.objects.exclude(pk=long_run.pk).get()
    _wait(lambda: client.get(f"/api/training/{run.pk}/").json()["status"] in ("done", "failed"))
    state = client.get(f"/api/training/{run.pk}/").json()
    assert state["status"] == "done", state
    assert state["losses"] and state["epochs"][0]["validation_map"] is not None
    assert "loss-chart" in client.get(f"/training/{run.pk}/").content.decode()
    run.refresh_from_db()
    new = run.model_version

    # Blue/green: searches keep working while the new collection fills, then switch to the new model.
    client.post(f"/models/{new.pk}/activate/")
    query = next(iter(queries.values())).read_bytes()
    models_seen = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        photo = io.BytesIO(query)
        photo.name = "q.jpg"
        response = client.post("/api/search/", {"image": photo, "rerank": "none"})
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == 10
        models_seen.append(response.json()["model_version"])
        if models_seen[-1] == new.name:
            break
    assert models_seen[-1] == new.name and models_seen[0] == old.name
    new.refresh_from_db()
    assert new.is_active and new.state == EmbeddingModelVersion.State.INDEXED and new.indexed_count == 18

    # The old collection can now be dropped; the active one cannot.
    milvus = MilvusClient(uri=os.environ["MILVUS_URI"])
    assert milvus.has_collection(old.collection_name)
    client.post(f"/models/{old.pk}/drop/")
    assert not milvus.has_collection(old.collection_name)
    page = client.post(f"/models/{new.pk}/drop/", follow=True).content.decode()
    assert "cannot be dropped" in page
