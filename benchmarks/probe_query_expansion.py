"""Query expansion and DBA as further rerank options, on a finished chain: each setting's
lists go through the rerank and fuse stages' own code (rerank_model, fuse_models), and the
fusion's pooled out-of-fold score is printed beside its test score. Not in the rerank grid
(benchmarks/results/runs_grocery.md says why). The recorded use:

    python benchmarks/probe_query_expansion.py --repo <grocery chain>
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from oof_distractors import test_scores

from pipeline.chain.fuse_run import fuse_models
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank_step import rerank_model, rerank_options
from pipeline.data.cache import open_split
from pipeline.core.params import StageParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--dba", nargs="+", type=int, default=[0, 1, 2, 3], help="dba_k values")
    args = parser.parse_args()
    os.chdir(args.repo)  # the chain's params.yaml names its paths relative to its folder
    params = StageParams("params.yaml")
    query, gallery = (open_split(params.cache(), split).table["label"] for split in ("query", "gallery"))
    stored = {m: ModelInputs.read(params.candidates(m), params.features(m)) for m in params.train.models}
    print("| query expansion | dba_k | fusion out-of-fold | fusion test | chosen per model |")
    print("|---|---:|---:|---:|---|")
    for expansion in ("none", "alpha"):
        for dba in args.dba:
            cfg = dataclasses.replace(params.rerank, query_expansion=expansion, dba_k=dba)
            models = {m: dataclasses.replace(inputs, lists=rerank_model(inputs.features, cfg)) for m, inputs in stored.items()}
            fused, record = fuse_models(params.fuse, models, rerank_options(cfg), params.folds_file(), params.path)
            chosen = ", ".join(f"{m} {record['options'][m]['chosen']}" for m in models)
            print(f"| {expansion} | {dba} | {record['oof_score']:.4f} | {test_scores(fused.indices, query, gallery).mean():.4f} | {chosen} |",
                  flush=True)


if __name__ == "__main__":
    main()
