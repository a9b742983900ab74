"""Re-id models: timm backbone + pooling + neck + classifier head, and stage freezing."""

from pipeline.models.factory import ModelConfig, create_model, input_normalisation
from pipeline.models.freeze import freeze_stages, unfreeze
from pipeline.models.model import ModelOutput, ReIDModel

__all__ = ["ModelConfig", "ModelOutput", "ReIDModel", "create_model", "input_normalisation", "freeze_stages", "unfreeze"]
