"""The teacher of a distillation run: one trained model, or several whose ensemble the fuse
stage ranks by (mean of cosine similarities), run frozen on the student's batches."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.data.torch_data import normalize_batch
from pipeline.core.errors import DataError
from pipeline.infer.tta import scale_batch
from pipeline.losses.distill import cosine_similarities
from pipeline.models import ReIDModel
from pipeline.train.trained import load_trained_model


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Teacher(nn.Module):
    """Frozen fold models; ``forward(uint8 images)`` gives (mean logits, mean cosine matrix).

    Each model sees the batch with its own normalisation and input size (from its checkpoint),
    so a teacher trained at 128 px teaches a student that trains at 64 px. Averaging the cosine
    matrices is the fused ensemble's similarity (equal weights); averaging logits gives the
    ensemble's soft labels.
    """

    def __init__(self, checkpoints: Sequence[Path], *, num_classes: int, device: torch.device) -> None:
        super().__init__()
        if not checkpoints:
            raise DataError("distill: no teacher checkpoint given")
        models, self.metas = [], []
        for path in checkpoints:
            model, meta = load_trained_model(path, device=device)
            # the logits' classes are the fold's training identities in sorted order: a teacher
            # of another fold or dataset has other classes, even where their count agrees
            if model.num_classes != num_classes:
                raise DataError(
                    f"{path}: num_classes is {model.num_classes} but the student's fold has {num_classes} "
                    "training identities: a teacher of another fold or dataset"
                )
            models.append(model.requires_grad_(False))
            self.metas.append(meta)
        self.models = nn.ModuleList(models)
        self.digests = [file_digest(Path(p)) for p in checkpoints]

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # always eval: BatchNorm statistics and dropout stay fixed

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        logits, similarities = [], []
        for model, meta in zip(self.models, self.metas):
            assert isinstance(model, ReIDModel)
            x = scale_batch(normalize_batch(images, meta["mean"], meta["std"]), meta["input_size"], 1.0)
            output = model(x)
            similarities.append(cosine_similarities(model.retrieval_embedding(output)))
            logits.append(output.logits.float())  # a training checkpoint always has a classifier
        return torch.stack(logits).mean(dim=0), torch.stack(similarities).mean(dim=0)
