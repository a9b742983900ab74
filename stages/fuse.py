"""fuse: one ranking from every model's candidate lists (weighted distances or rank voting).

Untuned, every model's 'raw' or 'reranked' lists are fused with the weights from params.yaml.
Tuned, the out-of-fold lists of all folds, pooled, choose per model raw or one re-ranking
setting (on the TTA or, with extract.plain_views, the single-view features), then the weights;
the best single model is submitted alone when no mix beats it. With fuse.joint_rerank the tuned
mix's features, joined and re-ranked once, are submitted instead where they score higher.
fuse.json records the choice, every option's out-of-fold score and the tuning set's size."""

from __future__ import annotations

from pipeline.chain.fuse_run import fuse_models
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank_step import rerank_options, with_plain_views
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.io_utils import write_json
from pipeline.core.params import StageParams
from pipeline.retrieval.candidates import save_candidate_sets


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg = params.fuse
    models = {m: ModelInputs.read(params.candidates(m), params.features(m)) for m in params.train.models}
    options = with_plain_views(rerank_options(params.rerank), params.extract.plain_views)
    fused, record = fuse_models(cfg, models, options, params.folds_file(), args.params, joint=params.rerank)
    save_candidate_sets(cfg.out, {"fused": fused})
    write_json(cfg.weights_out, record)


if __name__ == "__main__":
    run_stage(main)
