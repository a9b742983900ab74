"""Out-of-fold tuning with and without the test gallery as distractors (extract.oof_distractors).

On a finished single-fold chain (train.folds: [one fold]), read only: with one fold, the test
gallery features the extract stage stored are that fold model's own (the mean of one fold's
normalised features is those features), which is exactly what ``extract.oof_distractors: true``
would store as the fold's distractors, so no re-extraction is needed. For each model, the
out-of-fold lists of every rerank option are recomputed against held-out gallery + distractors
(rerank.model_candidates over ModelFeatures.oof_gallery); the fuse stage's own code
(fuse.fuse_models) then scores the options and tunes the weights, once on the chain's stored
lists (no distractors) and once on these. Each option's test score and each submission's test
score stand beside them. Writes benchmarks/results/oof_distractors.md. The recorded run:

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/oof_distractors.py --repo /tmp/demo_chain --note "..."

``--repo``: a copy of the chain's params.yaml, outputs/features, outputs/rerank,
outputs/folds.csv and the preprocess cache's query/gallery tables (labels are read for scoring only).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import describe_machine, paired_mean_se, per_query_scores

from pipeline.chain.fuse import fuse_models
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank import model_candidates, rerank_options
from pipeline.data.cache import open_split
from pipeline.infer.store import ModelFeatures, oof_name
from pipeline.core.io_utils import write_text
from pipeline.core.params import StageParams

COMMAND = "nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/oof_distractors.py --repo <chain copy>"


def with_distractors(features: ModelFeatures, where: Path) -> ModelFeatures:
    """The fold's distractors as the option would store them: the test gallery (single-fold chains only)."""
    if len(features.oof) != 1:
        raise SystemExit(f"{where}: {len(features.oof)} folds; this shortcut holds for a single-fold chain only")
    fold = next(iter(features.oof))
    return ModelFeatures(features.query, features.gallery, features.oof, features.foreground, {fold: features.gallery})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--note", default="", help="one line on what the chain is")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "oof_distractors.md")
    args = parser.parse_args()
    repo = args.repo.resolve()
    params = StageParams(repo / "params.yaml")
    options = rerank_options(params.rerank)
    cache = repo / params.cache()
    query, gallery = open_split(cache, "query").table, open_split(cache, "gallery").table
    started = time.perf_counter()
    runs: dict[str, dict[str, ModelInputs]] = {"without": {}, "with": {}}
    for model in params.train.models:
        plain = ModelInputs.read(repo / params.candidates(model), repo / params.features(model))
        crowded = with_distractors(plain.features, plain.features_path)
        lists = dict(plain.lists)
        for fold, (held_out_query, _) in crowded.oof.items():
            tuning_gallery, _ = crowded.oof_gallery(fold)
            oof = model_candidates(held_out_query, tuning_gallery, params.rerank, f"{model} fold {fold}")
            lists.update({oof_name(fold, name): candidates for name, candidates in oof.items()})
        runs["without"][model] = plain
        runs["with"][model] = ModelInputs(lists, plain.lists_path, crowded, plain.features_path)
    rerank_seconds = time.perf_counter() - started

    results = {
        name: fuse_models(params.fuse, models, options, repo / params.folds_file(), params.path)
        for name, models in runs.items()
    }
    plain_record, crowded_record = results["without"][1], results["with"][1]
    size = crowded_record["tuning_set"]
    lines = [
        "# oof_distractors: out-of-fold tuning with the test gallery as distractors",
        "",
        f"Machine: {describe_machine()}; the cores were shared with a training run (nice 10, OMP_NUM_THREADS=1).",
        "",
        f"Chain: {args.note or repo}. Tuning set: {size['folds']} fold(s), {size['held_out_queries']} held-out queries, "
        f"{size['gallery_images']} held-out gallery images, {size['identities']} identities, distractors per fold "
        f"{size['distractors_per_fold']}. Test set: {len(query)} queries, {len(gallery)} gallery images. "
        f"Score = 0.5 top-1 + 0.5 mAP@10. The out-of-fold re-rankings with distractors took {rerank_seconds:.0f} s.",
        "",
        "Every option: pooled out-of-fold score without / with distractors (* = chosen by `fuse.source: auto`), "
        "and the test score of the same option's test lists.",
        "",
        "| model | option | OOF without | OOF with distractors | test |",
        "|---|---|---:|---:|---:|",
    ]
    for model, inputs in runs["without"].items():
        before, after = plain_record["options"][model], crowded_record["options"][model]
        for option in before["oof_scores"]:
            marks = ["*" if option == record["chosen"] else "" for record in (before, after)]
            lines.append(
                f"| {model} | {option} | {before['oof_scores'][option]:.4f}{marks[0]} | "
                f"{after['oof_scores'][option]:.4f}{marks[1]} | {per_query_scores(inputs.lists[option].indices, query['label'], gallery['label'])[0].mean():.4f} |"
            )
    lines += [
        "",
        "| tuned on | lists chosen | weights | submitted | out-of-fold | test | test minus without (paired, ± SE) |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    submitted = {name: per_query_scores(fused.indices, query["label"], gallery["label"])[0] for name, (fused, _) in results.items()}
    for name, (_, record) in results.items():
        chosen = ", ".join(f"{m}: {e['chosen']}" for m, e in record["options"].items())
        weights = ", ".join(f"{m} {w:.2f}" for m, w in record["weights"].items())
        lines.append(
            f"| OOF {name} distractors | {chosen} | {weights} | {record['submitted']} | "
            f"{record['oof_score']:.4f} | {submitted[name].mean():.4f} | {paired_mean_se(submitted[name] - submitted['without'])} |"
        )
    lines += ["", f"Reproduce: copy the chain's files named in the script's docstring, then `{COMMAND}`."]
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
