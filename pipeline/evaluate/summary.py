"""The end-of-run summary a person reads: one short table instead of `dvc metrics show`.

    python -m pipeline.evaluate.summary [--params params.yaml]

`dvc metrics show` prints one row per metrics file with every key as a column (over a
hundred). This prints, from the files the chain wrote, each method's headline scores (each
model, re-ranked, fused, the submission file as read back), the fusion weights, and each
trained fold's validation score before and after training.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.cli import run_stage
from pipeline.core.errors import DataError
from pipeline.core.params import StageParams, fold_dir

# metrics.json key -> column heading, in the order shown: the competition's columns, then the
# re-identification ones (CMC rank-1 is top-1; mINP, Ye et al. 2021, is how hard the last true
# match is to reach), shown for every dataset rather than guessed from its shape
COLUMNS = {
    "score": "score", "top1": "top-1", "map@{k}": "mAP@{k}",
    "cmc@5": "CMC@5", "cmc@10": "CMC@10", "cmc@20": "CMC@20", "mAP": "mAP", "mINP": "mINP",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found (run `dvc repro` first)") from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error


def _cell(value: object) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def score_table(metrics: Mapping[str, Any]) -> str:
    """The headline columns of metrics.json's table, one row per method."""
    table = metrics.get("table") or {}
    if not table:
        return "(no labelled query/gallery: nothing was scored)"
    k = metrics.get("k", 10)
    keys = [key.format(k=k) for key in COLUMNS]
    header = ["method"] + [heading.format(k=k) for heading in COLUMNS.values()]
    return markdown(header, [[method] + [row.get(key) for key in keys] for method, row in table.items()])


def fold_table(live_metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Per trained (model, fold): validation score untrained (step 0) and at the best epoch."""
    rows = []
    for name, live in live_metrics.items():
        rows.append([name, live.get("untrained"), live.get("best/score"), live.get("best/epoch")])
    return markdown(["model / fold", "untrained", "best", "best epoch"], rows)


def read_fold_metrics(models_dir: Path, models: Sequence[str], folds: Sequence[int]) -> dict[str, dict[str, Any]]:
    """{"<model> fold <f>": {"untrained", "best/score", "best/epoch"}} from each run's dvclive files."""
    found: dict[str, dict[str, Any]] = {}
    for model in models:
        for fold in folds:
            live = fold_dir(models_dir, model, fold).live
            if not (live / "metrics.json").is_file():
                continue
            summary = _read_json(live / "metrics.json")
            untrained = None
            score_log = live / "plots" / "metrics" / "val" / "score.tsv"
            if score_log.is_file():
                first = score_log.read_text(encoding="utf-8").splitlines()[1:2]
                untrained = float(first[0].split("\t")[1]) if first else None
            best = summary.get("best", {})
            found[f"{model} fold {fold}"] = {
                "untrained": untrained, "best/score": best.get("score"),
                "best/epoch": None if best.get("epoch") is None else int(best["epoch"]),
            }
    return found


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    evaluate, fuse, train = params.evaluate, params.fuse, params.train
    print("Test set (query vs gallery), from", evaluate.out)
    print(score_table(_read_json(Path(evaluate.out))))
    weights = _read_json(Path(fuse.weights_out))
    print("\nFusion weights:", ", ".join(f"{m} {w:.2f}" for m, w in weights.get("weights", {}).items()),
          "(tuned on the out-of-fold lists)" if weights.get("tuned") else "(from params.yaml)")
    print("\nValidation score on each fold's held-out identities (0.5 top-1 + 0.5 mAP@10):")
    print(fold_table(read_fold_metrics(Path(train.out), train.models, train.folds)))


if __name__ == "__main__":
    run_stage(main)  # a missing file: one line naming it, as every stage answers
