"""Domain adaptation on the real pedestrian set: the test split scored before and after each
round of DBSCAN pseudo-labels and fine-tuning (pipeline/adapt, the adapt stage's own code), with
the pseudo-labels' purity and NMI against the true identities (read here only: the adaptation
itself never sees a label).

Settings (``--settings``, several allowed):

- ``test``: the source trains on fold ``--fold`` of the person set's training identities (as the
  chain's fold model), adapts to the test split's query + gallery images (transductive: the
  stage's default target, the chain's cache) and is scored on that test split.
- ``leave-out:<collection>`` (3dpes, caviar4reid, ilid, sarc3d, towncentre): the source trains on
  the other four collections only, adapts to the left-out collection's training images
  (unlabelled; ``--target test``: its test query + gallery instead) and is scored on that
  collection's test split.

Scores (``bench_person.test_scores``): rank-1/5/10/20, mAP and mINP of flip-averaged cosine
features, multi-shot (the split as shipped) and single-shot (one gallery image per identity,
from another camera than the query where there is one). Before round 1 the source features are
also clustered at a few radii (the rho rule and fixed eps), for clusters, noise, purity and NMI:
cheap, and it shows where the configured radius sits. Runs are kept in ``--work``: a rerun
finds the trained sources and finished rounds again (only the scores are recomputed).

    python benchmarks/adapt.py --recipe configs/person_lite0.yaml --settings test leave-out:3dpes --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from harness import describe_machine

from bench_person import PERSON, collection, person_cache, test_scores, without_unused
from pipeline.adapt.cluster import Clustering, cluster_features, pseudo_label_quality
from pipeline.adapt.rounds import adapt_model, pseudo_labels_path, round_dir, target_features
from pipeline.adapt.target import target_images
from pipeline.core.allocator import keep_freed_memory
from pipeline.data.cache import open_split
from pipeline.core.io_utils import write_json, write_text
from pipeline.core.params import FoldDir
from pipeline.core.sections import AdaptConfig, height_width
from pipeline.train.data import load_fold
from pipeline.train.loop import fit
from pipeline.train.recipe import Recipe, load_recipe

RESULTS = Path(__file__).parent / "results" / "adapt.md"
RADII = ({"rho": 1.6e-3}, {"rho": 5e-3}, {"rho": 1.6e-2}, {"eps": 0.5}, {"eps": 0.6}, {"eps": 0.7})
SCORES = ("multi/rank1", "multi/rank5", "multi/rank10", "multi/rank20", "multi/mAP", "multi/mINP", "single/rank1", "single/mAP")
# the adapt section's knobs the command line sets (the others: the stage's own)
KNOBS = ("rounds", "epochs", "lr", "k1", "k2", "eps", "rho", "min_samples", "min_clusters")


def digest(*parts: object) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=6).hexdigest()


def source_recipe(path: Path, seed: int, epochs: int | None, input_size: list[int] | None) -> Recipe:
    recipe = load_recipe(path)
    train = dataclasses.replace(recipe.train, seed=seed)
    if epochs is not None:
        train = dataclasses.replace(train, epochs=epochs, eval_every=min(train.eval_every, epochs))
    if input_size is not None:
        train = dataclasses.replace(train, input_size=tuple(input_size))
    return dataclasses.replace(recipe, train=train)


def target(cache: Path, size: tuple[int, int], leave_out: str | None, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, true labels) of the target; the labels go to the purity and NMI only."""
    if leave_out is None or kind == "test":
        query, gallery = open_split(cache, "query").table, open_split(cache, "gallery").table
        truth = np.concatenate([query["label"].astype(str), gallery["label"].astype(str)])
        images = target_images(cache, size)  # the stage's reader: query then gallery, from the .npy files alone
        rows = np.arange(len(truth)) if leave_out is None else np.flatnonzero(collection(pd.Series(truth)) == leave_out)
        return np.ascontiguousarray(images[rows]), truth[rows]
    train = open_split(cache, "train")
    rows = np.flatnonzero(collection(train.table["label"]) == leave_out)
    return np.ascontiguousarray(train.images[rows]), train.table["label"].astype(str).to_numpy()[rows]


