"""What the fuse and evaluate stages read of one model: its candidate lists and its features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.infer.store import ModelFeatures, load_features
from pipeline.retrieval.candidates import CandidateLists, load_candidate_sets


@dataclass(frozen=True)
class ModelInputs:
    """One model's rerank lists (every option, read from ``lists_path``) and its features (``features_path``)."""

    lists: Mapping[str, CandidateLists]
    lists_path: Path
    features: ModelFeatures
    features_path: Path

    @classmethod
    def read(cls, lists_path: Path, features_path: Path) -> ModelInputs:
        return cls(load_candidate_sets(lists_path), lists_path, load_features(features_path), features_path)
