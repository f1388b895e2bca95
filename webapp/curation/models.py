"""What the analysis found about each image, the curators' verdicts, and the audit trail of their fixes.

Analysis results are recomputed at will (``ImageAnalysis``); curator decisions (``ImageCuration``) are never
overwritten by analysis. Every curation change is an ``CurationAction`` with one ``CurationChange`` per image
holding the image's state before and after, which is what makes each action reversible.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.catalog.models import Image, Landmark


class ImageAnalysis(models.Model):
    """Quality signals, duplicates and label-noise evidence of one image (see curation.analysis)."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="analysis", primary_key=True)
    # Quality, from the pixels.
    is_grayscale = models.BooleanField(default=False)
    channel_spread = models.FloatField(
        null=True, blank=True, help_text="Mean max-min difference of the RGB channels (0 = grey)."
    )
    is_too_small = models.BooleanField(default=False)
    sharpness = models.FloatField(null=True, blank=True, help_text="Variance of the Laplacian.")
    is_blurred = models.BooleanField(default=False)
    quality_error = models.TextField(blank=True)
    exact_duplicate_of = models.ForeignKey(
        Image,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The earliest image with the same bytes.",
    )
    quality_analysed_at = models.DateTimeField(null=True, blank=True)
    # Neighbours, from the vector store.
    near_duplicate_of = models.ForeignKey(
        Image,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="An earlier image whose embedding is nearly identical.",
    )
    nearest_similarity = models.FloatField(null=True, blank=True)
    neighbour_disagreement = models.FloatField(
        null=True, blank=True, help_text="Share of the nearest labelled neighbours with another landmark."
    )
    centroid_similarity = models.FloatField(
        null=True, blank=True, help_text="Cosine to the mean of the other images of its landmark."
    )
    noise_score = models.FloatField(null=True, blank=True, db_index=True)
    is_suspected_noise = models.BooleanField(default=False)
    suggested_landmark = models.ForeignKey(
        Landmark,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The landmark most of its nearest neighbours carry, when that is not its own.",
    )
    neighbours_analysed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "image analyses"

    def __str__(self) -> str:
        return f"analysis of image {self.image_id}"

    @property
    def is_duplicate(self) -> bool:
        return self.exact_duplicate_of_id is not None or self.near_duplicate_of_id is not None


class ImageCuration(models.Model):
    """A curator's verdict on one image; absent means "no verdict yet"."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="curation", primary_key=True)
    label_confirmed = models.BooleanField(default=False)
    is_noise = models.BooleanField(default=False, help_text="Not a usable photo of its landmark.")
    exclude_from_training = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"curation of image {self.image_id}"


class CurationAction(models.Model):
    """One curator action on one or more images: who, when, what (the per-image changes)."""

    class Kind(models.TextChoices):
        RELABEL = "relabel", "relabel"
        CONFIRM_LABEL = "confirm_label", "confirm label"
        MARK_NOISE = "mark_noise", "mark as noise"
        EXCLUDE_FROM_TRAINING = "exclude_from_training", "exclude from training"
        REMOVE_FROM_INDEX = "remove_from_index", "remove from the index"
        RESTORE = "restore", "restore"
        UNDO = "undo", "undo"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="curation_actions"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    summary = models.CharField(max_length=500)
    note = models.CharField(max_length=500, blank=True)
    reverts = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reverted_by",
        help_text="The action this one undid.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.user or 'nobody'}: {self.summary}"

    @property
    def is_undone(self) -> bool:
        return hasattr(self, "reverted_by")


class CurationChange(models.Model):
    """The state of one image before and after an action (see curation.selectors.ImageState)."""

    action = models.ForeignKey(CurationAction, on_delete=models.CASCADE, related_name="changes")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="curation_changes")
    before = models.JSONField()
    after = models.JSONField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["action", "image"], name="one_change_per_image_and_action")
        ]

    def __str__(self) -> str:
        return f"image {self.image_id} in action {self.action_id}"
