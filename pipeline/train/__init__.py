"""Training: recipes, the fold-wise loop, AMP, schedules, checkpoint/resume, DDP."""

from pipeline.train.recipe import Recipe, TrainConfig, load_recipe
from pipeline.train.trained import load_trained_model

__all__ = ["Recipe", "TrainConfig", "load_recipe", "load_trained_model"]
