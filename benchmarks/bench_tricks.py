"""What each training trick is worth on the demo data, as in the strong re-id baseline paper.

Cumulative ablation: each row adds one trick to the row above and trains from scratch; the
figure is the fold's validation score (0.5 * top-1 + 0.5 * mAP@10) after the last epoch,
averaged over every (seed, fold) run, with its spread. Runs go to ``--jobs`` single-threaded
processes; each finished run is saved in ``--work`` so a killed benchmark resumes where it
stopped. Writes benchmarks/results/bench_tricks.{md,png}.

    python benchmarks/bench_tricks.py --backbone resnest14d --epochs 12 --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from machine import describe_machine
from tqdm import tqdm

from pipeline.data.cache import build_cache, open_split
from pipeline.demo.generate import DemoConfig, generate_demo
from pipeline.data.folds import make_folds
from pipeline.data.transforms import AugmentConfig
from pipeline.io_utils import atomic_path, write_csv, write_json, write_text
from pipeline.losses import LossConfig
from pipeline.models import ModelConfig
from pipeline.train.data import FoldData, load_fold
from pipeline.train.loop import fingerprint, fit
from pipeline.train.trained import load_trained_model
from pipeline.train.fold_score import validation_scores
from pipeline.train.recipe import Recipe, TrainConfig
from pipeline.train.schedule import OptimConfig

RESULTS = Path(__file__).parent / "results" / "bench_tricks.md"


def demo_fold(work: Path, size: int = 64, fold: int = 0) -> FoldData:
    """The default demo dataset, cached at ``size`` px with 5 folds; built once under ``work``."""
    dataset, cache, folds = work / "demo", work / f"cache{size}", work / "folds.csv"
    if not dataset.exists():
        generate_demo(DemoConfig(), dataset)
    if not cache.exists():
        build_cache(dataset, cache, size)
    if not folds.exists():
        write_csv(folds, make_folds(open_split(cache, "train").table, 5, 0, 0.2))
    return load_fold(cache, folds, fold)


def ablation(backbone: str, epochs: int, input_size: int, seed: int = 0) -> list[tuple[str, Recipe]]:
    """(name, recipe) rows, each adding one trick to the previous row."""
    recipe = Recipe(
        model=ModelConfig(backbone=backbone, pooling="avg", neck="none", head="linear"),
        train=TrainConfig(epochs=epochs, p=16, k=4, input_size=input_size, seed=seed, eval_every=epochs),
        loss=LossConfig(ce_weight=1.0, label_smoothing=0.0, triplet_weight=0.0),
        augment=AugmentConfig(hflip_p=0.5, erasing_p=0.0),
        optim=OptimConfig(optimizer="adam", lr=2e-3, warmup_epochs=1, warmup_factor=0.1, schedule="cosine", min_lr=1e-5),
    )
    r = dataclasses.replace
    steps = [
        ("cross-entropy baseline", lambda x: x),
        ("+ triplet", lambda x: r(x, loss=r(x.loss, triplet_weight=1.0))),
        ("+ BNNeck", lambda x: r(x, model=r(x.model, neck="bnneck"))),
        ("+ label smoothing", lambda x: r(x, loss=r(x.loss, label_smoothing=0.1))),
        ("+ random erasing", lambda x: r(x, augment=r(x.augment, erasing_p=0.5))),
        ("+ center loss", lambda x: r(x, loss=r(x.loss, center_weight=0.0005))),
        ("+ centroid triplet", lambda x: r(x, loss=r(x.loss, centroid_triplet_weight=1.0))),
        ("+ XBM", lambda x: r(x, loss=r(x.loss, xbm_weight=1.0, xbm_size=512, xbm_start_iteration=epochs * 5))),
        ("+ frozen stages (1)", lambda x: r(x, model=r(x.model, frozen_stages=1))),
    ]
    rows = []
    for name, change in steps:
        recipe = change(recipe)
        rows.append((name, recipe))
    return rows


def training_image_score(checkpoint: Path, data: FoldData) -> float:
    """The score of retrieval among the training images themselves (one query per identity):
    far above the held-out score means the network memorised its images instead of learning."""
    model, meta = load_trained_model(checkpoint)
    rows = data.train_rows
    _, first = np.unique(data.labels[rows], return_index=True)
    query, gallery = rows[first], np.setdiff1d(rows, rows[first])
    return validation_scores(
        model, data.images, data.labels, query, gallery, size=meta["input_size"],
        mean=tuple(meta["mean"]), std=tuple(meta["std"]),
    )["score"]


def run_one(work: Path, input_size: int, fold: int, recipe: Recipe) -> dict[str, float]:
    """Train one recipe on one fold: held-out scores untrained (step 0), best and last epoch,
    and the last model's score among its own training images."""
    torch.set_num_threads(1)  # one thread per process: 2 threads on 2 shared cores ran ~10x slower
    data = demo_fold(work, input_size, fold)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = fit(recipe, data, out, model_name="ablation", fold=fold)
        seconds = time.perf_counter() - started
        scores = Path(out) / "live" / "plots" / "metrics" / "val" / "score.tsv"
        untrained = float(scores.read_text().splitlines()[1].split("\t")[1])  # step 0
        training_images = training_image_score(Path(out) / "checkpoints" / "last.pt", data)
    return {
        "top1": summary["val/top1"], "map10": summary["val/map@10"], "score": summary["val/score"],
        "best": summary["best/score"], "untrained": untrained, "training_images": training_images,
        "seconds": seconds, "queries": len(data.query_rows), "gallery": len(data.gallery_rows),
    }