def cluster_record(labels: np.ndarray, truth: np.ndarray, eps: float) -> dict[str, float]:
    return {**Clustering(labels=labels, eps=eps).summary(), **pseudo_label_quality(labels, truth)}


def run_setting(args: argparse.Namespace, setting: str, seed: int, cfg: AdaptConfig) -> dict:
    leave_out = None if setting == "test" else setting.split(":", 1)[1]
    recipe = source_recipe(args.recipe, seed, args.epochs, args.input_size)
    cache, folds = person_cache(args.work, height_width(recipe.train.input_size), leave_out)
    source_dir = args.work / "source" / f"{leave_out or 'all'}-fold{args.fold}-{digest(dataclasses.asdict(recipe))}"
    print(f"{setting} seed {seed}: training the source in {source_dir}", flush=True)
    fit(recipe, without_unused(load_fold(cache, folds, args.fold), folds), source_dir, model_name="source", fold=args.fold)
    source = FoldDir(source_dir).best
    images, truth = target(cache, height_width(recipe.train.input_size), leave_out, args.target)
    result: dict = {"setting": setting, "seed": seed, "target_images": len(images), "target_identities": len(set(truth)),
                    "steps": {"source": test_scores(source, cache, leave_out)}}
    features = target_features(source, images, cfg.batch_size, torch.device("cpu"))
    result["radii"] = {}
    for radius in RADII:
        clustering = cluster_features(features, k1=cfg.k1, k2=cfg.k2, min_samples=cfg.min_samples, **radius)
        name = ", ".join(f"{k} {v:g}" for k, v in radius.items())
        result["radii"][name] = cluster_record(clustering.labels, truth, clustering.eps)
    run_name = f"{setting.replace(':', '-')}-{args.target}-{digest(str(source_dir), dataclasses.asdict(cfg))}"
    out = FoldDir(args.work / "adapt" / run_name)
    print(f"{setting} seed {seed}: adapting to {len(images)} images in {out.root}", flush=True)
    started = time.perf_counter()
    history = adapt_model(source, images, cfg, out, model_name="source", fold=args.fold)
    stop = [entry for entry in history if "stopped" in entry]
    if stop:  # the rounds before it still count
        result["stopped"] = (f"round {stop[0]['round']:.0f} found {stop[0]['clusters']:.0f} clusters "
                             f"({100 * stop[0]['noise_fraction']:.1f} % noise), fewer than min_clusters {cfg.min_clusters}: "
                             "the rounds stopped, the model that round started from is the result")
    result["adapt_minutes"] = (time.perf_counter() - started) / 60  # of this call: a resumed run counts only what it redid
    eps = {int(entry["round"]): entry["eps"] for entry in history}
    for number in range(1, cfg.rounds + 1):
        if not round_dir(out, number).best.is_file():
            break
        labels = np.load(pseudo_labels_path(out, number))
        result["steps"][f"round {number}"] = {
            **cluster_record(labels, truth, eps.get(number, float("nan"))),
            **test_scores(round_dir(out, number).best, cache, leave_out),
        }
    return result


