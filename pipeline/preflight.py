"""The chain's checks before any stage does work: every params section, every recipe of
``train.models`` and the constraints between sections and the dataset's size.

Each stage still checks what it reads (a stage run alone, ``dvc repro -s``, is checked too);
this runs them all at once, in the ``check`` stage upstream of the first stage, so that
``rerank.k1: -3`` or ``train.folds: [7]`` with ``folds.k: 5`` stops the chain in seconds, not
after the training. Every error names the key and the file. Checks of a stage shared with
the stage itself are the same function (``TrainStageConfig.check_folds``,
``DuplicatesConfig.target``, ...), so the two cannot disagree.

Not checked here: the ``demo`` section (its stage, upstream, reads it first) and what only
exists later (a fold's held-out sizes, self-matches among query and gallery).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pipeline.chain.oof_fusion import configured_weights
from pipeline.core.config import read_yaml
from pipeline.data.layout import read_split, split_path
from pipeline.core.errors import ConfigError
from pipeline.core.params import StageParams
from pipeline.core.sections import check_pair_models, rerank_neighbours
from pipeline.train.recipe import load_recipe

OTHER_SECTIONS = ("demo",)  # read by a stage outside StageParams (pipeline/demo/generate.py)


def check_chain(params: StageParams) -> None:
    """Raise a ConfigError (or the dataset reader's DataError) for the first problem found."""
    source = str(params.path)
    _check_section_names(read_yaml(params.path), source)
    for name in StageParams.sections():
        getattr(params, name)  # read, typed and validated: unknown keys, types, ranges
    train = params.train
    for model in train.models:
        _check_recipe(params, model)
    train.check_folds(params.folds.k, source)
    params.duplicates.target(train, source)
    for pair in params.mutual.pairs:
        check_pair_models(pair, train.models, source)
    params.adapt.check_models(train.models, source)
    params.distill.check_folds(train.folds, source)
    params.extract.check_local(params.rerank.local_weight, source)
    if not params.fuse.tune:  # tuned, the configured weights are not read
        configured_weights(params.fuse, train.models, source)
    _check_against_dataset(params, source)


def _check_section_names(data: dict[str, object], source: str) -> None:
    known = [*StageParams.sections(), *OTHER_SECTIONS]
    for name in data:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known sections: {', '.join(known)})"
            raise ConfigError(f"{source}: unknown section '{name}'{hint}")


def _check_recipe(params: StageParams, model: str) -> None:
    path = params.recipe(model)
    if not path.is_file():
        raise ConfigError(f"{params.path}: train.models names '{model}', but there is no recipe {path}")
    first = load_recipe(path).train.init_from
    if first is not None and (first == model or first not in params.train.models):
        raise ConfigError(f"{path}: train.init_from is '{first}', which must be another recipe of train.models "
                          f"({', '.join(params.train.models)}) in {params.path}")


def _check_against_dataset(params: StageParams, source: str) -> None:
    """The knobs bounded by the test set's size: the submission's length and re-ranking's k1 / k2."""
    root = Path(params.dataset.root)
    query, gallery = (len(read_split(root, split, check_files=False)) for split in ("query", "gallery"))
    length = params.submit.length
    if length > gallery:
        raise ConfigError(f"{source}: submit.length is {length}, but the gallery ({split_path(root, 'gallery')}) "
                          f"holds {gallery} images: set submit.length to at most {gallery}")
    rerank = params.rerank
    if length > rerank.candidates:
        raise ConfigError(f"{source}: submit.length is {length}, but rerank.candidates keeps {rerank.candidates} "
                          "per query: raise rerank.candidates or lower submit.length")
    if not rerank.enabled:
        return
    for k1, k2, _ in [(rerank.k1, rerank.k2, rerank.lambda_value), *rerank.grid_settings()]:
        needed = rerank_neighbours(k1, k2)
        if needed > query + gallery:
            key = "rerank.k1" if k1 + 1 >= k2 else "rerank.k2"
            grid = "" if (k1, k2) == (rerank.k1, rerank.k2) else f" (rerank.grid setting k1 {k1}, k2 {k2})"
            raise ConfigError(f"{source}: {key}{grid}: re-ranking needs k1 + 1 and k2 neighbours among the "
                              f"{query} queries + {gallery} gallery images of {root}: at most {query + gallery - 1} "
                              f"for k1, {query + gallery} for k2")
