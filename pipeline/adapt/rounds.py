"""Rounds of cluster-then-fine-tune on the unlabelled target (the clustering baseline of SpCL / MMT).

Round r = 1 .. rounds:

1. the current model (round 1: the trained source model) embeds every target image, one plain view;
2. DBSCAN on the k-reciprocal Jaccard distance gives pseudo-labels (``pipeline.adapt.cluster``);
   ``eps`` is set in round 1 (configured, or MMT's rho rule) and kept, as MMT does, so every
   round is clustered with the same radius; fewer than ``min_clusters`` clusters end the rounds
   there, the model that round started from being the result (too few pseudo-identities to
   fine-tune on: benchmarks/results/adapt_ilid.md);
3. the noise images are left out and the training loop fine-tunes on the rest: the source
   recipe's PK sampler, losses and augmentation, every weight from the current model except the
   classifier, which is new, one row per cluster, started at the L2-normalised cluster centres
   (MMT's initialisation); ``epochs`` epochs at a constant learning rate, without warm-up.

Layout under ``out`` (train's layout, so extract reads it as any trained fold model)::

    out/checkpoints/best.pt                the last trained round's model (the source's if none)
    out/rounds/round<r>/                   that round's training run (``fit``'s layout)
    out/rounds/round<r>/pseudo_labels.npy  its pseudo-labels: row i = target image i, -1 = noise

A rerun resumes: a finished round's run is recognised by ``fit``'s fingerprint (the weights it
starts from, the pseudo-labels, the images), the features being recomputed exactly on the CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.adapt.cluster import cluster_features
from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.infer.tta import extract_features
from pipeline.core.io_utils import atomic_path
from pipeline.core.params import FoldDir
from pipeline.core.sections import AdaptConfig, TTAConfig
from pipeline.train.checkpoint import load_checkpoint, save_checkpoint
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from pipeline.train.loop import Trainer, fit
from pipeline.train.recipe import Recipe
from pipeline.train.trained import load_trained_model

log = logging.getLogger(__name__)

# ReIDModel's classifier and Batch DropBlock's (pipeline/models): the weights sized by the classes
CLASSIFIERS = ("head.", "batch_drop.head.")
NO_ROWS = np.zeros(0, dtype=np.int64)


def round_dir(out: FoldDir, round_number: int) -> FoldDir:
    """Round ``round_number``'s training run (1-based), in ``fit``'s layout."""
    return FoldDir(out.root / "rounds" / f"round{round_number}")


def pseudo_labels_path(out: FoldDir, round_number: int) -> Path:
    return round_dir(out, round_number).root / "pseudo_labels.npy"


def load_all_but_classifiers(model: torch.nn.Module, checkpoint: Path) -> None:
    """Every weight of a training checkpoint except the classifiers (sized by its classes)."""
    state = load_checkpoint(checkpoint)
    if "model" not in state:
        raise DataError(f"{checkpoint}: not a training checkpoint (no 'model')")
    weights = {k: v for k, v in state["model"].items() if not k.startswith(CLASSIFIERS)}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise ConfigError(f"{checkpoint}: its weights do not fit the model being adapted: {error}") from error
    missing = [k for k in missing if not k.startswith(CLASSIFIERS)]
    if missing or unexpected:
        raise ConfigError(f"{checkpoint}: its weights do not fit the model being adapted "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


class AdaptTrainer(Trainer):
    """The plain trainer on one round's pseudo-labels, starting from ``start``'s weights, with a
    fresh classifier whose rows are the normalised centres of ``features`` (N, D) per cluster."""

    def __init__(self, recipe: Recipe, data: FoldData, info: DistInfo, *, start: Path, features: np.ndarray) -> None:
        super().__init__(recipe, data, info)
        self.start = Path(start)
        load_all_but_classifiers(self.model, self.start)
        # the trainer's class ids are the sorted unique labels: the centres follow that order
        _, class_ids = np.unique(data.labels[data.train_rows], return_inverse=True)
        sums = np.zeros((self.num_classes, features.shape[1]), dtype=np.float64)
        np.add.at(sums, class_ids, features[data.train_rows])
        assert self.model.head is not None  # a model built with classes always has one
        with torch.no_grad():
            self.model.head.weight.copy_(F.normalize(torch.from_numpy(sums).float(), dim=1))

    def describe(self) -> dict[str, Any]:
        # other starting weights (a retrained source, an earlier round redone) restart the round
        return {**super().describe(), "start_weights": hashlib.blake2b(self.start.read_bytes(), digest_size=16).hexdigest()}


def round_recipe(recipe: Recipe, meta: dict[str, Any], cfg: AdaptConfig) -> Recipe:
    """The source recipe as a round trains it: weights from the checkpoint (no pretrained file,
    its normalisation kept), nothing frozen, ``cfg.epochs`` at a constant rate, no validation."""
    model = dataclasses.replace(
        recipe.model, pretrained=False, pretrained_file=None, input_mean=tuple(meta["mean"]),
        input_std=tuple(meta["std"]), frozen_stages=0,
    )
    train = dataclasses.replace(
        recipe.train, epochs=cfg.epochs, eval_every=cfg.epochs, unfreeze_epoch=None, init_from=None, max_per_identity=None,
    )
    optim = dataclasses.replace(
        recipe.optim, lr=cfg.lr or recipe.optim.lr, warmup_epochs=0.0, schedule="multistep", milestones=[], min_lr=0.0,
    )
    return dataclasses.replace(recipe, model=model, train=train, optim=optim)


def target_features(checkpoint: Path, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """L2-normalised retrieval features (N, D) of the target images, one plain view each."""
    model, meta = load_trained_model(checkpoint, device)
    return extract_features(model, images, input_size=meta["input_size"], mean=meta["mean"], std=meta["std"],
                            cfg=TTAConfig(flip=False, batch_size=batch_size), description="adapt: target")


def adapt_model(
    source: Path,
    images: np.ndarray,
    cfg: AdaptConfig,
    out: FoldDir,
    *,
    model_name: str,
    fold: int,
    info: DistInfo | None = None,
) -> list[dict[str, float]]:
    """Adapt the trained model ``source`` (a best.pt) to ``images`` (N, H, W, 3) uint8 without
    labels; writes ``out`` (module docstring) and returns each round's record: clusters, noise
    fraction, images kept, largest cluster, eps and the round's last training loss. A round that
    finds fewer than ``cfg.min_clusters`` clusters trains nothing and ends the list (its record
    has ``stopped``: 1): the model it started from is the result."""
    info = info or DistInfo()
    state = load_checkpoint(source)
    try:
        recipe = round_recipe(from_mapping(Recipe, state["recipe"], str(source), "recipe"), state["meta"], cfg)
    except KeyError as error:
        raise DataError(f"{source}: not a training checkpoint (no {error})") from error
    current, eps, history = Path(source), cfg.eps, []
    for number in range(1, cfg.rounds + 1):
        features = target_features(current, images, cfg.batch_size, info.device)
        clustering = cluster_features(features, k1=cfg.k1, k2=cfg.k2, min_samples=cfg.min_samples, eps=eps, rho=cfg.rho)
        eps = clustering.eps
        record = {"round": float(number), **clustering.summary()}
        log.info("%s fold %d round %d: %d clusters, %.1f %% noise (eps %.4f)", model_name, fold, number,
                 clustering.num_clusters, 100 * clustering.noise_fraction, eps)
        if clustering.num_clusters < cfg.min_clusters:
            log.warning(
                "%s fold %d round %d: %d cluster(s) at eps %.4f (%.0f %% noise), fewer than adapt.min_clusters %d: "
                "the rounds stop and the model this round started from is kept (raise adapt.eps or adapt.rho, or "
                "lower adapt.min_samples, to cluster more)", model_name, fold, number, clustering.num_clusters, eps,
                100 * clustering.noise_fraction, cfg.min_clusters,
            )
            history.append({**record, "stopped": 1.0})
            break
        run = round_dir(out, number)
        if info.is_main:
            with atomic_path(pseudo_labels_path(out, number)) as tmp, open(tmp, "wb") as handle:
                np.save(handle, clustering.labels)
        # PK batches need p clusters: a small target may have fewer than the recipe's p
        p = min(recipe.train.p, clustering.num_clusters)
        this = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, p=p))
        data = FoldData(images=images, labels=clustering.labels.astype(str), train_rows=clustering.kept,
                        query_rows=NO_ROWS, gallery_rows=NO_ROWS)
        trained = fit(this, data, run.root, model_name=model_name, fold=fold, info=info,
                      make_trainer=partial(AdaptTrainer, start=current, features=features))
        history.append({**record, "train/loss": trained.get("train/loss", math.nan)})
        current = run.best
    if info.is_main:
        final = load_checkpoint(current)
        trained_rounds = sum("stopped" not in entry for entry in history)
        final["meta"] = {**final["meta"], "adapted_from": str(source), "adapt_rounds": trained_rounds}
        save_checkpoint(out.best, final)
    return history
