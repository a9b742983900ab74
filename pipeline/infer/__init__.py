"""Inference: TTA feature extraction and the feature store."""
