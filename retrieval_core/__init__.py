"""Landmark retrieval library: image decoding, CNN embeddings, vector index, re-ranking.

Plain Python/PyTorch; it never imports the web app, the task queue or their settings.
"""
