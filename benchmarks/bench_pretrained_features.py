"""ImageNet features without any training, on a dataset's test split: TTA off/on, re-ranking off/on.

    .venv/bin/python benchmarks/bench_pretrained_features.py CACHE_DIR [--name grocery]
        [--backbones efficientnet_lite0 efficientnet_lite1] [--size 128]

CACHE_DIR is a preprocess cache (``outputs/cache`` of a `dvc repro` run on that dataset,
with labelled query and gallery). Each backbone gets the packaged ImageNet weights
(``model.pretrained: package``), GeM pooling and an untrained (identity) BNNeck, exactly as a
fine-tuning run starts; its features are extracted through the chain's own TTA code and
ranked plainly and with the chain's default k-reciprocal re-ranking. This is the baseline that
fine-tuning must beat: the chain's scored test rows (README) sit beside it.
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

from machine import describe_machine
from pipeline.data.cache import open_split
from pipeline.evaluate.metrics import competition_scores
from pipeline.infer.tta import extract_features
from pipeline.models import ModelConfig, create_model, input_normalisation
from pipeline.sections import RerankConfig, TTAConfig
from pipeline.retrieval.retrieve import retrieve

RESULTS = Path(__file__).parent / "results" / "bench_pretrained_features.md"
VIEWS = {"1 view": TTAConfig(flip=False), "TTA (scales 1.0, 1.1 x flip)": TTAConfig(scales=(1.0, 1.1), flip=True)}


def score(query: np.ndarray, gallery: np.ndarray, labels: tuple[np.ndarray, np.ndarray], rerank: bool) -> float:
    config = RerankConfig(enabled=rerank, candidates=min(100, len(gallery)))
    indices = retrieve(query, gallery, config).indices
    return competition_scores(indices[:, :10], labels[0], labels[1], k=10)["score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--name", default=None, help="the dataset's name in the report")
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1"])
    parser.add_argument("--size", type=int, default=None, help="input side (default: the cache's)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    query, gallery = open_split(args.cache, "query"), open_split(args.cache, "gallery")
    labels = (query.table["label"].astype(str).to_numpy(), gallery.table["label"].astype(str).to_numpy())
    size = args.size or int(query.images.shape[1])
    rows = []
    for backbone in args.backbones:
        model = create_model(ModelConfig(backbone=backbone, pretrained="package"), num_classes=0).eval()
        mean, std = input_normalisation(model)
        for view, cfg in VIEWS.items():
            started = time.perf_counter()
            q, g = (extract_features(model, s.images, input_size=size, mean=mean, std=std, cfg=cfg) for s in (query, gallery))
            seconds = time.perf_counter() - started
            rows.append(f"| `{backbone}` | {view} | {score(q, g, labels, False):.3f} | {score(q, g, labels, True):.3f} | {seconds:.0f} |")
            print(rows[-1], flush=True)
    name = args.name or str(args.cache)
    lines = [
        f"## {name}: {len(query.table)} queries, {len(gallery.table)} gallery images, {size} px",
        "",
        f"Command: `.venv/bin/python {shlex.join(['benchmarks/bench_pretrained_features.py', *sys.argv[1:]])}`  ",
        f"Machine: {describe_machine(torch=torch.__version__)}",
        "",
        "Score = 0.5 top-1 + 0.5 mAP@10 on the test split, no training at all (packaged ImageNet weights, GeM).",
        "",
        "| backbone | views | score | score, re-ranked (k1 20, k2 6, lambda 0.3) | extraction s |",
        "|---|---|---:|---:|---:|",
        *rows,
        "",
    ]
    if not RESULTS.exists():
        RESULTS.write_text("# ImageNet features without training, on test splits\n\n")
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
