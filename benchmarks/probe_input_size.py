"""ImageNet features without training, scored on each fold's held-out identities at several
input sizes: does upsampling small photos help the packaged weights? Training folds only (no
test labels), so it may choose a recipe's input size. The recorded use
(benchmarks/results/runs_grocery.md, a grocery chain's folder with its preprocess cache):

    python benchmarks/probe_input_size.py --repo <grocery chain> --models lite0 lite1 --sizes 128 160 192
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.models.factory import create_model, input_normalisation
from pipeline.core.params import StageParams
from pipeline.train.data import load_fold
from pipeline.train.fold_score import validation_scores
from pipeline.train.recipe import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--models", nargs="+", required=True, help="recipe names of the chain's train.recipes")
    parser.add_argument("--sizes", nargs="+", type=int, required=True)
    args = parser.parse_args()
    os.chdir(args.repo)  # the chain's params.yaml names its paths relative to its folder
    params = StageParams("params.yaml")
    print("| model | fold | " + " | ".join(f"{s} px" for s in args.sizes) + " |")
    print("|---|---:|" + "---:|" * len(args.sizes))
    for name in args.models:
        recipe = load_recipe(params.recipe(name))
        model = create_model(recipe.model, num_classes=2).eval()  # the head is unused: embeddings only
        mean, std = input_normalisation(model)
        for fold in params.train.folds:
            data = load_fold(params.cache(), params.folds_file(), fold)
            scores = [
                validation_scores(model, data.images, data.labels, data.query_rows, data.gallery_rows,
                                  size=size, mean=mean, std=std, batch_size=64)["score"]
                for size in args.sizes
            ]
            print(f"| {name} | {fold} | " + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
