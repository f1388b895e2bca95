"""The Celery app, configured from Django settings under the CELERY_ namespace.

It is every thread's default app, so `webapp.dispatch` sends through it (``celery.current_app``) without
importing this package: Django loads it as the installed app ``workers`` in the web process too.
"""

import logging.config
import os

from celery import Celery
from celery.signals import setup_logging
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("landmarks")
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")


@setup_logging.connect(weak=False)
def _django_logging(**_: object) -> None:
    """Workers and beat log like the web server (``LOGGING``: plain or JSON lines with the request id)
    instead of Celery's own format."""
    logging.config.dictConfig(settings.LOGGING)
