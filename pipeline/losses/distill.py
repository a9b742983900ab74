"""Knowledge-distillation terms (FastReID's distillation module): soft-label divergence (KL,
JS) or the L1 distance between the student's and the teacher's classifier outputs, and, on
their embeddings within the batch, pairwise-similarity matching or probabilistic knowledge
transfer (PKT). FastReID's paper states its loss as L1 on the logits plus PKT.

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


def l1_distill(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean absolute difference of the raw logits (FastReID's logit term; no temperature).

    The mean runs over classes too, so the term's scale does not grow with the number of
    training identities and one weight serves every fold and dataset.
    """
    return F.l1_loss(student_logits.float(), teacher_logits.float())


def kernel_distributions(similarities: Tensor) -> Tensor:
    """Rows of the cosine kernel (cos + 1) / 2, each normalised to sum to 1: for every image of
    the batch, the probability of each image (itself included) being its neighbour."""
    kernel = (similarities.float() + 1.0) / 2.0
    return kernel / kernel.sum(dim=1, keepdim=True)


def pkt_distill(student_embeddings: Tensor, teacher_similarities: Tensor, eps: float = 1e-7) -> Tensor:
    """Probabilistic knowledge transfer (Passalis and Tefas, ECCV 2018), as FastReID uses it:
    KL(teacher || student) of the two models' ``kernel_distributions`` over the batch, summed
    over each row and averaged over the rows.

    fast-reid's code takes the mean over all B x B entries instead, the same value divided by
    the batch size B; the per-row mean here is a KL divergence whatever B is. Like
    ``similarity_matching`` it sees only cosines, so the models' dimensions may differ and the
    teacher's matrix may be an ensemble's mean. ``eps`` guards the log where a kernel entry is
    0 (two opposite embeddings).
    """
    student = kernel_distributions(cosine_similarities(student_embeddings))
    teacher = kernel_distributions(teacher_similarities)
    return (teacher * torch.log((teacher + eps) / (student + eps))).sum(dim=1).mean()
