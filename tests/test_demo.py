"""Demo dataset generator: layout, counts, open-set split, exact noise record, determinism."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import from_mapping
from pipeline.demo.generate import DemoConfig, generate_demo
from pipeline.demo.noise import add_gaussian_noise, add_salt_pepper_noise, apply_noise
from pipeline.demo.check import nearest_sibling_accuracy, object_fraction
from pipeline.demo.render import CODE_SHAPE, MAX_FAMILY_SIZE, family_codes, make_family, render_identity
from pipeline.data.images import read_image
from pipeline.data.layout import load_dataset
from pipeline.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

TINY = DemoConfig(
    seed=3,
    train_identities=6,
    test_identities=4,
    images_per_identity=(3, 5),
    min_size=48,
    max_size=96,
    # High fractions so that every kind of noise occurs in a tiny set.
    gaussian_fraction=0.4,
    salt_pepper_fraction=0.3,
    both_fraction=0.15,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "demo"
    generate_demo(TINY, root)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_counts_and_open_set(demo: Path) -> None:
    data = load_dataset(demo)  # validates every table and that every image file exists
    train_ids, query_ids, gallery_ids = (set(t.label) for t in (data.train, data.query, data.gallery))
    assert len(train_ids) == TINY.train_identities
    assert len(query_ids) == len(gallery_ids) == TINY.test_identities
    assert query_ids == gallery_ids
    assert not train_ids & query_ids
    assert all(label.startswith("id") and len(label) == 6 for label in train_ids | query_ids)
    lo, hi = TINY.images_per_identity
    assert data.train.label.value_counts().between(lo, hi).all()
    assert (data.query.label.value_counts() == TINY.query_per_identity).all()
    test = pd.concat([data.query, data.gallery])
    assert test.label.value_counts().between(lo, hi).all()
    # Exactly the listed images exist (no strays), clean copies only for query/gallery.
    listed = set(data.train.image) | set(test.image)
    assert {str(p.relative_to(demo)) for p in (demo / "images").rglob("*.png")} == listed
    assert {str(p.relative_to(demo / "clean")) for p in (demo / "clean").rglob("*.png")} == set(test.image)


def test_every_query_has_a_gallery_match_from_another_camera(demo: Path) -> None:
    data = load_dataset(demo)
    assert set(data.train.camera) | set(data.query.camera) <= {f"c{k}" for k in range(1, TINY.cameras + 1)}
    for _, query in data.query.iterrows():
        same = data.gallery[data.gallery.label == query.label]
        assert (same.camera != query.camera).any(), query.image


def test_query_gallery_names_do_not_leak_labels(demo: Path) -> None:
    data = load_dataset(demo)
    for table in (data.query, data.gallery):
        assert not any(label in image for image, label in zip(table.image, table.label))


def test_images_vary_in_size_and_aspect(demo: Path) -> None:
    shapes = [read_image(p).shape for p in (demo / "images").rglob("*.png")]
    long_sides = [max(h, w) for h, w, _ in shapes]
    assert min(long_sides) >= TINY.min_size and max(long_sides) <= TINY.max_size
    assert any(w > h for h, w, _ in shapes) and any(h > w for h, w, _ in shapes)
    assert len(set(shapes)) > len(shapes) // 2


def test_noise_counts_follow_the_config(demo: Path) -> None:
    noise = pd.read_csv(demo / "noise.csv")
    data = load_dataset(demo)
    assert set(noise.image) == set(data.query.image) | set(data.gallery.image)
    n = len(noise)
    both = round(TINY.both_fraction * n)
    expected = {
        "both": both,
        "gaussian": round(TINY.gaussian_fraction * n) - both,
        "salt_pepper": round(TINY.salt_pepper_fraction * n) - both,
    }
    expected["none"] = n - sum(expected.values())
    assert noise.noise.value_counts().to_dict() == {k: v for k, v in expected.items() if v}
    gauss = noise.noise.isin(["gaussian", "both"])
    salt = noise.noise.isin(["salt_pepper", "both"])
    assert noise.sigma[gauss].between(*TINY.gaussian_sigma).all() and (noise.sigma[~gauss] == 0).all()
    assert noise.amount[salt].between(*TINY.salt_pepper_amount).all() and (noise.amount[~salt] == 0).all()


def _extreme(rgb: np.ndarray) -> np.ndarray:
    """Pixels (last axis = RGB) that are pure black or pure white in all three channels."""
    return (rgb == 0).all(axis=-1) | (rgb == 255).all(axis=-1)


def _isolated_extremes(rgb: np.ndarray) -> float:
    """Fraction of pure black/white pixels whose 4 neighbours are not: impulse noise, not glare."""
    extreme = np.pad(_extreme(rgb), 1)
    centre = extreme[1:-1, 1:-1]
    neighbours = extreme[:-2, 1:-1] | extreme[2:, 1:-1] | extreme[1:-1, :-2] | extreme[1:-1, 2:]
    return float((centre & ~neighbours).mean())


def test_noise_record_matches_the_pixels(demo: Path) -> None:
    for row in pd.read_csv(demo / "noise.csv").itertuples():
        noisy = read_image(demo / row.image)
        clean = read_image(demo / "clean" / row.image)
        assert noisy.shape == clean.shape
        changed = (noisy != clean).any(axis=2)
        if row.noise == "none":
            assert np.array_equal(noisy, clean), row.image
        if row.noise == "salt_pepper":
            # Only whole pixels change, and each one to pure black or white.
            assert _extreme(noisy[changed]).all(), row.image
            assert 0.5 * row.amount < changed.mean() < 1.5 * row.amount, row.image
        if row.noise == "gaussian":
            residual = noisy.astype(np.float64) - clean
            unclipped = (clean > 3 * row.sigma) & (clean < 255 - 3 * row.sigma)
            assert abs(residual[unclipped].std() / row.sigma - 1) < 0.15, row.image
            assert abs(residual[unclipped].mean()) < 0.1 * row.sigma, row.image
        if row.noise in ("gaussian", "both"):
            assert changed.mean() > 0.8, row.image  # i.i.d. noise touches nearly every pixel
        if row.noise == "both":
            assert _isolated_extremes(noisy) > 0.3 * row.amount, row.image


def test_only_query_and_gallery_carry_impulse_noise(demo: Path) -> None:
    assert not (demo / "clean" / "images" / "train").exists()
    for path in [*(demo / "images" / "train").rglob("*.png"), *(demo / "clean").rglob("*.png")]:
        assert _isolated_extremes(read_image(path)) < 0.002, path
    salted = pd.read_csv(demo / "noise.csv").query("noise == 'salt_pepper'")
    for row in salted.itertuples():  # the measure does see impulse noise where there is some
        assert _isolated_extremes(read_image(demo / row.image)) > 0.3 * row.amount, row.image


def test_same_seed_same_bytes_other_seed_other_images(demo: Path, tmp_path: Path) -> None:
    generate_demo(TINY, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(demo)
    generate_demo(dataclasses.replace(TINY, seed=4), tmp_path / "other")
    other = _files(tmp_path / "other")
    same = _files(demo)
    common = [name for name in same if name.endswith(".png") and name in other]
    assert common and all(other[name] != same[name] for name in common)


def test_generation_replaces_an_existing_folder(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "stale").mkdir(parents=True)
    (root / "stale" / "old.png").write_bytes(b"x")
    generate_demo(dataclasses.replace(TINY, train_identities=1, test_identities=1), root)
    assert not (root / "stale").exists()
    assert (root / "noise.csv").is_file()


def test_siblings_look_closer_than_other_families() -> None:
    rng = np.random.default_rng(0)
    sibling_gaps, family_gaps = [], []
    families = [make_family(rng, 2) for _ in range(8)]
    for index, family in enumerate(families):
        first, second = render_identity(family, 0), render_identity(family, 1)
        stranger = render_identity(families[index - 1], 0)
        assert not np.array_equal(first, second)
        sibling_gaps.append(np.abs(first - second).mean())
        family_gaps.append(np.abs(first - stranger).mean())
    assert np.mean(sibling_gaps) < 0.5 * np.mean(family_gaps)


def _brute_force_distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Fewest differing parts between panel a and panel b turned half way or mirrored."""
    grid = np.array(b).reshape(CODE_SHAPE)
    variants = [grid, np.fliplr(grid), np.flipud(grid), np.rot90(grid, 2)]
    return min(int((np.array(a).reshape(CODE_SHAPE) != v).sum()) for v in variants)