Plan = dict[str, tuple[str, int, int, Recipe]]  # run key -> (row name, seed, fold, recipe)


def plan_runs(args: argparse.Namespace) -> Plan:
    """Every (row, seed, fold) run. A key carries the fingerprint of the recipe and fold data
    (as a training checkpoint does), so an edited ablation or demo never reuses a stale run."""
    plan: Plan = {}
    for fold in args.folds:
        data = demo_fold(args.work, args.input_size, fold)
        for seed in args.seeds:
            for name, recipe in ablation(args.backbone, args.epochs, args.input_size, seed):
                key = f"{name} | seed {seed} | fold {fold} | {fingerprint(recipe, data, world_size=1)[:12]}"
                plan[key] = (name, seed, fold, recipe)
    return plan


def summarise(plan: Plan, runs: dict[str, dict[str, float]]) -> list[dict]:
    """Per row, in ablation order: mean and spread over its finished runs."""
    rows = []
    for name in dict.fromkeys(name for name, _, _, _ in plan.values()):
        keys = [k for k, (row, _, _, _) in plan.items() if row == name and k in runs]
        if not keys:
            continue
        done = [runs[k] for k in keys]
        score = np.array([r["score"] for r in done])
        rows.append({
            "name": name, "scores": score, "by_run": {plan[k][1:3]: r["score"] for k, r in zip(keys, done)},
            "top1": float(np.mean([r["top1"] for r in done])), "map10": float(np.mean([r["map10"] for r in done])),
            "score": float(score.mean()), "std": float(score.std(ddof=1)) if len(done) > 1 else float("nan"),
            "seconds": float(np.mean([r["seconds"] for r in done])),
        })
    return rows


def paired_delta(before: dict, after: dict) -> str:
    """Mean ± sd of the score change over the runs both rows share (same seed and fold)."""
    common = before["by_run"].keys() & after["by_run"].keys()
    changes = np.array([after["by_run"][k] - before["by_run"][k] for k in common])
    if len(changes) == 0:
        return ""
    spread = f" ± {changes.std(ddof=1):.3f}" if len(changes) > 1 else ""
    return f"{changes.mean():+.3f}{spread}"


