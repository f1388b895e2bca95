from django.db import migrations

REMOVED = ("whiten", "dba", "dba_alpha")


def drop_removed_options(apps, schema_editor):
    """The global PCA-whitening and database-side augmentation are gone from the evaluation: their options
    leave every stored run, so `LadderOptions.from_dict` (which refuses unknown keys) reads every run."""
    EvaluationRun = apps.get_model("evaluation", "EvaluationRun")
    for run in EvaluationRun.objects.only("options").iterator():
        if isinstance(run.options, dict) and any(name in run.options for name in REMOVED):
            for name in REMOVED:
                run.options.pop(name, None)
            run.save(update_fields=["options"])


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(drop_removed_options, migrations.RunPython.noop),
    ]
