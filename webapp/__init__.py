"""The Django project of the landmark photo search product."""

import django_stubs_ext

# Lets the admin and other generic Django classes be subscripted (``admin.ModelAdmin[Image]``), as their
# type stubs are; it changes nothing else at run time.
django_stubs_ext.monkeypatch()
