"""Benchmark TTA feature extraction against a bare forward pass over the same views.

    .venv/bin/python benchmarks/bench_extract.py [--backbone efficientnet_b0] [--images 256] [--size 64]

For each backbone (``--backbone``, plus resnet18) and each TTA config (the plain one: one
scale, no rotation, no flip; the full one: scales 1.0/1.1 x rotations 0/90/180/270 x flip),
in one run and on the same random uint8 images:

- TTA: ``pipeline.infer.tta.extract_features`` (uint8 images in, L2-normalised features out);
- reference: a bare loop of ``model.embed`` over exactly the tensors TTA feeds the model
  (same normalised, resized, rotated, flipped views, same forward batch shapes), built
  before the timer starts.

The two alternate inside each repeat (other jobs share the cores, so load drifts); the
figures are medians over the repeats after one warm-up. Ratio = bare time / TTA time (1.0
means TTA costs nothing beyond the forward passes; the goal is >= 0.9). A breakdown times
the non-forward steps of TTA on their own, to show where any gap goes.

Writes benchmarks/results/bench_extract.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness import describe_machine
from pipeline.data.torch_data import normalize_batch
from pipeline.infer.tta import extract_features, scale_batch, stack_views
from pipeline.train.distributed import resolve_device
from pipeline.core.io_utils import write_text
from pipeline.models import ModelConfig, create_model
from pipeline.core.sections import TTAConfig

RESULTS = Path(__file__).parent / "results" / "bench_extract.md"
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, what the timm backbones expect
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Row:
    backbone: str
    config: str
    views_per_image: int
    forward_batch: int
    tta_s: float
    bare_s: float
    ratios: tuple[float, ...]  # bare / TTA per repeat
    max_diff: float  # TTA features against the bare outputs reduced the same way


def configs(batch_size: int) -> dict[str, TTAConfig]:
    return {
        "plain (1 scale, no rot, no flip)": TTAConfig(
            scales=(1.0,), rotations=(0,), flip=False, batch_size=batch_size, device="auto"
        ),
        "TTA (2 scales x 4 rot x flip)": TTAConfig(
            scales=(1.0, 1.1), rotations=(0, 90, 180, 270), flip=True, batch_size=batch_size, device="auto"
        ),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def forward_inputs(images: np.ndarray, input_size: int, cfg: TTAConfig, device: torch.device) -> list[torch.Tensor]:
    """Exactly the tensors ``extract_features`` passes to ``model.embed``: per batch, per scale."""
    inputs = []
    for start in range(0, len(images), cfg.batch_size):
        raw = torch.from_numpy(np.ascontiguousarray(images[start : start + cfg.batch_size])).to(device)
        batch = normalize_batch(raw, MEAN, STD)
        for scale in cfg.scales:
            inputs.append(stack_views(scale_batch(batch, input_size, scale), cfg.rotations, cfg.flip).contiguous())
    return inputs


def bare_loop(model: torch.nn.Module, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [model.embed(views) for views in inputs]


def reduce_like_tta(outputs: list[torch.Tensor], cfg: TTAConfig, n: int) -> np.ndarray:
    """Sum the views of each image over scales and normalise: what TTA returns (for the sanity check)."""
    per_scale = len(cfg.scales)
    features = []
    for i in range(0, len(outputs), per_scale):
        batch = min(cfg.batch_size, n - (i // per_scale) * cfg.batch_size)
        total = sum(o.float().view(-1, batch, o.shape[-1]).sum(dim=0) for o in outputs[i : i + per_scale])
        features.append(F.normalize(total, dim=1).cpu())
    return torch.cat(features).numpy()


def bench_case(
    model: torch.nn.Module, backbone: str, name: str, cfg: TTAConfig, images: np.ndarray, repeats: int
) -> Row:
    device = next(model.parameters()).device
    size = images.shape[1]
    inputs = forward_inputs(images, size, cfg, device)

    def tta() -> np.ndarray:
        return extract_features(model, images, input_size=size, mean=MEAN, std=STD, cfg=cfg, description=name)

    # Warm-up (allocator, oneDNN primitive caches for every shape), then the sanity check.
    tta_features = tta()
    reference = reduce_like_tta(bare_loop(model, inputs), cfg, len(images))
    max_diff = float(np.abs(tta_features - reference).max())

    tta_times, bare_times = [], []
    for r in range(repeats):
        # Alternate the order so that a load change hits both sides alike.
        order = ("bare", "tta") if r % 2 == 0 else ("tta", "bare")
        for which in order:
            if which == "bare":
                bare_times.append(timed(lambda: bare_loop(model, inputs), device)[0])
            else:
                tta_times.append(timed(tta, device)[0])
    return Row(
        backbone,
        name,
        cfg.views_per_image,
        min(cfg.batch_size, len(images)) * cfg.views_per_image // len(cfg.scales),
        statistics.median(tta_times),
        statistics.median(bare_times),
        tuple(b / t for b, t in zip(bare_times, tta_times)),
        max_diff,
    )


def breakdown(images: np.ndarray, cfg: TTAConfig, device: torch.device, repeats: int) -> list[tuple[str, float]]:
    """Seconds (median) of each non-forward step of ``extract_features`` over all batches, done alone."""
    size = images.shape[1]
    batches = [images[s : s + cfg.batch_size] for s in range(0, len(images), cfg.batch_size)]
    normed = [normalize_batch(torch.from_numpy(np.ascontiguousarray(b)).to(device), MEAN, STD) for b in batches]
    scaled = [scale_batch(b, size, s) for b in normed for s in cfg.scales]
    fake = [torch.randn(len(b), 1280, device=device) for b in batches]
    # Each result is dropped at once, as in extract_features, so the allocator reuses its memory.
    steps: dict[str, Callable[[], None]] = {
        "uint8 -> tensor + normalize_batch": lambda: _each(
            lambda b: normalize_batch(torch.from_numpy(np.ascontiguousarray(b)).to(device), MEAN, STD), batches
        ),
        "scale_batch (bilinear, antialias) x scales": lambda: _each(
            lambda b: [scale_batch(b, size, s) for s in cfg.scales], normed
        ),
        "stack_views (rot90, flip, torch.cat)": lambda: _each(lambda b: stack_views(b, cfg.rotations, cfg.flip), scaled),
        ".cpu() + torch.cat + .numpy().astype (D=1280)": lambda: _each(
            lambda _: torch.cat([f.cpu() for f in fake]).numpy().astype(np.float32), [None]
        ),
    }
    rows = []
    with torch.inference_mode():
        for label, fn in steps.items():
            fn()
            rows.append((label, statistics.median(timed(fn, device)[0] for _ in range(repeats))))
    return rows


def _each(fn: Callable[[object], object], items: list) -> None:
    for item in items:
        fn(item)


def table(rows: list[Row], images: int) -> str:
    lines = [
        "| backbone | config | views/image | forward batch | TTA s | bare s | TTA images/s | TTA views/s "
        "| bare views/s | ratio bare/TTA | ratio range | max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        views = images * r.views_per_image
        lines.append(
            f"| {r.backbone} | {r.config} | {r.views_per_image} | {r.forward_batch} | {r.tta_s:.2f} | {r.bare_s:.2f} "
            f"| {images / r.tta_s:,.0f} | {views / r.tta_s:,.0f} | {views / r.bare_s:,.0f} "
            f"| **{r.bare_s / r.tta_s:.2f}** | {min(r.ratios):.2f}-{max(r.ratios):.2f} | {r.max_diff:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="efficientnet_b0", help="timm name; resnet18 is always run too")
    parser.add_argument("--images", type=int, default=128, help="kept small: 2 shared cores, a few minutes")
    parser.add_argument("--size", type=int, default=64, help="side of the square uint8 images (= input_size)")
    parser.add_argument("--batch-size", type=int, default=16, help="TTAConfig.batch_size (images per batch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 keeps torch's default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device("auto")
    images = np.random.default_rng(0).integers(0, 256, size=(args.images, args.size, args.size, 3), dtype=np.uint8)
    backbones = list(dict.fromkeys([args.backbone, "resnet18"]))
    load_start = os.getloadavg()
    rows = []
    with torch.inference_mode():
        for backbone in backbones:
            torch.manual_seed(0)
            model = create_model(ModelConfig(backbone=backbone, pretrained=False), num_classes=0).to(device).eval()
            for name, cfg in configs(args.batch_size).items():
                row = bench_case(model, backbone, name, cfg, images, args.repeats)
                rows.append(row)
                print(f"{backbone} / {name}: ratio {row.bare_s / row.tta_s:.2f} (TTA {row.tta_s:.2f} s, bare {row.bare_s:.2f} s)")
    tta_cfg = configs(args.batch_size)["TTA (2 scales x 4 rot x flip)"]
    steps = breakdown(images, tta_cfg, device, args.repeats)
    load_end = os.getloadavg()

    full = [r for r in rows if r.views_per_image > 1]
    step_lines = ["| step (alone, all batches) | s | share of TTA time, " + " / ".join(r.backbone for r in full) + " |",
                  "|---|---:|---:|"]
    for label, seconds in steps:
        shares = " / ".join(f"{100 * seconds / r.tta_s:.1f}%" for r in full)
        step_lines.append(f"| {label} | {seconds:.3f} | {shares} |")

    command = shlex.join([".venv/bin/python", "benchmarks/bench_extract.py", *sys.argv[1:]])
    text = f"""# bench_extract