@pytest.mark.parametrize("seed", range(5))
def test_family_codes_differ_in_colour_counts_and_in_two_parts_under_every_symmetry(seed: int) -> None:
    codes = family_codes(np.random.default_rng(seed), MAX_FAMILY_SIZE)
    assert len(codes) == MAX_FAMILY_SIZE
    assert all(len(code) == CODE_SHAPE[0] * CODE_SHAPE[1] and len(set(code)) > 1 for code in codes)
    for i, a in enumerate(codes):
        for b in codes[i + 1 :]:
            assert _brute_force_distance(a, b) >= 2, (a, b)
            assert np.bincount(a, minlength=9).tolist() != np.bincount(b, minlength=9).tolist(), (a, b)
    with pytest.raises(ValueError, match="cannot draw 500 distinct codes"):
        family_codes(np.random.default_rng(seed), 500)


def test_object_fraction_follows_the_scale_and_aspect() -> None:
    # No tilt beyond the 10 degree wobble, square images: the object spans object_scale of the
    # side, give or take the wobble's perspective; a 2:1 image halves it.
    style = dataclasses.replace(TINY, object_scale=(0.5, 0.5), max_tilt_deg=0.0, aspect_ratio=(1.0, 1.0))
    assert 0.45 < object_fraction(style.scene_style(), 0.5, draws=200) < 0.55
    wide = dataclasses.replace(style, aspect_ratio=(2.0, 2.0))
    assert 0.22 < object_fraction(wide.scene_style(), 0.5, draws=200) < 0.28


