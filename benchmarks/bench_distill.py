"""Distillation on the grocery photos: student vs teacher vs the same student trained alone.

Fold 0 of 5 identity folds of grocery's train split; scores on grocery's query/gallery test
split (identities never trained or tuned on), one plain view each, cosine ranking, top-1,
mAP@10 and their mean. Teacher: the lite1 preset (configs/lite1.yaml) at 96 px; student: the
student_lite0 recipe (configs/student_lite0.yaml) at 64 px, trained alone and distilled from
the teacher (params' distill defaults: KL at T 4, weight 1, similarity matching weight 1);
epochs shortened for the shared CPU (--epochs). Speed: images/s of the embedding path, PyTorch
and onnxruntime, 1 thread, batch 32, at each model's input size. One seed.

    python benchmarks/bench_distill.py [--epochs 3] [--work /tmp/bench_distill]

The work folder keeps the cache and every run's checkpoints: a killed run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from bench_onnx import images_per_second
from machine import describe_machine
from pipeline.data.cache import build_cache, open_split
from pipeline.data.folds import make_folds
from pipeline.data.rescale_pad import height_width
from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.export.onnx_export import export_embedding
from pipeline.infer.onnx_engine import OnnxEmbedder, open_session
from pipeline.io_utils import write_csv, write_text
from pipeline.train.data import load_fold
from pipeline.sections import DistillConfig
from pipeline.distill.trainer import DistillTrainer
from pipeline.train.loop import fit
from pipeline.train.recipe import Recipe, load_recipe
from pipeline.train.trained import load_trained_model
from pipeline.train.fold_score import validation_scores

ROOT = Path(__file__).resolve().parents[1]
GROCERY = ROOT.parent / "shared" / "data" / "grocery"
RESULTS = Path(__file__).parent / "results" / "bench_distill.md"
CACHE_SIZE, TEACHER_SIZE, STUDENT_SIZE = 96, 96, 64


def recipe(name: str, size: int, epochs: int) -> Recipe:
    base = load_recipe(ROOT / "configs" / f"{name}.yaml")
    return dataclasses.replace(base, train=dataclasses.replace(base.train, input_size=size, epochs=epochs, eval_every=epochs))


def test_scores(checkpoint: Path, cache: Path) -> dict[str, float]:
    """Top-1, mAP@10 and score of the test queries against the test gallery (one plain view)."""
    model, meta = load_trained_model(checkpoint)
    query, gallery = open_split(cache, "query"), open_split(cache, "gallery")
    images = np.concatenate([query.images, gallery.images])
    labels = np.concatenate([query.table["label"].astype(str).to_numpy(), gallery.table["label"].astype(str).to_numpy()])
    rows = np.arange(len(images))
    return validation_scores(
        model, images, labels, rows[: len(query.images)], rows[len(query.images) :],
        size=meta["input_size"], mean=meta["mean"], std=meta["std"],
    )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_distill"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache, folds = args.work / f"cache{CACHE_SIZE}", args.work / "folds.csv"
    if not cache.exists():
        build_cache(GROCERY, cache, CACHE_SIZE)
    if not folds.exists():
        write_csv(folds, make_folds(open_split(cache, "train").table, 5, 0, 0.2))
    data = load_fold(cache, folds, 0)
    distill_cfg = DistillConfig(student="student_lite0", teachers=["lite1"])
    runs = {
        "teacher lite1": (recipe("lite1", TEACHER_SIZE, args.epochs), None),
        "student lite0 alone": (recipe("student_lite0", STUDENT_SIZE, args.epochs), None),
        "student lite0 distilled": (recipe("student_lite0", STUDENT_SIZE, args.epochs), distill_cfg),
    }
    rows = []
    for name, (run_recipe, cfg) in runs.items():
        out = args.work / name.replace(" ", "_")
        teacher = args.work / "teacher_lite1" / "checkpoints" / "best.pt"
        make = None if cfg is None else partial(DistillTrainer, cfg=cfg, teachers=[teacher])
        started = time.perf_counter()
        summary = fit(run_recipe, data, out, model_name=name, fold=0, make_trainer=make)
        seconds = time.perf_counter() - started
        checkpoint = out / "checkpoints" / "best.pt"
        rows.append((name, run_recipe, summary, test_scores(checkpoint, cache), speed(checkpoint, open_split(cache, "query").images[:128]), seconds))
    lines = [
        "# Distillation: student vs teacher vs the student trained alone (grocery)",
        "",
        __doc__.split("\n\n")[1].replace("\n", " ").strip(),
        "",
        "| model | px | epochs | fold-0 val score | test top-1 | test mAP@10 | test score | PyTorch img/s | onnxruntime img/s | training s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r, summary, test, (torch_rate, onnx_rate), seconds in rows:
        lines.append(
            f"| {name} | {r.train.input_size} | {r.train.epochs} | {summary.get('best/score', float('nan')):.3f} | "
            f"{test['top1']:.3f} | {test['map@10']:.3f} | **{test['score']:.3f}** | {torch_rate:.1f} | {onnx_rate:.1f} | {seconds:.0f} |"
        )
    lines += [
        "",
        "Machine: " + describe_machine(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
        + ". The 2 cores were shared with other engineers' jobs (run under `nice -n 10`): speeds are",
        "rough, and one seed of short runs cannot separate differences of a few points from noise.",
        "Training s includes validation and, for the distilled student, the teacher's forward passes;",
        "a rerun that resumed from a finished run shows only its own seconds.",
        "",
        f"Command: `OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/bench_distill.py --epochs {args.epochs}`",
    ]
    text = "\n".join(lines) + "\n"
    write_text(RESULTS, text)
    print(text)


if __name__ == "__main__":
    main()
