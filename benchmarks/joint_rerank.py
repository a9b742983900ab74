"""Fuse then re-rank once (fuse.joint_rerank) against re-rank then fuse, on a finished chain.

Read only: the chain's stored features and rerank lists go through the fuse stage's own code
(fuse.fuse_models) twice, with ``fuse.joint_rerank`` off and on; the joint re-ranking
(pipeline/chain/joint_rerank.py) re-ranks the tuned mix's joint features with every rerank
option, test set and out-of-fold sets alike. Reported: each joint option's pooled out-of-fold
score beside its test score, then both submissions' out-of-fold and test scores (top-1,
mAP@10, score) with the paired per-query difference on the test set. The test labels are read
for scoring only. Writes benchmarks/results/joint_rerank.md (``--out``); the recorded runs:

    python benchmarks/joint_rerank.py --repo . --note "the demo chain" --out benchmarks/results/joint_rerank.md
    python benchmarks/joint_rerank.py --repo <grocery chain> --note "grocery" --append

``--repo``: a finished chain's folder (params.yaml, outputs/features, outputs/rerank, the
folds file and the preprocess cache's query/gallery tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from harness import K, describe_machine, paired_mean_se, per_query_scores

from pipeline.chain.fuse import fuse_models
from pipeline.chain.joint_rerank import joint_candidates
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank import rerank_options
from pipeline.data.cache import open_split
from pipeline.evaluate.metrics import competition_per_query
from pipeline.core.io_utils import write_text
from pipeline.core.params import StageParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--note", default="", help="one line on what the chain is")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "joint_rerank.md")
    parser.add_argument("--append", action="store_true", help="add this chain's section to --out")
    args = parser.parse_args()
    repo = args.repo.resolve()
    params = StageParams(repo / "params.yaml")
    cache = repo / params.cache()
    query, gallery = open_split(cache, "query").table, open_split(cache, "gallery").table
    models = {m: ModelInputs.read(repo / params.candidates(m), repo / params.features(m)) for m in params.train.models}
    options = rerank_options(params.rerank)
    started = time.perf_counter()
    results = {
        switch: fuse_models(dataclasses.replace(params.fuse, joint_rerank=switch), models, options,
                            repo / params.folds_file(), params.path, joint=params.rerank)
        for switch in (False, True)
    }
    seconds = time.perf_counter() - started
    (lists_fused, lists_record), (_, joint_record) = results[False], results[True]
    joint = joint_record.get("joint")
    if joint is None:
        raise SystemExit(f"{repo}: the tuned mix has a single model (or local distances): nothing to compare")

    def per_query(ranking: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        result = competition_per_query(ranking[:, :K], query["label"], gallery["label"], K)
        return result.top1, result.ap, per_query_scores(ranking, query["label"], gallery["label"])[0]

    size = lists_record["tuning_set"]
    weights = ", ".join(f"{m} {w:.2f}" for m, w in zip(models, joint["weights"]))
    lines = [] if args.append else [
        "# joint_rerank: fuse, then re-rank once, against re-rank each model, then fuse",
        "",
        "Both submissions come from the fuse stage's own code on the same stored features and lists; "
        "score = 0.5 top-1 + 0.5 mAP@10; ± is the standard error of the paired per-query difference.",
    ]
    lines += [
        "",
        f"## {args.note or repo}",
        "",
        f"Machine: {describe_machine()}. Tuning set: {size['folds']} fold(s), {size['held_out_queries']} held-out "
        f"queries, {size['gallery_images']} gallery images, distractors per fold {size['distractors_per_fold']}. "
        f"Test set: {len(query)} queries, {len(gallery)} gallery images. Joint weights (the tuned mix): {weights}. "
        f"Both fuse runs took {seconds:.0f} s.",
        "",
        "| joint option | out-of-fold | test |",
        "|---|---:|---:|",
    ]
    # every joint option's test lists (the fuse stage keeps the chosen one's only)
    joint_sets = joint_candidates([inputs.features for inputs in models.values()], joint["weights"], params.rerank)
    for name, score in joint["oof_scores"].items():
        mark = "*" if name == joint["chosen"] else ""
        lines.append(f"| {name} | {score:.4f}{mark} | {per_query(joint_sets[name].indices)[2].mean():.4f} |")
    lines += [
        "",
        f"With `fuse.joint_rerank: true` the fuse stage submits: {joint_record['submitted']}.",
        "",
        "| lists | out-of-fold | test top-1 | test mAP@10 | test score | minus lists fusion (paired) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    reference = per_query(lists_fused.indices)[2]
    rows = (("re-rank, then fuse (lists fusion)", lists_fused, lists_record["oof_score"]),
            (f"fuse, then re-rank ({joint['chosen']})", joint_sets[joint["chosen"]], joint["oof_score"]))
    for label, lists, oof in rows:
        top1, ap, score = per_query(lists.indices)
        lines.append(f"| {label} | {oof:.4f} | {top1.mean():.3f} | {ap.mean():.3f} | {score.mean():.4f} | "
                     f"{paired_mean_se(score - reference)} |")
    text = "\n".join(lines) + "\n"
    if args.append:
        text = args.out.read_text(encoding="utf-8") + text
    write_text(args.out, text)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
