"""bench/soak.py's judgement (what fails a soak) and its supervisor (a killed process comes back), without
the 30 minutes: the verdict over recorded answers and an agreement check, and a real Redis of the
Procfile killed with ``kill -9`` under bench/soak_stack.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from redis import Redis

from bench import soak
from bench.soak_stack import ProcfileStack, exec_form, procfile_commands
from webapp import localstack

ROOT = Path(__file__).resolve().parents[2]


def _records(*answers: tuple[int, bool]) -> list[soak.Record]:
    return [soak.Record("search", status, 0.1 * i, float(i), ra) for i, (status, ra) in enumerate(answers)]


def test_only_a_503_with_retry_after_is_an_acceptable_5xx() -> None:
    windows = [soak.Window("Milvus restart", 1.0, 2.0)]
    fine = _records((200, False), (503, True), (429, True), (404, False))
    summary = soak.summarise(fine, windows)
    assert soak.verdict(summary, soak.Agreement(), fine) == []
    assert summary["refused_503_in_fault_windows"] == 1
    for bad in [(500, False), (503, False), (502, False), (soak.NO_ANSWER, False), (soak.TIMED_OUT, False)]:
        records = [*fine, soak.Record("search", bad[0], 0.1, 1.5, bad[1])]  # in the window
        problems = soak.verdict(soak.summarise(records, windows), soak.Agreement(), records)
        assert len(problems) == 1 and problems[0].startswith("unacceptable answers"), (bad, problems)


def test_a_service_still_away_after_its_fault_window_fails_the_soak() -> None:
    windows = [soak.Window("Milvus restart", 10.0, 20.0)]
    away = soak.Record("search", 503, 0.01, 30.0, True, "The search index is not reachable right now")
    busy = soak.Record("search", 503, 0.01, 31.0, True, "The server is busy with other searches")
    back = soak.Record("similar", 200, 0.5, 14.5)
    records = [soak.Record("search", 503, 0.01, 12.0, True, "not reachable"), back, busy]
    summary = soak.summarise(records, windows)
    assert soak.verdict(summary, soak.Agreement(), records) == []
    assert summary["search_back_after_s"] == {"Milvus restart": 4.5}
    in_flight = soak.Record("search", 503, 0.5, 9.8, True, "not reachable")  # sent just before the fault
    assert soak.verdict(soak.summarise([*records, in_flight], windows), soak.Agreement(), records) == []
    records.append(away)
    problems = soak.verdict(soak.summarise(records, windows), soak.Agreement(), records)
    assert problems == ["503 (a service away) outside the fault windows: 1 (search)"]


def test_percentiles_count_successes_per_kind() -> None:
    records = [soak.Record("similar", 200, s, 0.0) for s in (0.1, 0.2, 0.3, 0.4)]
    records.append(soak.Record("similar", 409, 9.0, 0.0))
    records.append(soak.Record("curate", 302, 0.05, 0.0))
    kinds = soak.summarise(records, [])["kinds"]
    assert isinstance(kinds, dict)
    assert kinds["similar"]["statuses"] == {"200": 4, "409": 1}
    assert kinds["similar"]["ok"] == 4 and kinds["similar"]["p50_ms"] == 250.0
    assert kinds["curate"]["ok"] == 1


def test_disagreeing_stores_fail_the_soak() -> None:
    agreeing = soak.Agreement(catalogue_indexed=3, milvus_rows=3, indexed_with_features=3)
    assert agreeing.problems() == []
    one_short = soak.Agreement(
        catalogue_indexed=3, milvus_rows=2, indexed_with_features=3, missing_in_milvus=[7]
    )
    assert len(one_short.problems()) == 2
    lost = soak.Agreement(lost_uploads=[12])
    records = _records((201, False))
    problems = soak.verdict(soak.summarise(records, []), lost, records)
    assert problems == ["agreement: lost uploads: 1 (12)"]


def test_procfile_lines_run_as_the_program_itself() -> None:
    commands = procfile_commands(ROOT / "Procfile")
    assert {"web", "redis", "milvus", "worker-gpu", "worker-cpu", "beat"} <= set(commands)
    assert exec_form("A=${B:-1} C=2 celery -A workers") == "A=${B:-1} C=2 exec celery -A workers"
    assert exec_form("gunicorn x") == "exec gunicorn x"


@pytest.mark.services
def test_a_killed_process_is_restarted_on_its_data(tmp_path: Path) -> None:
    port = localstack.free_port()
    env = {**os.environ, "VAR_DIR": str(tmp_path), "REDIS_PORT": str(port)}
    stack = ProcfileStack(ROOT / "Procfile", env, tmp_path / "logs", names=["redis"])
    stack.start_all()
    try:
        localstack.wait_for_port(port)
        Redis(port=port).set("kept", "1")
        Redis(port=port).execute_command("BGREWRITEAOF")
        time.sleep(1.5)  # the AOF's fsync (everysec)
        first = int(Redis(port=port).info("server")["process_id"])
        assert stack.kill("redis") == first  # the server itself, not a shell around it
        localstack.wait_for_port(port)
        assert int(Redis(port=port).info("server")["process_id"]) != first
        assert Redis(port=port).get("kept") == b"1"
        assert stack.restarts() == {"redis": 1}
    finally:
        stack.stop()
    assert stack.pid("redis") is None
