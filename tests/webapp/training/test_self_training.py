"""``train --recipe self``: mining an unlabelled folder, training on the pseudo-landmarks, the page."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from threadpoolctl import threadpool_limits

from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.training.self_supervised import cluster_agreement
from webapp import task_names
from webapp.training import mining_stages as mining_service
from webapp.training.models import MiningRun, TrainingRun

TRAIN = ["--epochs", "2", "--steps-per-epoch", "2", "--p", "2", "--k", "4", "--image-size", "64"]
MINE = ["--neighbours", "5", "--min-inliers", "12"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Mining and training in one thread: the suite shares two cores, and oversubscribed BLAS and
    int8 matching slow down many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def _flat_collection(root: Path) -> dict[str, str]:
    """5 synthetic landmarks x 5 views in one folder without labels; returns file name -> true landmark."""
    write_collection(root / "labelled", n_landmarks=5, views_per_landmark=5, seed=4, image_size=(120, 160))
    flat = root / "flat"
    flat.mkdir()
    truth = {}
    for path in sorted((root / "labelled").rglob("*.jpg")):
        name = f"{path.parent.name}-{path.name}"
        shutil.copy(path, flat / name)
        truth[name] = path.parent.name
    return truth


@pytest.mark.django_db
def test_self_recipe_mines_pseudo_landmarks_trains_and_shows_the_mining(tmp_path: Path) -> None:
    truth = _flat_collection(tmp_path)
    out = io.StringIO()
    call_command("train", str(tmp_path / "flat"), "--recipe", "self", *TRAIN, *MINE, stdout=out, verbosity=0)
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.DONE, run.error
    mining = MiningRun.objects.get(training_run=run)
    assert mining.status == MiningRun.Status.DONE and mining.done == mining.total >= 1
    agreement = cluster_agreement(truth, mining_service.load_result(mining))
    assert agreement.adjusted_rand >= 0.9 and agreement.purity >= 0.95
    assert mining.statistics["covered_images"] >= 22 and "pseudo-landmarks" in out.getvalue()
    assert mining.samples and all(s["drawing"].startswith("data:image/jpeg;base64,") for s in mining.samples)
    assert run.initial_map is not None and run.best_map is not None and run.best_map >= run.initial_map
    assert run.model_version is not None and run.model_version.name == f"run {run.pk} self"

    client = Client()
    client.force_login(User.objects.create_user("ml", password="x", is_staff=True, is_superuser=True))
    page = client.get(f"/training/{run.pk}/").content.decode()
    assert "component-chart" in page and page.count("<rect") == mining.statistics["components"]
    assert "Sample verified pairs" in page and "self-supervised" in page
    state = client.get(f"/api/training/{run.pk}/").json()
    assert state["mining"]["status"] == "done" and state["mining"]["statistics"]["components"] >= 4


@pytest.mark.django_db
def test_a_resumed_mining_verifies_only_the_chunks_that_were_not_saved(tmp_path: Path) -> None:
    _flat_collection(tmp_path)
    from retrieval_core.training import TrainConfig
    from retrieval_core.training.pair_mining import MiningConfig
    from webapp.training import services

    config = TrainConfig(recipe="e3", epochs=1, steps_per_epoch=1, p=2, k=2, image_size=64, device="cpu")
    mined = MiningConfig(neighbours=5, min_inliers=12, chunk_pairs=20)
    run = services.create_self_run(config, mined, root=tmp_path / "flat")
    state = mining_service.prepare(run.mining.pk, dispatch=False)
    assert state is not None and state.n_chunks >= 3
    assert mining_service.verify(run.mining.pk, 0, dispatch=False) is False
    saved = state.directory / "chunks" / "000000.json"
    before = saved.stat().st_mtime_ns
    # A worker that died: the whole job is run again, chunk 0 is kept as saved.
    mining_service.execute_mining(run.mining.pk)
    assert saved.stat().st_mtime_ns == before
    run.mining.refresh_from_db()
    assert run.mining.status == MiningRun.Status.DONE and run.mining.done == state.n_chunks
    assert json.loads((mining_service.result_path(run.mining)).read_text())["statistics"]["chunks_done"] == (
        state.n_chunks
    )


@pytest.mark.django_db
def test_the_training_page_queues_a_self_run_as_mining_then_bad_input_is_a_message(
    django_capture_on_commit_callbacks,
) -> None:
    client = Client()
    client.force_login(User.objects.create_user("ml", password="x", is_staff=True, is_superuser=True))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/training/", {"recipe": "self", "epochs": "1", "neighbours": "10", "min_inliers": "20"}
        )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/{run.pk}/"
    assert run.mining.config["min_inliers"] == 20 and run.mining.config["neighbours"] == 10
    assert [(c.name, c.args) for c in callbacks] == [(task_names.MINE_PREPARE, (run.mining.pk,))]
    page = client.post("/training/", {"recipe": "self", "min_inliers": "0"}, follow=True).content.decode()
    assert "Could not start training" in page and TrainingRun.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_web_self_run_mines_the_catalogue_on_the_workers_then_trains_a_model_version(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None
) -> None:
    """Mining from what the catalogue stores (the active version's Milvus vectors, the SIFT store), chunked
    over verify tasks on a real worker, then the training task; no labels anywhere."""
    truth = _flat_collection(tmp_path)
    call_command("import_images", str(tmp_path / "flat"), "--timeout", "300", verbosity=0)
    from webapp.catalog.models import Image

    name_of = {image.pk: image.original_name for image in Image.objects.all()}
    assert sorted(name_of.values()) == sorted(truth)
    client = Client()
    client.force_login(User.objects.create_user("ml", password="x", is_staff=True, is_superuser=True))
    form = {"recipe": "self", "epochs": "1", "steps_per_epoch": "2", "p": "2", "k": "4", "image_size": "64"}
    client.post("/training/", {**form, "neighbours": "5", "min_inliers": "12"})
    run = TrainingRun.objects.get()
    deadline = time.monotonic() + 600
    while client.get(f"/api/training/{run.pk}/").json()["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, client.get(f"/api/training/{run.pk}/").json()
        time.sleep(1)
    state = client.get(f"/api/training/{run.pk}/").json()
    assert state["status"] == "done", state
    mining = MiningRun.objects.get(training_run=run)
    assert mining.statistics["chunks"] >= 1 and mining.statistics["images"] == len(truth)
    result = mining_service.load_result(mining)
    by_name = {name_of[int(k)]: v for k, v in result.labels.items()}
    agreement = cluster_agreement(truth, dataclasses.replace(result, labels=by_name))
    assert agreement.adjusted_rand >= 0.9 and agreement.purity >= 0.95
    run.refresh_from_db()
    assert run.model_version is not None and run.best_map is not None


def test_hold_out_queries_keeps_the_reported_queries_positives_and_landmarks_out_of_mining(
    tmp_path: Path,
) -> None:
    from webapp.training import services

    write_collection(tmp_path / "c", 3, 4, seed=1, layout="labels_csv", queries_per_landmark=1)
    labels = (tmp_path / "c" / "labels.csv").read_text().splitlines()
    # Only landmark_000 has a reported query: its images are held out, the other landmarks stay minable.
    kept = [
        row if row.startswith(("image,", "landmark_000")) else row.rsplit(",", 1)[0] + "," for row in labels
    ]
    (tmp_path / "c" / "labels.csv").write_text("\n".join(kept) + "\n")
    held = services.protocol_held_out(tmp_path / "c")
    assert held == [f"landmark_000/view_{i:03d}.jpg" for i in range(4)]
    with pytest.raises(ValueError, match="needs ROOT"):
        services.protocol_held_out(None)
