"""Mutual learning of a model pair on every fold: `python stages/mutual.py --pair lite0+lite1`.

One DVC stage per pair (`foreach` over mutual.pairs); each fold resumes from its own
`joint/fold<F>/checkpoints/last.pt`. The pair's models land in `<mutual.out>/<pair>/<model>/`
in train's layout: extract reads them with `train.out` set to `<mutual.out>/<pair>`.
"""

from __future__ import annotations

import logging

import torch

from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.errors import ConfigError
from pipeline.core.params import StageParams
from pipeline.core.sections import check_pair_models, split_pair
from pipeline.train.data import load_fold
from pipeline.train.distributed import init_distributed
from pipeline.train.mutual import fit_mutual
from pipeline.train.recipe import load_recipe

log = logging.getLogger("mutual")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--pair", required=True, help="'<modelA>+<modelB>' from mutual.pairs")
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    cfg, stage = params.mutual, params.train
    if args.pair not in cfg.pairs:
        raise ConfigError(f"{args.params}: mutual.pairs does not list '{args.pair}'")
    check_pair_models(args.pair, stage.models, str(args.params))
    names = split_pair(args.pair)
    recipe, partner = (load_recipe(params.recipe(name)) for name in names)
    if stage.threads:
        torch.set_num_threads(stage.threads)
    info = init_distributed(stage.device)
    for fold in stage.folds:
        data = load_fold(params.cache(), params.folds_file(), fold)
        summary = fit_mutual(recipe, partner, data, params.mutual_dir(args.pair), pair=args.pair, fold=fold, cfg=cfg, info=info)
        if info.is_main:
            log.info("%s fold %d done: %s", args.pair, fold, summary)


if __name__ == "__main__":
    run_stage(main)
