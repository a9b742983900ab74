"""Distillation: student vs teacher vs the same student trained alone, on grocery or the person set.

Fold 0 of 5 identity folds of the dataset's train split; scores on its query/gallery test
split (identities never trained or tuned on), one plain view each, cosine ranking, top-1,
mAP@10 and their mean. Grocery: teacher the lite1 preset (configs/lite1.yaml) at 96 px, student
the student_lite0 recipe (configs/student_lite0.yaml) at 64 px. Person (../shared/data/person):
teacher the person preset (configs/person_lite1.yaml) at 256 x 128, student the same recipe on
lite0 at 128 x 64. The student is trained alone and distilled from the teacher twice: with
params' distill defaults (KL at T 4 on the logits, weight 1; similarity matching, weight 1) and
with FastReID's stated loss (L1 on the logits + PKT on the in-batch cosines, weights 1).
Epochs shortened for the shared CPU (--epochs; --teacher-epochs for the teacher). Students
train once per seed (--seeds), paired by seed against the student alone. Speed: images/s of the
embedding path, PyTorch and onnxruntime, 1 thread, batch 32, at each model's input size.

    python benchmarks/bench_distill.py [--epochs 3] [--work /tmp/bench_distill]
    python benchmarks/bench_distill.py --dataset person --epochs 12 --teacher-epochs 30 --seeds 0 1 2

The work folder keeps the cache and every run's checkpoints: a killed run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from bench_onnx import images_per_second
from harness import checkpoint_test_scores, describe_machine, mean_sd
from pipeline.data.cache import build_cache, open_split
from pipeline.data.folds import make_folds
from pipeline.data.rescale_pad import height_width
from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.export.onnx_export import export_embedding
from pipeline.infer.onnx_engine import OnnxEmbedder, open_session
from pipeline.core.io_utils import write_csv, write_text
from pipeline.train.data import load_fold
from pipeline.core.sections import DistillConfig, ImageSize
from pipeline.distill.trainer import DistillTrainer
from pipeline.train.loop import Trainer, fit
from pipeline.train.recipe import Recipe, load_recipe
from pipeline.train.trained import load_trained_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


@dataclasses.dataclass(frozen=True)
class Setting:
    root: Path
    cache_size: ImageSize
    teacher: str  # a recipe of configs/
    teacher_size: ImageSize
    student: str
    student_size: ImageSize
    student_backbone: str | None = None  # None: the student recipe's own
    results: str = "bench_distill.md"


SETTINGS = {
    "grocery": Setting(ROOT.parent / "shared" / "data" / "grocery", 96, "lite1", 96, "student_lite0", 64),
    "person": Setting(
        ROOT.parent / "shared" / "data" / "person", (256, 128), "person_lite1", (256, 128), "person_lite1", (128, 64),
        student_backbone="efficientnet_lite0", results="bench_distill_person.md",
    ),
}
# the distilled students: params' distill defaults, and the loss as FastReID's paper states it
DISTILL_VARIANTS = {
    "distilled, KL + matching": {},
    "distilled, FastReID L1 + PKT": {"logit_loss": "l1", "embedding_loss": "pkt"},
}


def recipe(name: str, size: ImageSize, epochs: int, seed: int = 0, backbone: str | None = None) -> Recipe:
    base = load_recipe(ROOT / "configs" / f"{name}.yaml")
    model = base.model if backbone is None else dataclasses.replace(base.model, backbone=backbone)
    train = dataclasses.replace(base.train, input_size=size, epochs=epochs, eval_every=epochs, seed=seed)
    return dataclasses.replace(base, model=model, train=train)


def speed(checkpoint: Path, images: np.ndarray, rounds: int = 3) -> tuple[float, float]:
    """(PyTorch, onnxruntime) images/s of the embedding path, 1 thread, batch 32."""
    model, meta = load_trained_model(checkpoint)
    size = height_width(meta["input_size"])
    batches = [normalize_batch(batch_tensor(images[s : s + 32]), meta["mean"], meta["std"]) for s in range(0, len(images), 32)]
    batches = [torch.nn.functional.interpolate(b, size=size, mode="bilinear", antialias=True) for b in batches]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_embedding(model, meta, path, opset=17)
        embedder = OnnxEmbedder(open_session(path, threads=1))
        torch_rates, onnx_rates = [], []
        with torch.inference_mode():
            model.embed(batches[0]), embedder.embed(batches[0])
            for _ in range(rounds):
                torch_rates.append(images_per_second(model.embed, batches))
                onnx_rates.append(images_per_second(embedder.embed, batches))
    return statistics.median(torch_rates), statistics.median(onnx_rates)


def paired(rows: list[tuple], variant: str, seeds: list[int]) -> str:
    """Mean ± sd over seeds of the test-score change of ``variant`` against the student alone."""
    score = {(name, seed): test["score"] for name, seed, _, _, test, _, _ in rows}
    return mean_sd([score[(variant, s)] - score[("student alone", s)] for s in seeds], signed=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(SETTINGS), default="grocery")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, help="default: --epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="student seeds (the teacher: seed 0)")
    parser.add_argument("--work", type=Path, help="default: /tmp/bench_distill[_person]")
    parser.add_argument("--out", type=Path, help="results page (default: benchmarks/results/bench_distill[_person].md)")
    args = parser.parse_args()
    setting = SETTINGS[args.dataset]
    work = args.work or Path("/tmp") / ("bench_distill" if args.dataset == "grocery" else f"bench_distill_{args.dataset}")
    out_page = args.out or RESULTS / setting.results
    teacher_epochs = args.teacher_epochs or args.epochs
    if not setting.root.is_dir():
        raise SystemExit(f"{setting.root}: dataset not found")
    torch.set_num_threads(1)
    size = setting.cache_size
    cache, folds = work / (f"cache{size}" if isinstance(size, int) else f"cache{size[0]}x{size[1]}"), work / "folds.csv"
    if not cache.exists():
        build_cache(setting.root, cache, size)
    if not folds.exists():
        write_csv(folds, make_folds(open_split(cache, "train").table, 5, 0, 0.2))
    data = load_fold(cache, folds, 0)
    teacher_name = f"teacher {setting.teacher}"
    teacher = work / teacher_name.replace(" ", "_") / "checkpoints" / "best.pt"
    runs: list[tuple[str, int, Recipe, DistillConfig | None, Path]] = [
        (teacher_name, 0, recipe(setting.teacher, setting.teacher_size, teacher_epochs), None, teacher.parents[1])
    ]
    for seed in args.seeds:
        student = recipe(setting.student, setting.student_size, args.epochs, seed, setting.student_backbone)
        for variant, knobs in {"student alone": None, **DISTILL_VARIANTS}.items():
            cfg = None if knobs is None else DistillConfig(student=setting.student, teachers=[setting.teacher], **knobs)
            folder = re.sub(r"[^A-Za-z0-9]+", "_", f"{variant} seed {seed}")
            runs.append((variant, seed, student, cfg, work / folder))
    rows = []
    for name, seed, run_recipe, cfg, out in runs:
        make = Trainer if cfg is None else partial(DistillTrainer, cfg=cfg, teachers=[teacher])
        started = time.perf_counter()
        summary = fit(run_recipe, data, out, model_name=name, fold=0, make_trainer=make)
        seconds = time.perf_counter() - started
        checkpoint = out / "checkpoints" / "best.pt"
        test = checkpoint_test_scores(checkpoint, cache)
        rows.append((name, seed, run_recipe, summary, test, speed(checkpoint, open_split(cache, "query").images[:128]), seconds))
        print(f"{name} (seed {seed}): test score {test['score']:.3f}", flush=True)
    lines = [
        f"# Distillation: student vs teacher vs the student trained alone ({args.dataset})",
        "",
        __doc__.split("\n\n")[1].replace("\n", " ").strip(),
        "",
        "| model | seed | px | epochs | fold-0 val score | test top-1 | test mAP@10 | test score | PyTorch img/s | onnxruntime img/s | training s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, seed, r, summary, test, (torch_rate, onnx_rate), seconds in rows:
        height, width = height_width(r.train.input_size)
        lines.append(
            f"| {name} | {seed} | {height}x{width} | {r.train.epochs} | {summary.get('best/score', float('nan')):.3f} | "
            f"{test['top1']:.3f} | {test['map@10']:.3f} | **{test['score']:.3f}** | {torch_rate:.1f} | {onnx_rate:.1f} | {seconds:.0f} |"
        )
    lines += ["", "Test-score change against the student alone, paired by seed (mean ± sd over seeds):", ""]
    lines += [f"- {variant}: {paired(rows, variant, args.seeds)}" for variant in DISTILL_VARIANTS]
    lines += [
        "",
        "Machine: " + describe_machine(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
        + ". On shared cores speeds are rough, and a few seeds of short runs cannot separate",
        "differences of a few points from noise: read the paired change beside its spread.",
        "Training s includes validation and, for the distilled students, the teacher's forward passes;",
        "a rerun that resumed from a finished run shows only its own seconds.",
        "",
        "Command: `OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/bench_distill.py "
        + " ".join(sys.argv[1:]) + "`",
    ]
    text = "\n".join(lines) + "\n"
    write_text(out_page, text)
    print(text)


if __name__ == "__main__":
    main()
