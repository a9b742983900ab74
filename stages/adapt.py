"""Adapt one trained fold model to the unlabelled target: `python stages/adapt.py --model lite0 --fold 0`.

Rounds of DBSCAN pseudo-labels on the k-reciprocal Jaccard distance of the target's features and
fine-tuning on them (pipeline/adapt/rounds.py). The target (adapt.target) is a preprocess cache
(the chain's own: its test query + gallery, transductive, labels never read), a CSV with an image
column, or a folder of images. Writes <train.out>/<model>/fold<f>/adapted/ in train's layout (the
extract and export stages read it for the models adapt.models lists) and, per round, the clusters
and noise fraction to <train.out>/<model>/fold<f>/adapt.json. A rerun resumes.
"""

from __future__ import annotations

import logging

import torch

from pipeline.adapt.rounds import adapt_model
from pipeline.adapt.target import target_images
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.errors import ConfigError
from pipeline.core.io_utils import write_json
from pipeline.core.params import StageParams
from pipeline.train.distributed import init_distributed

log = logging.getLogger("adapt")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from adapt.models")
    parser.add_argument("--fold", required=True, type=int)
    args = parser.parse_args(argv)
    params = StageParams(args.params)
    cfg, train = params.adapt, params.train
    if args.model not in cfg.models:
        raise ConfigError(f"{args.params}: adapt.models does not list '{args.model}'")
    cfg.check_models(train.models, str(args.params))
    source = params.trained_checkpoints(args.model, [args.fold])[args.fold]
    images = target_images(cfg.target, params.preprocess.size, params.preprocess.fill)
    if train.threads:
        torch.set_num_threads(train.threads)
    info = init_distributed(train.device)
    history = adapt_model(source, images, cfg, params.adapted_dir(args.model, args.fold), model_name=args.model,
                          fold=args.fold, info=info)
    if info.is_main:
        write_json(params.adapt_log(args.model, args.fold), {
            "source": str(source), "target": cfg.target, "target_images": len(images),
            "rounds": {f"round{int(entry['round'])}": entry for entry in history},
        })
        log.info("%s fold %d adapted to %s (%d images): %s", args.model, args.fold, cfg.target, len(images), history[-1])


if __name__ == "__main__":
    run_stage(main)
