"""Local evidence for search: SIFT/VLAD/CNN-patch features per image, re-ranking and score fusion."""
