"""Two finished chains' submissions on the same test split, paired per query.

Each chain's fused test lists are recomputed through the fuse stage's own code
(fuse.fuse_models) from its stored features and rerank lists, so both go through the same
fuse code whatever version wrote their fused.npz; printed: each chain's
test score (0.5 top-1 + 0.5 AP@10 per query, averaged) and the paired per-query difference
with its standard error. The recorded use (benchmarks/results/runs_grocery.md):

    python benchmarks/compare_chains.py <previous grocery chain> <latest grocery chain>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harness import paired_mean_se, per_query_scores
from pipeline.chain.fuse import fuse_models
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank import rerank_options, with_plain_views
from pipeline.data.cache import open_split
from pipeline.core.params import StageParams


def submission_scores(repo: Path) -> tuple[np.ndarray, list[str]]:
    """Per test query score of the chain's fused lists, and the query images (to check the pairing)."""
    params = StageParams(repo / "params.yaml")
    models = {m: ModelInputs.read(repo / params.candidates(m), repo / params.features(m)) for m in params.train.models}
    options = with_plain_views(rerank_options(params.rerank), params.extract.plain_views)
    fused, _ = fuse_models(params.fuse, models, options, repo / params.folds_file(), params.path)
    cache = repo / params.cache()
    query, gallery = open_split(cache, "query").table, open_split(cache, "gallery").table
    return per_query_scores(fused.indices, query["label"], gallery["label"])[0], list(query["image"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    (before, ids_before), (after, ids_after) = (submission_scores(r.resolve()) for r in (args.before, args.after))
    if ids_before != ids_after:
        raise SystemExit("the two chains' test queries differ: nothing to pair")
    print(f"before {before.mean():.4f}, after {after.mean():.4f}, paired difference {paired_mean_se(after - before)} "
          f"({before.size} queries)")


if __name__ == "__main__":
    main()