def markdown(args: argparse.Namespace, rows: list[dict], runs: dict[str, dict[str, float]], planned: int, minutes: float, done: bool) -> str:
    """The results page; ``runs`` holds only this selection's finished runs."""
    any_run = next(iter(runs.values()))
    untrained = np.mean([r["untrained"] for r in runs.values()])
    lines = []
    for i, row in enumerate(rows):
        delta = "" if i == 0 else paired_delta(rows[i - 1], row)
        each = " ".join(f"{v:.3f}" for v in row["scores"])
        spread = "" if np.isnan(row["std"]) else f" ± {row['std']:.3f}"
        lines.append(
            f"| {row['name']} | {row['top1']:.3f} | {row['map10']:.3f} | **{row['score']:.3f}**{spread} "
            f"| {delta} | {each} | {row['seconds']:.0f} |"
        )
    status = "Done:" if done else "Partial results (still running):"
    return "\n".join([
        "# What each training trick is worth (demo data)",
        "",
        f"Backbone `{args.backbone}` from scratch (no pretrained weights offline), {args.input_size} px,",
        f"{args.epochs} epochs, PK batches 16 x 4, Adam 2e-3 with 1 warm-up epoch and cosine decay;",
        "demo dataset (300 training identities x 4-8 images). Each row adds one trick to the row above",
        f"and trains from scratch. Runs: seeds {args.seeds} x folds {args.folds} (a fold holds out about",
        f"{any_run['queries']} queries and {any_run['gallery']} gallery images). Score = 0.5 * top-1 + 0.5 * mAP@10",
        "on the fold's held-out identities after the last epoch: mean ± standard deviation over the runs,",
        f"then each run's score. Untrained network (step 0): mean score {untrained:.3f}.",
        "Each row shares seeds with the row above, so \"vs row above\" is a paired change; one smaller",
        "than its spread is not a finding.",
        "",
        f"![score per recipe]({args.out.with_suffix('.png').name})",
        "",
        "| recipe | top-1 | mAP@10 | score ± sd | vs row above (paired) | each run | seconds/run |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
        f"{status} {len(runs)} of {planned} runs, {sum(r['seconds'] for r in runs.values()) / 60:.0f} "
        f"process-minutes of training ({args.jobs} parallel single-threaded jobs; this invocation "
        f"{minutes:.1f} min, finished runs are reused). Machine: {describe_machine(torch=torch.__version__)}.",
        "",
    ])


def plot(rows: list[dict], untrained: float, path: Path) -> None:
    """Mean score per recipe with each run as a dot: the spread is visible at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [r["score"] for r in rows], color="#8fb3d9")
    for yi, row in zip(y, rows):
        ax.plot(row["scores"], np.full(len(row["scores"]), yi), "k.", markersize=6)
    ax.axvline(untrained, color="#c0392b", linestyle="--", label=f"untrained ({untrained:.3f})")
    ax.legend(loc="lower right")
    ax.set_yticks(y, [r["name"] for r in rows])
    ax.set_xlabel("fold validation score (bar: mean; dots: runs)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnest14d")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes, one thread each")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_demo")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results page; the plot goes beside it (.png)")
    args = parser.parse_args()
    args.seeds, args.folds = list(dict.fromkeys(args.seeds)), list(dict.fromkeys(args.folds))
    logging.basicConfig(level=logging.WARNING)
    plan = plan_runs(args)  # builds the shared data before the workers start
    saved = args.work / f"tricks_{args.backbone}.json"
    runs: dict[str, dict[str, float]] = json.loads(saved.read_text()) if saved.exists() else {}
    todo = [key for key in plan if key not in runs]
    if len(todo) < len(plan):
        print(f"{saved}: resuming, {len(plan) - len(todo)} runs already done, {len(todo)} to go", flush=True)
    started = time.perf_counter()

    def report(done: bool) -> None:
        selected = {key: runs[key] for key in plan if key in runs}
        if not selected:
            return
        rows = summarise(plan, selected)
        minutes = (time.perf_counter() - started) / 60
        write_text(args.out, markdown(args, rows, selected, len(plan), minutes, done))
        plot(rows, float(np.mean([r["untrained"] for r in selected.values()])), args.out.with_suffix(".png"))

    context = multiprocessing.get_context("spawn")  # fork after torch's thread pools can deadlock
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_one, args.work, args.input_size, *plan[key][2:]): key for key in todo}
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc="ablation runs", unit="run"):
                key = futures[future]
                runs[key] = future.result()
                write_json(saved, runs)  # a killed or failed benchmark keeps its finished runs
                tqdm.write(f"{key}: score {runs[key]['score']:.3f}")
                report(done=False)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # do not train the queued runs for nothing
            raise
    report(done=True)


if __name__ == "__main__":
    main()
