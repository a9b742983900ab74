"""Person recipes on the real pedestrian set: fold validation (what tuning may read) beside the
test split (never trained or tuned on), multi-shot and single-shot.

Each variant is the base recipe with a few keys changed; each (variant, seed) trains fold
``--fold`` of the person set's training identities, and its last weights are scored on:

- the fold's held-out identities (the tuning signal: the only figure a choice may rest on);
- the test split as shipped (260 queries against 1422 gallery images, open set);
- a single-shot version of it, shaped like VIPeR / GRID: one gallery image per test identity,
  from another camera than the query where there is one (260 against 260; drawn with seed 0 by
  fuse_significance.single_shot_gallery, the same version that benchmark scores).

Rank-1/5/10/20, mAP and mINP (cosine distance of flip-averaged features); per seed, paired
against the first variant. Finished runs are kept in ``--work`` (a killed benchmark resumes).

    python benchmarks/bench_person.py --base configs/person_lite0.yaml --seeds 0 1 \\
        --variant "no erasing: augment.erasing_p=0"
    python benchmarks/bench_person.py --base configs/person_lite0.yaml --seeds 0 \\
        --leave-out caviar4reid   # train on the other four collections, test on caviar's split only
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fuse_significance import single_shot_gallery
from harness import describe_machine, mean_sd, variant_recipe

from pipeline.core.allocator import keep_freed_memory
from pipeline.core.config import from_mapping
from pipeline.data.cache import build_cache, open_split
from pipeline.data.folds import make_folds
from pipeline.evaluate.reid import reid_metrics
from pipeline.infer.tta import extract_features
from pipeline.core.io_utils import write_csv, write_json, write_text
from pipeline.core.sections import TTAConfig, height_width
from pipeline.train.data import FoldData, load_fold
from pipeline.train.loop import fit
from pipeline.train.recipe import Recipe, read_recipe
from pipeline.train.trained import load_trained_model

PERSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "person"
RESULTS = Path(__file__).parent / "results" / "bench_person.md"
RANKS = (1, 5, 10, 20)


def collection(labels: pd.Series) -> pd.Series:
    """The public collection of each person-set label (``<collection>_<pid>``)."""
    return labels.astype(str).str.split("_", n=1).str[0]


def person_cache(work: Path, size: tuple[int, int], leave_out: str | None) -> tuple[Path, Path]:
    """(cache, folds.csv) of the person set at ``size``; with ``leave_out`` the training rows of
    that collection are dropped (its test rows are all that is scored)."""
    cache = work / f"cache{size[0]}x{size[1]}"
    if not (cache / "gallery.npy").exists():
        build_cache(PERSON, cache, size)
    folds = work / f"folds{'' if leave_out is None else '_without_' + leave_out}.csv"
    if not folds.exists():
        train = open_split(cache, "train").table
        table = make_folds(train, 5, 0, 0.2)
        if leave_out is not None:  # a left-out collection's rows neither train nor validate
            table.loc[collection(table["label"]) == leave_out, "role"] = "unused"
        write_csv(folds, table)
    return cache, folds


def without_unused(data: FoldData, folds: Path) -> FoldData:
    """Drop rows marked 'unused' (the left-out collection) from every role of the fold."""
    unused = np.flatnonzero(pd.read_csv(folds)["role"].to_numpy() == "unused")
    keep = lambda rows: np.setdiff1d(rows, unused)  # noqa: E731
    return FoldData(data.images, data.labels, keep(data.train_rows), keep(data.query_rows), keep(data.gallery_rows))


def test_scores(checkpoint: Path, cache: Path, leave_out: str | None) -> dict[str, float]:
    """Multi-shot and single-shot test-split metrics of the checkpoint's flip-averaged features."""
    model, meta = load_trained_model(checkpoint)
    splits = {name: open_split(cache, name) for name in ("query", "gallery")}
    features = {
        name: extract_features(model, split.images, input_size=meta["input_size"], mean=meta["mean"],
                               std=meta["std"], cfg=TTAConfig(flip=True), description=f"test {name}")
        for name, split in splits.items()
    }
    query, gallery = (splits[n].table.reset_index(drop=True) for n in ("query", "gallery"))
    q_rows = np.arange(len(query)) if leave_out is None else np.flatnonzero(collection(query["label"]) == leave_out)
    g_multi = np.arange(len(gallery)) if leave_out is None else np.flatnonzero(collection(gallery["label"]) == leave_out)
    g_single = g_multi[single_shot_gallery(query.iloc[q_rows], gallery.iloc[g_multi], seed=0)]
    scores: dict[str, float] = {}
    for shot, g_rows in (("multi", g_multi), ("single", g_single)):
        dist = 1.0 - features["query"][q_rows] @ features["gallery"][g_rows].T
        metrics = reid_metrics(dist, query["label"].to_numpy()[q_rows], gallery["label"].to_numpy()[g_rows], ranks=RANKS)
        scores.update({f"{shot}/rank{r}": metrics[f"cmc@{r}"] for r in RANKS})
        scores.update({f"{shot}/mAP": metrics["mAP"], f"{shot}/mINP": metrics["mINP"], f"{shot}/gallery": len(g_rows)})
    scores["queries"] = len(q_rows)
    return scores


