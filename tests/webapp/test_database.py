"""The suite really runs on the database DATABASE_URL names (SQLite by default, PostgreSQL in make test)."""

import os

import pytest
from django.db import connection


@pytest.mark.django_db
def test_connected_to_the_configured_database_engine() -> None:
    scheme = os.environ["DATABASE_URL"].split(":", 1)[0]
    expected = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}[scheme]
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
