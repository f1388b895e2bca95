"""The served pipeline as a caller sees it: `evaluate --served` equals an evaluation of API responses,
and a method that cannot run, or a missing index, is said so (409 / 503), never a silent global ranking."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.eval.evaluation_protocol import ProtocolConfig, build_protocol
from retrieval_core.eval.metrics import average_precision_at_k
from retrieval_core.eval.splits import SplitConfig
from webapp.catalog.models import Image
from webapp.embeddings.services import collection_store, get_active_version

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SPLIT = ["--train-fraction", "0", "--validation-fraction", "0", "--queries-per-landmark", "1"]


def test_served_evaluation_equals_an_evaluation_of_api_responses(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    root = tmp_path / "collection"
    write_collection(root, n_landmarks=4, views_per_landmark=5, seed=41)
    # Each landmark's photos at one place, 1 km apart (labels.csv columns): geolocation is reported too.
    photos = sorted(path.relative_to(root).as_posix() for path in root.glob("*/*.jpg"))
    rows_csv = [f"{name},{name.split('/')[0]},{48 + 0.009 * int(name[9:12])},11.5" for name in photos]
    (root / "labels.csv").write_text("image,landmark,latitude,longitude\n" + "\n".join(rows_csv) + "\n")
    call_command("import_images", str(root), "--timeout", "600", verbosity=0)

    out = io.StringIO()
    call_command(
        "evaluate", str(root), "--served", "--rerank", "sift,none", "--format", "json", *SPLIT, stdout=out
    )
    report = json.loads(out.getvalue())
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"sift", "none"} and all("map@100" in row for row in rows.values())

    proto = build_protocol(
        root,
        ProtocolConfig(
            split=SplitConfig(train_fraction=0.0, validation_fraction=0.0, queries_per_landmark=1)
        ),
    )
    assert len(proto.queries) == 4
    relpath_of = dict(Image.objects.values_list("pk", "source"))
    for method, row in rows.items():
        from_api = {}
        for query in proto.queries:
            with proto.path(query.relpath).open("rb") as photo:
                response = client.post("/api/search/", {"image": photo, "k": 100, "rerank": method})
            assert response.status_code == 200, response.content
            assert response.json()["rerank"]["method"] == method
            names = [relpath_of[hit["image_id"]] for hit in response.json()["results"]]
            ranking = [n for n in names if n in proto.index and n != query.relpath]
            from_api[query.relpath] = average_precision_at_k(ranking, query.positives, 100, query.junk) or 0.0
        assert row["per_query_ap"] == pytest.approx(from_api, abs=1e-12), method
        assert row["map@100"] == pytest.approx(sum(from_api.values()) / len(from_api))
    assert rows["sift"]["map@100"] > 0.5
    # Every query's place is found: by the served location and by the first result alike.
    for row in rows.values():
        geolocation = row["geolocation"]
        assert geolocation["estimator"]["queries"] == geolocation["first_result"]["queries"] == 4
    assert rows["sift"]["geolocation"]["estimator"]["within"]["25m"] == 1.0
    assert rows["sift"]["geolocation"]["first_result"]["within"]["25m"] == 1.0


def test_a_method_that_cannot_run_is_refused_and_a_missing_index_is_unavailable(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client, settings
) -> None:
    root = tmp_path / "collection"
    write_collection(root, n_landmarks=2, views_per_landmark=3, seed=43)
    call_command("import_images", str(root), "--timeout", "300", verbosity=0)
    photo = next(root.glob("*/*.jpg")).read_bytes()

    def search(**fields: object):
        return client.post("/api/search/", {"image": io.BytesIO(photo), **fields})

    vlad = search(rerank="vlad")
    assert vlad.status_code == 409 and "build_local_features --vlad" in vlad.json()["error"]
    settings.PATCHES_TOP_N = 0
    patches = search(rerank="patches")
    assert patches.status_code == 409 and "PATCHES_TOP_N" in patches.json()["error"]
    settings.PATCHES_TOP_N = 16

    # Background work of the import (analysis) may still use the collection: wait until the worker idles.
    from workers.celery import app

    inspect = app.control.inspect(timeout=2.0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        busy = [inspect.active() or {}, inspect.reserved() or {}, inspect.scheduled() or {}]
        if not any(tasks for state in busy for tasks in state.values()):
            break
        time.sleep(0.5)
    version = get_active_version()
    store = collection_store(version.collection_name, version.dim, create=False)
    store.drop()
    missing = search()
    assert missing.status_code == 503 and "does not exist" in missing.json()["error"]
    assert not store.exists()  # the search did not create it behind the operator's back
