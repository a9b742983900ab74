"""The typed sections of params.yaml that the chain's stages read, in one light module.

Every stage reads its own section and the upstream sections that say where their outputs
are; keeping the section types here (stdlib and numpy only: no torch, OpenCV or pandas) lets
a stage read params.yaml without importing the upstream stage's code. ``pipeline.core.params``
gives the stages one view of them and the paths they exchange. The demo generator's section
lives with it (pipeline/demo): only the demo stage reads it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from pipeline.core.errors import ConfigError

ImageSize = int | tuple[int, int]  # a square side, or (height, width)
SelfMatchMode = Literal["error", "exclude"]

# Thresholds set between clean and noisy on the demo data and the grocery photos with noise
# added (benchmarks/results/bench_denoise.md, bench_denoise_real.md): the chroma sigma of
# clean photos stays below 0.9 and that of sigma >= 4 noise above 2.3; the per-channel
# (grey-noise) estimate of clean photos stays below 10.2. Clean impulse fractions stay below
# 0.003; salt-and-pepper of amount >= 0.01 is measured at >= 0.007.
DEFAULT_GAUSSIAN_THRESHOLD = 2.0  # chroma sigma (0-255 scale) at or above which an image counts as Gaussian-noisy
DEFAULT_GREY_THRESHOLD = 11.0  # the same for the per-channel sigma: noise identical in every channel
DEFAULT_IMPULSE_THRESHOLD = 0.003  # share of impulse pixels (impulse_share) at or above which it counts as salt-and-pepper
MAX_MEDIAN_KSIZE = 11  # the switching median grows its window up to this when all neighbours are impulses


def height_width(size: ImageSize | list[int]) -> tuple[int, int]:
    """``(height, width)`` of a size given as a square side or as ``[height, width]``."""
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f"a size is a side or [height, width], got {list(size)}")
    return int(size[0]), int(size[1])


def rerank_neighbours(k1: int, k2: int) -> int:
    """Items re-ranking's neighbour lists take among queries + gallery: k1 + 1 (an item is its
    own first neighbour), or k2."""
    return max(k1 + 1, k2)


def check_rerank_params(k1: int, k2: int, lambda_value: float, error: type[Exception] = ConfigError) -> None:
    for name, value in (("k1", k1), ("k2", k2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise error(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise error(f"lambda_value must lie in [0, 1], got {lambda_value!r}")


@dataclass(frozen=True)
class DatasetConfig:
    """params.yaml section ``dataset``: the canonical-layout folder the chain starts from."""

    root: str
    # A query that is also a gallery image: stop with an error naming both rows ("error"), or
    # take each query's own image out of its ranking ("exclude"; see pipeline/data/self_match.py).
    self_matches: SelfMatchMode = "error"
    # What a decode passes over in silence (damaged JPEG data; frames after the first of an
    # animated or multi-page file): false reports it per image in the denoise report and decodes
    # on (the first frame is a whole picture, and damage may touch a few rows); true stops there.
    strict_decode: bool = False

    def validate(self) -> None:
        if not self.root:
            raise ValueError("root must not be empty")


@dataclass(frozen=True)
class DenoiseConfig:
    """Params section ``denoise``. Strengths are multiples of the estimated sigma (0-255 scale)."""

    out: str = "outputs/denoised"
    apply_to_train: bool = False
    gaussian_method: Literal["nlmeans", "bilateral"] = "nlmeans"
    gaussian_threshold: float = DEFAULT_GAUSSIAN_THRESHOLD  # colour-difference sigma at or above which an image is Gaussian-noisy
    grey_threshold: float = DEFAULT_GREY_THRESHOLD  # per-channel sigma at or above which it is (noise the same in every channel)
    impulse_threshold: float = DEFAULT_IMPULSE_THRESHOLD  # impulse pixel fraction at or above which it is salt-and-pepper
    median_ksize: int = 3  # window of the switching median (grows where a window holds only impulses)
    nlmeans_strength: float = 1.2  # OpenCV NLM filter strength h = nlmeans_strength * sigma on the grey axis
    nlmeans_chroma_strength: float = 1.2  # ... and on the two colour-difference axes
    bilateral_strength: float = 4.0  # bilateral sigmaColor = bilateral_strength * sigma
    bilateral_diameter: int = 7  # bilateral window (pixels); also its sigmaSpace
    workers: int = 2

    def validate(self) -> None:
        if not self.out:
            raise ValueError("out must not be empty")
        if self.gaussian_threshold <= 0 or self.grey_threshold <= 0:
            raise ValueError(f"gaussian_threshold and grey_threshold must be > 0, got {self.gaussian_threshold}, {self.grey_threshold}")
        if not 0 < self.impulse_threshold < 1:
            raise ValueError(f"impulse_threshold must be in (0, 1), got {self.impulse_threshold}")
        if self.median_ksize < 3 or self.median_ksize % 2 == 0 or self.median_ksize > MAX_MEDIAN_KSIZE:
            raise ValueError(f"median_ksize must be odd and in [3, {MAX_MEDIAN_KSIZE}], got {self.median_ksize}")
        if min(self.nlmeans_strength, self.nlmeans_chroma_strength, self.bilateral_strength) <= 0:
            raise ValueError("nlmeans_strength, nlmeans_chroma_strength and bilateral_strength must be > 0")
        if self.bilateral_diameter < 1:
            raise ValueError(f"bilateral_diameter must be >= 1, got {self.bilateral_diameter}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class PreprocessConfig:
    """params.yaml section ``preprocess``."""

    out: str = "outputs/cache"
    size: int | tuple[int, int] = 96  # a square side, or [height, width]
    fill: tuple[int, int, int] = (0, 0, 0)

    def validate(self) -> None:
        if not self.out:
            raise ValueError("out must be a non-empty path")
        if min(height_width(self.size)) < 8:
            raise ValueError(f"size must be at least 8 pixels on each side, got {self.size}")
        if len(self.fill) != 3 or any(not 0 <= v <= 255 for v in self.fill):
            raise ValueError(f"fill must be three values in 0..255, got {list(self.fill)}")


@dataclass(frozen=True)
class FoldsConfig:
    """params.yaml section ``folds``."""

    out: str = "outputs/folds.csv"
    k: int = 5
    seed: int = 0
    query_fraction: float = 0.2
    # a reviewed CSV label,merged_into (pipeline/data/label_merge.py); the folds stage's DVC dependency,
    # so the chain names a file (header only: no merges); null outside DVC
    label_merge: str | None = "configs/label_merge.csv"

    def validate(self) -> None:
        if not self.out:
            raise ValueError("out must be a non-empty path")
        if self.k < 2:
            raise ValueError(f"k must be at least 2, got {self.k}")
        if not 0.0 < self.query_fraction < 1.0:
            raise ValueError(f"query_fraction must be in (0, 1), got {self.query_fraction}")


@dataclass(frozen=True)
class TrainStageConfig:
    """params.yaml section ``train``: which recipes and folds the DVC matrix trains."""

    models: list[str]  # recipe names: configs/<name>.yaml
    folds: list[int]
    out: str = "outputs/models"  # <out>/<model>/fold<fold>/{checkpoints,live}
    recipes: str = "configs/demo"  # the demo's short recipes; configs/ holds the full presets
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads per process; 0 keeps torch's default. 1 is much faster when other jobs
    # share the cores: idle OpenMP threads spin and then wait on preempted siblings.
    threads: int = 2

    def validate(self) -> None:
        if not self.models:
            raise ValueError("models must name at least one recipe")
        if not self.folds:
            raise ValueError("folds must name at least one fold (0 to folds.k - 1)")
        if len(set(self.models)) != len(self.models) or len(set(self.folds)) != len(self.folds):
            raise ValueError("models and folds must not repeat")
        if self.threads < 0:
            raise ValueError("threads must not be negative")

    def check_folds(self, k: int, source: str = "params.yaml") -> None:
        """Every fold of ``folds`` must be one the folds stage draws with ``folds.k`` = ``k``."""
        stray = [fold for fold in self.folds if not 0 <= fold < k]
        if stray:
            raise ConfigError(f"{source}: train.folds lists fold {stray[0]}, but folds.k is {k} (folds 0 to {k - 1})")


@dataclass(frozen=True)
class TTAConfig:
    scales: tuple[float, ...] = (1.0,)
    rotations: tuple[int, ...] = (0,)
    flip: bool = True
    batch_size: int = 64
    dtype: Literal["float16", "float32"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # pool only each view's high-activation region (pipeline/infer/foreground.py); the
    # threshold is relative to the view's activation range (0: everything, 1: the peak)
    suppress_background: bool = False
    suppress_threshold: float = 0.5

    def validate(self) -> None:
        if not 0.0 <= self.suppress_threshold <= 1.0:
            raise ValueError(f"suppress_threshold must be in [0, 1], got {self.suppress_threshold}")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError("scales must be a non-empty list of positive numbers")
        if not self.rotations or any(r % 90 for r in self.rotations):
            raise ValueError("rotations must be a non-empty list of multiples of 90 degrees")
        if len(set(r % 360 for r in self.rotations)) != len(self.rotations):
            raise ValueError("rotations must not repeat")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    @property
    def views_per_image(self) -> int:
        return len(self.scales) * len(self.rotations) * (2 if self.flip else 1)


@dataclass(frozen=True)
class ExtractConfig(TTAConfig):
    """params.yaml section ``extract``: the TTA views plus where the features go."""

    scales: tuple[float, ...] = (1.0, 1.1)  # the chain's TTA; TTAConfig's own default is one view
    batch_size: int = 128
    out: str = "outputs/features"
    foreground_pictures: int = 8  # with suppress_background: queries whose masks the report draws
    # auto: on the CPU, each fold model exported to ONNX, checked against PyTorch at every TTA
    # scale and run by onnxruntime (a fold that fails the check falls back to PyTorch, logged);
    # PyTorch on CUDA and where local features or background suppression are wanted.
    # onnx: the same, but a failed check stops the stage. torch: the checkpoints, no export.
    engine: Literal["auto", "torch", "onnx"] = "auto"
    # Also store each fold model's features of the test gallery (never its labels) as that fold's
    # out-of-fold distractors: the tuning lists then rank the held-out gallery among as many
    # images as the test's (open set: test identities never match a held-out query).
    oof_distractors: bool = True
    # Also store every set's single-view features (scale 1, upright, no flip) in <out>/<model>/plain/:
    # the tuned fuse stage may then choose, per model, lists with or without TTA ('plain_<option>').
    plain_views: bool = True

    def single_view(self) -> ExtractConfig:
        """This config with one view per image: scale 1, upright, no flip."""
        return replace(self, scales=(1.0,), rotations=(0,), flip=False)

    def validate(self) -> None:
        super().validate()
        if self.foreground_pictures < 0:
            raise ValueError(f"foreground_pictures must not be negative, got {self.foreground_pictures}")
        if self.engine == "onnx" and self.device == "cuda":
            raise ValueError("engine onnx runs on the CPU: set device to cpu or auto")
        if self.engine == "onnx" and self.suppress_background:  # the exported graph ends at the embedding
            raise ValueError("suppress_background needs engine torch: the ONNX files hold no feature map")

    def check_local(self, local_weight: float, source: str = "params.yaml") -> None:
        """rerank.local_weight > 0 needs local features, which only the torch engine extracts."""
        if self.engine == "onnx" and local_weight > 0:
            raise ConfigError(f"{source}: extract.engine onnx exports the global embedding only; "
                              "rerank.local_weight > 0 needs extract.engine torch")


@dataclass(frozen=True)
class ExportConfig:
    """params.yaml section ``export``: each fold model's embedding path as ONNX, checked."""

    out: str = "outputs/onnx"  # <out>/<model>/fold<f>.onnx + check.json
    opset: int = 17
    check_images: int = 64  # real images (the query cache's first ones) compared per fold model
    atol: float = 1e-4  # largest allowed |onnxruntime - PyTorch| of the L2-normalised embeddings
    batch_size: int = 32

    def validate(self) -> None:
        if not 7 <= self.opset <= 21:
            raise ValueError(f"opset must be within 7..21, got {self.opset}")
        if self.check_images < 1 or self.batch_size < 1:
            raise ValueError("check_images and batch_size must be at least 1")
        if not self.atol > 0:
            raise ValueError(f"atol must be positive, got {self.atol}")


