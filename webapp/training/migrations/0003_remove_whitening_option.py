from django.db import migrations


def drop_whitening_option(apps, schema_editor):
    """Training no longer learns a whitening layer after GeM: its key leaves every stored run's config, so
    `TrainConfig.from_dict` (which refuses unknown keys) reads every run."""
    TrainingRun = apps.get_model("training", "TrainingRun")
    for run in TrainingRun.objects.only("config").iterator():
        if isinstance(run.config, dict) and "whitening" in run.config:
            del run.config["whitening"]
            run.save(update_fields=["config"])


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0002_mining_run'),
    ]

    operations = [
        migrations.RunPython(drop_whitening_option, migrations.RunPython.noop),
    ]
