"""What each training trick is worth on the demo data, as in the strong re-id baseline paper.

Cumulative ablation: each row adds one trick to the row above and trains anew; the
figure is the fold's validation score (0.5 * top-1 + 0.5 * mAP@10) after the last epoch,
averaged over every (seed, fold) run, with its spread. Runs go to ``--jobs`` single-threaded
processes; each finished run is saved in ``--work`` so a killed benchmark resumes where it
stopped. Writes benchmarks/results/bench_tricks.{md,png}.

    python benchmarks/bench_tricks.py --backbone resnest14d --epochs 12 --seeds 0 1 2 --jobs 2
    python benchmarks/bench_tricks.py --backbone efficientnet_lite0 --pretrained package --epochs 4 \
        --out benchmarks/results/bench_tricks_pretrained.md

``--suite single`` measures the tricks of issue 13 instead, each switched on alone in the
packaged-weight lite0 preset (configs/lite0.yaml) and compared with that preset, paired by
seed, on the dataset's own query/gallery split (never trained on). Two-stage training is
compared with the same second stage without the undersampling:

    python benchmarks/bench_tricks.py --suite single --dataset grocery --epochs 3 --input-size 48 \
        --seeds 0 --jobs 1 --out benchmarks/results/bench_tricks_single_grocery.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from harness import checkpoint_test_scores, describe_machine, mean_sd
from tqdm import tqdm

from pipeline.core.allocator import keep_freed_memory
from pipeline.data.cache import build_cache, open_split
from pipeline.demo.generate import DemoConfig, generate_demo
from pipeline.data.folds import make_folds
from pipeline.data.transforms import AugmentConfig
from pipeline.core.io_utils import atomic_path, write_csv, write_json, write_text
from pipeline.losses import LossConfig
from pipeline.models import ModelConfig
from pipeline.train.data import FoldData, load_fold
from pipeline.train.loop import fingerprint, fit
from pipeline.train.trained import load_trained_model
from pipeline.train.fold_score import validation_scores
from pipeline.train.recipe import Recipe, TrainConfig
from pipeline.train.schedule import OptimConfig

RESULTS = Path(__file__).parent / "results" / "bench_tricks.md"
GROCERY = Path(__file__).resolve().parents[2] / "shared" / "data" / "grocery"


def dataset_cache(work: Path, size: int, dataset: str = "demo") -> tuple[Path, Path]:
    """(cache, folds.csv) of the demo dataset or the grocery photos at ``size`` px with 5 folds;
    built once under ``work``."""
    if dataset == "demo":
        root, cache, folds = work / "demo", work / f"cache{size}", work / "folds.csv"
        if not root.exists():
            generate_demo(DemoConfig(), root)
    else:
        root, cache, folds = GROCERY, work / f"grocery_cache{size}", work / "grocery_folds.csv"
    if not cache.exists():
        build_cache(root, cache, size)
    if not folds.exists():
        write_csv(folds, make_folds(open_split(cache, "train").table, 5, 0, 0.2))
    return cache, folds


def demo_fold(work: Path, size: int = 64, fold: int = 0, dataset: str = "demo") -> FoldData:
    """One fold of the dataset's training split (see ``dataset_cache``)."""
    return load_fold(*dataset_cache(work, size, dataset), fold)


