"""fuse: one ranking from every model's candidate lists (weighted distances or rank voting).

Untuned, every model's 'raw' or 'reranked' lists are fused with the weights from params.yaml.
Tuned, the out-of-fold lists of all folds, pooled, choose per model raw or one re-ranking
setting (on the TTA or, with extract.plain_views, the single-view features), then the weights;
the best single model is submitted alone when no mix beats it. With fuse.joint_rerank the tuned
mix's features, joined and re-ranked once, are submitted instead where they score higher.
fuse.json records the choice, every option's out-of-fold score and the tuning set's size."""

from __future__ import annotations

from pipeline.chain import fuse
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)
    fuse.run(StageParams(args.params))


if __name__ == "__main__":
    run_stage(main)
