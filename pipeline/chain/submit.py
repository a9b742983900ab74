"""The submit stage's job: the fused lists, each query's own image left out, cut to
submit.length and written as the leaderboard file."""

from __future__ import annotations

from pipeline.core.errors import ConfigError
from pipeline.core.params import StageParams
from pipeline.data.layout import read_split, split_path
from pipeline.data.self_match import recorded_pairs
from pipeline.evaluate.submission import write_submission
from pipeline.retrieval.candidates import load_candidate_sets


def run(params: StageParams) -> None:
    """Write ``submit.out``; a submit.length the fused lists cannot fill is a ConfigError."""
    cfg = params.submit
    query, gallery = (read_split(params.cache(), s, check_files=False)["image"].tolist() for s in ("query", "gallery"))
    # A query's own image (dataset.self_matches: exclude) never enters its line.
    own = recorded_pairs(params.denoised(), query, gallery)
    fused = load_candidate_sets(params.fuse.out)["fused"].without(own)
    available = fused.indices.shape[1]
    if cfg.length > available:
        raise ConfigError(
            f"{params.path}: submit.length is {cfg.length}, but the fused lists hold {available} candidates per query "
            f"(the gallery, {split_path(params.cache(), 'gallery')}, holds {len(gallery)} images; rerank.candidates: "
            f"{params.rerank.candidates}{'; each query without its own image' if len(own) else ''}): "
            f"set submit.length to at most {available}"
        )
    write_submission(cfg.out, query, gallery, fused.ranking(cfg.length), length=cfg.length)
