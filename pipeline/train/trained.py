"""Load a trained model back from a checkpoint (for feature extraction)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.models import ModelConfig, ReIDModel, create_model
from pipeline.train.checkpoint import load_checkpoint


def load_trained_model(
    checkpoint_path: str | Path, device: str | torch.device = "cpu"
) -> tuple[ReIDModel, dict[str, Any]]:
    """The eval-mode model of ``best.pt`` / ``last.pt`` and its meta.

    meta holds at least ``input_size``, ``mean``, ``std`` (the backbone's normalisation),
    ``model_name``, ``fold``, ``best_score`` (None without validation), ``epoch``.
    The backbone is built without pretrained weights: the checkpoint brings all of them.
    """
    state = load_checkpoint(checkpoint_path)
    try:
        config = from_mapping(ModelConfig, state["recipe"]["model"], str(checkpoint_path), "recipe.model")
        num_classes, weights, meta = int(state["num_classes"]), state["model"], dict(state["meta"])
    except KeyError as error:
        raise DataError(f"{checkpoint_path}: not a training checkpoint (no {error})") from error
    config = dataclasses.replace(config, pretrained=False, pretrained_file=None)
    model = create_model(config, num_classes)
    model.load_state_dict(weights)
    return model.to(device).eval(), meta


def load_weights(model: ReIDModel, checkpoint_path: str | Path) -> None:
    """Load the model weights of a training checkpoint into ``model`` (a second training stage):
    every tensor must match, so the checkpoint must come from the same model on the same fold."""
    state = load_checkpoint(checkpoint_path)
    if "model" not in state:
        raise DataError(f"{checkpoint_path}: not a training checkpoint (no 'model')")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ConfigError(f"{checkpoint_path}: its weights do not fit this recipe's model (same model and fold needed): {error}") from error
