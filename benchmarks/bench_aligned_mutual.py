"""AlignedReID's two ideas on the demo data, one seed, one fold (a short check, not a study).

Rows: a model alone; + the local branch, scored on the global distance (training only) and on
global + local distance (training and retrieval, weight fixed at --local-weight, not tuned);
a second model alone; the two trained together by mutual learning, each scored alone. Every
figure is the held-out identities' score (0.5 top-1 + 0.5 mAP@10) of the LAST epoch's weights
(the split picks no epoch and tunes nothing). Finished runs are kept in --work (a rerun resumes).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_aligned_mutual.py --out benchmarks/results/bench_aligned_mutual.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import describe_machine  # noqa: E402

from pipeline.data.cache import build_cache, open_split  # noqa: E402
from pipeline.demo.generate import DemoConfig, generate_demo  # noqa: E402
from pipeline.data.folds import make_folds  # noqa: E402
from pipeline.data.transforms import AugmentConfig  # noqa: E402
from pipeline.evaluate.metrics import competition_scores  # noqa: E402
from pipeline.infer.tta import TTAConfig, extract_parts  # noqa: E402
from pipeline.core.io_utils import write_csv  # noqa: E402
from pipeline.losses import LossConfig  # noqa: E402
from pipeline.models import ModelConfig  # noqa: E402
from pipeline.retrieval.local_rescore import candidate_local_distances  # noqa: E402
from pipeline.core.sections import MutualConfig  # noqa: E402
from pipeline.train.data import FoldData, load_fold  # noqa: E402
from pipeline.train.loop import fit  # noqa: E402
from pipeline.train.mutual import fit_mutual  # noqa: E402
from pipeline.train.recipe import Recipe, TrainConfig  # noqa: E402
from pipeline.train.schedule import OptimConfig  # noqa: E402
from pipeline.train.trained import load_trained_model  # noqa: E402


def demo_fold(work: Path, identities: int, size: int) -> FoldData:
    dataset, cache, folds = work / "demo", work / f"cache{size}", work / "folds.csv"
    if not dataset.exists():
        generate_demo(DemoConfig(train_identities=identities, test_identities=4), dataset)
    if not cache.exists():
        build_cache(dataset, cache, size)
    if not folds.exists():
        write_csv(folds, make_folds(open_split(cache, "train").table, 5, 0, 0.2))
    return load_fold(cache, folds, 0)


def recipe(backbone: str, size: int, epochs: int, stripes: int = 0) -> Recipe:
    """The demo recipes' settings (configs/demo/lite0.yaml) at this size and length."""
    return Recipe(
        model=ModelConfig(backbone=backbone, pretrained="package", local_stripes=stripes),
        train=TrainConfig(epochs=epochs, p=16, k=4, input_size=size, seed=0, eval_every=epochs),
        loss=LossConfig(triplet_normalize=True, local_triplet_weight=1.0 if stripes else 0.0),
        augment=AugmentConfig(hflip_p=0.5, erasing_p=0.5),
        optim=OptimConfig(optimizer="adam", lr=3.5e-4, head_lr_multiplier=10.0, weight_decay=5e-4,
                          warmup_epochs=0.5, warmup_factor=0.1, schedule="cosine", min_lr=1e-6),
    )


