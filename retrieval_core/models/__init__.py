"""Networks that turn images into descriptors (backbones, pooling layers, weight loading)."""
