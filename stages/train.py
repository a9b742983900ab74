"""Train one model recipe on one fold: `python stages/train.py --model effb0 --fold 0`.

One DVC stage per (model, fold) via `matrix:`; rerunning a killed stage resumes from its
`checkpoints/last.pt`. Under `torchrun --nproc_per_node N` it trains with DDP.
"""

from __future__ import annotations

import logging

import torch

from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.errors import ConfigError
from pipeline.core.params import StageParams
from pipeline.train.data import load_fold
from pipeline.train.distributed import init_distributed
from pipeline.train.loop import fit
from pipeline.train.recipe import load_recipe, stage_one_checkpoint

log = logging.getLogger("train")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="recipe name: configs/<model>.yaml")
    parser.add_argument("--fold", required=True, type=int)
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    stage = params.train
    if args.model not in stage.models:
        raise ConfigError(f"{args.params}: train.models does not list '{args.model}'")
    if args.fold not in stage.folds:
        raise ConfigError(f"{args.params}: train.folds does not list fold {args.fold}")
    stage.check_folds(params.folds.k, str(args.params))
    recipe = load_recipe(params.recipe(args.model))
    data = load_fold(params.cache(), params.folds_file(), args.fold)
    if stage.threads:
        torch.set_num_threads(stage.threads)
    info = init_distributed(stage.device)
    init = stage_one_checkpoint(params, args.model, recipe, args.fold)
    summary = fit(
        recipe, data, params.fold_dir(args.model, args.fold).root, model_name=args.model, fold=args.fold, info=info,
        init=init,
    )
    if info.is_main:
        log.info("%s fold %d done: %s", args.model, args.fold, summary)


if __name__ == "__main__":
    run_stage(main)
