"""Distillation (FastReID's knowledge-distillation module): a student recipe trained by the
training loop as usual (its own losses, schedule, checkpoints, resume) plus two teacher terms:
soft-label divergence on the classifier outputs and in-batch similarity matching."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from pipeline.losses.distill import js_distill, kl_distill, similarity_matching
from pipeline.models import ModelOutput
from pipeline.sections import DistillConfig
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from pipeline.train.loop import Trainer
from pipeline.train.recipe import Recipe
from pipeline.distill.teacher import Teacher

LOGIT_LOSSES = {"kl": kl_distill, "js": js_distill}


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
