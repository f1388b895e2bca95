"""Stored training runs keep loading after the whitening option left `TrainConfig`."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from retrieval_core.training import TrainConfig

BEFORE, AFTER = ("training", "0002_mining_run"), ("training", "0003_remove_whitening_option")


@pytest.mark.django_db(transaction=True)
def test_a_stored_run_with_the_whitening_option_migrates_to_a_config_that_loads() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps.get_model("training", "TrainingRun")
    stored = {**TrainConfig(epochs=3).to_dict(), "whitening": True}
    pk = old.objects.create(config=stored).pk
    with pytest.raises(ValueError, match="whitening"):
        TrainConfig.from_dict(old.objects.get(pk=pk).config)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state([AFTER]).apps.get_model("training", "TrainingRun")
    assert TrainConfig.from_dict(new.objects.get(pk=pk).config) == TrainConfig(epochs=3)
