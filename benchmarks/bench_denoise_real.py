"""Denoising on real photos with noise made here, over a wider range than the demo's.

    .venv/bin/python benchmarks/bench_denoise_real.py [--grocery DIR] [--per-class N] [--seed S]

Takes N grocery photos per class (real smartphone JPEGs, 128 px), corrupts them with the
project's own noise model (pipeline/demo/noise.py): Gaussian of sigma drawn uniformly
from 5-40 (0-255 scale, per channel), salt-and-pepper of amount drawn from 1-15 % (whole
pixels), or both (Gaussian, then impulses), and measures what the denoise stage does with
them, against the goals: detection >= 99.5 % (the exact class), PSNR gain >= +6 dB on the
Gaussian class (repaired vs clean minus noisy vs clean), false alarms <= 0.5 % on every
clean photo of the set. Writes benchmarks/results/bench_denoise_real.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from bench_denoise import KINDS, grocery_false_alarms, psnr, table
from machine import describe_machine
from pipeline.demo.noise import apply_noise
from pipeline.denoise.dataset import estimate_noise, repair
from pipeline.data.images import read_image
from pipeline.data.layout import SPLITS, read_split
from pipeline.io_utils import write_text
from pipeline.sections import DenoiseConfig

SIGMA_RANGE = (5.0, 40.0)
AMOUNT_RANGE = (0.01, 0.15)
NOISY = KINDS[1:]
RESULTS = Path(__file__).parent / "results" / "bench_denoise_real.md"


def corrupt_and_repair(root: Path, images: list[str], per_class: int, seed: int) -> pd.DataFrame:
    """One row per corrupted photo: true and found class, sigma, amount, PSNR before and after."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=per_class * len(NOISY), replace=False)
    cfg = DenoiseConfig()
    rows = []
    for n, index in enumerate(tqdm(picks, desc="corrupt + repair", unit="img")):
        kind = NOISY[n % len(NOISY)]
        sigma = float(rng.uniform(*SIGMA_RANGE)) if kind != "salt_pepper" else 0.0
        amount = float(rng.uniform(*AMOUNT_RANGE)) if kind != "gaussian" else 0.0
        clean = read_image(root / images[index])
        noisy = apply_noise(clean, kind, sigma, amount, rng)
        estimate = estimate_noise(noisy, cfg.gaussian_threshold, cfg.impulse_threshold, cfg.grey_threshold)
        repaired, _ = repair(noisy, estimate, cfg)
        rows.append({"image": images[index], "noise": kind, "sigma": sigma, "amount": amount,
                     "found": estimate.kind, "sigma_found": estimate.sigma, "fraction_found": estimate.impulse_fraction,
                     "gain": psnr(repaired, clean) - psnr(noisy, clean)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grocery", default="/work/shared/data/grocery", help="real-photo dataset root")
    parser.add_argument("--per-class", type=int, default=400, help="corrupted photos per noisy class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core: the figures are per core
    root = Path(args.grocery)
    images = [image for split in SPLITS for image in read_split(root, split)["image"]]
    frame = corrupt_and_repair(root, images, args.per_class, args.seed)
    clean = grocery_false_alarms(root)

    lines = [
        "# bench_denoise_real",
        "",
        f"Machine: {describe_machine(OpenCV=cv2.__version__)}. Photos: `{root}` ({len(images)} real JPEGs, 128 px). "
        f"{args.per_class} photos per noisy class (seed {args.seed}): Gaussian sigma uniform in "
        f"{SIGMA_RANGE[0]:g}-{SIGMA_RANGE[1]:g}, salt-and-pepper amount uniform in "
        f"{AMOUNT_RANGE[0]:.0%}-{AMOUNT_RANGE[1]:.0%}, both = Gaussian then impulses. Default `denoise` settings.",
        "",
        f"Command: `python benchmarks/bench_denoise_real.py --per-class {args.per_class} --seed {args.seed}`",
        "",
        "## Detection (rows: the noise made, columns: found)",
        "",
    ]
    confusion = pd.crosstab(frame["noise"], frame["found"]).reindex(index=list(NOISY), columns=KINDS, fill_value=0)
    rows = confusion.reset_index().rename(columns={"noise": "made \\ found"})
    rows["accuracy"] = [f"{confusion.loc[k, k] / confusion.loc[k].sum():.1%}" for k in NOISY]
    detection = float((frame["noise"] == frame["found"]).mean())
    lines += [table(rows), "", f"Detection over all noisy photos: {detection:.2%}.", ""]
    misses = frame[frame["noise"] != frame["found"]]
    if len(misses):
        lines += ["Misses:", "", table(misses[["image", "noise", "sigma", "amount", "found", "sigma_found", "fraction_found"]].round(4)), ""]

    gaussian = frame[frame["noise"] == "gaussian"]
    bins = pd.cut(gaussian["sigma"], [5, 10, 20, 30, 40], include_lowest=True)
    by_sigma = gaussian.groupby(bins, observed=True)["gain"].agg(["count", "mean", "min"]).reset_index()
    by_sigma.columns = ["sigma", "photos", "mean gain (dB)", "min gain (dB)"]
    lines += [
        "## PSNR gain (dB; repaired vs clean minus noisy vs clean)",
        "",
        table(pd.DataFrame({"class": list(NOISY), "mean": [f"{frame.loc[frame.noise == k, 'gain'].mean():+.2f}" for k in NOISY],
                            "min": [f"{frame.loc[frame.noise == k, 'gain'].min():+.2f}" for k in NOISY]})),
        "",
        "Gaussian class by sigma:",
        "",
        table(by_sigma.round(2)),
        "",
        "## False alarms on the clean photos (every photo of the set, no noise added)",
        "",
    ]
    counts = clean["kind"].value_counts().reindex(KINDS, fill_value=0)
    false_alarms = float((clean["kind"] != "none").mean())
    lines += [
        table(pd.DataFrame({"found": KINDS, "photos": counts.values, "share": [f"{c / len(clean):.2%}" for c in counts]})),
        "",
        f"False alarms: {false_alarms:.2%} of {len(clean)} photos.",
        "",
        "## Goals",
        "",
        f"- detection >= 99.5 %: {'met' if detection >= 0.995 else 'NOT met'} ({detection:.2%})",
        f"- Gaussian gain >= +6 dB: {'met' if gaussian['gain'].mean() >= 6 else 'NOT met'} ({gaussian['gain'].mean():+.2f} dB; "
        f"sigma <= 10: {gaussian.loc[gaussian.sigma <= 10, 'gain'].mean():+.2f} dB)",
        f"- false alarms <= 0.5 %: {'met' if false_alarms <= 0.005 else 'NOT met'} ({false_alarms:.2%})",
        "",
    ]
    write_text(RESULTS, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
