"""What a curator is told about the work an action hands to the workers: queued, or pending.

Dispatch never raises for a broker outage (the change is saved either way), so these messages, built from
what `webapp.dispatch.recording` saw after the commit, are where the curator learns of one.
"""

from __future__ import annotations

from django.contrib import messages

from webapp.dispatch import Outcome, Sends

Message = tuple[int, str]  # (django.contrib.messages level, text)


def reindexing_note(sends: Sends) -> Message:
    """Whether the re-indexing an action needs (restored or relabelled images) reached the task queue;
    the text is empty when the action needed none."""
    outcome = sends.outcome
    if outcome is Outcome.PENDING:
        return messages.WARNING, (
            "Re-indexing is pending: the task queue is unreachable, so the images wait until the broker is "
            "back and manage.py requeue_pending sends them."
        )
    if outcome is Outcome.QUEUED:
        return messages.SUCCESS, "Re-indexing queued."
    if outcome is Outcome.WAITING:
        return messages.SUCCESS, "Re-indexing will be queued once the change commits."
    return messages.SUCCESS, ""


def analysis_message(scope: str, images: int, sends: Sends) -> Message:
    """Whether the re-analysis of ``scope`` (a landmark, or the whole collection) reached the workers."""
    if sends.outcome is Outcome.PENDING:
        return messages.ERROR, (
            f"The analysis of {scope} was not queued: the task queue is unreachable. "
            "Run it again once the broker is back."
        )
    return messages.SUCCESS, f"Analysis of {scope} queued ({images} images)."
