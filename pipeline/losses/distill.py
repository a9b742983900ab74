"""Knowledge-distillation terms (FastReID's distillation module): soft-label divergence between
the student's and the teacher's classifier outputs, and pairwise-similarity matching of their
embeddings within the batch.

Written here: pytorch-metric-learning has no distillation losses, and torch's ``kl_div`` is
used for the divergences themselves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def kl_distill(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times T^2.

    The T^2 factor (Hinton et al. 2015) keeps the gradient's scale independent of T, so the
    term's weight need not change with the temperature. Mean over the batch.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * temperature**2


def js_distill(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Jensen-Shannon divergence of the softened distributions, times T^2; symmetric, at most log 2 * T^2."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    # log of the mixture m = (p + q) / 2, computed in log space for stability
    log_mixture = torch.logsumexp(torch.stack([log_student, log_teacher]), dim=0) - math.log(2.0)
    divergence = 0.5 * (
        F.kl_div(log_mixture, log_teacher, reduction="batchmean", log_target=True)
        + F.kl_div(log_mixture, log_student, reduction="batchmean", log_target=True)
    )
    return divergence * temperature**2


def cosine_similarities(embeddings: Tensor) -> Tensor:
    """(B, B) cosine similarities of the rows of ``embeddings`` (B, D)."""
    unit = F.normalize(embeddings.float(), dim=1)
    return unit @ unit.T


def similarity_matching(student_embeddings: Tensor, teacher_similarities: Tensor) -> Tensor:
    """Mean squared difference of the student's in-batch cosine similarities from the teacher's.

    Cosines make it independent of each embedding's scale and of the two models' dimensions
    (a 1280-d teacher teaches a 512-d student); the teacher's matrix may be an ensemble's
    (the mean of its models' matrices, which is what fused cosine distances rank by).
    """
    return F.mse_loss(cosine_similarities(student_embeddings), teacher_similarities.float())
