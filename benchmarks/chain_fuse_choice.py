"""Does the fuse stage's out-of-fold choice carry over to the test set? On a finished chain.

For every model and every option of the rerank stage (raw, the configured re-ranking, each
rerank.grid setting): the pooled out-of-fold score the tuned fuse stage recorded beside the
test score of the same lists. Then the submission for each fuse.source (auto: per-model
choice; reranked; raw), tuned, with its out-of-fold score, its test score and the paired
difference to auto over the test queries (mean +- standard error). ``--repo`` is a checkout
where `dvc repro fuse` has run with labelled query/gallery; the fuse and submit stages are
rerun there per source with their outputs redirected to a scratch folder, so the chain's own
outputs stay as they are. Writes benchmarks/results/chain_fuse_choice.md. Not one of
`make bench`'s benchmarks: it needs a finished chain. The recorded one:

    python -m pipeline.params_override configs/grocery.params.yaml
    python -m pipeline.params_override benchmarks/fuse_choice_grocery.params.yaml
    dvc repro fuse
    python benchmarks/chain_fuse_choice.py --repo . --note "grocery, tiny + tiny_resnet, ..."
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from harness import K, describe_machine, paired_mean_se

from pipeline.retrieval.candidates import load_candidate_sets
from pipeline.core.config import read_yaml
from pipeline.data.cache import open_split
from pipeline.evaluate.metrics import competition_per_query
from pipeline.evaluate.submission import read_submission
from pipeline.core.io_utils import write_text

SOURCES = ("auto", "reranked", "raw")


def per_query_scores(ranking: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    result = competition_per_query(ranking, query_labels, gallery_labels, K)
    return 0.5 * result.top1 + 0.5 * result.ap


def run_source(repo: Path, params: dict, source: str, scratch: Path) -> tuple[dict, Path, str]:
    """fuse + submit with ``fuse.source: source`` into ``scratch``: (fuse.json, submission, fuse log)."""
    variant = copy.deepcopy(params)
    variant["fuse"].update(source=source, tune=True, out=str(scratch / f"{source}.npz"), weights_out=str(scratch / f"{source}.json"))
    variant["submit"]["out"] = str(scratch / f"{source}.csv")
    path = scratch / f"{source}.params.yaml"
    path.write_text(yaml.safe_dump(variant, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(repo))
    logs = {}
    for stage in ("fuse", "submit"):
        done = subprocess.run([sys.executable, f"stages/{stage}.py", "--params", str(path)], cwd=repo, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{stage} with source {source} failed:\n{done.stderr[-3000:]}")
        logs[stage] = done.stderr
    return json.loads((scratch / f"{source}.json").read_text()), scratch / f"{source}.csv", logs["fuse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="a chain checkout after `dvc repro fuse`")
    parser.add_argument("--note", default="", help="one line on what the chain is (data, models, epochs)")
    parser.add_argument("--setup", default="", help="the commands that made the chain, for the record")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "chain_fuse_choice.md")
    args = parser.parse_args()
    repo = args.repo.resolve()
    params = read_yaml(repo / "params.yaml")
    machine = describe_machine()
    cache = repo / params["preprocess"]["out"]
    query, gallery = open_split(cache, "query").table, open_split(cache, "gallery").table
    q_labels, g_labels = query["label"].to_numpy(), gallery["label"].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {source: run_source(repo, params, source, Path(tmp)) for source in SOURCES}
        scores = {
            source: per_query_scores(
                read_submission(csv, query["image"].tolist(), gallery["image"].tolist(), params["submit"]["length"]), q_labels, g_labels
            )
            for source, (_, csv, _) in runs.items()
        }
    auto = runs["auto"][0]
    size = auto["tuning_set"]
    lines = [
        "# chain_fuse_choice: the fuse stage's out-of-fold choice against the test set",
        "",
        f"Machine: {machine}.",
        "",
        f"Chain: {args.note or repo}. Models {', '.join(auto['options'])}; tuning set (all folds pooled): "
        f"{size['folds']} folds, {size['held_out_queries']} held-out queries, {size['gallery_images']} gallery images, "
        f"{size['identities']} identities. Test set: {len(query)} queries, {len(gallery)} gallery images. "
        "Score = 0.5 top-1 + 0.5 mAP@10.",
        "",
        "Every option of every model: pooled out-of-fold score (what the choice sees) and test score "
        "(* = chosen by `fuse.source: auto`).",
        "",
        "| model | option | out-of-fold | test |",
        "|---|---|---:|---:|",
    ]
    for model, entry in auto["options"].items():
        lists = load_candidate_sets(repo / params["rerank"]["out"] / f"{model}.npz")
        for option, oof in entry["oof_scores"].items():
            test = per_query_scores(lists[option].ranking(K), q_labels, g_labels).mean()
            mark = "*" if option == entry["chosen"] else ""
            lines.append(f"| {model} | {option}{mark} | {oof:.4f} | {test:.4f} |")
    lines += [
        "",
        "The submission per `fuse.source` (weights tuned on the pooled out-of-fold lists in every case):",
        "",
        "| fuse.source | lists | weights | submitted | out-of-fold | test | test minus auto (paired, ± SE) |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for source, (record, _, _) in runs.items():
        chosen = ", ".join(f"{m}: {e['chosen']}" for m, e in record["options"].items())
        weights = ", ".join(f"{m} {w:.1f}" for m, w in record["weights"].items())
        diff = scores[source] - scores["auto"]
        change = "–" if source == "auto" else paired_mean_se(diff)
        lines.append(
            f"| {source} | {chosen} | {weights} | {record['submitted']} | {record['oof_score']:.4f} | {scores[source].mean():.4f} | {change} |"
        )
    lines += [
        "",
        "The fuse stage's own summary (`fuse.source: auto`):",
        "",
        "```",
        runs["auto"][2].strip(),
        "```",
        "",
        f"Reproduce: {args.setup + '; ' if args.setup else ''}`python benchmarks/chain_fuse_choice.py --repo <chain>`",
    ]
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
