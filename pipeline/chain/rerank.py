"""The rerank stage for one model: plain lists and re-ranked lists for every setting of a small
k1 / k2 / lambda grid, on the test set and on every fold's out-of-fold set.

Each list set is named by its option: 'raw' (plain cosine), 'reranked' (the configured k1 /
k2 / lambda) and 'reranked_k1-<k1>_k2-<k2>_lambda-<lambda>' for each further grid setting;
the out-of-fold sets of fold F carry the prefix 'oof<F>_' and rank fold F's held-out queries
against its held-out gallery followed by its distractors where the features hold some
(ModelFeatures.oof_gallery). The fuse stage scores the options on the out-of-fold sets and picks
one per model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from pipeline.chain.tuning_set import tuning_features
from pipeline.core.errors import DataError, PipelineError
from pipeline.infer.store import FeatureSet, ModelFeatures, oof_name
from pipeline.retrieval.candidates import CandidateLists
from pipeline.retrieval.retrieve import retrieve
from pipeline.retrieval.search import search_topk
from pipeline.retrieval.validate import check_pair
from pipeline.core.sections import RerankStageConfig
from pipeline.core.params import StageParams
from pipeline.data.folds import read_folds
from pipeline.infer.store import load_features
from pipeline.retrieval.candidates import save_candidate_sets

RAW = "raw"
CONFIGURED = "reranked"
PLAIN = "plain_"  # the prefix of an option on the single-view features (extract.plain_views)


@dataclass(frozen=True)
class RerankOption:
    """One way to rank a model's lists: plain cosine ('raw'), or DBA / QE and, with re-ranking
    on, one k1 / k2 / lambda setting (None where re-ranking is off)."""

    name: str
    k1: int | None = None
    k2: int | None = None
    lambda_value: float | None = None

    def settings(self) -> dict[str, float | int] | None:
        """The re-ranking knobs, for the records; None where nothing is re-ranked."""
        if self.k1 is None:
            return None
        return {"k1": self.k1, "k2": self.k2, "lambda_value": self.lambda_value}


def rerank_options(cfg: RerankStageConfig) -> list[RerankOption]:
    """'raw', 'reranked' (the configured setting), then each other grid setting, in grid order.

    With re-ranking off ('enabled: false') the grid has nothing to vary: 'reranked' is then
    the cosine lists after the configured DBA / QE, and is the only other option.
    """
    if not cfg.enabled:
        return [RerankOption(RAW), RerankOption(CONFIGURED)]
    options = [RerankOption(RAW), RerankOption(CONFIGURED, cfg.k1, cfg.k2, cfg.lambda_value)]
    for k1, k2, lambda_value in cfg.grid_settings():
        if (k1, k2, lambda_value) != (cfg.k1, cfg.k2, cfg.lambda_value):
            options.append(RerankOption(f"reranked_k1-{k1}_k2-{k2}_lambda-{lambda_value:g}", k1, k2, lambda_value))
    return options


def with_plain_views(options: list[RerankOption], plain: bool) -> list[RerankOption]:
    """``options``, then with ``plain`` each of them again on the single-view features ('plain_<name>')."""
    return options + ([replace(option, name=PLAIN + option.name) for option in options] if plain else [])


def model_candidates(query: FeatureSet, gallery: FeatureSet, cfg: RerankStageConfig, where: str) -> dict[str, CandidateLists]:
    """Every option's lists of one query and gallery set; ``where`` names the set in errors.

    The features are checked here first, so a bad row names the set before any option runs
    (each option's call checks them again: a scan, 1-2 ms for 10k rows). With
    ``rerank.local_weight`` > 0 every option's lists are re-sorted by global + weighted
    AlignedReID local distance.
    """
    try:
        q, g = check_pair(query.features, gallery.features)
    except PipelineError as error:
        raise type(error)(f"{where}: {error}") from error
    if cfg.local_weight and (query.local is None or gallery.local is None):
        raise DataError(f"{where}: rerank.local_weight > 0 needs local features: rerun the extract stage")
    cfg = replace(cfg, candidates=min(cfg.candidates, len(g)))
    sets: dict[str, CandidateLists] = {}
    for option in rerank_options(cfg):
        try:
            if option.name == RAW:
                lists = CandidateLists(*search_topk(q, g, cfg.candidates))
            else:
                setting = cfg if option.k1 is None else replace(cfg, k1=option.k1, k2=option.k2, lambda_value=option.lambda_value)
                lists = retrieve(q, g, setting)
            if cfg.local_weight:
                # imported here: the local distance needs torch, which this stage otherwise never loads
                from pipeline.retrieval.local_rescore import add_local_distance

                lists = add_local_distance(lists, query.local, gallery.local, cfg.local_weight)
            sets[option.name] = lists
        except PipelineError as error:
            raise type(error)(f"{where}, option '{option.name}': {error}") from error
    return sets


def rerank_model(features: ModelFeatures, cfg: RerankStageConfig, prefix: str = "") -> dict[str, CandidateLists]:
    """Named lists for the rerank stage's ``.npz``: '<prefix><option>' (test) and
    'oof<F>_<prefix><option>' (``prefix`` PLAIN for the single-view features)."""
    sets = {prefix + name: lists for name, lists in model_candidates(features.query, features.gallery, cfg, "test set").items()}
    for fold, (query, _) in sorted(features.oof.items()):
        gallery, _ = features.oof_gallery(fold)  # with extract.oof_distractors: held-out gallery + distractors
        oof = model_candidates(query, gallery, cfg, f"fold {fold} out-of-fold set")
        sets.update({oof_name(fold, prefix + name): lists for name, lists in oof.items()})
    return sets


def stage_lists(
    features: ModelFeatures, plain: ModelFeatures | None, folds: pd.DataFrame, cfg: RerankStageConfig, shape: str
) -> dict[str, CandidateLists]:
    """The rerank stage's whole output for one model: ``rerank_model`` of its TTA features and,
    where given, of its single-view ``plain`` features (as 'plain_<option>'), each fold's held-out
    sets first put in the tuning ``shape`` (fuse.tuning_shape; tuning_set.py) with ``folds``."""
    sets = rerank_model(tuning_features(features, folds, shape), cfg)
    if plain is not None:
        sets.update(rerank_model(tuning_features(plain, folds, shape), cfg, prefix=PLAIN))
    return sets


def run(params: StageParams, model: str) -> None:
    """The rerank stage for ``model``: every option's lists, written to ``params.candidates(model)``."""
    features = params.features(model)
    # with extract.plain_views, the same options on the single-view features, as 'plain_<option>'
    plain = load_features(features / "plain") if params.extract.plain_views else None
    sets = stage_lists(load_features(features), plain, read_folds(params.folds_file()), params.rerank, params.fuse.tuning_shape)
    save_candidate_sets(params.candidates(model), sets)
