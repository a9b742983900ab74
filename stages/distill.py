"""Distil a small student from trained teachers on one fold: `python stages/distill.py --fold 0`.

The student is a recipe of train.recipes (distill.student), the teachers are trained models of
train.models (distill.teachers: one model, or several for their ensemble). Writes
<distill.out>/<student>/fold<f>/{checkpoints,live} like a train stage; a rerun resumes.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch

from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.errors import ConfigError
from pipeline.core.params import StageParams, fold_dir
from pipeline.train.data import load_fold
from pipeline.distill.trainer import DistillTrainer
from pipeline.train.distributed import init_distributed
from pipeline.train.loop import fit
from pipeline.train.recipe import load_recipe

log = logging.getLogger("distill")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--fold", required=True, type=int)
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    cfg, train = params.distill, params.train
    unknown = [t for t in cfg.teachers if t not in train.models]
    if unknown:
        raise ConfigError(f"{args.params}: distill.teachers names '{unknown[0]}', which train.models does not list")
    recipe = load_recipe(params.recipe(cfg.student))
    teachers = [params.trained_checkpoints(name, [args.fold])[args.fold] for name in cfg.teachers]
    data = load_fold(params.cache(), params.folds_file(), args.fold)
    if train.threads:
        torch.set_num_threads(train.threads)
    info = init_distributed(train.device)
    summary = fit(
        recipe, data, fold_dir(Path(cfg.out), cfg.student, args.fold).root, model_name=cfg.student, fold=args.fold,
        info=info, make_trainer=partial(DistillTrainer, cfg=cfg, teachers=teachers),
    )
    if info.is_main:
        log.info("%s fold %d distilled from %s: %s", cfg.student, args.fold, ", ".join(cfg.teachers), summary)


if __name__ == "__main__":
    run_stage(main)
