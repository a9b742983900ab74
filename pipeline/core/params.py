"""The stages' one view of params.yaml: each section typed (pipeline.core.sections), and the paths
the stages exchange, spelled once.

Light on purpose (stdlib, PyYAML and numpy): a stage reads where an upstream stage wrote its
outputs without importing that stage's code. Sections are read and checked on first use, so a
stage only fails on the sections it needs, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from pipeline.core.config import from_mapping, read_yaml
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.sections import (
    AdaptConfig,
    DatasetConfig,
    DenoiseConfig,
    DuplicatesConfig,
    DistillConfig,
    EvaluateConfig,
    ExportConfig,
    ExtractConfig,
    FoldsConfig,
    FuseConfig,
    MutualConfig,
    PreprocessConfig,
    RerankStageConfig,
    SubmitConfig,
    TrainStageConfig,
)

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


def load_section(name: str, cls: type[T], path: str | Path = DEFAULT_PARAMS) -> T:
    """Return section ``name`` of the YAML file ``path`` as a ``cls``; a missing section is an error."""
    return _section(read_yaml(path), name, cls, path)


def _section(data: dict[str, Any], name: str, cls: type[T], path: str | Path) -> T:
    if name not in data:
        raise ConfigError(f"{path}: missing section '{name}'")
    return from_mapping(cls, data[name], str(path), prefix=name)


@dataclass(frozen=True)
class FoldDir:
    """One trained (model, fold): ``<train.out>/<model>/fold<fold>``."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        """Weights of the epoch with the best validation score: what extract reads."""
        return self.checkpoints / "best.pt"

    @property
    def last(self) -> Path:
        """The full training state after the last epoch: the resume point."""
        return self.checkpoints / "last.pt"

    @property
    def live(self) -> Path:
        """dvclive's metrics and plots."""
        return self.root / "live"


def fold_dir(train_out: str | Path, model: str, fold: int) -> FoldDir:
    return FoldDir(Path(train_out) / model / f"fold{fold}")


def _existing(paths: dict[int, Path], what: str) -> dict[int, Path]:
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise DataError(f"missing {what}: {', '.join(missing)}")
    return paths


class _Section(Generic[T]):
    """A section of ``StageParams``: read, typed and checked on first use, then kept."""

    def __init__(self, cls: type[T]) -> None:
        self.cls = cls

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, params: StageParams, owner: type | None = None) -> T:
        value = _section(params._data, self.name, self.cls, params.path)
        params.__dict__[self.name] = value  # shadows this descriptor: read once
        return value


class StageParams:
    """params.yaml as the stages read it: ``params.rerank``, ``params.features(model)``, ..."""

    dataset = _Section(DatasetConfig)
    denoise = _Section(DenoiseConfig)
    preprocess = _Section(PreprocessConfig)
    folds = _Section(FoldsConfig)
    train = _Section(TrainStageConfig)
    mutual = _Section(MutualConfig)
    extract = _Section(ExtractConfig)
    export = _Section(ExportConfig)
    distill = _Section(DistillConfig)
    adapt = _Section(AdaptConfig)
    rerank = _Section(RerankStageConfig)
    fuse = _Section(FuseConfig)
    submit = _Section(SubmitConfig)
    evaluate = _Section(EvaluateConfig)
    duplicates = _Section(DuplicatesConfig)

    def __init__(self, path: str | Path = DEFAULT_PARAMS) -> None:
        self.path = Path(path)

    @classmethod
    def sections(cls) -> list[str]:
        """The names of the sections above, in order (pipeline.preflight reads them all)."""
        return [name for name, value in vars(cls).items() if isinstance(value, _Section)]

    @cached_property
    def _data(self) -> dict[str, Any]:
        return read_yaml(self.path)

    # Where each stage's outputs are: the one spelling of the conventions between stages.

    def denoised(self) -> Path:
        """The repaired copy of the dataset (canonical layout, plus self_matches.csv)."""
        return Path(self.denoise.out)

    def cache(self) -> Path:
        return Path(self.preprocess.out)

    def folds_file(self) -> Path:
        return Path(self.folds.out)

    def fold_dir(self, model: str, fold: int) -> FoldDir:
        return fold_dir(self.train.out, model, fold)

    def checkpoint(self, model: str, fold: int) -> Path:
        """The weights extract reads for one fold model."""
        return self.fold_dir(model, fold).best

    def trained_checkpoints(self, model: str, folds: list[int] | None = None) -> dict[int, Path]:
        """``checkpoint`` of each fold (train.folds by default); a missing one is an error naming it."""
        paths = {fold: self.checkpoint(model, fold) for fold in (self.train.folds if folds is None else folds)}
        return _existing(paths, "checkpoints (run the train stages first)")

    def adapted_dir(self, model: str, fold: int) -> FoldDir:
        """One fold model adapted to the unlabelled target (the adapt stage), in train's layout,
        inside the trained fold's folder: ``<train.out>/<model>/fold<fold>/adapted``."""
        return FoldDir(self.fold_dir(model, fold).root / "adapted")

    def adapt_log(self, model: str, fold: int) -> Path:
        """The adapt stage's per-round record (clusters, noise) of one fold model."""
        return self.fold_dir(model, fold).root / "adapt.json"

    def retrieval_checkpoints(self, model: str) -> dict[int, Path]:
        """The fold models extract and export read: adapted for a model of adapt.models, else trained."""
        if model not in self.adapt.models:
            return self.trained_checkpoints(model)
        paths = {fold: self.adapted_dir(model, fold).best for fold in self.train.folds}
        return _existing(paths, "adapted checkpoints (adapt.models lists the model: run `dvc repro adapt/dvc.yaml`)")

    def onnx(self, model: str, fold: int) -> Path:
        """One fold model's exported embedding graph (the extract stage writes it when onnxruntime extracts)."""
        return Path(self.export.out) / model / f"fold{fold}.onnx"

    def mutual_dir(self, pair: str) -> Path:
        """A mutual-learning pair's folder: its models inside in train's layout (``fold_dir``)."""
        return Path(self.mutual.out) / pair

    def recipe(self, model: str) -> Path:
        return Path(self.train.recipes) / f"{model}.yaml"

    def features(self, model: str) -> Path:
        return Path(self.extract.out) / model

    def candidates(self, model: str) -> Path:
        """One model's candidate lists (pipeline.retrieval.candidates), every option."""
        return Path(self.rerank.out) / f"{model}.npz"
