"""Benchmark the preprocess cache: build speed, and batch reads from it against decoding.

    .venv/bin/python benchmarks/bench_preprocess.py [--root DATASET] [--images 500]

Uses ``data/demo`` when it exists (or ``--root``); otherwise a synthetic canonical dataset
of JPEG/PNG images of varied sizes in a temporary folder. Reports, in one run:

- build_cache images/s with 1 worker (the reference) and with the default thread count;
- random batch reads from the memmapped cache against reading the same batches by
  decoding + rescale-padding the source images (what a loader without the cache does).

Writes benchmarks/results/bench_preprocess.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import PIL

from harness import describe_machine
from pipeline.data.cache import build_cache, default_workers, open_split
from pipeline.data.images import read_image, write_image
from pipeline.data.layout import SPLITS, load_dataset, write_split
from pipeline.data.rescale_pad import rescale_pad
from pipeline.core.io_utils import write_text

RESULTS = Path(__file__).parent / "results" / "bench_preprocess.md"


def synthetic_dataset(root: Path, count: int, seed: int = 0) -> None:
    """Smooth random images (photo-like compressibility), sides 64..640, alternating JPEG/PNG."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(count):
        h, w = (int(v) for v in rng.integers(64, 641, size=2))
        coarse = rng.integers(0, 256, size=(max(2, h // 32), max(2, w // 32), 3), dtype=np.uint8)
        image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image.astype(np.int16) + rng.integers(-8, 9, size=image.shape), 0, 255).astype(np.uint8)
        name = f"images/{i:05d}.{'jpg' if i % 2 else 'png'}"
        write_image(root / name, image)
        names.append(name)
    labels = [f"{i // 4:04d}" for i in range(count)]
    cut_q, cut_g = int(0.6 * count), int(0.7 * count)
    write_split(root, "train", pd.DataFrame({"image": names[:cut_q], "label": labels[:cut_q]}))
    write_split(root, "query", pd.DataFrame({"image": names[cut_q:cut_g], "label": labels[cut_q:cut_g]}))
    write_split(root, "gallery", pd.DataFrame({"image": names[cut_g:], "label": labels[cut_g:]}))


def time_build(root: Path, out: Path, size: int, workers: int) -> float:
    start = time.perf_counter()
    build_cache(root, out, size, (0, 0, 0), workers=workers)
    return time.perf_counter() - start


def bench(root: Path, scratch: Path, size: int, batch: int, batches: int) -> list[tuple[str, float, float]]:
    """Rows (what, images/s, ratio to the reference row above) for one dataset."""
    dataset = load_dataset(root)
    total = sum(len(dataset.split(s)) for s in SPLITS)
    threads = default_workers()
    one = time_build(root, scratch / "cache1", size, 1)
    many = time_build(root, scratch / "cache", size, threads)

    train = open_split(scratch / "cache", "train")
    rng = np.random.default_rng(0)
    picks = [rng.choice(len(train.images), size=min(batch, len(train.images)), replace=False) for _ in range(batches)]
    start = time.perf_counter()
    for rows in picks:
        cached = np.ascontiguousarray(train.images[np.sort(rows)])
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    for rows in picks:
        decoded = np.stack([rescale_pad(read_image(root / train.table["image"].iloc[r]), size) for r in rows])
    decode_s = time.perf_counter() - start
    assert cached.shape == decoded.shape
    read = sum(len(rows) for rows in picks)
    return [
        (f"build_cache over {total} images, 1 worker (reference)", total / one, 1.0),
        (f"build_cache over {total} images, {threads} threads", total / many, one / many),
        (f"decode + rescale-pad source images, batches of {batch} (reference)", read / decode_s, 1.0),
        (f"random batches of {batch} from the memmap cache", read / cache_s, decode_s / cache_s),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--root", type=Path, action="append", default=[],
        help="a canonical dataset to measure too (repeatable); data/demo or a synthetic set is always measured",
    )
    parser.add_argument("--images", type=int, default=500, help="synthetic images when data/demo is absent")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="random batches timed per reader")
    args = parser.parse_args()

    sections = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if Path("data/demo/train.csv").exists():
            datasets = [(Path("data/demo"), "data/demo")]
        else:
            synthetic_dataset(scratch / "synthetic", args.images)
            datasets = [(scratch / "synthetic", f"synthetic: {args.images} images, sides 64..640 px, half JPEG half PNG")]
        datasets += [(root, str(root)) for root in args.root]
        for number, (root, label) in enumerate(datasets):
            rows = bench(root, scratch / f"run{number}", args.size, args.batch, args.batches)
            table = "\n".join(f"| {name} | {rate:,.0f} | {ratio:.2f}x |" for name, rate, ratio in rows)
            sections.append(f"## {label}\n\n| what | images/s | ratio |\n|---|---:|---:|\n{table}\n")

    report = f"""# bench_preprocess

Preprocess cache build speed, and reading training batches (from the train split) out of
the cache against decoding the source images. Produced by `benchmarks/bench_preprocess.py`.

- Output size: {args.size} px; {args.batches} random batches of {args.batch} for each reader.
- Machine: {describe_machine(numpy=np.__version__, Pillow=PIL.__version__, OpenCV=cv2.__version__)}
- The cache was read right after it was built, so it sat in the page cache: this is the
  steady state of a training run whose cache fits in memory.
- Ratios compare against the reference row above them, measured in the same run.

{chr(10).join(sections)}"""
    write_text(RESULTS, report)
    print(report)


if __name__ == "__main__":
    main()
