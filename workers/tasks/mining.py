"""Mining for the ``self`` recipe: candidates (routed to ``gpu``: a folder is embedded first) and one
verification task per chunk (``cpu``). Both are idempotent: a chunk already saved is not verified again,
and only the task that completes the last chunk summarises and queues the training."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from webapp import task_names
from webapp.training import mining_stages as mining
from workers.tasks.progress import reporter


@shared_task(name=task_names.MINE_PREPARE, bind=True, acks_late=True)
def prepare_mining(self: Task[Any, Any], mining_id: int) -> dict[str, object]:
    """Features (folder collections), candidate pairs, then one verify task per chunk."""
    report = reporter(self, "mining candidates")
    state = mining.prepare(mining_id, progress=lambda stage, done, total: report(done, total))
    return {"mining": mining_id, "chunks": state.n_chunks if state is not None else 0}


@shared_task(name=task_names.MINE_VERIFY, bind=True, acks_late=True)
def verify_chunk(self: Task[Any, Any], mining_id: int, number: int) -> dict[str, object]:
    """Verify one chunk; the last one summarises and queues the training run."""
    finished = mining.verify(mining_id, number)
    return {"mining": mining_id, "chunk": number, "finished": finished}
