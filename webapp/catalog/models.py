"""Landmarks and their images: what the collection holds, independent of any embedding model."""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class Landmark(models.Model):
    name = models.CharField(max_length=255, unique=True)
    external_id = models.CharField(
        max_length=64, blank=True, help_text="Identifier in the source dataset (e.g. a GLDv2 landmark_id)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    class Split(models.TextChoices):
        NONE = "", "unassigned"
        TRAIN = "train", "train"
        VALIDATION = "validation", "validation"
        QUERY = "query", "query"
        INDEX = "index", "index"

    class Status(models.TextChoices):
        PENDING = "pending", "waiting to be indexed"
        INDEXED = "indexed", "indexed"
        FAILED = "failed", "failed"
        EXCLUDED = "excluded", "removed from the index"  # by a curator; re-imports leave it out

    file = models.FileField(upload_to="images/", max_length=500)
    thumbnail = models.FileField(upload_to="thumbs/", max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    source = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path inside the imported collection; empty for photos uploaded in the web UI.",
    )
    original_name = models.CharField(max_length=255, blank=True)
    landmark = models.ForeignKey(
        Landmark, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    split = models.CharField(max_length=16, choices=Split.choices, blank=True, default=Split.NONE)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    index_error = models.TextField(blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    file_size = models.PositiveBigIntegerField()
    format = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    local_features_at = models.DateTimeField(
        null=True, blank=True, help_text="When SIFT (and VLAD) for re-ranking were last stored."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["sha256", "source"], name="image_unique_content_per_source")
        ]

    def __str__(self) -> str:
        return self.original_name or self.file.name

    @property
    def thumbnail_url(self) -> str:
        return (self.thumbnail or self.file).url

    def get_absolute_url(self) -> str:
        return reverse("search:image-detail", args=[self.pk])  # the page lives in the search app


class ImageExif(models.Model):
    """The EXIF fields that matter for landmark photos; absent or broken EXIF leaves them empty."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="exif", primary_key=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    camera_make = models.CharField(max_length=128, blank=True)
    camera_model = models.CharField(max_length=128, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    orientation = models.PositiveSmallIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"EXIF of image {self.image_id}"
