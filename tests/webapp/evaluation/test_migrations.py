"""Stored evaluation runs keep loading after removed options (global PCA-whitening, DBA, multi-scale) left
`LadderOptions`."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from retrieval_core.eval.options import LadderOptions

BEFORE = ("evaluation", "0001_initial")
AFTER = ("evaluation", "0002_remove_whitening_and_dba_options")


@pytest.mark.django_db(transaction=True)
def test_a_stored_run_with_removed_options_migrates_to_options_that_load() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps.get_model("evaluation", "EvaluationRun")
    stored = {**LadderOptions(top_k=50).to_dict(), "whiten": 64, "dba": 2, "dba_alpha": 3.0}
    pk = old.objects.create(root="/collection", options=stored).pk
    with pytest.raises(ValueError, match="dba, dba_alpha, whiten"):
        LadderOptions.from_dict(old.objects.get(pk=pk).options)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state([AFTER]).apps.get_model("evaluation", "EvaluationRun")
    assert LadderOptions.from_dict(new.objects.get(pk=pk).options) == LadderOptions(top_k=50)


@pytest.mark.django_db(transaction=True)
def test_a_stored_run_with_the_multi_scale_option_migrates_to_options_that_load() -> None:
    before = ("evaluation", "0002_remove_whitening_and_dba_options")
    after = ("evaluation", "0003_remove_scales_option")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps.get_model("evaluation", "EvaluationRun")
    pk = old.objects.create(root="/c", options={**LadderOptions(top_k=50).to_dict(), "scales": [0.707]}).pk
    with pytest.raises(ValueError, match="scales"):
        LadderOptions.from_dict(old.objects.get(pk=pk).options)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state([after]).apps.get_model("evaluation", "EvaluationRun")
    assert LadderOptions.from_dict(new.objects.get(pk=pk).options) == LadderOptions(top_k=50)