def ablation(
    backbone: str, epochs: int, input_size: int, seed: int = 0, pretrained: bool | str = False
) -> list[tuple[str, Recipe]]:
    """(name, recipe) rows, each adding one trick to the previous row; ``pretrained`` as the
    recipe key ``model.pretrained`` ("package": the installed ImageNet weights)."""
    recipe = Recipe(
        model=ModelConfig(backbone=backbone, pretrained=pretrained, pooling="avg", neck="none", head="linear"),
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


STAGE2_CAP = 48  # images per identity in the second stage: about grocery's median (35-143)


def single_tricks(epochs: int, input_size: int, seed: int, steps_per_epoch: int) -> list[tuple[str, Recipe, str]]:
    """(name, recipe, the row it is compared with): each trick of issue 13 alone on the
    packaged-weight lite0 preset (configs/lite0.yaml, shortened). The two second-stage rows
    start from the preset's own run of the same seed (see ``STAGE2``)."""
    base = Recipe(
        model=ModelConfig(backbone="efficientnet_lite0", pretrained="package", pooling="gem", neck="bnneck"),
        train=TrainConfig(epochs=epochs, p=16, k=4, input_size=input_size, seed=seed, eval_every=epochs),
        loss=LossConfig(ce_weight=1.0, label_smoothing=0.1, triplet_weight=1.0, triplet_normalize=True),
        augment=AugmentConfig(hflip_p=0.5, rotate90_p=0.3, erasing_p=0.5),
        optim=OptimConfig(
            optimizer="adam", lr=3.5e-4, head_lr_multiplier=10.0, weight_decay=5e-4, warmup_epochs=1,
            warmup_factor=0.1, schedule="cosine", min_lr=1e-6,
        ),
    )
    r = dataclasses.replace
    stage2 = r(
        base, train=r(base.train, epochs=1, eval_every=1),
        optim=r(base.optim, lr=3.5e-5, warmup_epochs=0.0),
    )
    name = "lite0 preset"
    return [
        (name, base, name),
        ("+ last stride 1", r(base, model=r(base.model, last_stride_1=True)), name),
        ("+ DeGaussian p=0.5", r(base, augment=r(base.augment, degaussian_p=0.5)), name),
        ("+ DePepper p=0.5", r(base, augment=r(base.augment, depepper_p=0.5)), name),
        ("+ XBM on in epoch 2 only", r(base, loss=r(
            base.loss, xbm_weight=1.0, xbm_size=1024,
            xbm_start_iteration=steps_per_epoch, xbm_stop_iteration=(epochs - 1) * steps_per_epoch,
        )), name),
        ("+ Batch DropBlock", r(base, model=r(base.model, batch_drop=True)), name),
        ("+ RandAugment rand-m9-mstd0.5", r(base, augment=r(base.augment, auto_augment="rand-m9-mstd0.5")), name),
        (STAGE2[0], stage2, STAGE2[0]),
        (STAGE2[1], r(stage2, train=r(stage2.train, max_per_identity=STAGE2_CAP)), STAGE2[0]),
    ]


STAGE2 = ("then 1 epoch at lr/10 (control)", f"then 1 epoch at lr/10, <= {STAGE2_CAP} images per identity")


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


def run_one(
    work: Path, input_size: int, fold: int, recipe: Recipe, dataset: str = "demo",
    keep: Path | None = None, init: Path | None = None,
) -> dict[str, float]:
    """Train one recipe on one fold: held-out scores untrained (step 0), best and last epoch,
    and the last model's score among its own training images. With ``keep`` (the single
    suite) the last weights are kept there for a second stage, which ``init`` starts from,
    and the scores are those of the dataset's own query/gallery split instead."""
    torch.set_num_threads(1)  # one thread per process: 2 threads on 2 shared cores ran ~10x slower
    keep_freed_memory()  # as every stage does (pipeline.core.allocator): a training step 1.33x faster
    data = demo_fold(work, input_size, fold, dataset)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = fit(recipe, data, out, model_name="ablation", fold=fold, init=init)
        seconds = time.perf_counter() - started
        scores = Path(out) / "live" / "plots" / "metrics" / "val" / "score.tsv"
        untrained = float(scores.read_text().splitlines()[1].split("\t")[1])  # step 0
        last = Path(out) / "checkpoints" / "last.pt"
        if keep is None:
            extra = {"training_images": training_image_score(last, data)}
        else:
            test = checkpoint_test_scores(last, dataset_cache(work, input_size, dataset)[0])
            extra = {"val_score": summary["val/score"], "top1": test["top1"], "map10": test["map@10"], "score": test["score"]}
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(last, keep)
    return {
        "top1": summary["val/top1"], "map10": summary["val/map@10"], "score": summary["val/score"],
        "best": summary["best/score"], "untrained": untrained,
        "seconds": seconds, "queries": len(data.query_rows), "gallery": len(data.gallery_rows), **extra,
    }


Plan = dict[str, tuple[str, int, int, Recipe]]  # run key -> (row name, seed, fold, recipe)


def plan_runs(args: argparse.Namespace) -> Plan:
    """Every (row, seed, fold) run. A key carries the fingerprint of the recipe and fold data
    (as a training checkpoint does), so an edited ablation or demo never reuses a stale run."""
    plan: Plan = {}
    for fold in args.folds:
        data = demo_fold(args.work, args.input_size, fold)
        for seed in args.seeds:
            for name, recipe in ablation(args.backbone, args.epochs, args.input_size, seed, args.pretrained or False):
                key = f"{name} | seed {seed} | fold {fold} | {fingerprint(recipe, data, world_size=1)[:12]}"
                plan[key] = (name, seed, fold, recipe)
    return plan


@dataclasses.dataclass(frozen=True)
class SingleRun:
    name: str
    seed: int
    fold: int
    recipe: Recipe
    reference: str  # the row it is compared with
    init_key: str | None  # the run whose last weights it starts from


def plan_single(args: argparse.Namespace) -> dict[str, SingleRun]:
    """Every (row, seed, fold) run of the single-trick suite, keyed like ``plan_runs``."""
    plan: dict[str, SingleRun] = {}
    for fold in args.folds:
        data = demo_fold(args.work, args.input_size, fold, args.dataset)
        steps = len(data.train_rows) // 64  # about the PK batches of an epoch (16 x 4)
        for seed in args.seeds:
            base_key = None
            for name, recipe, reference in single_tricks(args.epochs, args.input_size, seed, steps):
                init_key = base_key if name in STAGE2 else None
                key = f"{args.dataset} | {name} | seed {seed} | fold {fold} | {fingerprint(recipe, data, world_size=1)[:12]}"
                if init_key is not None:
                    key += f" | after {init_key.rsplit('| ', 1)[-1]}"
                base_key = base_key or key
                plan[key] = SingleRun(name, seed, fold, recipe, reference, init_key)
    return plan


def single_markdown(args: argparse.Namespace, plan: dict[str, SingleRun], runs: dict[str, dict], minutes: float) -> str:
    """Each row with its paired change against its reference row, on the query/gallery split."""
    as_plan: Plan = {k: (v.name, v.seed, v.fold, v.recipe) for k, v in plan.items()}
    rows = {row["name"]: row for row in summarise(as_plan, runs)}
    references = {v.name: v.reference for v in plan.values()}
    lines = []
    for name, row in rows.items():
        reference = rows.get(references[name])
        delta = "" if reference is None or reference is row else paired_delta(reference, row)
        spread = "" if np.isnan(row["std"]) else f" ± {row['std']:.3f}"
        val = np.mean([runs[k]["val_score"] for k, v in plan.items() if v.name == name and k in runs])
        lines.append(
            f"| {name} | {row['top1']:.3f} | {row['map10']:.3f} | **{row['score']:.3f}**{spread} | {delta} "
            f"| {' '.join(f'{v:.3f}' for v in row['scores'])} | {val:.3f} | {row['seconds']:.0f} |"
        )
    any_run = next(iter(runs.values()))
    return "\n".join([
        f"# Issue 13's training tricks, each alone against the lite0 preset ({args.dataset})",
        "",
        f"`efficientnet_lite0` from the packaged ImageNet weights, the configs/lite0.yaml preset shortened to",
        f"{args.epochs} epochs at {args.input_size} px (PK 16 x 4, Adam 3.5e-4, head lr x10, 1 warm-up epoch,",
        "cosine; BNNeck, label smoothing, normalised batch-hard triplet, hflip, quarter turns, random",
        f"erasing). Trained on fold {args.folds} of the training split; **score = 0.5 * top-1 + 0.5 * mAP@10 on",
        f"the dataset's own query/gallery split** (never trained or tuned on). Seeds {args.seeds}: mean ± sd",
        "over seeds, then each run. \"vs reference\" is the paired change (same seed) against the preset, or",
        "for the second stage against the same second stage without undersampling; both second stages start",
        "from the preset's own run of the same seed. The fold's held-out score is shown for reference.",
        f"(The fold holds out {any_run['queries']} queries / {any_run['gallery']} gallery images.)",
        "",
        "| recipe | top-1 | mAP@10 | score ± sd | vs reference (paired) | each run | fold val score | seconds/run |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
        "",
        f"{len(runs)} of {len(plan)} runs, {sum(r['seconds'] for r in runs.values()) / 60:.0f} process-minutes of "
        f"training ({args.jobs} single-threaded job(s); this invocation {minutes:.1f} min, finished runs are "
        f"reused). Machine: {describe_machine(torch=torch.__version__)}; the 2 cores were shared with",
        "other engineers' jobs throughout, so seconds/run are rough.",
        "",
    ])


def run_single(args: argparse.Namespace) -> None:
    """The single-trick suite: first-stage runs, then the second stages that start from them."""
    plan = plan_single(args)
    saved = args.work / f"single_{args.dataset}.json"
    runs: dict[str, dict] = json.loads(saved.read_text()) if saved.exists() else {}
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")

    def keep(key: str) -> Path:  # a run's last weights, named by its fingerprint
        return args.work / "kept" / f"{key.rsplit('| ', 1)[-1].strip()}.pt"

    for phase in (False, True):  # second stages after the runs they start from
        todo = [k for k, v in plan.items() if (v.init_key is not None) == phase and k not in runs]
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            futures = {}
            for key in todo:
                run = plan[key]
                init = None if run.init_key is None else keep(run.init_key)
                if init is not None and not init.exists():
                    raise SystemExit(f"{init}: the weights of {run.init_key!r} were not kept; delete {saved} and rerun")
                futures[pool.submit(
                    run_one, args.work, args.input_size, run.fold, run.recipe, args.dataset, keep(key), init,
                )] = key
            for future in tqdm(as_completed(futures), total=len(futures), desc="trick runs", unit="run"):
                key = futures[future]
                runs[key] = future.result()
                write_json(saved, runs)
                tqdm.write(f"{key}: score {runs[key]['score']:.3f}")
                selected = {k: runs[k] for k in plan if k in runs}
                write_text(args.out, single_markdown(args, plan, selected, (time.perf_counter() - started) / 60))


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
    return mean_sd(changes, signed=True) if len(changes) else ""


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
        f"Backbone `{args.backbone}` "
        + ("from the packaged ImageNet weights" if args.pretrained else "from scratch")
        + f", {args.input_size} px,",
        f"{args.epochs} epochs, PK batches 16 x 4, Adam 2e-3 with 1 warm-up epoch and cosine decay;",
        "demo dataset (300 training identities x 4-8 images). Each row adds one trick to the row above",
        f"and trains anew. Runs: seeds {args.seeds} x folds {args.folds} (a fold holds out about",
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
    parser.add_argument("--pretrained", choices=["package"], default=None,
                        help="ablation suite: start from the packaged ImageNet weights (default: from scratch)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes, one thread each")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_demo")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results page; the plot goes beside it (.png)")
    parser.add_argument("--suite", choices=["ablation", "single"], default="ablation",
                        help="ablation: the strong-baseline rows, cumulative; single: issue 13's tricks, each alone")
    parser.add_argument("--dataset", choices=["demo", "grocery"], default="demo")
    args = parser.parse_args()
    args.seeds, args.folds = list(dict.fromkeys(args.seeds)), list(dict.fromkeys(args.folds))
    logging.basicConfig(level=logging.WARNING)
    if args.suite == "single":
        if args.epochs < 3:
            raise SystemExit("--suite single needs --epochs 3 or more (XBM is on in the middle epochs only)")
        run_single(args)
        return
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
