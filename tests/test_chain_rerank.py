"""The rerank stage's library step: option names, lists per option, errors that name the set."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.chain.rerank import PLAIN, rerank_model, rerank_options, with_plain_views
from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.infer.store import FeatureSet, ModelFeatures
from pipeline.retrieval.rerank import k_reciprocal_rerank
from pipeline.retrieval.search import rank_from_distance
from pipeline.core.sections import ExtractConfig, RerankGrid, RerankStageConfig


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    return (centres[rng.integers(0, 6, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def features(nq: int = 12, ng: int = 30, oof_folds: tuple[int, ...] = (0,)) -> ModelFeatures:
    x = clustered(nq + ng, 8, 1)
    ids = [f"i{i}.jpg" for i in range(nq + ng)]
    oof = {}
    for fold in oof_folds:
        y = clustered(20, 8, 10 + fold)
        oof[fold] = (FeatureSet(y[:5], ids[:5]), FeatureSet(y[5:], ids[5:20]))
    return ModelFeatures(FeatureSet(x[:nq], ids[:nq]), FeatureSet(x[nq:], ids[nq:nq + ng]), oof)


def test_options_are_raw_configured_then_the_other_grid_settings():
    cfg = RerankStageConfig(k1=4, k2=2, grid=RerankGrid(k1=[3, 4], k2=[2]))
    assert [o.name for o in rerank_options(cfg)] == ["raw", "reranked", "reranked_k1-3_k2-2_lambda-0.3"]
    assert rerank_options(cfg)[2].settings() == {"k1": 3, "k2": 2, "lambda_value": 0.3}
    off = RerankStageConfig(enabled=False, grid=RerankGrid(k1=[3, 4]))
    assert [o.name for o in rerank_options(off)] == ["raw", "reranked"]
    assert rerank_options(off)[1].settings() is None


def test_lists_match_brute_force_cosine_and_the_exact_reranking():
    model = features()
    cfg = RerankStageConfig(k1=4, k2=2, candidates=1000, grid=RerankGrid(k1=[3]))
    sets = rerank_model(model, cfg)
    assert sorted(sets) == sorted(f"{p}{n}" for p in ("", "oof0_") for n in ("raw", "reranked", "reranked_k1-3_k2-2_lambda-0.3"))
    q, g = model.query.features, model.gallery.features
    cos = 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    # candidates is capped at the gallery size: the lists are full rankings.
    np.testing.assert_array_equal(sets["raw"].indices, np.argsort(cos, axis=1, kind="stable"))
    np.testing.assert_allclose(sets["raw"].values, np.sort(cos, axis=1), atol=1e-5)
    for name, k1 in (("reranked", 4), ("reranked_k1-3_k2-2_lambda-0.3", 3)):
        full = k_reciprocal_rerank(q, g, k1, 2, 0.3)
        np.testing.assert_array_equal(sets[name].indices, rank_from_distance(full, 30))
    oq, og = model.oof[0]
    full = k_reciprocal_rerank(oq.features, og.features, 4, 2, 0.3)
    np.testing.assert_array_equal(sets["oof0_reranked"].indices, rank_from_distance(full, 15))


def test_bad_features_name_the_set_and_a_bad_grid_is_a_config_error():
    model = features()
    broken = model.query.features.copy()
    broken[2, 0] = np.nan
    with pytest.raises(DataError, match="test set: query: row 2"):
        rerank_model(ModelFeatures(FeatureSet(broken, model.query.ids), model.gallery, {}), RerankStageConfig(k1=4, k2=2))
    with pytest.raises(ConfigError, match="grid: k1"):
        from_mapping(RerankStageConfig, {"grid": {"k1": [0]}}, "params.yaml", "rerank")


def test_plain_view_options_repeat_every_option_under_the_prefix():
    cfg = RerankStageConfig(k1=4, k2=2, grid=RerankGrid(k1=[3]))
    options = with_plain_views(rerank_options(cfg), plain=True)
    assert [o.name for o in options] == ["raw", "reranked", "reranked_k1-3_k2-2_lambda-0.3",
                                         "plain_raw", "plain_reranked", "plain_reranked_k1-3_k2-2_lambda-0.3"]
    assert options[4].settings() == options[1].settings()
    assert with_plain_views(rerank_options(cfg), plain=False) == rerank_options(cfg)
    model = features()
    plain, unprefixed = rerank_model(model, cfg, prefix=PLAIN), rerank_model(model, cfg)
    assert sorted(plain) == sorted(n.replace("oof0_", "oof0_plain_") if n.startswith("oof0_") else "plain_" + n for n in unprefixed)
    np.testing.assert_array_equal(plain["oof0_plain_reranked"].indices, unprefixed["oof0_reranked"].indices)


def test_single_view_keeps_one_upright_unflipped_view_and_every_other_setting():
    cfg = ExtractConfig(scales=(1.0, 1.1), rotations=(0, 90), flip=True, batch_size=7, oof_distractors=True)
    single = cfg.single_view()
    assert (single.scales, single.rotations, single.flip) == ((1.0,), (0,), False)
    assert (single.batch_size, single.oof_distractors, single.out) == (7, True, cfg.out)
