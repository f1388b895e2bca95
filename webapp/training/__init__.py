"""Training runs (E2 classification, E3/E4 Siamese contrastive) on the gpu workers, and their rollout."""
