"""Evaluation runs: the E1-E7 ladder (mAP@100 and friends) on a labelled collection, stored and compared."""
