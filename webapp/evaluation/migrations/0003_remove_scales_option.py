from django.db import migrations


def drop_scales_option(apps, schema_editor):
    """The multi-scale global descriptor is gone from the evaluation: its option leaves every stored run,
    so `LadderOptions.from_dict` (which refuses unknown keys) reads every run."""
    EvaluationRun = apps.get_model("evaluation", "EvaluationRun")
    for run in EvaluationRun.objects.only("options").iterator():
        if isinstance(run.options, dict) and "scales" in run.options:
            del run.options["scales"]
            run.save(update_fields=["options"])


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0002_remove_whitening_and_dba_options'),
    ]

    operations = [
        migrations.RunPython(drop_scales_option, migrations.RunPython.noop),
    ]
