"""The evaluate command, evaluation runs on a real worker, and their pages."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from retrieval_core.datasets.synthetic import write_collection
from webapp.evaluation.models import EvaluationRun

SMALL = ["--image-size", "128", "--vlad-k", "4", "--patches", "4", "--sift-keypoints", "300"]


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "collection"
    write_collection(
        root, n_landmarks=3, views_per_landmark=4, seed=4, layout="labels_csv", queries_per_landmark=1
    )
    return root


@pytest.mark.django_db
def test_evaluate_prints_the_ladder_writes_the_report_and_stores_the_run(
    collection: Path, tmp_path: Path
) -> None:
    out = io.StringIO()
    call_command(
        "evaluate", str(collection), "--out", str(tmp_path / "report"), *SMALL, stdout=out, verbosity=0
    )
    table = out.getvalue()
    for row in ("E1", "E5", "E6", "E7", "best"):
        assert f"| {row} |" in table
    assert {"report.md", "report.json", "ap_histograms.png", "precision_recall.png"} <= {
        p.name for p in (tmp_path / "report").iterdir()
    }
    run = EvaluationRun.objects.get()
    assert run.status == EvaluationRun.Status.DONE
    maps = {row["id"]: row["map_at_k"] for row in run.report["rows"]}
    assert all(0.0 <= value <= 1.0 for value in maps.values())

    # Same collection, another fusion grid: every feature comes from the cache.
    out = io.StringIO()
    call_command(
        "evaluate", str(collection), *SMALL, "--grid", "0,0.5,1", "--format", "json", stdout=out, verbosity=0
    )
    report = json.loads(out.getvalue())
    assert sum(report["extracted"].values()) == 0
    assert [row["id"] for row in report["rows"]] == list(maps)


@pytest.mark.django_db
def test_evaluate_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a folder"):
        call_command("evaluate", str(tmp_path / "nowhere"), verbosity=0)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_staff_start_a_run_on_the_worker_and_read_it(collection: Path, celery_worker_process: object) -> None:
    anonymous = Client()
    assert anonymous.get("/evaluations/").status_code == 302  # to the login page
    staff = User.objects.create_user("curator", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="add_evaluationrun"))
    client = Client()
    client.force_login(staff)
    bad = client.post("/evaluations/", {"root": "/no/such/folder"}, follow=True)
    assert bad.status_code == 200 and b"not a folder" in bad.content

    response = client.post(
        "/evaluations/", {"root": str(collection), "image_size": "128", "vlad_k": "4", "patches": "0"}
    )
    run = EvaluationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evaluations/{run.pk}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = client.get(f"/api/evaluations/{run.pk}/progress/").json()
        if state["status"] in ("done", "failed"):
            break
        time.sleep(1)
    assert state["status"] == "done", state
    page = client.get(f"/evaluations/{run.pk}/").content.decode()
    assert "<td>E6</td>" in page and "<td>E7</td>" not in page  # patches=0 skips E7
    assert "precision_recall.png" in page
    assert client.get(f"/media/{run.output_dir_name}/precision_recall.png").status_code == 200
    compare = client.get(f"/evaluations/compare/?ids={run.pk}").content.decode()
    assert "E1" in compare
    assert client.get("/evaluations/compare/?ids=x").status_code == 400
