"""Mutual learning (AlignedReID's DMLI): two recipes trained together on the same batches.

Each model keeps its own losses, optimiser and schedule; the pair adds the two-way KL between
their class probabilities and the metric mutual loss between their batch distance matrices
(pipeline/losses/mutual.py). ``fit_mutual`` trains one fold through ``loop.fit`` (so it
resumes like every train stage) into::

    <out>/joint/fold<F>/checkpoints/{last,best}.pt, live/   the pair's state, resumable
    <out>/<A>/fold<F>/checkpoints/best.pt                   model A alone, in train's layout
    <out>/<B>/fold<F>/checkpoints/best.pt                   model B alone

so extract reads A and B from ``<out>`` as it reads any model from ``train.out``. The best
epoch is the pair's: the mean of the two models' validation scores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import ConfigError
from pipeline.losses.mutual import mutual_kl, mutual_metric
from pipeline.core.params import fold_dir
from pipeline.core.sections import MutualConfig, split_pair
from pipeline.train import distributed as ddp
from pipeline.train.checkpoint import load_checkpoint, save_checkpoint
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from pipeline.train.loop import EpochCallback, Trainer, fit
from pipeline.train.recipe import Recipe

JOINT = "joint"  # <out>/joint/fold<F>: the pair's own training state
# the batch (and so the schedule) is shared: these train settings must agree
SHARED_TRAIN_KEYS = ("epochs", "p", "k", "input_size", "seed")


def check_compatible(recipe: Recipe, partner: Recipe) -> None:
    """The two recipes share every batch: their batch and schedule settings must agree."""
    for key in SHARED_TRAIN_KEYS:
        if getattr(recipe.train, key) != getattr(partner.train, key):
            raise ConfigError(
                f"mutual learning: train.{key} differs between the two recipes "
                f"({getattr(recipe.train, key)} vs {getattr(partner.train, key)}); the pair shares its batches"
            )
    for amp in (recipe.train.amp, partner.train.amp):
        if amp == "fp16":  # one backward through two models needs one loss scale
            raise ConfigError("mutual learning: train.amp fp16 is not supported (use bf16 or none)")
    for r in (recipe, partner):
        if r.loss.ce_weight == 0:
            raise ConfigError("mutual learning: loss.ce_weight must be > 0 in both recipes (the KL term needs the classifiers)")


class MutualTrainer(Trainer):
    """Trainer of model A that also trains its partner B on the same batches."""

    def __init__(
        self, recipe: Recipe, data: FoldData, info: DistInfo, *, partner: Recipe, names: tuple[str, str], cfg: MutualConfig
    ) -> None:
        check_compatible(recipe, partner)
        super().__init__(recipe, data, info)
        self.partner = Trainer(partner, data, info)
        self.names, self.cfg = names, cfg

    def describe(self) -> dict[str, Any]:
        return {"model": super().describe(), "partner": self.partner.describe(), "names": list(self.names),
                "mutual": dataclasses.asdict(self.cfg)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "partner": self.partner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.partner.load_state_dict(state["partner"])
        super().load_state_dict(state)  # A's RNG state last: it is the one training continues from

    def train_epoch(self, epoch: int) -> dict[str, float]:
        unfreeze_at = self.partner.recipe.train.unfreeze_epoch
        if self.partner.frozen and unfreeze_at is not None and epoch >= unfreeze_at:
            self.partner.unfreeze()
        self.partner.net.train()
        return super().train_epoch(epoch)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float] | None:
        total_a, parts_a, out_a = self.forward_loss(images, labels)
        total_b, parts_b, out_b = self.partner.forward_loss(images, labels)
        kl = mutual_kl(out_a.logits, out_b.logits)
        metric = mutual_metric(out_a.features, out_b.features)
        total = total_a + total_b + self.cfg.kl_weight * kl + self.cfg.metric_weight * metric
        self.zero_grad()
        self.partner.zero_grad()
        finite = ddp.all_finite(total, self.info)
        if finite:
            total.backward()  # both scalers are disabled: fp16 is refused
            self.update()
            self.partner.update()
        self.partner.step += 1  # the loop steps A's counter and schedule, the partner's are stepped here
        self.partner.scheduler.step()
        if not finite:
            return None
        a, b = self.names
        return {
            "loss": float(total.detach()), "mutual_kl": float(kl.detach()), "mutual_metric": float(metric.detach()),
            **{f"{a}/{k}": float(v) for k, v in parts_a.items()}, **{f"{b}/{k}": float(v) for k, v in parts_b.items()},
        }

    def evaluate(self) -> dict[str, float]:
        scores = dict(zip(self.names, (super().evaluate(), self.partner.evaluate())))
        if not all(scores.values()):  # no held-out identities: best = last, as in fit
            return {}
        out = {f"{name}/{k}": v for name, entry in scores.items() for k, v in entry.items()}
        out["val/score"] = sum(entry["val/score"] for entry in scores.values()) / 2  # the pair's best epoch
        return out

    def weights(self, meta: dict[str, Any]) -> dict[str, Any]:
        partner_meta = {**self.partner.meta(self.names[1], meta["fold"]), "epoch": meta["epoch"], "best_score": meta["best_score"]}
        return {**super().weights(meta), "partner": self.partner.weights(partner_meta)}


def fit_mutual(
    recipe: Recipe, partner: Recipe, data: FoldData, out: Path, *, pair: str, fold: int, cfg: MutualConfig,
    info: DistInfo | None = None, on_epoch_end: EpochCallback | None = None,
) -> dict[str, float]:
    """Train (or resume) the pair on one fold, then write each model's best weights apart."""
    names = split_pair(pair)

    def make_trainer(r: Recipe, d: FoldData, i: DistInfo) -> MutualTrainer:
        return MutualTrainer(r, d, i, partner=partner, names=names, cfg=cfg)

    joint = fold_dir(out, JOINT, fold)
    summary = fit(recipe, data, joint.root, model_name=names[0], fold=fold, info=info,
                  on_epoch_end=on_epoch_end, make_trainer=make_trainer)
    if info is None or info.is_main:
        best = load_checkpoint(joint.best)
        partner_weights = best.pop("partner")
        for name, weights in zip(names, (best, partner_weights)):
            save_checkpoint(fold_dir(out, name, fold).best, weights)
    return summary
