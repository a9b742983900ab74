"""Distillation (FastReID's knowledge-distillation module): a student recipe trained by the
training loop as usual (its own losses, schedule, checkpoints, resume) plus two teacher terms:
soft-label divergence on the classifier outputs and in-batch similarity matching."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from pipeline.losses.distill import js_distill, kl_distill, similarity_matching
from pipeline.models import ModelOutput
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from pipeline.train.loop import Trainer
from pipeline.train.recipe import Recipe
from pipeline.train.teacher import Teacher

LOGIT_LOSSES = {"kl": kl_distill, "js": js_distill}


@dataclass(frozen=True)
class DistillConfig:
    """params.yaml section ``distill``."""

    student: str  # a recipe in train.recipes (e.g. lite0 at a smaller input)
    teachers: list[str]  # models of train.models; several: their ensemble (mean cosine similarities, mean logits)
    out: str = "outputs/distill"  # <out>/<student>/fold<f>/{checkpoints,live}, as train writes
    logit_loss: Literal["kl", "js", "none"] = "kl"
    temperature: float = 4.0
    logit_weight: float = 1.0
    embedding_weight: float = 1.0  # in-batch cosine-similarity matching

    def validate(self) -> None:
        if not self.teachers or len(set(self.teachers)) != len(self.teachers):
            raise ValueError("teachers must name at least one model, without repeats")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.logit_weight < 0 or self.embedding_weight < 0:
            raise ValueError("logit_weight and embedding_weight must be >= 0")
        if (self.logit_loss == "none" or self.logit_weight == 0) and self.embedding_weight == 0:
            raise ValueError("no distillation term: set logit_loss and logit_weight, or embedding_weight")

    @property
    def uses_logits(self) -> bool:
        return self.logit_loss != "none" and self.logit_weight > 0


class DistillTrainer(Trainer):
    """``Trainer`` whose loss adds the teacher's terms (``train/distill_logit``, ``train/distill_embedding``)."""

    def __init__(self, recipe: Recipe, data: FoldData, info: DistInfo, *, cfg: DistillConfig, teachers: Sequence[Path]) -> None:
        super().__init__(recipe, data, info)
        self.cfg = cfg
        self.teacher = Teacher(teachers, num_classes=self.num_classes, device=self.device)

    def extra_losses(self, images: torch.Tensor, output: ModelOutput) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        teacher_logits, teacher_similarities = self.teacher(images)
        terms = {}
        if cfg.uses_logits:
            assert output.logits is not None  # the trainer's model always has a classifier
            divergence = LOGIT_LOSSES[cfg.logit_loss](output.logits, teacher_logits, cfg.temperature)
            terms["distill_logit"] = cfg.logit_weight * divergence
        if cfg.embedding_weight > 0:
            student = self.model.retrieval_embedding(output)
            terms["distill_embedding"] = cfg.embedding_weight * similarity_matching(student, teacher_similarities)
        return terms

    def fingerprint_extra(self) -> str:
        # a retrained teacher (new bytes) must restart the student, as a changed recipe does
        knobs = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "out"}
        return json.dumps({"distill": knobs, "teachers": self.teacher.digests}, sort_keys=True)
