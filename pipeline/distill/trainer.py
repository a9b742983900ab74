"""Distillation (FastReID's knowledge-distillation module): a student recipe trained by the
training loop as usual (its own losses, schedule, checkpoints, resume) plus two teacher terms:
one on the classifier outputs (``distill.logit_loss``: KL, JS or L1) and one on the in-batch
similarities of the embeddings (``distill.embedding_loss``: similarity matching or PKT)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.losses.distill import js_distill, kl_distill, l1_distill, pkt_distill, similarity_matching
from pipeline.models import ModelOutput
from pipeline.core.sections import DistillConfig
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from pipeline.train.loop import Trainer
from pipeline.train.recipe import Recipe
from pipeline.distill.teacher import Teacher

# (student logits, teacher logits, temperature) -> loss; L1 compares the raw logits
LOGIT_LOSSES = {"kl": kl_distill, "js": js_distill, "l1": lambda student, teacher, _: l1_distill(student, teacher)}
EMBEDDING_LOSSES = {"mse": similarity_matching, "pkt": pkt_distill}  # (student embeddings, teacher cosines)


class DistillTrainer(Trainer):
    """``Trainer`` whose loss adds the teacher's terms (``train/distill_logit``, ``train/distill_embedding``)."""

    def __init__(self, recipe: Recipe, data: FoldData, info: DistInfo, *, cfg: DistillConfig, teachers: Sequence[Path]) -> None:
        super().__init__(recipe, data, info)
        self.cfg = cfg
        self.teacher = Teacher(teachers, num_classes=self.num_classes, device=self.device)

    def forward_loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], ModelOutput]:
        """The recipe's loss plus the teacher's terms on the same (augmented) batch."""
        total, parts, output = super().forward_loss(images, labels)
        cfg = self.cfg
        teacher_logits, teacher_similarities = self.teacher(images.to(self.device, non_blocking=True))
        terms = {}
        if cfg.uses_logits:
            assert output.logits is not None  # the trainer's model always has a classifier
            divergence = LOGIT_LOSSES[cfg.logit_loss](output.logits, teacher_logits, cfg.temperature)
            terms["distill_logit"] = cfg.logit_weight * divergence
        if cfg.embedding_weight > 0:
            student = self.model.retrieval_embedding(output)
            embedding_loss = EMBEDDING_LOSSES[cfg.embedding_loss](student, teacher_similarities)
            terms["distill_embedding"] = cfg.embedding_weight * embedding_loss
        for name, term in terms.items():
            total, parts = total + term, {**parts, name: float(term.detach())}
        return total, parts, output

    def describe(self) -> dict[str, Any]:
        # a retrained teacher (new bytes) must restart the student, as a changed recipe does
        knobs = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "out"}
        return {**super().describe(), "distill": knobs, "teachers": self.teacher.digests}
