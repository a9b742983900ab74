"""Fold-wise training: PK batches, AMP, warm-up schedule, validation, dvclive, resume.

``fit`` trains one (recipe, fold) into ``out_dir`` (the layout: pipeline.core.params.FoldDir)::

    out_dir/checkpoints/last.pt   full training state after every epoch (resume point)
    out_dir/checkpoints/best.pt   weights of the epoch with the best validation score
    out_dir/live/                 dvclive metrics.json and plots (step 0 = untrained network)

A rerun whose ``last.pt`` has the same fingerprint (recipe, fold rows, labels, image bytes,
world size) continues from it; any other ``last.pt`` is ignored and training starts over. So
is one that cannot be read, or whose ``best.pt`` (the file extract reads) cannot: a broken
checkpoint is never the base of a resume, which would finish at once and keep it. Retraining,
with a warning naming the file, rather than stopping: the fold's inputs are intact and a
broken checkpoint is a lost cache, which is all that deleting the folder would give back.
The dvclive folder is rebuilt from the history kept in the checkpoint, so it always agrees
with the checkpoint even if a run was killed between logging and saving.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.data.samplers import PKBatchSampler
from pipeline.data.torch_data import AugmentedImages, normalize_batch
from pipeline.data.transforms import SeededAugment, build_train_transforms
from pipeline.core.errors import DataError
from pipeline.losses import ReIDCriterion
from pipeline.core.params import FoldDir
from pipeline.models import ModelOutput, create_model, input_normalisation, unfreeze
from pipeline.train import distributed as ddp
from pipeline.train.amp import autocast, make_scaler, resolve_amp
from pipeline.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from pipeline.train.optim import build_center_optimizer, build_optimizer
from pipeline.train.recipe import Recipe
from pipeline.train.schedule import build_scheduler
from pipeline.train.fold_score import validation_scores
from pipeline.train.trained import load_weights

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
EpochCallback = Callable[[int, dict[str, float]], None]


def _resume_state(last_path: Path, best_path: Path, print_id: str) -> dict[str, Any] | None:
    """``last.pt``'s state when training may go on from it, else None (having said why)."""
    try:
        # onto the CPU: the RNG states must be CPU tensors (a CUDA copy breaks resuming a GPU
        # run), and load_state_dict moves every other tensor to its parameter's device
        state = load_checkpoint(last_path)
    except DataError as error:
        log.warning("%s; training from scratch", error)
        return None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != print_id:
        log.info("%s: recipe or data changed since it was written; training from scratch", last_path)
        return None
    # a last.pt from before the flag: a recorded best score means best.pt was written
    if state.get("best_saved", bool(state["best"])) and not best_path.exists():
        log.warning("%s: missing, though %s recorded it; training from scratch", best_path, last_path.name)
        return None
    if best_path.exists():
        try:
            load_checkpoint(best_path)
        except DataError as error:
            log.warning("%s; training from scratch", error)
            return None
    return state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fingerprint(recipe: Recipe | dict[str, Any], data: FoldData, world_size: int) -> str:
    """What a checkpoint must match to be resumed: the recipe (or ``Trainer.describe()``) and
    the exact fold data."""
    digest = hashlib.blake2b(digest_size=16)
    described = recipe if isinstance(recipe, dict) else dataclasses.asdict(recipe)
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    digest.update(f"world_size={world_size}".encode())
    for rows in (data.train_rows, data.query_rows, data.gallery_rows):
        digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
        digest.update("\0".join(map(str, data.labels[rows])).encode())
        for start in range(0, len(rows), 1024):  # the pixels too: a changed cache retrains
            digest.update(np.ascontiguousarray(data.images[np.sort(rows[start : start + 1024])]).tobytes())
    return digest.hexdigest()


