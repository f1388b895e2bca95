"""python manage.py issue_api_token USER [--name NAME]: print a new API token of USER (shown once)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.accounts.services import issue_token


class Command(BaseCommand):
    help = "Issue an API token for a user and print it (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args: object, **options: object) -> None:
        try:
            user = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist as error:
            raise CommandError(f"no user {options['username']!r}") from error
        self.stdout.write(issue_token(user, str(options["name"])).token)
