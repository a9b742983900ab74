"""Validation judges epochs on the pixels the submission's features are extracted from."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.infer.tta import extract_features
from pipeline.core.sections import TTAConfig
from pipeline.train.fold_score import validation_scores


class Flatten(nn.Module):
    """A 'model' whose embedding is its input pixels: shows exactly what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # extraction reads the device from a parameter

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_validation_resizes_like_extraction_not_like_the_old_cv2_path():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 40, 40, 3), dtype=np.uint8)
    rows = np.array([4, 1, 3])
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    got = extract_features(Flatten(), images[rows], input_size=32, mean=mean, std=std, cfg=TTAConfig(flip=False))

    x = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    np.testing.assert_allclose(got, F.normalize(x.flatten(1), dim=1).numpy(), atol=1e-6)

    area = np.stack([cv2.resize(i, (32, 32), interpolation=cv2.INTER_AREA) for i in images[rows]])
    y = (torch.from_numpy(area).permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert np.abs(got - F.normalize(y.flatten(1), dim=1).numpy()).max() > 1e-3


def test_train_mode_is_restored_and_scores_are_exact_on_a_hand_case():
    # three identities, two images each, as +-1 patterns after normalisation: top half, left
    # half, checkerboard; they are orthogonal, so a flattening model ranks perfectly
    patterns = np.zeros((3, 8, 8), dtype=np.uint8)
    patterns[0, :4] = 255
    patterns[1, :, :4] = 255
    patterns[2] = (np.indices((8, 8)).sum(axis=0) % 2) * 255
    images = np.repeat(np.repeat(patterns, 2, axis=0)[..., None], 3, axis=3)
    labels = np.array(["a", "a", "b", "b", "c", "c"])
    model = Flatten().train()
    scores = validation_scores(model, images, labels, np.array([0, 2, 4]), np.array([1, 3, 5]), size=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert model.training
    assert scores == {"top1": 1.0, "map@10": 1.0, "score": 1.0}
