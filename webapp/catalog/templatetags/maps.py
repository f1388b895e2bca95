"""``{% image_map image %}``: the offline SVG map of where an image was taken (empty without GPS)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from webapp.catalog.maps import MapPoint, position_map_svg
from webapp.catalog.models import Image

register = template.Library()


@register.simple_tag
def image_map(image: Image) -> SafeString:
    exif = getattr(image, "exif", None)
    if exif is None or exif.latitude is None or exif.longitude is None:
        return mark_safe("")
    point = MapPoint(exif.latitude, exif.longitude, str(image))
    return mark_safe(position_map_svg([point]))  # numbers and escaped labels only