def run_one(recipe: Recipe, work: Path, fold: int, leave_out: str | None) -> dict[str, float]:
    cache, folds = person_cache(work, height_width(recipe.train.input_size), leave_out)
    data = without_unused(load_fold(cache, folds, fold), folds)
    started = time.perf_counter()
    out = work / "runs" / f"{time.time_ns()}"
    summary = fit(recipe, data, out, model_name="person", fold=fold)
    seconds = time.perf_counter() - started
    result = {"val/score": summary["val/score"], "val/top1": summary["val/top1"], "best/score": summary["best/score"],
              "seconds": seconds, "train_images": len(data.train_rows)}
    result.update(test_scores(out / "checkpoints" / "last.pt", cache, leave_out))
    return result


def markdown(args: argparse.Namespace, variants: dict[str, str], runs: dict[str, dict]) -> str:
    lines = [
        "# Person recipes on the real pedestrian set (`../shared/data/person`)",
        "",
        f"Base recipe `{args.base}`, fold {args.fold} of the training identities (5 folds, seed 0)"
        + (f", the **{args.leave_out}** collection left out of training and the only one scored" if args.leave_out else "")
        + f"; seeds {args.seeds}: mean ± sd. `val` is the fold's held-out identities (tuning may read only this);",
        "multi-shot is the test split as shipped, single-shot keeps one gallery image per test identity from",
        "another camera than its query where there is one (VIPeR / GRID's shape). Figures in %.",
        "",
        f"Machine: {describe_machine()}",
        "",
        "    python benchmarks/bench_person.py " + " ".join(args.argv),
        "",
        "| variant | changes | val score | multi R1 | R5 | R10 | R20 | mAP | mINP | single R1 | R5 | R10 | mAP | min/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, changes in variants.items():
        done = [runs[f"{name}|{s}"] for s in args.seeds if f"{name}|{s}" in runs]
        if not done:
            continue
        col = lambda key: mean_sd([r[key] for r in done], scale=100, digits=1)  # noqa: E731
        lines.append(
            f"| {name} | `{changes or '-'}` | {col('val/score')} | {col('multi/rank1')} | {col('multi/rank5')} | "
            f"{col('multi/rank10')} | {col('multi/rank20')} | {col('multi/mAP')} | {col('multi/mINP')} | "
            f"{col('single/rank1')} | {col('single/rank5')} | {col('single/rank10')} | {col('single/mAP')} | "
            f"{np.mean([r['seconds'] for r in done]) / 60:.0f} |"
        )
    reference = next(iter(variants))
    paired = []
    for name in list(variants)[1:]:
        seeds = [s for s in args.seeds if f"{name}|{s}" in runs and f"{reference}|{s}" in runs]
        if seeds:
            delta = lambda key: mean_sd([runs[f"{name}|{s}"][key] - runs[f"{reference}|{s}"][key] for s in seeds], scale=100, digits=1)  # noqa: E731
            paired.append(f"| {name} | {len(seeds)} | {delta('val/score')} | {delta('multi/rank1')} | "
                          f"{delta('multi/mAP')} | {delta('single/rank1')} | {delta('single/mAP')} |")
    if paired:
        lines += ["", f"Paired by seed against `{reference}` (difference, points):", "",
                  "| variant | seeds | val score | multi R1 | multi mAP | single R1 | single mAP |", "|---|---|---|---|---|---|---|",
                  *paired]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, default=Path("configs/person_lite0.yaml"))
    parser.add_argument("--variant", action="append", default=[], help='"name: key=value, key=value" (YAML values)')
    parser.add_argument("--common", default="", help='"key=value, key=value" applied to every variant (e.g. a GPU run\'s workers and amp)')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--leave-out", choices=["3dpes", "caviar4reid", "ilid", "towncentre", "sarc3d"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_person"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.argv = [a if " " not in a else f'"{a}"' for a in sys.argv[1:]]
    if not PERSON.is_dir():
        raise SystemExit(f"the person set is not at {PERSON} (../shared/data/person)")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    base = read_recipe(args.base)
    variants = {"base": ""} | dict(v.split(":", 1) for v in args.variant)
    variants = {name.strip(): changes.strip() for name, changes in variants.items()}
    args.work.mkdir(parents=True, exist_ok=True)
    saved = args.work / f"runs{'' if args.leave_out is None else '_' + args.leave_out}.json"
    runs: dict[str, dict] = json.loads(saved.read_text()) if saved.exists() else {}
    for seed in args.seeds:
        for name, changes in variants.items():
            key = f"{name}|{seed}"
            recipe_dict = variant_recipe(base, ", ".join(c for c in (args.common, changes) if c) + f", train.seed={seed}")
            recipe = from_mapping(Recipe, recipe_dict, f"{args.base} ({name})")
            if key in runs and runs[key].get("recipe") == recipe_dict:
                continue
            print(f"training {key}: {changes or 'base'}", flush=True)
            runs[key] = run_one(recipe, args.work, args.fold, args.leave_out) | {"recipe": recipe_dict}
            write_json(saved, runs)
            write_text(args.out, markdown(args, variants, runs))
            print(json.dumps({k: v for k, v in runs[key].items() if k != "recipe"}), flush=True)


if __name__ == "__main__":
    main()
