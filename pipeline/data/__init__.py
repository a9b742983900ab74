"""Data: the canonical layout and importers, image reading, denoising, rescale-pad cache, folds, samplers, transforms, the demo generator."""
