"""What the benchmarks share, in one module: the machine line of every report, recipe variants,
a checkpoint's scores on a test split, per-query competition scores, and the mean ± spread
figures that go beside each comparison. A benchmark is a short case over these."""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

K = 10  # the competition's cut-off: score = 0.5 top-1 + 0.5 mAP@10


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine(**versions: str) -> str:
    """CPU, cores, memory, the load at call time (other jobs may share the machine) and versions."""
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (OSError, ValueError):
        memory = "unknown memory"
    parts = [
        f"{cpu_model()}, {os.cpu_count()} cores, {memory}",
        f"load average {os.getloadavg()[0]:.1f}",
        f"Python {platform.python_version()}",
    ]
    parts += [f"{name} {version}" for name, version in versions.items()]
    return "; ".join(parts)


def variant_recipe(base: dict, changes: str) -> dict:
    """``base`` with ``"a.b=value, c.d=[1, 2]"`` applied (values read as YAML; commas inside
    brackets belong to the value)."""
    recipe = copy.deepcopy(base)
    for change in filter(None, (c.strip() for c in _top_level_split(changes))):
        key, sign, value = change.partition("=")
        if not sign or not key.strip():
            raise SystemExit(f"variant change {change!r}: expected key.path=value")
        *parents, leaf = key.strip().split(".")
        node = recipe
        for parent in parents:
            node = node.setdefault(parent, {})
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SystemExit(f"variant change {change!r}: the value is not YAML ({error.problem})") from error
    return recipe


def _top_level_split(changes: str) -> list[str]:
    """``changes`` split at the commas outside brackets and braces."""
    parts, depth, start = [], 0, 0
    for pos, char in enumerate(changes):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            parts.append(changes[start:pos])
            start = pos + 1
    return parts + [changes[start:]]


def checkpoint_test_scores(checkpoint: Path, cache: Path) -> dict[str, float]:
    """Top-1, mAP@10 and score of a checkpoint on a cache's labelled query/gallery split (one
    plain view, the validation code's), never trained on."""
    from pipeline.data.cache import open_split
    from pipeline.train.fold_score import validation_scores
    from pipeline.train.trained import load_trained_model

    model, meta = load_trained_model(checkpoint)
    query, gallery = open_split(cache, "query"), open_split(cache, "gallery")
    images = np.concatenate([query.images, gallery.images])
    labels = np.concatenate([query.table["label"].astype(str).to_numpy(), gallery.table["label"].astype(str).to_numpy()])
    rows = np.arange(len(images))
    return validation_scores(
        model, images, labels, rows[: len(query.images)], rows[len(query.images) :],
        size=meta["input_size"], mean=tuple(meta["mean"]), std=tuple(meta["std"]),
    )


def per_query_scores(ranking: np.ndarray, query_labels: Sequence[str], gallery_labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per query: 0.5 top-1 + 0.5 AP@10, and the top-1 hit (float), for paired comparisons."""
    from pipeline.evaluate.metrics import competition_per_query

    k = min(K, ranking.shape[1])
    result = competition_per_query(ranking[:, :k], query_labels, gallery_labels, k)
    return 0.5 * result.top1 + 0.5 * result.ap, result.top1.astype(np.float64)


def paired_mean_se(diff: np.ndarray) -> str:
    """Mean ± standard error of a per-query difference; '–' for a row against itself."""
    if not np.any(diff):
        return "–"
    return f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(diff.size):.4f}"


def mean_sd(values: Sequence[float], scale: float = 1.0, digits: int = 3, signed: bool = False) -> str:
    """Mean ± sample standard deviation over seeds (the mean alone for one value)."""
    values = np.asarray(values, dtype=np.float64) * scale
    mean = f"{values.mean():+.{digits}f}" if signed else f"{values.mean():.{digits}f}"
    return mean + (f" ± {values.std(ddof=1):.{digits}f}" if values.size > 1 else "")