class Trainer:
    """The objects of one training run and the epoch loop over them."""

    def __init__(self, recipe: Recipe, data: FoldData, info: DistInfo, init: Path | None = None) -> None:
        cfg = recipe.train
        self.recipe, self.data, self.info = recipe, data, info
        self.device = info.device
        self.amp = resolve_amp(cfg.amp, self.device)
        train_labels = data.labels[data.train_rows]
        classes, class_ids, counts = np.unique(train_labels, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise DataError(f"the training split has {len(classes)} identities; at least 2 are needed")
        self.num_classes = len(classes)
        # identities with a single image cannot form a positive pair: no metric losses on them
        self.metric_ok = torch.as_tensor(counts >= 2, device=self.device)
        seed_everything(cfg.seed)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = create_model(recipe.model, self.num_classes).to(self.device, memory_format=self.memory_format)
        self.init = init
        if init is not None:
            load_weights(self.model, init)
        self.mean, self.std = input_normalisation(self.model)
        self.criterion = ReIDCriterion(recipe.loss, self.num_classes, self.model.feature_dim).to(self.device)
        self.optimizer = build_optimizer(self.model.parameter_groups(), recipe.optim)
        self.center_params = list(self.criterion.center_parameters())
        self.center_optimizer = build_center_optimizer(self.center_params, recipe.loss.center_lr)
        self.sampler = PKBatchSampler(
            class_ids, cfg.p, cfg.k, seed=cfg.seed, rank=info.rank, world_size=info.world_size,
            max_per_identity=cfg.max_per_identity,
        )
        self.augment = SeededAugment(build_train_transforms(recipe.augment, cfg.input_size))
        dataset = AugmentedImages(data.images, data.train_rows, class_ids, self.augment)
        self.loader = DataLoader(
            dataset, batch_sampler=self.sampler, num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
        )
        self.steps_per_epoch = len(self.sampler)
        self.scheduler = build_scheduler(self.optimizer, recipe.optim, cfg.epochs, self.steps_per_epoch)
        self.scaler = make_scaler(self.amp, self.device)
        self.frozen = recipe.model.frozen_stages > 0
        self.net = ddp.wrap_model(self.model, info)
        self.step = 0  # optimiser iterations so far (XBM's start iteration counts these)

    def describe(self) -> dict[str, Any]:
        """What defines this run besides the data (the checkpoint fingerprint's input); with
        ``init``, the weights it starts from too, so a retrained first stage restarts the second."""
        described = dataclasses.asdict(self.recipe)
        if self.init is not None:
            described["init_weights"] = hashlib.blake2b(Path(self.init).read_bytes(), digest_size=16).hexdigest()
        return described

    def meta(self, model_name: str, fold: int) -> dict[str, Any]:
        """What extraction needs to know of the model besides its weights."""
        return {
            "model_name": model_name, "fold": fold, "backbone": self.recipe.model.backbone,
            "input_size": self.recipe.train.input_size, "mean": list(self.mean), "std": list(self.std),
            "feature_dim": self.model.feature_dim, "num_classes": self.num_classes,
        }

    # -- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "center_optimizer": None if self.center_optimizer is None else self.center_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": self.step,
            "frozen": self.frozen,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.frozen and not state["frozen"]:
            self.unfreeze()
        self.model.load_state_dict(state["model"])
        self.criterion.load_state_dict(state["criterion"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.center_optimizer is not None:
            self.center_optimizer.load_state_dict(state["center_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        set_rng_state(state["rng"])

    def unfreeze(self) -> None:
        unfreeze(self.model)
        self.frozen = False
        self.net = ddp.wrap_model(self.model, self.info)  # DDP must see the new parameters

    # -- training ----------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the PK batches; returns mean losses, rates and skipped steps."""
        unfreeze_at = self.recipe.train.unfreeze_epoch
        if self.frozen and unfreeze_at is not None and epoch >= unfreeze_at:
            log.info("epoch %d: unfreezing the backbone", epoch + 1)
            self.unfreeze()
        self.sampler.set_epoch(epoch)
        self.augment.reset()
        rates = {f"lr/{g['name']}": float(g["lr"]) for g in self.optimizer.param_groups}  # at epoch start
        self.net.train()
        sums: dict[str, float] = {}
        done = skipped = 0
        started = time.perf_counter()
        batches = tqdm(self.loader, desc=f"epoch {epoch + 1}", unit="batch", disable=not self.info.is_main, leave=False)
        for images, labels in batches:
            parts = self.train_step(images, labels)
            if parts is None:
                skipped += 1
                log.warning("epoch %d step %d: loss is NaN or inf; step skipped", epoch + 1, self.step)
            else:
                done += 1
                for name, value in parts.items():
                    sums[name] = sums.get(name, 0.0) + value
            self.step += 1
            self.scheduler.step()
        seconds = time.perf_counter() - started
        metrics = {f"train/{name}": value / max(done, 1) for name, value in sums.items()}
        metrics["train/skipped_steps"] = float(skipped)
        metrics.update(rates)
        log.info(
            "epoch %d: %.1f images/s, loss %.4f",
            epoch + 1, len(self.sampler) * self.recipe.train.p * self.recipe.train.k / seconds,
            metrics.get("train/loss", math.nan),
        )
        return metrics

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float] | None:
        """Forward, loss, backward, update; None (and no update) when the loss is not finite."""
        total, parts, _ = self.forward_loss(images, labels)
        self.zero_grad()
        if not ddp.all_finite(total, self.info):
            return None
        self.scaler.scale(total).backward()
        self.update()
        return {"loss": float(total.detach()), **{k: float(v) for k, v in parts.items()}}

    def forward_loss(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float], ModelOutput]:
        """The weighted loss of one batch of raw (uint8-scaled) images, its parts, the outputs."""
        images = normalize_batch(images.to(self.device, non_blocking=True), self.mean, self.std)
        images = images.contiguous(memory_format=self.memory_format)
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.amp, self.device):
            output = self.net(images, labels)
        # outside autocast: the criterion computes in float32 whatever the outputs' dtype
        total, parts = self.criterion(output, labels, iteration=self.step, metric_mask=self.metric_ok[labels])
        return total, parts, output

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.center_optimizer is not None:
            self.center_optimizer.zero_grad(set_to_none=True)

    def update(self) -> None:
        """The optimiser steps after ``backward()``: centers, clipping, AMP scaling."""
        optimizers = [self.optimizer]
        if self.center_optimizer is not None:
            ddp.average_gradients(self.center_params, self.info)
            self.criterion.step_centers_hook()
            optimizers.append(self.center_optimizer)
        clip = self.recipe.optim.grad_clip
        if clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()

    def evaluate(self) -> dict[str, float]:
        d = self.data
        if len(d.query_rows) == 0 or len(d.gallery_rows) == 0:
            return {}
        scores = validation_scores(
            self.model, d.images, d.labels, d.query_rows, d.gallery_rows,
            size=self.recipe.train.input_size, mean=self.mean, std=self.std,
            batch_size=self.recipe.train.eval_batch_size,
        )
        return {f"val/{name}": value for name, value in scores.items()}

    def weights(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What ``load_trained_model`` needs: plain containers and tensors only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "recipe": dataclasses.asdict(self.recipe),
            "num_classes": self.num_classes,
            "model": self.model.state_dict(),
            "meta": meta,
        }


def _open_live(live_dir: Path, history: list[dict[str, float]], best: dict[str, float]) -> Live:
    """A fresh dvclive folder, replaying ``history`` (from the checkpoint) into it."""
    live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False)
    for entry in history:
        _log_step(live, entry, best)
    return live


def _log_step(live: Live, entry: dict[str, float], best: dict[str, float]) -> None:
    live.step = int(entry["step"])
    for name, value in entry.items():
        if name != "step":
            live.log_metric(name, value)
    for name, value in best.items():
        live.log_metric(name, value, plot=False)
    live.make_summary()


def fit(
    recipe: Recipe,
    data: FoldData,
    out_dir: str | Path,
    *,
    model_name: str,
    fold: int,
    info: DistInfo | None = None,
    on_epoch_end: EpochCallback | None = None,
    make_trainer: Callable[[Recipe, FoldData, DistInfo], Trainer] = Trainer,
    init: Path | None = None,
) -> dict[str, float]:
    """Train (or resume) one model on one fold; returns the final summary metrics.

    ``on_epoch_end(epoch, metrics)`` runs after each epoch's checkpoint is written.
    ``make_trainer`` builds the trainer (e.g. mutual learning's, which trains two models).
    ``init``: a training checkpoint (the same model and fold) whose weights the model starts
    from (a second training stage; the plain ``Trainer`` only).
    """
    info = info or DistInfo()
    out = FoldDir(Path(out_dir))
    last_path, best_path = out.last, out.best
    if init is not None:
        if make_trainer is not Trainer:
            raise ValueError("init (a second training stage) needs the plain Trainer")
        make_trainer = functools.partial(Trainer, init=init)
    trainer = make_trainer(recipe, data, info)
    print_id = fingerprint(trainer.describe(), data, info.world_size)
    epochs = recipe.train.epochs
    meta = trainer.meta(model_name, fold)

    start_epoch, history, best, best_saved = 0, [], {}, False
    state = _resume_state(last_path, best_path, print_id) if last_path.exists() else None
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        start_epoch, history, best = int(state["epoch"]), list(state["history"]), dict(state["best"])
        best_saved = best_path.exists()
        log.info("%s: resuming after epoch %d of %d", last_path, start_epoch, epochs)
    if start_epoch == 0 and info.is_main:
        best_path.unlink(missing_ok=True)  # a best.pt of another recipe must not survive

    live = _open_live(out.live, history, best) if info.is_main else None
    if start_epoch == 0 and not history:
        entry = {"step": 0.0, **(trainer.evaluate() if info.is_main else {})}
        log.info("untrained: %s", entry)
        history.append(entry)
        if live is not None:
            _log_step(live, entry, best)

    for epoch in range(start_epoch, epochs):
        entry = {"step": float(epoch + 1), **trainer.train_epoch(epoch)}
        validate_now = (epoch + 1) % recipe.train.eval_every == 0 or epoch + 1 == epochs
        if info.is_main and validate_now:
            entry.update(trainer.evaluate())
            score = entry.get("val/score")  # None without held-out identities: best = last
            if score is None or score > best.get("best/score", -math.inf):
                best = {} if score is None else {"best/score": score, "best/epoch": float(epoch + 1)}
                save_checkpoint(best_path, trainer.weights({**meta, "epoch": epoch + 1, "best_score": score}))
                best_saved = True
        history.append(entry)
        if info.is_main:
            log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in entry.items()})
            save_checkpoint(last_path, {
                **trainer.weights({**meta, "epoch": epoch + 1, "best_score": best.get("best/score")}),
                "fingerprint": print_id, "epoch": epoch + 1, "history": history, "best": best, "best_saved": best_saved,
                "trainer": trainer.state_dict(),
            })
            _log_step(live, entry, best)
        ddp.barrier(info)
        if on_epoch_end is not None:
            on_epoch_end(epoch, entry)
    if live is not None:
        live.end()
    return {**history[-1], **best}
