"""Duplicate identities and background suppression (issue 13, items 4 and 6) on one trained lite0.

1. Generates the demo of params.yaml (section ``demo``), or takes ``--root`` (e.g. the grocery
   photos), and plants duplicate identities: ``--plant`` training identities with at least 4
   images have every other image relabelled ``<label>_dup``.
2. Fine-tunes the packaged-weight lite0 recipe (``--recipe``) on every training image (no
   held-out fold: both halves of each planted pair must be classes of the classifier).
3. Duplicates: the classifier rows clustered at each ``--thresholds`` value
   (pipeline/evaluate/duplicates.py); precision and recall over label pairs, against the planted pairs.
4. Background suppression: test-split mAP@10, top-1 and full mAP with plain pooling and with
   pooling restricted to the activation mask at each ``--suppress`` threshold (TTA: flip).
   On the demo the test split is read clean (as after a perfect denoise stage).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_tricks_report.py --work /tmp/btr_demo
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_demo_calibration import clean_view
from harness import describe_machine

from pipeline.chain.score_table import draw_foreground
from pipeline.data.cache import build_cache, open_split
from pipeline.demo.generate import DemoConfig, generate_demo
from pipeline.data.layout import read_split, write_split
from pipeline.evaluate.duplicates import classifier_rows, duplicate_groups
from pipeline.evaluate.metrics import competition_scores
from pipeline.evaluate.reid import reid_metrics
from pipeline.infer.extract import foreground_masks
from pipeline.infer.tta import extract_features
from pipeline.core.sections import TTAConfig
from pipeline.core.params import load_section
from pipeline.retrieval.search import pairwise_distance, rank_from_distance
from pipeline.train.data import FoldData
from pipeline.train.loop import fit
from pipeline.train.recipe import load_recipe
from pipeline.train.trained import load_trained_model

ROOT = Path(__file__).resolve().parents[1]


def plant_duplicates(train: pd.DataFrame, count: int, seed: int) -> tuple[pd.DataFrame, set[frozenset[str]]]:
    """``train`` with ``count`` identities (>= 4 images) split in two labels; the planted pairs."""
    labels = train["label"].astype(str)
    sizes = labels.value_counts()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(sorted(sizes.index[sizes >= 4]), size=count, replace=False)
    planted = train.copy()
    planted["label"] = labels
    for label in chosen:
        rows = planted.index[planted["label"] == label]
        planted.loc[rows[1::2], "label"] = f"{label}_dup"
    return planted, {frozenset((str(label), f"{label}_dup")) for label in chosen}


def pairs_of(groups: pd.DataFrame) -> set[frozenset[str]]:
    return {
        frozenset(pair)
        for _, members in groups.groupby("group")
        for pair in itertools.combinations(sorted(members["label"]), 2)
    }


def test_scores(query: np.ndarray, gallery: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray) -> dict[str, float]:
    dist = pairwise_distance(query, gallery, metric="cosine")
    scores = competition_scores(rank_from_distance(dist, 10), q_labels, g_labels, 10)
    reid = reid_metrics(dist, q_labels, g_labels)
    return {"top1": scores["top1"], "map@10": scores["map@10"], "mAP": reid["mAP"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (reused: finished steps are kept)")
    parser.add_argument("--root", type=Path, help="a dataset in the canonical layout (default: generate the demo)")
    parser.add_argument("--recipe", type=Path, default=ROOT / "configs/demo/lite0.yaml")
    parser.add_argument("--size", type=int, default=96, help="cache size")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of the recipe's")
    parser.add_argument("--plant", type=int, default=20)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--suppress", type=float, nargs="+", default=[0.2, 0.35, 0.5, 0.7])
    parser.add_argument("--result", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    dataset, planted_file = work / "dataset", work / "planted.json"
    if not planted_file.is_file():
        if args.root is None:
            generate_demo(load_section("demo", DemoConfig, ROOT / "params.yaml"), dataset)
        else:  # a view of the dataset whose train.csv can be replaced
            dataset.mkdir(parents=True, exist_ok=True)
            for split in ("query", "gallery"):
                write_split(dataset, split, read_split(args.root, split))
            (dataset / "images").symlink_to((args.root / "images").resolve(), target_is_directory=True)
        planted, pairs = plant_duplicates(read_split(args.root or dataset, "train"), args.plant, seed=0)
        write_split(dataset, "train", planted)
        planted_file.write_text(json.dumps(sorted(map(sorted, pairs))), encoding="utf-8")
    planted_pairs = {frozenset(pair) for pair in json.loads(planted_file.read_text(encoding="utf-8"))}
    view = clean_view(dataset, work / "clean_view") if (dataset / "clean").is_dir() else dataset
    cache = work / "cache"
    if not (cache / "gallery.npy").is_file():
        build_cache(view, cache, args.size, workers=1)
    train = open_split(cache, "train")
    labels = train.table["label"].astype(str).to_numpy()
    out = work / "model"
    checkpoint = out / "checkpoints" / "best.pt"
    train_seconds = None
    if not checkpoint.is_file():
        data = FoldData(images=train.images, labels=labels, train_rows=np.arange(len(labels)),
                        query_rows=np.zeros(0, np.int64), gallery_rows=np.zeros(0, np.int64))
        tick = time.perf_counter()
        recipe = load_recipe(args.recipe)
        if args.epochs:
            recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, epochs=args.epochs))
        fit(recipe, data, out, model_name="lite0", fold=0)
        train_seconds = time.perf_counter() - tick

    rows = classifier_rows(checkpoint)
    classes = np.unique(labels)
    duplicates = []
    for threshold in args.thresholds:
        found = pairs_of(duplicate_groups(rows, classes, threshold))
        hits = len(found & planted_pairs)
        duplicates.append({
            "threshold": threshold, "found_pairs": len(found), "planted_found": hits, "planted": len(planted_pairs),
            "precision": hits / len(found) if found else float("nan"), "recall": hits / len(planted_pairs),
        })
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    index = {c: i for i, c in enumerate(classes)}
    planted_cos = sorted(float(unit[index[a]] @ unit[index[b]]) for a, b in map(sorted, planted_pairs))
    others = unit @ unit.T
    planted_mask = np.zeros_like(others, dtype=bool)
    for a, b in map(sorted, planted_pairs):
        planted_mask[index[a], index[b]] = planted_mask[index[b], index[a]] = True
    other_cos = others[~planted_mask & ~np.eye(len(others), dtype=bool)]

    model, meta = load_trained_model(checkpoint)
    query, gallery = open_split(cache, "query"), open_split(cache, "gallery")
    q_labels, g_labels = (s.table["label"].astype(str).to_numpy() for s in (query, gallery))
    common = dict(input_size=meta["input_size"], mean=meta["mean"], std=meta["std"])
    suppression = []
    for threshold in [None, *args.suppress]:
        cfg = TTAConfig(flip=True, batch_size=128, suppress_background=threshold is not None,
                        suppress_threshold=0.5 if threshold is None else threshold)
        q = extract_features(model, query.images, cfg=cfg, **common)
        g = extract_features(model, gallery.images, cfg=cfg, **common)
        suppression.append({"threshold": threshold, **test_scores(q, g, q_labels, g_labels)})
    masks = foreground_masks(model, query.images[:8], meta["input_size"], meta["mean"], meta["std"], 0.5)
    picture = ROOT / "benchmarks/results" / f"bench_tricks_report_{'demo' if args.root is None else args.root.name}.png"
    draw_foreground(picture, "lite0 (threshold 0.5)", query.images, masks)

    result = {
        "dataset": str(args.root or "demo (params.yaml)"), "train_images": len(labels), "classes": len(classes),
        "recipe": str(args.recipe.relative_to(ROOT)), "epochs": args.epochs, "train_seconds": train_seconds,
        "duplicates": duplicates,
        "planted_pair_cosines": planted_cos,
        "other_pair_cosine": {"mean": float(other_cos.mean()), "p99": float(np.quantile(other_cos, 0.99)),
                              "max": float(other_cos.max())},
        "suppression": suppression, "picture": str(picture.relative_to(ROOT)),
        "seconds": time.perf_counter() - started, "machine": describe_machine(torch=torch.__version__),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.result:
        args.result.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
