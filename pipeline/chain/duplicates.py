"""The duplicates stage's job: candidate duplicate identities in the training labels, from the
classifier rows of one trained model (``duplicates.model``, fold ``duplicates.fold``; unset: the
first of ``train.models`` and ``train.folds``)."""

from __future__ import annotations

import json
import logging

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.io_utils import atomic_dir
from pipeline.core.params import StageParams
from pipeline.evaluate.duplicates import classifier_rows, duplicate_groups, merge_table
from pipeline.evaluate.sheets import render_sheet
from pipeline.train.data import load_fold

log = logging.getLogger("duplicates")


def run(params: StageParams) -> None:
    """Write groups.csv, merge.csv (to review and name in ``folds.label_merge``), summary.json and
    a contact sheet per group to ``duplicates.out``."""
    cfg = params.duplicates
    model, fold = cfg.target(params.train, str(params.path))
    data = load_fold(params.cache(), params.folds_file(), fold)
    checkpoint = params.checkpoint(model, fold)
    rows = classifier_rows(checkpoint)
    train_labels = data.labels[data.train_rows]
    classes, counts = np.unique(train_labels, return_counts=True)  # the trainer's class order
    if len(classes) != len(rows):
        raise DataError(f"{checkpoint}: {len(rows)} classifier rows, but fold {fold} trains {len(classes)} labels (retrain)")
    groups = duplicate_groups(rows, classes, cfg.threshold, cfg.linkage)
    image_counts = dict(zip(classes.tolist(), counts.tolist(), strict=True))
    groups.insert(2, "images", [image_counts[label] for label in groups["label"]])
    summary = {
        "model": model, "fold": fold, "threshold": cfg.threshold, "linkage": cfg.linkage,
        "groups": int(groups["group"].nunique()), "labels_in_groups": len(groups),
        "train_labels": len(classes), "images_in_groups": int(groups["images"].sum()), "train_images": len(train_labels),
    }
    with atomic_dir(cfg.out) as tmp:
        groups.to_csv(tmp / "groups.csv", index=False)
        merge_table(groups, image_counts).to_csv(tmp / "merge.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (tmp / "sheets").mkdir()
        for group, members in list(groups.groupby("group", sort=True))[: cfg.sheets]:
            tiles = [data.images[data.train_rows[train_labels == label][: cfg.images_per_label]] for label in members["label"]]
            titles = [f"{label} ({n} images, mean cosine {s:.2f})"
                      for label, n, s in zip(members["label"], members["images"], members["similarity"], strict=True)]
            render_sheet(tmp / "sheets" / f"group_{group:03d}.png", [list(t) for t in tiles], titles,
                         f"candidate duplicates, group {group}")
    log.info("%s", summary)