@dataclass(frozen=True)
class DistillConfig:
    """params.yaml section ``distill`` (FastReID-style knowledge distillation, pipeline/train/distill.py)."""

    student: str  # a recipe in train.recipes (e.g. lite0 at a smaller input)
    teachers: list[str]  # models of train.models; several: their ensemble (mean cosine similarities, mean logits)
    # the folds to distil, each a stage distill@<fold> of distill/dvc.yaml; [] (off): no stage exists,
    # so a bare `dvc status` has nothing to report about it
    folds: list[int] = field(default_factory=list)
    out: str = "outputs/distill"  # <out>/<student>/fold<f>/{checkpoints,live}, as train writes
    # kl | js: divergence of the temperature-softened outputs; l1: of the raw logits (FastReID)
    logit_loss: Literal["kl", "js", "l1", "none"] = "kl"
    temperature: float = 4.0  # kl and js only
    logit_weight: float = 1.0
    # on the in-batch cosine similarities: mse (matching) or pkt (KL of their kernel distributions)
    embedding_loss: Literal["mse", "pkt"] = "mse"
    embedding_weight: float = 1.0

    def validate(self) -> None:
        if not self.teachers or len(set(self.teachers)) != len(self.teachers):
            raise ValueError("teachers must name at least one model, without repeats")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.logit_weight < 0 or self.embedding_weight < 0:
            raise ValueError("logit_weight and embedding_weight must be >= 0")
        if (self.logit_loss == "none" or self.logit_weight == 0) and self.embedding_weight == 0:
            raise ValueError("no distillation term: set logit_loss and logit_weight, or embedding_weight")

    @property
    def uses_logits(self) -> bool:
        return self.logit_loss != "none" and self.logit_weight > 0

    def check_folds(self, train_folds: list[int], source: str) -> None:
        """Each fold to distil must be one the teachers train on."""
        untrained = sorted(set(self.folds) - set(train_folds))
        if untrained:
            raise ConfigError(f"{source}: distill.folds {untrained} are not in train.folds {train_folds}: no teacher there")


