"""Descriptor extractors that turn decoded images into vectors (global) or keypoints (local)."""
