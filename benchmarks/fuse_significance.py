"""Does the fuse stage's out-of-fold choice chase noise? fuse.min_gain_se and fuse.tuning_shape on a finished chain.

For the chain's test set as it is and for its single-shot version (each gallery identity keeps
one image, from another camera than its queries' where it has one; the test labels are read
here to build it and to score, never by the chain's code), the rerank and fuse stages' own code
(rerank.stage_lists, fuse.fuse_models) is run from the stored features for each tuning
set shape (``folds``: the held-out roles of folds.csv; ``single_shot``) and each ``min_gain_se``
(0: the old rule, any out-of-fold gain; ``--k``: the significance rule), and every submission is
scored on that test set (0.5 top-1 + 0.5 mAP@10, and rank-1), with its paired difference to the
old choice (folds, 0) over the test queries. The single-shot version's out-of-fold distractors
(extract.oof_distractors) are cut to its gallery, as the extract stage would have stored them.
Per model, every option's test score shows what a perfect choice would take. Read only: writes
benchmarks/results/fuse_significance.md (``--out``). Not one of `make bench`'s: it needs a chain.

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/fuse_significance.py --repo <chain> --note "..."

``--repo``: a folder with the chain's params.yaml, <extract.out>/<model>/ (with plain/ under
extract.plain_views), <folds.out> and the preprocess cache's query.csv and gallery.csv, at the
paths params.yaml names (relative to the folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import K, describe_machine, paired_mean_se, per_query_scores  # noqa: E402

from pipeline.chain.fuse import fuse_models  # noqa: E402
from pipeline.chain.model_inputs import ModelInputs  # noqa: E402
from pipeline.chain.rerank import rerank_options, stage_lists, with_plain_views  # noqa: E402
from pipeline.chain.tuning_set import FOLDS, SINGLE_SHOT, feature_shape  # noqa: E402
from pipeline.data.folds import read_folds  # noqa: E402
from pipeline.data.layout import read_split  # noqa: E402
from pipeline.infer.store import FeatureSet, ModelFeatures, load_features  # noqa: E402
from pipeline.core.io_utils import write_text  # noqa: E402
from pipeline.core.params import StageParams  # noqa: E402
from pipeline.retrieval.candidates import CandidateLists  # noqa: E402

COMMAND = "nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/fuse_significance.py --repo <chain>"


def single_shot_gallery(query: pd.DataFrame, gallery: pd.DataFrame, seed: int) -> np.ndarray:
    """Rows of ``gallery`` (ascending) keeping one image per identity, drawn with ``seed``: for an
    identity with queries, one whose camera none of its queries has where there is one."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(gallery))
    labels = gallery["label"].astype(str).to_numpy()
    cameras = gallery["camera"].astype(str).to_numpy() if "camera" in gallery.columns else np.full(len(gallery), "")
    query_cameras: dict[str, set[str]] = {}
    if "camera" in query.columns:
        for label, camera in zip(query["label"].astype(str), query["camera"].astype(str)):
            query_cameras.setdefault(label, set()).add(camera)
    kept: dict[str, int] = {}
    for label in dict.fromkeys(labels[order]):
        rows = [row for row in order if labels[row] == label]
        other = [row for row in rows if cameras[row] and cameras[row] not in query_cameras.get(label, set())]
        kept[label] = (other or rows)[0]
    return np.sort(np.array(list(kept.values()), dtype=np.int64))


def with_gallery(features: ModelFeatures, ids: list[str]) -> ModelFeatures:
    """``features`` with the test gallery, and each fold's distractors (the test gallery through the
    fold's model), cut to ``ids``."""
    def cut(feature_set: FeatureSet) -> FeatureSet:
        row_of = {image: row for row, image in enumerate(feature_set.ids)}
        rows = np.array([row_of[image] for image in ids], dtype=np.int64)
        local = None if feature_set.local is None else feature_set.local[rows]
        return FeatureSet(feature_set.features[rows], list(ids), local)

    return dataclasses.replace(
        features, gallery=cut(features.gallery), distractors={fold: cut(d) for fold, d in features.distractors.items()}
    )