@dataclass(frozen=True)
class AdaptConfig:
    """params.yaml section ``adapt``: unsupervised domain adaptation of trained models to an
    unlabelled target by rounds of DBSCAN pseudo-labels and fine-tuning (pipeline/adapt)."""

    models: list[str]  # models of train.models adapted (each of train.folds); [] = off
    # a preprocess cache (its query + gallery images; the chain's own: transductive, labels never
    # read), a CSV with an image column, or a folder of images (pipeline/adapt/target.py)
    target: str = "outputs/cache"
    rounds: int = 3  # cluster, then fine-tune, this many times
    epochs: int = 2  # fine-tuning epochs per round, at a constant learning rate
    lr: float | None = None  # None: the source recipe's optim.lr
    k1: int = 20  # the Jaccard distance's k-reciprocal neighbours (MMT 20, SpCL 30) ...
    k2: int = 6  # ... and its query-expansion neighbours
    eps: float | None = None  # DBSCAN radius; None: from rho in round 1, then kept (MMT)
    rho: float = 1.6e-3  # the share of smallest pairwise distances whose mean is eps (MMT)
    min_samples: int = 4  # DBSCAN: neighbours within eps (self included) that make a core image
    # a round whose clustering finds fewer pseudo-identities stops the rounds and keeps the model it
    # started from: fine-tuning on 2-5 clusters lost 14.6 rank-1 points (benchmarks/results/adapt_ilid.md)
    min_clusters: int = 8
    batch_size: int = 128  # feature extraction of the target

    def validate(self) -> None:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must not repeat")
        if not self.target:
            raise ValueError("target must be a non-empty path")
        if self.rounds < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("rounds, epochs and batch_size must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive (or null for the recipe's), got {self.lr}")
        check_rerank_params(self.k1, self.k2, 0.0, error=ValueError)
        if self.eps is not None and not 0 < self.eps <= 1:
            raise ValueError(f"eps must be in (0, 1] (a Jaccard distance), or null for the rho rule; got {self.eps}")
        if not 0 < self.rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {self.rho}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be at least 2 (a cluster needs a positive pair), got {self.min_samples}")
        if self.min_clusters < 2:
            raise ValueError(f"min_clusters must be at least 2 (a classifier needs two classes), got {self.min_clusters}")

    def check_models(self, train_models: list[str], source: str = "params.yaml") -> None:
        """Every adapted model must be one the chain trains (its checkpoints are the source)."""
        stray = [model for model in self.models if model not in train_models]
        if stray:
            raise ConfigError(f"{source}: adapt.models names '{stray[0]}', which train.models does not list")


