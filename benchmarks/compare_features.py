"""Two feature sets of one test split (e.g. a model before and after the adapt stage), paired
per query: rank-1 and AP differences, mean ± standard error, multi-shot and single-shot.

Each directory is an extract stage's ``<features>/<model>/`` (``query.npy`` / ``gallery.npy``
with their ``.txt`` image lists); labels come from the dataset's CSVs (scoring only). The
single-shot version keeps one gallery image per query identity, from another camera than its
query where there is one (``fuse_significance.single_shot_gallery``, seed 0).

    python benchmarks/compare_features.py --dataset ../shared/data/person \\
        --before <chain before>/outputs/features/person_mnv2 --after <chain>/outputs/features/person_mnv2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from fuse_significance import single_shot_gallery

from harness import paired_mean_se
from pipeline.evaluate.reid import reid_per_query


def load(features: Path, split: str, table: pd.DataFrame) -> np.ndarray:
    """The split's features in the order of the dataset's CSV (checked against the .txt list)."""
    names = (features / f"{split}.txt").read_text(encoding="utf-8").split()
    if names != table["image"].tolist():
        raise SystemExit(f"{features / (split + '.txt')}: its images are not those of {split}.csv, in order")
    return np.load(features / f"{split}.npy")


def per_query(features: Path, query: pd.DataFrame, gallery: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank-1 hit, AP) per query against the gallery ``rows``."""
    dist = 1.0 - load(features, "query", query) @ load(features, "gallery", gallery)[rows].T
    result = reid_per_query(dist, query["label"].to_numpy(), gallery["label"].to_numpy()[rows])
    return (result.first_match_rank == 1).astype(float), np.nan_to_num(result.ap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    args = parser.parse_args()
    query, gallery = (pd.read_csv(args.dataset / f"{s}.csv", dtype=str) for s in ("query", "gallery"))
    shots = {"multi-shot": np.arange(len(gallery)), "single-shot": single_shot_gallery(query, gallery, seed=0)}
    print("| test | gallery | rank-1 before | after | paired | mAP before | after | paired |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for shot, rows in shots.items():
        (hit_b, ap_b), (hit_a, ap_a) = (per_query(d, query, gallery, rows) for d in (args.before, args.after))
        print(f"| {shot} | {len(rows)} | {100 * hit_b.mean():.1f} | {100 * hit_a.mean():.1f} | {paired_mean_se(hit_a - hit_b)} "
              f"| {100 * ap_b.mean():.1f} | {100 * ap_a.mean():.1f} | {paired_mean_se(ap_a - ap_b)} |")


if __name__ == "__main__":
    main()
