"""Backup and restore on the real stack: photos imported through the Celery worker into Milvus and searched,
backed up, restored into a new empty stack (its own database, Milvus Lite server, media and feature
folders, in other processes), and searched there again: the same photos rank the same, with the same
scores and the same verified inliers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import write_query_split
from webapp import localstack
from webapp.catalog.models import Image

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
# Searches the restored stack through its API (run in the stack's own process and settings).
SEARCH = """
import json, sys
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="localhost")
out = {}
for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    with open(path, "rb") as photo:
        response = client.post("/api/search/", {"image": photo})
    out[name] = [response.status_code, response.json()]
print(json.dumps(out))
"""


def _ranking(payload: dict) -> list[tuple[int, float, int | None, str | None]]:
    return [
        (hit["image_id"], round(hit["score"], 4), hit["inliers"], (hit["landmark"] or {}).get("name"))
        for hit in payload["results"]
    ]


def test_a_restored_stack_searches_like_the_one_backed_up(
    tmp_path: Path, celery_worker_process: object, empty_vector_store: None, client: Client
) -> None:
    queries = write_query_split(tmp_path / "photos", n_landmarks=3, views=4, seed=51)
    call_command("import_images", str(tmp_path / "photos" / "collection"), "--timeout", "300", verbosity=0)
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 9
    expected = {}
    for name, query in queries.items():
        with query.open("rb") as photo:
            response = client.post("/api/search/", {"image": photo})
        assert response.status_code == 200
        expected[name] = _ranking(response.json())
        assert expected[name][0][3] == name and expected[name][0][2] > 30  # a real, verified match

    out = io.StringIO()
    call_command("backup", str(tmp_path / "backups"), stdout=out)
    (archive,) = (tmp_path / "backups").glob("landmarks-backup-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["images"] == 9 and manifest["features"] == "local"
    assert [c["rows"] for c in manifest["collections"]] == [9]
    assert "catalogue.json" in names and any(n.startswith("features/") for n in names)
    photos = [image.file.name for image in Image.objects.all()]
    assert all(f"media/{name}" in names for name in photos)

    fresh = tmp_path / "fresh"
    port = localstack.free_port()
    milvus = localstack.start_milvus(port, fresh / "milvus")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{fresh / 'landmarks.sqlite3'}",
        "MILVUS_URI": f"http://127.0.0.1:{port}",
        "MEDIA_ROOT": str(fresh / "media"),
        "FEATURES_ROOT": str(fresh / "features"),
        "VAR_DIR": str(fresh / "var"),
    }
    try:
        restored = _manage(env, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        assert "vectors: 9 in" in restored.stdout
        assert all((fresh / "media" / name).is_file() for name in photos)
        arguments = [str(part) for name, query in queries.items() for part in (name, query)]
        searched = subprocess.run(
            [sys.executable, "-c", SEARCH, *arguments], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert searched.returncode == 0, searched.stderr
        again = json.loads(searched.stdout.strip().splitlines()[-1])
        for name in queries:
            status, payload = again[name]
            assert status == 200, payload
            assert _ranking(payload) == expected[name], name

        # A second restore into the now full stack is refused, and changes nothing.
        refused = _manage(env, "restore", str(archive))
        assert refused.returncode != 0
        assert "restore needs an empty stack" in refused.stderr and "9 photos" in refused.stderr
    finally:
        localstack.stop(milvus)


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
