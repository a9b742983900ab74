"""Is the demo calibrated? Generation speed, sibling separability, ImageNet features, a fine-tune.

1. Generates the demo of params.yaml (section ``demo``) and times it (images/s).
2. Separability at the cache size: nearest-sibling accuracy on clean renders whose object
   spans a given number of pixels, and which cache size that is for a typical and a small
   object (pipeline/demo/check.py).
3. ImageNet features without training (efficientnet_lite0 from the PyPI package, GeM and
   average pooling, flip averaged) on the test split at the cache size: the demo should not
   be solved without training (goal <= 0.5).
4. With ``--finetune-epochs N``: fine-tunes the same lite0 for N epochs on fold 0 of the
   training identities and scores the held-out fold and the test split (goal >= 0.8).

Writes benchmarks/results/bench_demo_calibration.md.

    OMP_NUM_THREADS=1 python benchmarks/bench_demo_calibration.py --sizes 80 96 128 --finetune-epochs 8  (~10 min)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from demo_imagenet import imagenet_scores, lite0_imagenet, lite0_timm_state
from harness import checkpoint_test_scores, describe_machine

from pipeline.data.cache import build_cache, open_split
from pipeline.demo.generate import DemoConfig, generate_demo
from pipeline.demo.check import nearest_sibling_accuracy, object_fraction
from pipeline.demo.render import PART_FRACTION
from pipeline.data.folds import make_folds
from pipeline.data.transforms import AugmentConfig
from pipeline.core.io_utils import write_csv, write_text
from pipeline.losses import LossConfig
from pipeline.models import ModelConfig
from pipeline.core.params import load_section
from pipeline.train.data import load_fold
from pipeline.train.loop import fit
from pipeline.train.recipe import Recipe, TrainConfig
from pipeline.train.schedule import OptimConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "bench_demo_calibration.md"
OBJECT_SIDES = (4, 6, 8, 12, 16, 24, 32, 48)  # pixels the object spans in the cache image


def finetune_recipe(weights: Path, epochs: int, size: int) -> Recipe:
    return Recipe(
        model=ModelConfig(backbone="efficientnet_lite0", pretrained_file=str(weights), pooling="gem", neck="bnneck"),
        train=TrainConfig(epochs=epochs, p=16, k=4, input_size=size, seed=0, eval_every=1, eval_batch_size=128),
        loss=LossConfig(ce_weight=1.0, label_smoothing=0.1, triplet_weight=1.0, triplet_margin=0.3, triplet_normalize=True),
        augment=AugmentConfig(hflip_p=0.5, rotate90_p=0.3, erasing_p=0.3),
        optim=OptimConfig(
            optimizer="adam", lr=5e-4, head_lr_multiplier=10.0, warmup_epochs=1, warmup_factor=0.1,
            schedule="cosine", min_lr=1e-5,
        ),
    )


def clean_view(dataset: Path, view: Path) -> Path:
    """The dataset with query/gallery replaced by their clean originals, as after a perfect
    denoise stage (bench_denoise: every noisy image detected, +8 to +22 dB)."""
    (view / "images").mkdir(parents=True, exist_ok=True)
    for split in ("train", "query", "gallery"):
        shutil.copy(dataset / f"{split}.csv", view / f"{split}.csv")
        source = dataset / "images" / split if split == "train" else dataset / "clean" / "images" / split
        link = view / "images" / split
        if not link.exists():
            link.symlink_to(source.resolve(), target_is_directory=True)
    return view


def finetune(work: Path, cache: Path, clean_cache: Path, epochs: int, size: int) -> dict[str, float]:
    weights = work / "lite0_timm.pth"
    torch.save(lite0_timm_state(), weights)
    folds = work / "folds.csv"
    write_csv(folds, make_folds(open_split(cache, "train").table, 5, 0, 0.2))
    data = load_fold(cache, folds, 0)
    started = time.perf_counter()
    out = work / "finetune"
    summary = fit(finetune_recipe(weights, epochs, size), data, out, model_name="lite0", fold=0)
    seconds = time.perf_counter() - started
    scores = (out / "live" / "plots" / "metrics" / "val" / "score.tsv").read_text().splitlines()[1:]
    noisy = checkpoint_test_scores(out / "checkpoints" / "last.pt", cache)
    clean = checkpoint_test_scores(out / "checkpoints" / "last.pt", clean_cache)
    return {
        "epochs": epochs, "seconds": seconds, "fold_untrained": float(scores[0].split("\t")[1]),
        "fold_last": summary["val/score"], "fold_best": summary["best/score"],
        "noisy": noisy, "clean": clean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96], help="cache sizes to score ImageNet features at")
    parser.add_argument("--finetune-epochs", type=int, default=0)
    parser.add_argument("--finetune-size", type=int, default=96)
    parser.add_argument("--work", type=Path, default=None, help="keep the generated data here (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_section("demo", DemoConfig, args.params)
    lines = [
        "# bench_demo_calibration", "",
        f"Machine: {describe_machine(torch=torch.__version__)}", "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/bench_demo_calibration.py "
        f"--sizes {' '.join(map(str, args.sizes))} --finetune-epochs {args.finetune_epochs} "
        f"--finetune-size {args.finetune_size}`", "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        dataset = work / "demo"
        started = time.perf_counter()
        generate_demo(cfg, dataset)
        seconds = time.perf_counter() - started
        images = sum(1 for _ in dataset.rglob("*.png")) - sum(1 for _ in (dataset / "clean").rglob("*.png"))
        lines += [
            "## Generation", "",
            f"params.yaml `demo` (seed {cfg.seed}): {images} images in {seconds:.1f} s, "
            f"{images / seconds:.0f} images/s on one core.", "",
        ]
        lines += separability_section(cfg)
        model = lite0_imagenet()
        lines += ["## ImageNet features without training (test split)", "",
                  "| cache px | pooling | top-1 | mAP@10 | score |", "|---:|---|---:|---:|---:|"]
        for size in args.sizes:
            cache = work / f"cache{size}"
            build_cache(dataset, cache, size, workers=1)
            for pooling in ("gem", "avg"):
                s = imagenet_scores(model, cache, pooling)
                lines.append(f"| {size} | {pooling} | {s['top1']:.3f} | {s['map@10']:.3f} | **{s['score']:.3f}** |")
        lines.append("")
        if args.finetune_epochs:
            size = args.finetune_size
            cache, clean_cache = work / f"cache{size}", work / f"clean_cache{size}"
            if not cache.exists():
                build_cache(dataset, cache, size, workers=1)
            build_cache(clean_view(dataset, work / "clean_view"), clean_cache, size, workers=1)
            r = finetune(work, cache, clean_cache, args.finetune_epochs, size)
            lines += [
                "## Fine-tuned lite0 (fold 0 of 5, ImageNet start)", "",
                f"{r['epochs']} epochs at {size} px in {r['seconds'] / 60:.1f} min (recipe: `finetune_recipe`). "
                f"Held-out fold score untrained {r['fold_untrained']:.3f}, last epoch {r['fold_last']:.3f} "
                f"(best {r['fold_best']:.3f}).", "",
                "| test split | top-1 | mAP@10 | score |", "|---|---:|---:|---:|",
            ]
            for name in ("noisy", "clean"):
                t = r[name]
                lines.append(f"| {name} | {t['top1']:.3f} | {t['map@10']:.3f} | **{t['score']:.3f}** |")
            lines.append("")
    write_text(RESULTS, "\n".join(lines))
    print("\n".join(lines))


def separability_section(cfg: DemoConfig) -> list[str]:
    typical, small = (object_fraction(cfg.scene_style(), q) for q in (0.5, 0.05))
    lines = [
        "## Separability of siblings at the cache size", "",
        "Nearest sibling (pixel distance) on clean renders (pipeline/demo/check.py): every "
        "sibling of 40 families of 4, jittered (any quarter turn or mirror, up to 20 degrees, "
        "scale 0.85-1.15, 5 % shift, a 0.85-1.15 gain per channel), against every sibling in its "
        f"8 poses at the same size. A cache of S px holds the object at {typical:.2f}·S px "
        f"(median scene) or {small:.2f}·S (5th percentile); a part is {PART_FRACTION:.2f} of the object.", "",
        "| object px | part px | accuracy | cache px, median object | cache px, small object |",
        "|---:|---:|---:|---:|---:|",
    ]
    for side in OBJECT_SIDES:
        accuracy = nearest_sibling_accuracy(np.random.default_rng(0), side, families=40, members=4)
        lines.append(
            f"| {side} | {side * PART_FRACTION:.1f} | {accuracy:.3f} | {side / typical:.0f} | {side / small:.0f} |"
        )
    return lines + [""]


if __name__ == "__main__":
    main()
