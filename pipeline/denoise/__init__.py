"""Denoising: per-image noise estimate (estimate), repair (repair), and the whole dataset's
repaired copy with its report (dataset: the denoise stage's call)."""
