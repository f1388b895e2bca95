from django.contrib import admin

from webapp.embeddings.models import EmbeddingModelVersion


@admin.register(EmbeddingModelVersion)
class EmbeddingModelVersionAdmin(admin.ModelAdmin[EmbeddingModelVersion]):
    list_display = ["name", "backbone", "image_size", "dim", "collection_name", "is_active", "created_at"]
    readonly_fields = ["collection_name", "dim", "created_at"]