def test_scores(lists: CandidateLists, query: pd.DataFrame, gallery: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per test query: 0.5 top-1 + 0.5 AP@10, and the top-1 hit."""
    return per_query_scores(lists.ranking(min(K, lists.indices.shape[1])), query["label"], gallery["label"])


def run_variant(
    params: StageParams, repo: Path, features: Mapping[str, tuple[ModelFeatures, ModelFeatures | None]],
    folds: pd.DataFrame, query: pd.DataFrame, gallery: pd.DataFrame, k: float,
) -> list[str]:
    """The report's section for one test set: every (shape, min_gain_se) submission, every option."""
    options = with_plain_views(rerank_options(params.rerank), params.extract.plain_views)
    reference = next(iter(features.values()))[0]
    lines = [
        f"Test set: {len(query)} queries, {len(gallery)} gallery images of {gallery['label'].nunique()} identities; "
        f"`fuse.tuning_shape: auto` would take `{feature_shape(reference, 'auto')}`.",
        "",
        "| tuning shape | min_gain_se | lists chosen | weights | submitted | OOF score | test score | rank-1 | test minus old rule (paired ± SE) |",
        "|---|---:|---|---|---|---:|---:|---:|---:|",
    ]
    started = time.perf_counter()
    results, test_lists = {}, {}
    for shape in (FOLDS, SINGLE_SHOT):
        models = {}
        for name, (tta, plain) in features.items():
            lists = stage_lists(tta, plain, folds, params.rerank, shape)
            models[name] = ModelInputs(lists, Path(f"{name} (recomputed)"), tta, repo / params.features(name))
            test_lists[name] = lists
        for gain_se in (0.0, k):
            cfg = dataclasses.replace(params.fuse, min_gain_se=gain_se, tuning_shape=shape)
            fused, record = fuse_models(cfg, models, options, repo / params.folds_file(), params.path, joint=params.rerank)
            results[shape, gain_se] = (record, *test_scores(fused, query, gallery))
    baseline = results[FOLDS, 0.0][1]
    for (shape, gain_se), (record, score, top1) in results.items():
        chosen = ", ".join(f"{m}: {e['chosen']}" for m, e in record["options"].items())
        weights = ", ".join(f"{m} {w:.2f}" for m, w in record["weights"].items())
        lines.append(
            f"| {shape} | {gain_se:g} | {chosen} | {weights} | {record['submitted']} | {record['oof_score']:.4f} | "
            f"{score.mean():.4f} | {top1.mean():.4f} | {paired_mean_se(score - baseline)} |"
        )
    lines += ["", "Every option's test score per model (the test lists do not depend on the tuning set):", ""]
    names = [option.name for option in options]
    lines += ["| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, lists in test_lists.items():
        lines.append(f"| {name} | " + " | ".join(f"{test_scores(lists[o], query, gallery)[0].mean():.4f}" for o in names) + " |")
    lines += ["", f"(re-ranking and fusing took {time.perf_counter() - started:.0f} s)", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="the chain's folder (see above)")
    parser.add_argument("--note", default="", help="one line on what the chain is (data, models, epochs)")
    parser.add_argument("--k", type=float, default=1.0, help="min_gain_se of the significance rule (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the draw of the single-shot test gallery")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fuse_significance.md")
    args = parser.parse_args(argv)
    logging.getLogger("fuse").setLevel(logging.WARNING)  # one choice table per run would bury the report
    repo = args.repo.resolve()
    params = StageParams(repo / "params.yaml")
    folds = read_folds(repo / params.folds_file())
    query, gallery = (read_split(repo / params.cache(), split, check_files=False) for split in ("query", "gallery"))
    features = {
        name: (load_features(repo / params.features(name)),
               load_features(repo / params.features(name) / "plain") if params.extract.plain_views else None)
        for name in params.train.models
    }
    kept = single_shot_gallery(query, gallery, args.seed)
    ids = gallery["image"].to_numpy()[kept].tolist()
    single = {name: (with_gallery(tta, ids), None if plain is None else with_gallery(plain, ids)) for name, (tta, plain) in features.items()}
    crossing = sum(
        camera not in set(query.loc[query["label"] == label, "camera"])
        for label, camera in zip(gallery["label"].iloc[kept], gallery["camera"].iloc[kept])
    ) if "camera" in gallery.columns else 0
    lines = [
        "# fuse_significance: the out-of-fold choice with and without the significance rule and the single-shot tuning set",
        "",
        f"Machine: {describe_machine()}.",
        "",
        f"Chain: {args.note or repo}. Models {', '.join(params.train.models)}; folds {params.train.folds}. Score = 0.5 top-1 + "
        f"0.5 mAP@10. Old rule: `tuning_shape: folds`, `min_gain_se: 0`; significance rule: `min_gain_se: {args.k:g}`.",
        "",
        "## The test set as it is",
        "",
        *run_variant(params, repo, features, folds, query, gallery, args.k),
        "## Its single-shot version",
        "",
        f"One gallery image per identity (seed {args.seed}); {crossing} of {len(kept)} from another camera than the "
        "identity's queries.",
        "",
        *run_variant(params, repo, single, folds, query, gallery.iloc[kept].reset_index(drop=True), args.k),
        f"Reproduce: `{COMMAND}{' --k ' + format(args.k, 'g') if args.k != 1 else ''}`.",
    ]
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
