from django.contrib import admin
from django.utils.html import format_html

from webapp.catalog.models import Image, ImageExif, Landmark


@admin.register(Landmark)
class LandmarkAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "created_at"]
    search_fields = ["name", "external_id"]


class ImageExifInline(admin.StackedInline):
    model = ImageExif
    extra = 0


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["preview", "id", "original_name", "landmark", "split", "status", "width", "height"]
    list_filter = ["status", "split", "landmark"]
    search_fields = ["original_name", "source", "sha256", "landmark__name"]
    readonly_fields = ["sha256", "width", "height", "file_size", "format", "indexed_at", "index_error"]
    list_select_related = ["landmark"]
    inlines = [ImageExifInline]

    @admin.display(description="")
    def preview(self, image: Image) -> str:
        return format_html('<img src="{}" style="height:48px;border-radius:4px">', image.thumbnail_url)