def score(checkpoint: Path, data: FoldData, local_weight: float = 0.0) -> float:
    model, meta = load_trained_model(checkpoint)
    common = dict(input_size=meta["input_size"], mean=meta["mean"], std=meta["std"],
                  cfg=TTAConfig(flip=False), local=local_weight > 0)
    query, query_local = extract_parts(model, data.images[data.query_rows], **common)
    gallery, gallery_local = extract_parts(model, data.images[data.gallery_rows], **common)
    distance = 1.0 - query @ gallery.T
    if local_weight:
        everything = np.tile(np.arange(len(gallery)), (len(query), 1))
        distance = distance + local_weight * candidate_local_distances(query_local, gallery_local, everything)
    ranked = np.argsort(distance, axis=1, kind="stable")[:, :10]
    return competition_scores(ranked, data.labels[data.query_rows], data.labels[data.gallery_rows], k=10)["score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_aligned_mutual"))
    parser.add_argument("--identities", type=int, default=150)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--stripes", type=int, default=3)
    parser.add_argument("--local-weight", type=float, default=1.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    data = demo_fold(args.work, args.identities, args.size)
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    a, b = "efficientnet_lite0", "efficientnet_lite1"
    runs = {
        "lite0": lambda out: fit(recipe(a, args.size, args.epochs), data, out, model_name="lite0", fold=0),
        "lite0_local": lambda out: fit(recipe(a, args.size, args.epochs, args.stripes), data, out, model_name="lite0", fold=0),
        "lite1": lambda out: fit(recipe(b, args.size, args.epochs), data, out, model_name="lite1", fold=0),
        "mutual": lambda out: fit_mutual(recipe(a, args.size, args.epochs), recipe(b, args.size, args.epochs), data, out,
                                         pair="lite0+lite1", fold=0, cfg=MutualConfig(pairs=["lite0+lite1"])),
    }
    for name, train in runs.items():
        if name in results:
            continue
        started = time.perf_counter()
        train(args.work / name)
        results[name] = {"seconds": time.perf_counter() - started}
        results_path.write_text(json.dumps(results))
        print(name, results[name], flush=True)
    last = lambda run: args.work / run / "checkpoints" / "last.pt"  # noqa: E731
    joint = args.work / "mutual" / "joint" / "fold0" / "checkpoints" / "last.pt"
    state = torch.load(joint, weights_only=True)
    for name, weights in (("lite0", {k: v for k, v in state.items() if k != "partner"}), ("lite1", state["partner"])):
        torch.save(weights, args.work / f"mutual_{name}_last.pt")
    rows = [
        ("lite0 alone", score(last("lite0"), data), results["lite0"]["seconds"]),
        ("lite0 + local branch, global distance (training only)", score(last("lite0_local"), data), results["lite0_local"]["seconds"]),
        (f"lite0 + local branch, global + {args.local_weight:g} x local distance", score(last("lite0_local"), data, args.local_weight), None),
        ("lite1 alone", score(last("lite1"), data), results["lite1"]["seconds"]),
        ("lite0 after mutual learning with lite1", score(args.work / "mutual_lite0_last.pt", data), results["mutual"]["seconds"]),
        ("lite1 after mutual learning with lite0", score(args.work / "mutual_lite1_last.pt", data), None),
    ]
    lines = [
        "# bench_aligned_mutual: AlignedReID local branch and mutual learning on the demo (short check)",
        "",
        f"Machine: {describe_machine(torch=torch.__version__)}; torch threads 1. The 2 cores were shared with "
        "other engineers' jobs (times are rough).",
        "",
        f"Data: the demo generator with {args.identities} training identities, cached at {args.size} px; fold 0 of 5 "
        f"({len(data.train_rows)} training images; held-out {len(data.query_rows)} queries x {len(data.gallery_rows)} "
        f"gallery). Recipes: the demo lite recipes (packaged ImageNet weights, CE + triplet, Adam) for {args.epochs} "
        f"epochs at {args.size} px, seed 0; local branch {args.stripes} stripes x 128, local triplet weight 1; "
        "mutual: KL weight 1, metric mutual weight 1. Score = 0.5 top-1 + 0.5 mAP@10 of the held-out identities, "
        "last epoch's weights, one plain view. One seed and ~30 held-out identities: differences of a few "
        "points are within the noise.",
        "",
        "| run | score | train s |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value:.3f} | {'' if seconds is None else f'{seconds:.0f}'} |" for name, value, seconds in rows]
    lines += ["", "Reproduce: `OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_aligned_mutual.py "
              "--out benchmarks/results/bench_aligned_mutual.md`", ""]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
