"""Landmarks, their images, EXIF metadata and the import of collections."""