def test_siblings_stay_separable_at_the_cache_size() -> None:
    # A small object (5th percentile of the default scenes) in a 96 px cache: siblings must
    # still be told apart there by their nearest clean render, through pose and light jitter.
    side = round(96 * object_fraction(DemoConfig().scene_style(), 0.05, draws=300))
    assert nearest_sibling_accuracy(np.random.default_rng(0), side, families=6, members=4) >= 0.9


def test_noise_functions_on_a_flat_image() -> None:
    grey = np.full((200, 200, 3), 128, np.uint8)
    rng = np.random.default_rng(1)
    noisy = add_gaussian_noise(grey, 20.0, rng).astype(np.float64)
    assert abs(noisy.std() - 20.0) < 0.5 and abs(noisy.mean() - 128) < 0.5
    salted = add_salt_pepper_noise(grey, 0.1, rng)
    hit = (salted != 128).any(axis=2)
    assert abs(hit.mean() - 0.1) < 0.01 and _extreme(salted[hit]).all()
    assert abs((salted[hit] == 255).all(axis=1).mean() - 0.5) < 0.05
    assert apply_noise(grey, "none", 0.0, 0.0, rng) is grey
    with pytest.raises(ValueError, match="unknown noise kind"):
        apply_noise(grey, "speckle", 0.0, 0.0, rng)


@pytest.mark.parametrize(
    "change",
    [
        {"images_per_identity": (1, 4)},  # a query would have no gallery match
        {"images_per_identity": (5, 4)},
        {"min_size": 200},
        {"both_fraction": 0.2},  # more "both" than salt-and-pepper in all
        {"gaussian_fraction": 0.7, "salt_pepper_fraction": 0.6, "both_fraction": 0.1},
        {"salt_pepper_amount": (0.1, 1.5)},
        {"cameras": 0},
        {"family_size": (1, MAX_FAMILY_SIZE + 1)},
        {"family_size": (0, 2)},
        {"test_identities": 0},
    ],
)
def test_validate_rejects_nonsense(change: dict) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(DemoConfig(), **change).validate()


def test_default_config_is_valid_and_at_least_the_promised_size() -> None:
    cfg = DemoConfig()
    cfg.validate()
    assert cfg.train_identities >= 300 and cfg.test_identities >= 150 and cfg.images_per_identity[0] >= 2


def test_config_from_params_mapping() -> None:
    cfg = from_mapping(DemoConfig, {"seed": 7, "images_per_identity": [3, 6]}, "params.yaml", prefix="demo")
    assert cfg.seed == 7 and cfg.images_per_identity == (3, 6)
    with pytest.raises(ConfigError, match="demo.sead"):
        from_mapping(DemoConfig, {"sead": 7}, "params.yaml", prefix="demo")
    with pytest.raises(ConfigError, match="params.yaml"):
        from_mapping(DemoConfig, {"gaussian_fraction": 2.0}, "params.yaml", prefix="demo")


def _run_stage(params: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "demo.py"), "--params", str(params)],
        capture_output=True,
        text=True,
        cwd=params.parent,
        check=False,
    )


def test_stage_writes_the_dataset_from_params(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "demo:\n  out: out/demo\n  train_identities: 2\n  test_identities: 2\n"
        "  images_per_identity: [2, 3]\n  min_size: 32\n  max_size: 48\n",
        encoding="utf-8",
    )
    result = _run_stage(params)
    assert result.returncode == 0, result.stderr
    data = load_dataset(tmp_path / "out" / "demo")
    assert data.train.label.nunique() == 2 and data.query.label.nunique() == 2


def test_stage_reports_a_bad_param_in_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("demo:\n  cameras: 0\n", encoding="utf-8")
    result = _run_stage(params)
    assert result.returncode == 2
    assert "cameras must be at least 1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_noise_counts_never_exceed_the_images_when_fractions_fill_the_set(tmp_path: Path) -> None:
    # 0.5 and 0.5 of 3 images both round to 2: one image too many, so salt-and-pepper gives way.
    cfg = dataclasses.replace(
        TINY, train_identities=1, test_identities=1, images_per_identity=(3, 3),
        gaussian_fraction=0.5, salt_pepper_fraction=0.5, both_fraction=0.0,
    )
    generate_demo(cfg, tmp_path / "demo")
    noise = pd.read_csv(tmp_path / "demo" / "noise.csv")
    assert noise.noise.value_counts().to_dict() == {"gaussian": 2, "salt_pepper": 1}
