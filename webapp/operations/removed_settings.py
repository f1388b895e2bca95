"""A deployment that still sets the environment variable of a removed feature is told so.

Settings read only the variables the product serves; without this check, a variable left behind in a
deployment's environment (e.g. ``INDEX_DBA_NEIGHBOURS``) would be ignored without a word while its operator
believes the feature is on. ``manage.py migrate`` (run by ``make run`` and the deployments) and ``manage.py
check`` print the warning.
"""

from __future__ import annotations

import os
from typing import Any

from django.core import checks

REMOVED_VARIABLES = {
    "EMBEDDING_SCALES": "the multi-scale descriptor was removed; vectors are made at EMBEDDING_IMAGE_SIZE",
    "INDEX_DBA_NEIGHBOURS": "database-side augmentation (DBA) was removed; indexed vectors are not augmented",
    "INDEX_DBA_ALPHA": "database-side augmentation (DBA) was removed; indexed vectors are not augmented",
}
"""Variables of removed features, with what replaced them (the changelog has the measurements)."""


@checks.register(checks.Tags.compatibility)
def removed_variables_set(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Warning(
            f"{name} is set but no longer read: {why}",
            hint=f"unset {name} (see CHANGELOG.md)",
            id="operations.W001",
        )
        for name, why in REMOVED_VARIABLES.items()
        if name in os.environ
    ]