@dataclass(frozen=True)
class RerankConfig:
    """Knobs of the rerank stage (``params.yaml: rerank``)."""

    enabled: bool = True
    mode: Literal["exact", "sparse"] = "exact"
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    candidates: int = 100  # size of the output candidate lists (and of sparse mode's top-k lists)
    # sparse mode's neighbour lists: the exact N x N pass, or faiss IVF searches for sizes where
    # that pass is too slow (1M images: an hour on 2 cores; pipeline/retrieval/ann.py)
    neighbour_search: Literal["exact", "ivf"] = "exact"
    ivf_probe: int = 32  # IVF lists searched per image (of 4 sqrt(N))
    half_precision: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    query_expansion: Literal["none", "average", "alpha"] = "none"
    qe_k: int = 2
    qe_alpha: float = 3.0
    dba_k: int = 0  # database-side augmentation neighbours; 0 = off

    def validate(self) -> None:
        check_rerank_params(self.k1, self.k2, self.lambda_value, error=ValueError)
        if self.mode not in ("exact", "sparse"):
            raise ValueError(f"mode must be 'exact' or 'sparse', got {self.mode!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.query_expansion not in ("none", "average", "alpha"):
            raise ValueError(f"query_expansion must be 'none', 'average' or 'alpha', got {self.query_expansion!r}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        if self.neighbour_search not in ("exact", "ivf"):
            raise ValueError(f"neighbour_search must be 'exact' or 'ivf', got {self.neighbour_search!r}")
        if self.neighbour_search == "ivf" and self.mode != "sparse":
            raise ValueError("neighbour_search 'ivf' needs mode 'sparse' (exact mode keeps the whole N x N product)")
        if self.ivf_probe < 1:
            raise ValueError(f"ivf_probe must be >= 1, got {self.ivf_probe}")
        if self.qe_k < 1:
            raise ValueError(f"qe_k must be >= 1, got {self.qe_k}")
        if self.qe_alpha < 0:
            raise ValueError(f"qe_alpha must be >= 0, got {self.qe_alpha}")
        if self.dba_k < 0:
            raise ValueError(f"dba_k must be >= 0 (0 = off), got {self.dba_k}")


@dataclass(frozen=True)
class RerankGrid:
    """``rerank.grid``: the values tried for each knob; an empty list means the configured value.

    The settings are the product of the three lists; all empty = only the configured setting.
    """

    k1: list[int] = field(default_factory=list)
    k2: list[int] = field(default_factory=list)
    lambda_value: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class RerankStageConfig(RerankConfig):
    """params.yaml section ``rerank``: the re-ranking knobs, the grid, and where the lists go."""

    out: str = "outputs/rerank"
    candidates: int = 1000  # the stage's lists: deep enough for fusion and the evaluation's mAP
    grid: RerankGrid = field(default_factory=lambda: RerankGrid(k1=[10, 20], k2=[3, 6], lambda_value=[0.3]))
    # > 0: every list re-sorted by its distance + local_weight x the AlignedReID aligned local
    # distance (on the candidates only; extract then stores local features). 0: global only,
    # the paper's finding and the default (benchmarks/results/bench_aligned_mutual.md).
    local_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.local_weight < 0:
            raise ValueError(f"local_weight must be >= 0 (0: global distance only), got {self.local_weight}")
        for k1, k2, lambda_value in self.grid_settings():
            try:
                check_rerank_params(k1, k2, lambda_value, error=ValueError)
            except ValueError as error:
                raise ValueError(f"grid: {error}") from error

    def grid_settings(self) -> list[tuple[int, int, float]]:
        """Every (k1, k2, lambda_value) of the grid, in grid order; an empty axis is the configured value."""
        grid = self.grid
        return list(itertools.product(grid.k1 or [self.k1], grid.k2 or [self.k2], grid.lambda_value or [self.lambda_value]))


@dataclass(frozen=True)
class MutualConfig:
    """params.yaml section ``mutual``: which model pairs learn together, and the mutual terms."""

    pairs: list[str]  # "<modelA>+<modelB>" recipe names from train.models; [] = off
    out: str = "outputs/mutual"  # <out>/<pair>/...: see pipeline/train/mutual.py
    kl_weight: float = 1.0
    metric_weight: float = 1.0

    def validate(self) -> None:
        for pair in self.pairs:
            split_pair(pair)
        if len(set(self.pairs)) != len(self.pairs):
            raise ValueError("pairs must not repeat")
        if self.kl_weight < 0 or self.metric_weight < 0:
            raise ValueError(f"kl_weight and metric_weight must be >= 0, got {self.kl_weight}, {self.metric_weight}")


def check_pair_models(pair: str, models: list[str], source: str = "params.yaml") -> None:
    """Both models of a mutual.pairs entry must be trained by the chain (train.models)."""
    missing = [name for name in split_pair(pair) if name not in models]
    if missing:
        raise ConfigError(f"{source}: mutual.pairs '{pair}': train.models does not list {missing}")


def split_pair(pair: str) -> tuple[str, str]:
    """'lite0+lite1' -> ('lite0', 'lite1'); mutual learning needs two different models."""
    names = pair.split("+")
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise ConfigError(f"mutual.pairs: '{pair}' must name two different models as '<modelA>+<modelB>'")
    return names[0], names[1]


@dataclass(frozen=True)
class FuseConfig:
    """params.yaml section ``fuse``."""

    out: str = "outputs/fused.npz"
    weights_out: str = "outputs/fuse.json"
    weights: dict[str, float] = field(default_factory=dict)  # model -> weight; unlisted models get 1
    # auto: per model the option (raw or a re-ranking setting) with the best out-of-fold score
    source: Literal["auto", "reranked", "raw"] = "auto"
    method: Literal["distance", "rank_voting"] = "distance"
    tune: bool = True  # on the out-of-fold lists (the default source, auto, needs it)
    grid_step: float = 0.1
    # tuned only: also re-rank the tuned mix's joint features once (pipeline/chain/joint_rerank.py)
    # and submit that where it beats the lists fusion out of fold
    joint_rerank: bool = False
    # tuned only: leave a default (a model's raw lists; the best single model; the lists fusion)
    # only for a paired out-of-fold gain > min_gain_se x its standard error (pipeline/chain/gain_test.py)
    min_gain_se: float = 1.0
    # tuned only: the held-out sets' shape (pipeline/chain/tuning_set.py): folds (folds.query_fraction),
    # single_shot (one query, one gallery image per identity), auto (single_shot for a test gallery < 2 x its queries)
    tuning_shape: Literal["auto", "folds", "single_shot"] = "auto"

    def validate(self) -> None:
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if not 0 <= self.min_gain_se < float("inf"):
            raise ValueError(f"min_gain_se must be a finite number >= 0, got {self.min_gain_se}")
        if self.source == "auto" and not self.tune:
            raise ValueError("source 'auto' chooses on the out-of-fold lists and needs tune: true; without tuning set source: raw or reranked")


@dataclass(frozen=True)
class SubmitConfig:
    """params.yaml section ``submit``."""

    out: str = "outputs/submission.csv"
    length: int = 10

    def validate(self) -> None:
        if self.length < 1:
            raise ValueError("length must be at least 1")


@dataclass(frozen=True)
class EvaluateConfig:
    """params.yaml section ``evaluate``."""

    out: str = "outputs/metrics.json"
    cmc: str = "outputs/cmc.csv"
    report: str = "outputs/report"  # CMC picture and rank lists
    k: int = 10
    cmc_ranks: tuple[int, ...] = (1, 5, 10, 20)  # CMC@r in metrics.json (capped to the gallery size); the curve runs to the largest
    camera_filter: bool = False  # Market-1501 protocol; off where cameras carry no viewpoint (grocery)
    centroid: bool = True  # also score each model against per-identity mean gallery embeddings
    tar_fars: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    ranklists: int = 3  # best and worst queries drawn

    def validate(self) -> None:
        if self.k < 1 or self.ranklists < 0:
            raise ValueError("k must be at least 1 and ranklists at least 0")
        if not self.cmc_ranks or min(self.cmc_ranks) < 1:
            raise ValueError(f"cmc_ranks must be a non-empty list of ranks >= 1, got {list(self.cmc_ranks)}")


@dataclass(frozen=True)
class DuplicatesConfig:
    """params.yaml section ``duplicates`` (pipeline/evaluate/duplicates.py)."""

    out: str = "outputs/duplicates"  # groups.csv, merge.csv, summary.json, sheets/group_NNN.png
    # Which trained model's classifier (a train.models name) and which of train.folds; None
    # follows the chain: the first of each, so any model list runs end to end (see ``target``).
    model: str | None = None
    fold: int | None = None
    threshold: float = 0.5  # cosine similarity of classifier rows at which labels join a group
    linkage: Literal["single", "average", "complete"] = "average"
    sheets: int = 20  # contact sheets drawn, most similar groups first
    images_per_label: int = 4  # training images shown per label in a sheet

    def validate(self) -> None:
        if not -1.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (-1, 1), got {self.threshold}")
        if self.sheets < 0 or self.images_per_label < 1:
            raise ValueError("sheets must not be negative and images_per_label must be at least 1")

    def target(self, train: TrainStageConfig, source: str = "params.yaml") -> tuple[str, int]:
        """The (model, fold) whose classifier rows the stage clusters: the configured ones, which
        must be trained by the chain, or the first of ``train.models`` / ``train.folds``."""
        model = train.models[0] if self.model is None else self.model
        fold = train.folds[0] if self.fold is None else self.fold
        if model not in train.models:
            raise ConfigError(f"{source}: duplicates.model is '{model}', which train.models ({', '.join(train.models)}) "
                              "does not list: name one of them, or null for the first")
        if fold not in train.folds:
            raise ConfigError(f"{source}: duplicates.fold is {fold}, which train.folds {list(train.folds)} does not list: "
                              "name one of them, or null for the first")
        return model, fold
