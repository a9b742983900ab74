"""The built-in demo dataset: a procedurally generated instance-retrieval set.

``generate_demo(cfg)`` writes, atomically as one folder, the canonical layout::

    train.csv, query.csv, gallery.csv    image,label,camera
    images/train/<label>/<label>_c<k>_<n>.png
    images/query/q<n>.png, images/gallery/g<n>.png    (anonymous names, as in competitions)
    noise.csv                            image,noise,sigma,amount for every query/gallery image
    clean/images/{query,gallery}/...     the same images before noise, to score a denoiser

Train and test identities are disjoint (open set). Identities come in families of near
look-alikes (see demo_render), each image is an independent scene (see demo_scene), and only
query/gallery images are corrupted (see demo_noise). PNG is lossless, so ``noise.csv`` and
``clean/`` describe the written pixels exactly.

Every random draw comes from a generator seeded by (seed, purpose, identity, image), so the
output is byte-identical for one seed and independent of iteration order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from itertools import groupby
from operator import attrgetter
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.demo.noise import apply_noise
from pipeline.demo.render import MAX_FAMILY_SIZE, Family, make_family, render_identity
from pipeline.demo.scene import SceneStyle, render_scene
from pipeline.data.images import write_image
from pipeline.data.layout import write_split
from pipeline.core.io_utils import atomic_dir, write_csv

# Purposes of the seeded generators, so that no two draw the same stream.
_PLAN, _FAMILY, _SCENE, _NOISE = range(4)


@dataclass(frozen=True)
class DemoConfig:
    """Params section ``demo``. Fractions of noise are of all query+gallery images;
    ``gaussian_fraction`` and ``salt_pepper_fraction`` each include the ``both_fraction``.
    The scene defaults are calibrated: benchmarks/results/bench_demo_calibration.md."""

    out: str = "data/demo"
    seed: int = 0
    train_identities: int = 300
    test_identities: int = 150
    images_per_identity: tuple[int, int] = (4, 8)  # inclusive range
    query_per_identity: int = 1  # per test identity; the rest go to the gallery
    family_size: tuple[int, int] = (1, 3)  # identities per family of look-alikes
    min_size: int = 64  # long side of an image, pixels
    max_size: int = 160
    aspect_ratio: tuple[float, float] = (0.75, 1.33)  # width / height
    object_scale: tuple[float, float] = (0.7, 0.95)  # object side / shorter image side
    max_tilt_deg: float = 25.0  # out-of-plane tilt of the side cameras
    quarter_turn_probability: float = 0.2  # chance of a 90/180/270 degree turn
    occlusion_probability: float = 0.2
    occlusion_fraction: tuple[float, float] = (0.1, 0.3)  # of the object's bounding box
    cameras: int = 4
    gaussian_fraction: float = 0.15
    salt_pepper_fraction: float = 0.10
    both_fraction: float = 0.03
    gaussian_sigma: tuple[float, float] = (10.0, 30.0)  # 0-255 units
    salt_pepper_amount: tuple[float, float] = (0.02, 0.08)  # fraction of pixels

    def validate(self) -> None:
        if not self.out:
            raise ValueError("out must not be empty")
        if self.train_identities < 1 or self.test_identities < 1:
            raise ValueError("train_identities and test_identities must be at least 1")
        if self.query_per_identity < 1:
            raise ValueError("query_per_identity must be at least 1")
        lo, hi = self.images_per_identity
        if not self.query_per_identity < lo <= hi:
            raise ValueError(
                f"images_per_identity {self.images_per_identity} must be an increasing range whose "
                f"low end exceeds query_per_identity={self.query_per_identity} (every query needs a gallery match)"
            )
        if not 1 <= self.family_size[0] <= self.family_size[1] <= MAX_FAMILY_SIZE:
            raise ValueError(f"family_size {self.family_size} must be an increasing range in [1, {MAX_FAMILY_SIZE}]")
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError(f"need 16 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if not 0 < self.aspect_ratio[0] <= self.aspect_ratio[1]:
            raise ValueError(f"aspect_ratio {self.aspect_ratio} must be an increasing positive range")
        if not 0 < self.object_scale[0] <= self.object_scale[1] <= 1:
            raise ValueError(f"object_scale {self.object_scale} must be an increasing range in (0, 1]")
        if not 0 <= self.max_tilt_deg < 80:
            raise ValueError(f"max_tilt_deg must be in [0, 80), got {self.max_tilt_deg}")
        for name in ("quarter_turn_probability", "occlusion_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.occlusion_fraction[0] <= self.occlusion_fraction[1] < 1:
            raise ValueError(f"occlusion_fraction {self.occlusion_fraction} must be an increasing range in (0, 1)")
        if self.cameras < 1:
            raise ValueError("cameras must be at least 1")
        g, s, b = self.gaussian_fraction, self.salt_pepper_fraction, self.both_fraction
        if not (0 <= b <= min(g, s) and g <= 1 and s <= 1 and g + s - b <= 1):
            raise ValueError(
                "need 0 <= both_fraction <= min(gaussian_fraction, salt_pepper_fraction) and "
                f"gaussian + salt_pepper - both <= 1, got {g}, {s}, {b}"
            )
        if not 0 < self.gaussian_sigma[0] <= self.gaussian_sigma[1]:
            raise ValueError(f"gaussian_sigma {self.gaussian_sigma} must be an increasing positive range")
        if not 0 < self.salt_pepper_amount[0] <= self.salt_pepper_amount[1] < 1:
            raise ValueError(f"salt_pepper_amount {self.salt_pepper_amount} must be an increasing range in (0, 1)")

    def scene_style(self) -> SceneStyle:
        return SceneStyle(
            min_size=self.min_size,
            max_size=self.max_size,
            aspect_ratio=self.aspect_ratio,
            object_scale=self.object_scale,
            max_tilt_deg=self.max_tilt_deg,
            quarter_turn_probability=self.quarter_turn_probability,
            occlusion_probability=self.occlusion_probability,
            occlusion_fraction=self.occlusion_fraction,
            cameras=self.cameras,
        )


@dataclass(frozen=True)
class _Shot:
    """One image to render: who, from which camera, where it goes, and its corruption."""

    identity: int
    index: int  # image number within the identity
    family: int
    member: int  # sibling number within the family
    camera: int  # 0-based
    split: str
    path: str
    noise: str = "none"
    sigma: float = 0.0
    amount: float = 0.0


def _rng(cfg: DemoConfig, purpose: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, purpose, *keys])


def _families(rng: np.random.Generator, count: int, first_family: int, size: tuple[int, int]) -> list[int]:
    """Family id of each of ``count`` identities; families never straddle train and test."""
    families: list[int] = []
    family = first_family
    while len(families) < count:
        families.extend([family] * int(rng.integers(size[0], size[1] + 1)))
        family += 1
    return families[:count]


def _plan(cfg: DemoConfig) -> list[_Shot]:
    rng = _rng(cfg, _PLAN)
    total = cfg.train_identities + cfg.test_identities
    families = _families(rng, cfg.train_identities, 0, cfg.family_size)
    families += _families(rng, cfg.test_identities, max(families) + 1, cfg.family_size)
    seen: Counter[int] = Counter()
    members = []  # each identity's sibling number within its family
    for family in families:
        members.append(seen[family])
        seen[family] += 1
    train: list[_Shot] = []
    query: list[_Shot] = []
    gallery: list[_Shot] = []
    for identity in range(total):
        label = f"id{identity:04d}"
        count = int(rng.integers(cfg.images_per_identity[0], cfg.images_per_identity[1] + 1))
        # Consecutive cameras: an identity's query and its first gallery image always differ
        # in camera (when there are two or more), so camera-filtered scoring keeps a match.
        first_camera = int(rng.integers(cfg.cameras))
        for index in range(count):
            camera = (first_camera + index) % cfg.cameras
            shot = _Shot(identity, index, families[identity], members[identity], camera, "", "")
            if identity < cfg.train_identities:
                name = f"images/train/{label}/{label}_c{camera + 1}_{index:02d}.png"
                train.append(replace(shot, split="train", path=name))
            elif index < cfg.query_per_identity:
                query.append(shot)
            else:
                gallery.append(shot)
    # Anonymous, shuffled names for the test side: nothing in a file name or order leaks the label.
    query = [replace(s, split="query", path=f"images/query/q{n:05d}.png") for n, s in enumerate(_shuffled(rng, query))]
    gallery = [
        replace(s, split="gallery", path=f"images/gallery/g{n:05d}.png") for n, s in enumerate(_shuffled(rng, gallery))
    ]
    return train + _assign_noise(rng, cfg, query + gallery)


def _shuffled(rng: np.random.Generator, shots: list[_Shot]) -> list[_Shot]:
    return [shots[i] for i in rng.permutation(len(shots))]


def _assign_noise(rng: np.random.Generator, cfg: DemoConfig, shots: list[_Shot]) -> list[_Shot]:
    """Exact counts: round(fraction * n) images per kind, at random positions."""
    n = len(shots)
    both = round(cfg.both_fraction * n)
    gaussian = round(cfg.gaussian_fraction * n) - both
    # validate() keeps gaussian + salt_pepper - both <= 1, but rounding up twice can still
    # overshoot n by one image.
    salt_pepper = min(round(cfg.salt_pepper_fraction * n) - both, n - both - gaussian)
    kinds = ["both"] * both + ["gaussian"] * gaussian + ["salt_pepper"] * salt_pepper
    kinds += ["none"] * (n - len(kinds))
    kinds = [kinds[i] for i in rng.permutation(n)]
    out = []
    for shot, kind in zip(shots, kinds):
        # Rounded so that noise.csv holds exactly the value that was applied.
        sigma = round(float(rng.uniform(*cfg.gaussian_sigma)), 3) if kind in ("gaussian", "both") else 0.0
        amount = round(float(rng.uniform(*cfg.salt_pepper_amount)), 4) if kind in ("salt_pepper", "both") else 0.0
        out.append(replace(shot, noise=kind, sigma=sigma, amount=amount))
    return out


def _frame(shots: list[_Shot], split: str) -> pd.DataFrame:
    rows = [(s.path, f"id{s.identity:04d}", f"c{s.camera + 1}") for s in shots if s.split == split]
    return pd.DataFrame(sorted(rows), columns=["image", "label", "camera"])


def generate_demo(cfg: DemoConfig, out: Path | None = None) -> None:
    """Write the demo dataset for ``cfg`` to ``out`` (default ``cfg.out``), replacing it atomically."""
    cfg.validate()
    target = Path(cfg.out) if out is None else Path(out)
    shots = _plan(cfg)
    style = cfg.scene_style()
    family_sizes = Counter(s.family for s in shots if s.index == 0)
    families: dict[int, Family] = {}
    # In identity order, so that only one identity's template is alive at a time.
    ordered = sorted(shots, key=attrgetter("identity", "index"))
    with atomic_dir(target) as root, tqdm(total=len(shots), desc="demo images", unit="img") as progress:
        for identity, group in groupby(ordered, key=attrgetter("identity")):
            members = list(group)
            family = members[0].family
            if family not in families:
                families[family] = make_family(_rng(cfg, _FAMILY, family), family_sizes[family])
            template = render_identity(families[family], members[0].member)
            for shot in members:
                image = render_scene(_rng(cfg, _SCENE, identity, shot.index), template, shot.camera, style)
                if shot.split != "train":
                    write_image(root / "clean" / shot.path, image)
                    noise_rng = _rng(cfg, _NOISE, identity, shot.index)
                    image = apply_noise(image, shot.noise, shot.sigma, shot.amount, noise_rng)
                write_image(root / shot.path, image)
                progress.update()
        for split in ("train", "query", "gallery"):
            write_split(root, split, _frame(shots, split))
        noise = [(s.path, s.noise, s.sigma, s.amount) for s in shots if s.split != "train"]
        write_csv(root / "noise.csv", pd.DataFrame(sorted(noise), columns=["image", "noise", "sigma", "amount"]))
