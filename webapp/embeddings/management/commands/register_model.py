"""manage.py register_model [--image-size N] [--activate]: a packaged model as a version.

The way a running deployment takes up a new served embedding (input size, backbone): the settings only
describe the *first* version of a new deployment, so a change to them needs its own version and collection,
re-indexed in the background before search switches (blue/green)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retrieval_core.search.served import replace_given
from webapp.embeddings.services import activate_version, configured_embedding, register_version


class Command(BaseCommand):
    help = (
        "Register the configured embedding model (EMBEDDING_* settings), with the changes given here, as a "
        "model version with its own collection; with --activate, re-index into it in the background and "
        "switch search to it when complete (blue/green)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backbone", help="timm backbone (default: EMBEDDING_BACKBONE)")
        parser.add_argument("--image-size", type=int, help="input long side in pixels (EMBEDDING_IMAGE_SIZE)")
        parser.add_argument("--gem-p", type=float, help="GeM exponent (EMBEDDING_GEM_P)")
        parser.add_argument("--activate", action="store_true", help="re-index and switch search to it")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["image_size"] is not None and options["image_size"] < 32:
            raise CommandError(f"--image-size {options['image_size']}: at least 32 pixels")
        config = replace_given(
            configured_embedding(),
            backbone=options["backbone"],
            image_size=options["image_size"],
            gem_p=options["gem_p"],
        )
        try:
            version = register_version(config)
        except (ValueError, RuntimeError) as error:  # an unknown backbone or weights that do not load
            raise CommandError(str(error)) from error
        self.stdout.write(f"{version} registered: collection {version.collection_name}, {version.dim} dims")
        if options["activate"]:
            try:
                activate_version(version)
            except ValueError as error:
                raise CommandError(str(error)) from error
            state = "active" if version.is_active else "re-indexing in the background, then active"
            self.stdout.write(f"{version}: {state}")
        else:
            self.stdout.write("activate it on the Models page (/models/) or with --activate")
