"""ImageNet features without training vs fine-tuned, on a dataset's test split: TTA off/on,
re-ranking off/on.

    .venv/bin/python benchmarks/bench_pretrained_features.py CACHE_DIR [--name grocery]
        [--backbones efficientnet_lite0 efficientnet_lite1] [--size 128] [--trained params.yaml]

CACHE_DIR is a preprocess cache (``outputs/cache`` of a `dvc repro` run on that dataset,
with labelled query and gallery). Each backbone gets the packaged ImageNet weights
(``model.pretrained: package``), GeM pooling and an untrained (identity) BNNeck, exactly as a
fine-tuning run starts; its features are extracted through the chain's own TTA code and
ranked plainly and with the chain's default k-reciprocal re-ranking. This is the baseline that
fine-tuning must beat. With ``--trained PARAMS`` each model of that params file's
``train.models`` is scored the same way from its trained checkpoints (``train.folds`` fold
models averaged, as the extract stage does), so one table shows what fine-tuning, TTA and
re-ranking each add, model by model.
Appends to benchmarks/results/bench_pretrained_features.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness import describe_machine
from pipeline.data.cache import open_split
from pipeline.evaluate.metrics import competition_scores
from pipeline.infer.tta import average_fold_features, extract_features
from pipeline.models import ModelConfig, create_model, input_normalisation
from pipeline.core.params import StageParams
from pipeline.train.trained import load_trained_model
from pipeline.core.sections import RerankConfig, TTAConfig
from pipeline.retrieval.retrieve import retrieve

RESULTS = Path(__file__).parent / "results" / "bench_pretrained_features.md"
VIEWS = {"1 view": TTAConfig(flip=False), "TTA (scales 1.0, 1.1 x flip)": TTAConfig(scales=(1.0, 1.1), flip=True)}


def score(query: np.ndarray, gallery: np.ndarray, labels: tuple[np.ndarray, np.ndarray], rerank: bool) -> float:
    config = RerankConfig(enabled=rerank, candidates=min(100, len(gallery)))
    indices = retrieve(query, gallery, config).indices
    return competition_scores(indices[:, :10], labels[0], labels[1], k=10)["score"]


def untrained(backbone: str, side: int) -> tuple[torch.nn.Module, dict[str, object]]:
    """The packaged ImageNet backbone with GeM and an identity BNNeck, as fine-tuning starts,
    at ``side`` px."""
    model = create_model(ModelConfig(backbone=backbone, pretrained="package"), num_classes=0).eval()
    mean, std = input_normalisation(model)
    return model, {"mean": mean, "std": std, "input_size": side}


def fold_models(params: StageParams, name: str) -> list[tuple[torch.nn.Module, dict[str, object]]]:
    """A trained model's fold models (``train.folds``) with their meta, from the checkpoints."""
    return [load_trained_model(path) for path in params.trained_checkpoints(name).values()]


def features(models: list[tuple[torch.nn.Module, dict[str, object]]], images: np.ndarray, cfg: TTAConfig,
             size: int | None = None) -> np.ndarray:
    """Each model's features at ``size`` (None: the model's own input size), fold models averaged."""
    per_model = [
        extract_features(model, images, input_size=size or meta["input_size"], mean=meta["mean"], std=meta["std"], cfg=cfg)
        for model, meta in models
    ]
    return average_fold_features(per_model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--name", default=None, help="the dataset's name in the report")
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1"])
    parser.add_argument("--size", type=int, default=None, help="input side (default: the cache's; trained: the recipe's)")
    parser.add_argument("--trained", type=Path, default=None, help="params file of a finished run: score its models too")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    query, gallery = open_split(args.cache, "query"), open_split(args.cache, "gallery")
    labels = (query.table["label"].astype(str).to_numpy(), gallery.table["label"].astype(str).to_numpy())
    side = args.size or int(query.images.shape[1])
    candidates = [(f"`{backbone}`", "ImageNet, untrained", [untrained(backbone, side)]) for backbone in args.backbones]
    if args.trained:
        params = StageParams(str(args.trained))
        folds = ", ".join(map(str, params.train.folds))
        candidates += [(f"`{name}`", f"fine-tuned (folds {folds})", fold_models(params, name)) for name in params.train.models]
    rows = []
    for label, weights, models in candidates:
        for view, cfg in VIEWS.items():
            started = time.perf_counter()
            q, g = (features(models, s.images, cfg, args.size) for s in (query, gallery))
            seconds = time.perf_counter() - started
            rows.append(f"| {label} | {weights} | {view} | {score(q, g, labels, False):.3f} | {score(q, g, labels, True):.3f} | {seconds:.0f} |")
            print(rows[-1], flush=True)
    name = args.name or str(args.cache)
    lines = [
        f"## {name}: {len(query.table)} queries, {len(gallery.table)} gallery images, "
        f"{f'{args.size} px' if args.size else f'untrained at {side} px, trained at their recipes input size'}",
        "",
        f"Command: `.venv/bin/python {shlex.join(['benchmarks/bench_pretrained_features.py', *sys.argv[1:]])}`  ",
        f"Machine: {describe_machine(torch=torch.__version__)}",
        "",
        "Score = 0.5 top-1 + 0.5 mAP@10 on the test split; untrained: packaged ImageNet weights, GeM.",
        "",
        "| model | weights | views | score | score, re-ranked (k1 20, k2 6, lambda 0.3) | extraction s |",
        "|---|---|---|---:|---:|---:|",
        *rows,
        "",
    ]
    if not RESULTS.exists():
        RESULTS.write_text("# ImageNet features without training, on test splits\n\n")
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
