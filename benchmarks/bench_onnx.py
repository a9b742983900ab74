"""ONNX export: onnxruntime (CPU) against PyTorch images/s for the embedding path, and agreement.

For each demo recipe (configs/demo/: lite0, lite1 from the packaged ImageNet weights,
densenet121 and resnest14d untrained; speed does not depend on the weights) the embedding path
is exported as the export stage does it (``export_embedding``), then both engines embed the same
normalised batches of real grocery photos (rescale-padded to the recipe's input size) with one
thread each, alternating in rounds so that the machine's load hits both alike; figures are
medians over rounds. Agreement: largest |onnxruntime - PyTorch| of the L2-normalised and raw
embeddings on those photos. ``--dynamo`` also times torch's torch.export-based exporter
(needs `pip install onnxscript==0.7.2`, not a project dependency), the alternative the export
stage does not use.

    python benchmarks/bench_onnx.py [--recipes lite0 densenet121] [--images 64] [--rounds 3] [--dynamo]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from harness import describe_machine
from pipeline.data.images import read_image
from pipeline.data.layout import read_split
from pipeline.data.rescale_pad import height_width, rescale_pad
from pipeline.export.check import compare_embeddings
from pipeline.export.onnx_export import EmbeddingGraph, export_embedding
from pipeline.infer.onnx_engine import OnnxEmbedder, open_session
from pipeline.data.torch_data import batch_tensor, normalize_batch
from pipeline.core.io_utils import write_text
from pipeline.models import create_model, input_normalisation
from pipeline.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
GROCERY = ROOT.parent / "shared" / "data" / "grocery"
RESULTS = Path(__file__).parent / "results" / "bench_onnx.md"
BATCH = 32


def photos(count: int, size: int) -> np.ndarray:
    table = read_split(GROCERY, "query", check_files=False).head(count)
    return np.stack([rescale_pad(read_image(GROCERY / name), size) for name in table["image"]])


def images_per_second(embed, batches: list[torch.Tensor]) -> float:
    started = time.perf_counter()
    for batch in batches:
        embed(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def dynamo_seconds(model: torch.nn.Module, size: tuple[int, int], path: Path) -> float:
    started = time.perf_counter()
    torch.onnx.export(
        EmbeddingGraph(model).eval(), (torch.zeros(2, 3, *size),), str(path), input_names=["images"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), dynamo=True, verbose=False,
    )
    return time.perf_counter() - started


def measure(name: str, count: int, rounds: int, dynamo: bool, folder: Path) -> dict[str, object]:
    recipe = load_recipe(ROOT / "configs" / "demo" / f"{name}.yaml")
    model = create_model(recipe.model, num_classes=10).eval()
    mean, std = input_normalisation(model)
    size = height_width(recipe.train.input_size)
    meta = {"input_size": list(size), "mean": list(mean), "std": list(std)}
    path = folder / f"{name}.onnx"
    started = time.perf_counter()
    export_embedding(model, meta, path, opset=17)
    row: dict[str, object] = {"recipe": name, "backbone": recipe.model.backbone, "px": size[0],
                              "export_s": time.perf_counter() - started}
    if dynamo:
        row["dynamo_s"] = dynamo_seconds(model, size, folder / f"{name}.dynamo.onnx")
    embedder = OnnxEmbedder(open_session(path, threads=1))
    uint8 = photos(count, size[0])
    row.update(compare_embeddings(model, embedder, uint8, input_size=size, mean=mean, std=std, batch_size=BATCH))
    batches = [normalize_batch(batch_tensor(uint8[s : s + BATCH]), mean, std) for s in range(0, count, BATCH)]
    torch_rates, onnx_rates = [], []
    with torch.inference_mode():
        model.embed(batches[0]), embedder.embed(batches[0])  # warm-up: allocators, first-call set-up
        for _ in range(rounds):
            torch_rates.append(images_per_second(model.embed, batches))
            onnx_rates.append(images_per_second(embedder.embed, batches))
    row["torch"], row["onnx"] = statistics.median(torch_rates), statistics.median(onnx_rates)
    return row


def report(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    dynamo = "| dynamo export s " if args.dynamo else ""
    lines = [
        "# ONNX export: onnxruntime CPU vs PyTorch, embedding path (no TTA)",
        "",
        f"Images/s of `ReIDModel.embed` (PyTorch, `inference_mode`) and of its ONNX export run by",
        f"onnxruntime `CPUExecutionProvider`, both with **1 thread**, batch {BATCH}, on the first",
        f"{args.images} grocery query photos rescale-padded to the demo recipe's input size; median of",
        f"{args.rounds} alternating rounds. *max diff*: largest |onnxruntime - PyTorch| over those photos,",
        "of the L2-normalised embeddings (what retrieval compares; the export stage's check, limit 1e-4)",
        "and of the raw ones (largest raw value beside it). Export s: `export_embedding` (TorchScript",
        "exporter + metadata + onnx checker)" + (", and torch's dynamo exporter for comparison." if args.dynamo else "."),
        "lite0/lite1 carry the packaged ImageNet weights, densenet121/resnest14d are untrained.",
        "",
        f"| recipe | backbone | px | PyTorch img/s | onnxruntime img/s | onnx / torch | max diff (normalised) | max diff (raw) | max raw | export s {dynamo}|",
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.dynamo else ""),
    ]
    for r in rows:
        extra = f"| {r['dynamo_s']:.1f} " if args.dynamo else ""
        lines.append(
            f"| {r['recipe']} | `{r['backbone']}` | {r['px']} | {r['torch']:.1f} | {r['onnx']:.1f} | "
            f"**{r['onnx'] / r['torch']:.2f}** | {r['max_abs_normalised']:.1e} | {r['max_abs_raw']:.1e} | "
            f"{r['max_raw']:.2f} | {r['export_s']:.1f} {extra}|"
        )
    command = "python benchmarks/bench_onnx.py " + " ".join(
        ["--recipes", *args.recipes, "--images", str(args.images), "--rounds", str(args.rounds)] + (["--dynamo"] if args.dynamo else [])
    )
    lines += [
        "",
        "Machine: " + describe_machine(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
        + ". The 2 cores were shared with other engineers' jobs (run under `nice -n 10`): absolute",
        "figures are rough, the ratio (same batches, alternating rounds) is the comparable figure.",
        "",
        f"Command: `OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 {command}`",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["lite0", "lite1", "densenet121", "resnest14d"])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dynamo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, args.images, args.rounds, args.dynamo, Path(folder)) for name in args.recipes]
    text = report(rows, args)
    write_text(RESULTS, text)
    print(text)


if __name__ == "__main__":
    main()