def pct(value: float | None) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def markdown(args: argparse.Namespace, cfg: AdaptConfig, runs: dict[str, dict]) -> str:
    shown = {**dataclasses.asdict(cfg), "lr": cfg.lr or "the recipe's"}
    knobs = ", ".join(f"{k} {v}" for k, v in shown.items() if k not in ("models", "target"))
    lines = [
        "# Domain adaptation on the person set (`../shared/data/person`)",
        "",
        f"Source recipe `{args.recipe}`" + (f", epochs {args.epochs}" if args.epochs else "")
        + (f", input {args.input_size}" if args.input_size else "") + f", fold {args.fold} of the training identities; "
        f"adaptation ({knobs}); target for leave-out settings: the collection's {args.target} images. "
        "Clusters, noise, purity and NMI are of the target's pseudo-labels (purity and NMI against the true "
        "identities, over the images kept); scores in % on the setting's test split (multi-shot as shipped, "
        "single-shot: one gallery image per identity).",
        "",
        f"Machine: {describe_machine()}",
        "",
        "    python benchmarks/adapt.py " + " ".join(args.argv),
        "",
    ]
    header = "| step | clusters | noise | eps | purity | NMI | R1 | R5 | R10 | R20 | mAP | mINP | single R1 | single mAP |"
    for run in runs.values():
        lines += [f"## {run['setting']}, seed {run['seed']}", "",
                  f"Target: {run['target_images']} images of {run['target_identities']} identities; adaptation "
                  f"{run['adapt_minutes']:.1f} min (the scores' extraction not counted).", ""]
        if "stopped" in run:
            lines += [f"Stopped: {run['stopped']}", ""]
        lines += [header, "|" + "---|" * 14]
        for step, row in run["steps"].items():
            clusters = [f"{row['clusters']:.0f}", pct(row["noise_fraction"]), f"{row['eps']:.3f}", pct(row["purity"]),
                        pct(row["nmi"])] if "clusters" in row else ["–"] * 5
            lines.append(f"| {step} | " + " | ".join(clusters + [pct(row[key]) for key in SCORES]) + " |")
        lines += ["", "The source features clustered at other radii (no training):", "",
                  "| radius | eps | clusters | noise | largest | purity | NMI |", "|---|---|---|---|---|---|---|"]
        for name, row in run["radii"].items():
            lines.append(f"| {name} | {row['eps']:.3f} | {row['clusters']:.0f} | {pct(row['noise_fraction'])} | "
                         f"{row['largest_cluster']:.0f} | {pct(row['purity'])} | {pct(row['nmi'])} |")
        lines.append("")
    finals = [(run, list(run["steps"])[-1]) for run in runs.values() if len(run["steps"]) > 1]
    if finals:
        lines += ["## Last round against the source (points)", "",
                  "| setting | seed | rounds | R1 | mAP | single R1 | single mAP |", "|---|---|---|---|---|---|---|"]
        for run, last in finals:
            delta = lambda key: f"{100 * (run['steps'][last][key] - run['steps']['source'][key]):+.1f}"  # noqa: E731
            lines.append(f"| {run['setting']} | {run['seed']} | {len(run['steps']) - 1} | {delta('multi/rank1')} | "
                         f"{delta('multi/mAP')} | {delta('single/rank1')} | {delta('single/mAP')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("configs/person_lite0.yaml"))
    parser.add_argument("--epochs", type=int, help="the source's epochs (default: the recipe's)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="default: the recipe's")
    parser.add_argument("--settings", nargs="+", default=["test"], help="test, leave-out:<collection>")
    parser.add_argument("--target", choices=["train", "test"], default="train", help="leave-out settings' target images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--fold", type=int, default=0)
    defaults = AdaptConfig(models=[])
    for name in KNOBS:
        kind = int if name in ("rounds", "epochs", "k1", "k2", "min_samples", "min_clusters") else float
        flag = "--adapt-epochs" if name == "epochs" else f"--{name.replace('_', '-')}"
        parser.add_argument(flag, dest=f"adapt_{name}", type=kind, default=getattr(defaults, name),
                            help=f"adapt.{name} (default {getattr(defaults, name)})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_adapt"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if not PERSON.is_dir():
        raise SystemExit(f"the person set is not at {PERSON} (../shared/data/person)")
    labels = pd.read_csv(PERSON / "train.csv", usecols=["label"], dtype=str)["label"]
    collections = {"test"} | {f"leave-out:{c}" for c in collection(labels).unique()}
    unknown = [s for s in args.settings if s not in collections]
    if unknown:
        raise SystemExit(f"unknown setting {unknown[0]!r}: choose from {', '.join(sorted(collections))}")
    cfg = AdaptConfig(models=["source"], **{name: getattr(args, f"adapt_{name}") for name in KNOBS})
    cfg.validate()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pipeline.adapt").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for seed in args.seeds:
        for setting in args.settings:
            runs[f"{setting}|{seed}"] = run_setting(args, setting, seed, cfg)
            write_json(args.work / "adapt_runs.json", runs)
            write_text(args.out, markdown(args, cfg, runs))
            print(json.dumps(runs[f"{setting}|{seed}"]["steps"], indent=1), flush=True)


if __name__ == "__main__":
    main()
