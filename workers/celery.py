"""The Celery app, configured from Django settings under the CELERY_ namespace.

It is every thread's default app, so `webapp.dispatch` sends through it (``celery.current_app``) without
importing this package: Django loads it as the installed app ``workers`` in the web process too.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("landmarks")
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")
