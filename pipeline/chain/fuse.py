"""The fuse stage's whole job: check the models agree, choose (tuned) or take (untuned) each
model's lists and weights, fuse, and say what was chosen (fuse.json)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.chain.fuse_choice import choice_record, choice_table, choose_fusion, describe_test, tuning_set_size
from pipeline.chain.oof_fusion import configured_weights, fuse_lists, oof_labels
from pipeline.chain.gain_test import paired_gain
from pipeline.chain.joint_rerank import JointChoice, choose_joint
from pipeline.chain.model_inputs import ModelInputs
from pipeline.chain.rerank import RerankOption
from pipeline.chain.tuning_set import feature_shape, tuning_features
from pipeline.data.folds import read_folds
from pipeline.core.errors import DataError
from pipeline.retrieval.candidates import CandidateLists, named_set
from pipeline.retrieval.validate import check_same_ids
from pipeline.core.sections import FuseConfig, RerankStageConfig
from pipeline.chain.rerank import rerank_options, with_plain_views
from pipeline.core.io_utils import write_json
from pipeline.core.params import StageParams
from pipeline.retrieval.candidates import save_candidate_sets
from pipeline.infer.store import oof_name

log = logging.getLogger("fuse")


def oof_folds(models: Mapping[str, ModelInputs]) -> list[int]:
    """The folds every model has out-of-fold features for, with the same held-out images."""
    names = list(models)
    first = models[names[0]]
    folds = sorted(first.features.oof)
    if not folds:
        raise DataError(f"fuse.tune is on but {first.features_path} holds no out-of-fold features")
    for name, model in models.items():
        if sorted(model.features.oof) != folds:
            raise DataError(
                f"{model.features_path}: out-of-fold features for folds {sorted(model.features.oof)}, "
                f"but {names[0]} has {folds}: rerun extract for every model"
            )
    for fold in folds:
        check_same_ids({m: inputs.features.oof[fold][0].ids for m, inputs in models.items()}, f"fold {fold} held-out queries")
    _check_same_distractors(models, folds)
    return folds


def _check_same_distractors(models: Mapping[str, ModelInputs], folds: Sequence[int]) -> None:
    """Every model's out-of-fold lists must rank against the same gallery rows: the same
    distractors, or none for all (a mix would score models on tasks of different sizes)."""
    first = next(iter(models.values()))
    for model in models.values():
        for fold in folds:
            mine, theirs = (inputs.features.distractors.get(fold) for inputs in (model, first))
            if mine is None and theirs is None:
                continue
            if mine is None or theirs is None:
                has, lacks = (model, first) if theirs is None else (first, model)
                raise DataError(
                    f"{lacks.features_path}: no out-of-fold distractors for fold {fold}, but {has.features_path} has "
                    "them: set extract.oof_distractors alike for every model and rerun extract"
                )
            if mine.ids != theirs.ids:
                raise DataError(
                    f"{model.features_path}: fold {fold}'s distractors differ from those of {first.features_path} "
                    "(other images or order): rerun extract for every model"
                )


def fuse_models(
    cfg: FuseConfig,
    models: Mapping[str, ModelInputs],
    options: Sequence[RerankOption],
    folds_file: Path,
    params_file: str | Path,
    joint: RerankStageConfig | None = None,
) -> tuple[CandidateLists, dict[str, Any]]:
    """The fused test lists and the fuse.json record, for the models in ``train.models`` order.

    ``options``: the rerank options each model's lists hold (rerank.rerank_options);
    ``folds_file`` is read only when tuning, where each model's held-out sets are first put in
    the shape ``fuse.tuning_shape`` asks for (tuning_set.py, as the rerank stage did before
    ranking them); ``params_file`` names the file in config errors.
    ``joint``: the rerank settings for ``fuse.joint_rerank`` (joint_rerank.py; None: not tried).
    """
    names = list(models)
    check_same_ids({m: inputs.features.query.ids for m, inputs in models.items()}, "query images")
    check_same_ids({m: inputs.features.gallery.ids for m, inputs in models.items()}, "gallery images")
    reference = models[names[0]].features
    joint_lists: CandidateLists | None = None  # the joint re-ranking's test lists, where they are submitted
    if cfg.tune:
        folds_table = read_folds(folds_file)
        models = {m: replace(inputs, features=tuning_features(inputs.features, folds_table, cfg.tuning_shape)) for m, inputs in models.items()}
        reference = models[names[0]].features
        folds = oof_folds(models)
        oof = [
            {o.name: {f: named_set(inputs.lists, oof_name(f, o.name), inputs.lists_path) for f in folds} for o in options}
            for inputs in models.values()
        ]
        ids = {f: (reference.oof[f][0].ids, reference.oof[f][1].ids) for f in folds}
        distractors = {f: reference.distractor_count(f) for f in folds}
        labels = oof_labels(folds_table, ids, distractors)
        fixed = None if cfg.source == "auto" else cfg.source
        choice = choose_fusion(oof, labels, cfg.method, cfg.grid_step, cfg.min_gain_se, fixed=fixed)
        size = tuning_set_size(labels, distractors)
        shape = feature_shape(reference, cfg.tuning_shape)
        log.info("out-of-fold choice (tuning set shape: %s):\n%s", shape, choice_table(choice, names, size))
        chosen, weights = choice.chosen, choice.weights
        record = choice_record(choice, names, {o.name: o.settings() for o in options}, size)
        record["tuning_set"]["shape"] = shape  # type: ignore[index]
        if cfg.joint_rerank and joint is not None:
            joint_choice = _try_joint(models, choice.fusion_weights, joint, labels)
            if joint_choice is not None:
                test = paired_gain(joint_choice.per_query, choice.per_query, cfg.min_gain_se)
                won = test.passed
                log.info("joint re-ranking against the lists' submission: %s", describe_test(test))
                record["joint"] = {**joint_choice.record(submitted=won), "test": test.record()}
                if won:
                    record.update(oof_score=joint_choice.score, submitted=f"joint re-ranking ({joint_choice.chosen})")
                    joint_lists, weights = joint_choice.lists, joint_choice.weights
    else:
        chosen, weights = [cfg.source] * len(names), configured_weights(cfg, names, str(params_file))
        record = {"oof_score": None, "options": {m: {"chosen": cfg.source} for m in names}}
    if joint_lists is None:
        test_lists = [named_set(inputs.lists, option, inputs.lists_path) for inputs, option in zip(models.values(), chosen)]
        fused = fuse_lists(test_lists, weights, cfg.method, len(reference.gallery.ids))
    else:
        fused = joint_lists
    summary = {"weights": dict(zip(names, weights)), "tuned": cfg.tune, "method": cfg.method, "source": cfg.source, **record}
    return fused, summary


def _try_joint(
    models: Mapping[str, ModelInputs], weights: Sequence[float], cfg: RerankStageConfig, labels: Mapping[int, tuple[Any, Any]]
) -> JointChoice | None:
    """The joint re-ranking of the tuned mix, or None where it has nothing to add: one model
    carries all the weight (its own options were scored already), or the lists are re-sorted by
    local distances, which the joint features do not carry."""
    if sum(w > 0 for w in weights) < 2:
        log.info("joint re-ranking not tried: the tuned mix has a single model")
        return None
    if cfg.local_weight:
        log.info("joint re-ranking not tried: rerank.local_weight > 0 and the joint features have no local part")
        return None
    joint_choice = choose_joint([inputs.features for inputs in models.values()], weights, cfg, labels)
    log.info("fuse, then re-rank once (weights %s), out of fold:\n%s", [round(w, 2) for w in weights], joint_choice.table())
    return joint_choice


def run(params: StageParams) -> None:
    """The fuse stage: the fused test lists (fuse.out) and what was chosen (fuse.weights_out)."""
    cfg = params.fuse
    models = {m: ModelInputs.read(params.candidates(m), params.features(m)) for m in params.train.models}
    options = with_plain_views(rerank_options(params.rerank), params.extract.plain_views)
    fused, record = fuse_models(cfg, models, options, params.folds_file(), params.path, joint=params.rerank)
    save_candidate_sets(cfg.out, {"fused": fused})
    write_json(cfg.weights_out, record)
