"""Training throughput: the full training step against a bare forward/backward.

Full step (what ``Trainer.train_epoch`` runs per batch): PK sampling, cache read,
augmentation, normalisation, backbone + pooling + neck + head forward, the recipe's losses,
NaN check, backward, optimiser (and centre) steps, schedule step. Bare: the backbone's
``forward_features(x).mean().backward()`` on the same, already normalised batches. Both
run in the same process, alternating in rounds so that machine load hits both alike;
figures are medians over rounds. Goal: full / bare >= 0.85.

    python benchmarks/bench_train.py [--recipes effb0 densenet121 resnest14d] [--batches 6]
    python benchmarks/bench_train.py --dataset person --recipes person_lite0 person_mnv2 \
        --out benchmarks/results/bench_train_person.md
    python benchmarks/bench_train.py --recipes demo/lite0 --variant "nchw: train.channels_last=false"

Each ``--variant`` adds a row per recipe with those recipe keys changed, measured in the same
run against the same bare reference (plain NCHW fp32 forward/backward).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench_person import person_cache
from bench_tricks import demo_fold
from harness import describe_machine, variant_recipe
from pipeline.data.torch_data import normalize_batch
from pipeline.core.config import from_mapping
from pipeline.core.io_utils import write_text
from pipeline.train.distributed import DistInfo
from pipeline.core.sections import height_width
from pipeline.train.data import load_fold
from pipeline.train.loop import Trainer
from pipeline.train.recipe import Recipe, load_recipe, read_recipe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "bench_train.md"


def measure(recipe: Recipe, data, batches: int, rounds: int) -> tuple[float, float, int]:
    """(bare images/s, full images/s, batch size), medians over ``rounds``."""
    trainer = Trainer(recipe, data, DistInfo())
    trainer.model.train()
    trainer.sampler.set_epoch(0)
    # the bare loop gets exactly the batches the full loop will load (the epoch is fixed)
    cached = [
        (normalize_batch(images, trainer.mean, trainer.std), labels)
        for images, labels in itertools.islice(trainer.loader, batches + 1)
    ]
    batch_size = len(cached[0][1])
    # the reference stays NCHW whatever the recipe's memory format (a copy of the same weights)
    backbone = copy.deepcopy(trainer.model.backbone).to(memory_format=torch.contiguous_format)

    def bare() -> float:
        started = time.perf_counter()
        for x, _ in cached[1:]:
            backbone.forward_features(x).float().mean().backward()
            backbone.zero_grad(set_to_none=True)
        return batches * batch_size / (time.perf_counter() - started)

    def full() -> float:
        loader = iter(trainer.loader)
        next(loader)  # the warm-up batch is not timed, as in bare()
        started = time.perf_counter()
        for images, labels in itertools.islice(loader, batches):
            trainer.train_step(images, labels)
            trainer.step += 1
            trainer.scheduler.step()
        return batches * batch_size / (time.perf_counter() - started)

    x, _ = cached[0]  # warm-up: first-call allocations out of the timings
    backbone.forward_features(x).mean().backward()
    backbone.zero_grad(set_to_none=True)
    bare_rates, full_rates = [], []
    for _ in range(rounds):
        bare_rates.append(bare())
        full_rates.append(full())
    return statistics.median(bare_rates), statistics.median(full_rates), batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["effb0", "densenet121", "resnest14d"])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_demo")
    parser.add_argument("--dataset", choices=["demo", "person"], default="demo",
                        help="person: the real pedestrian set, cached at the first recipe's input size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--variant", action="append", default=[], help='"name: key=value, key=value" (YAML values)')
    args = parser.parse_args()
    if args.dataset == "person":
        first = load_recipe(ROOT / "configs" / f"{args.recipes[0]}.yaml")
        data = load_fold(*person_cache(args.work, height_width(first.train.input_size), None), 0)
    else:
        data = demo_fold(args.work, 64, 0)
    variants = {"": ""} | {n.strip(): c.strip() for n, c in (v.split(":", 1) for v in args.variant)}
    rows = []
    for name in args.recipes:
        path = ROOT / "configs" / f"{name}.yaml"
        for variant, changes in variants.items():
            recipe = from_mapping(Recipe, variant_recipe(read_recipe(path), changes), str(path))
            bare_rate, full_rate, batch = measure(recipe, data, args.batches, args.rounds)
            label = f"{name} ({variant}: `{changes}`)" if variant else name
            rows.append(
                f"| {label} | `{recipe.model.backbone}` | {recipe.train.input_size} | {batch} "
                f"| {recipe.train.amp} | {recipe.train.channels_last} | {bare_rate:.1f} | {full_rate:.1f} "
                f"| **{full_rate / bare_rate:.2f}** |"
            )
            print(rows[-1], flush=True)
    report = "\n".join([
        "# Training throughput: full training step vs bare forward/backward",
        "",
        f"Images/s on the {args.dataset} data (fold 0), recipes `configs/<recipe>.yaml`, loader workers",
        "as in the recipe. *Bare*: backbone `forward_features` + mean + backward on the same, already",
        "loaded and normalised batches, NCHW fp32 (no data loading, augmentation, head, losses or optimiser).",
        "*Full*: the training step of `pipeline.train.loop.Trainer` including loading and augmentation.",
        f"Median over {args.rounds} alternating rounds of {args.batches} batches. Goal: ratio >= 0.85.",
        "",
        "| recipe | backbone | px | batch | amp | channels_last | bare img/s | full img/s | full / bare |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Machine: {describe_machine(torch=torch.__version__, torch_threads=str(torch.get_num_threads()))}.",
        "",
    ])
    write_text(args.out, report)
    print(report)


if __name__ == "__main__":
    main()
