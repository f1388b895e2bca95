"""Embedding model versions and the vector index that each one owns."""
