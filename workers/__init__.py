"""Celery app and tasks: thin wrappers around retrieval_core and the webapp's services."""

from workers.celery import app

__all__ = ["app"]