TTA feature extraction (`pipeline.infer.tta.extract_features`) against a bare `model.embed`
loop over exactly the same views (the same normalised, resized, rotated and flipped tensors,
same forward batch shapes, built before the timer starts). Produced by
`benchmarks/bench_extract.py`.

- Command: `{command}`
- Data: {args.images} random uint8 images of {args.size}x{args.size}x3, input_size {args.size}
  (scale 1.1 resizes to {round(args.size * 1.1)} px); `TTAConfig.batch_size` {args.batch_size}; models built
  with `pretrained=False`, eval mode, `torch.inference_mode`, `num_classes=0`.
- Machine: {describe_machine(torch=torch.__version__, intra_op_threads=str(torch.get_num_threads()), device=device.type)}.
- Load average (1/5/15 min) at the start {load_start[0]:.1f}/{load_start[1]:.1f}/{load_start[2]:.1f}, at the end
  {load_end[0]:.1f}/{load_end[1]:.1f}/{load_end[2]:.1f}: other jobs share the cores, so TTA and bare alternate
  inside each repeat and the figures are medians of {args.repeats} repeats after one warm-up.
- Threads: on this shared machine run with `--threads 1`. With torch's default 2 intra-op
  threads on 2 cores that other jobs also load (load average 5-6), OpenMP barrier waits made
  the same forward swing 2-10x between calls; a default-threads run (64 images) gave ratios
  0.77-1.13 with per-repeat spreads up to 0.67-2.02, i.e. noise, not TTA cost, and every
  forward was about 4x slower than with 1 thread.
- Ratio = median bare time / median TTA time (goal >= 0.9); "ratio range" is the spread of
  the per-repeat ratios. "max abs diff": TTA features against the bare outputs summed and
  normalised the same way (shows both sides computed the same views).

{table(rows, args.images)}

## Where the non-forward time goes (full TTA config)

Each step of `extract_features` other than `model.embed`, timed alone over all batches
(median of {args.repeats}; each result dropped at once, as in the real loop), as a share of the
median TTA time of each backbone above. The features copied back are a stand-in of width 1280.

{chr(10).join(step_lines)}
"""
    write_text(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
