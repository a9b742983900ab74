"""The check stage: every params section, every recipe of train.models and the constraints
between sections and the dataset's size are checked before the first stage works, each error
naming the key and the file; `dvc repro` stops there, and a passing rerun leaves the chain up
to date."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.core.errors import ConfigError
from pipeline.core.params import StageParams
from pipeline.preflight import check_chain

ROOT = Path(__file__).resolve().parents[1]
QUERIES, GALLERY = 3, 4


def _dataset(root: Path, images: bool = False) -> Path:
    """A labelled set of 3 queries and 4 gallery images (train: 3 identities of 2 images)."""
    (root / "img").mkdir(parents=True)
    rows = {"train": [f"img/t{i}.png,{i // 2}" for i in range(6)], "query": [f"img/q{i}.png,{i}" for i in range(QUERIES)],
            "gallery": [f"img/g{i}.png,{i % QUERIES}" for i in range(GALLERY)]}
    seed = 0  # each image its own content: no query is also a gallery image
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("image,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
        for line in lines if images else []:
            seed += 1
            pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / line.split(",")[0])
    return root


def _params(tmp_path: Path, **changes: dict[str, Any]) -> Path:
    """The project's params.yaml on the small dataset and the demo recipes, with ``changes``
    (section -> {key: value}) applied; returns its path."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["dataset"]["root"] = str(tmp_path / "data")
    params["train"]["recipes"] = str(tmp_path / "recipes")
    params["submit"]["length"] = GALLERY
    params["rerank"]["grid"] = {"k1": [2], "k2": [3], "lambda_value": []}
    params["rerank"].update(k1=2, k2=3)
    for section, values in changes.items():
        params.setdefault(section, {}).update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _dataset(tmp_path / "data")
    shutil.copytree(ROOT / "configs/demo", tmp_path / "recipes")
    shutil.copytree(ROOT / "configs/_base_", tmp_path / "_base_")  # the recipes' _base_ chains
    return tmp_path


def test_the_shipped_params_on_a_small_set_pass(project: Path) -> None:
    check_chain(StageParams(_params(project)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rerank": {"k1": -3}}, r"params\.yaml: rerank: k1 must be a positive integer, got -3"),
        ({"train": {"folds": [0, 7]}, "folds": {"k": 5}}, r"params\.yaml: train\.folds lists fold 7, but folds\.k is 5 \(folds 0 to 4\)"),
        ({"submit": {"length": 10}}, r"params\.yaml: submit\.length is 10, but the gallery \(.*data/gallery\.csv\) holds 4 "
                                     r"images: set submit\.length to at most 4"),
        ({"rerank": {"candidates": 3}}, r"params\.yaml: submit\.length is 4, but rerank\.candidates keeps 3 per query"),
        ({"rerank": {"k1": 7}}, r"params\.yaml: rerank\.k1: re-ranking needs k1 \+ 1 and k2 neighbours among the 3 queries "
                                r"\+ 4 gallery images of .*data: at most 6 for k1, 7 for k2"),
        ({"rerank": {"grid": {"k1": [], "k2": [3, 9], "lambda_value": []}}},
         r"params\.yaml: rerank\.k2 \(rerank\.grid setting k1 2, k2 9\): re-ranking needs"),
        ({"duplicates": {"model": "lite9"}}, r"params\.yaml: duplicates\.model is 'lite9', which train\.models \(lite0, "),
        ({"duplicates": {"fold": 3}}, r"params\.yaml: duplicates\.fold is 3, which train\.folds \[0\] does not list"),
        ({"mutual": {"pairs": ["lite0+osnet"]}}, r"params\.yaml: mutual\.pairs 'lite0\+osnet': train\.models does not list \['osnet'\]"),
        ({"adapt": {"models": ["osnet"]}}, r"params\.yaml: adapt\.models names 'osnet', which train\.models does not list"),
        ({"fuse": {"tune": False, "source": "raw", "weights": {"osnet": 1.0}}},
         r"params\.yaml: fuse\.weights names 'osnet', which train\.models does not list"),
        ({"extract": {"engine": "onnx"}, "rerank": {"local_weight": 0.5}}, r"params\.yaml: extract\.engine onnx exports the global"),
        ({"train": {"models": ["lite0", "osnet"]}}, r"params\.yaml: train\.models names 'osnet', but there is no recipe .*recipes/osnet\.yaml"),
        ({"rerenk": {"k1": 2}}, r"params\.yaml: unknown section 'rerenk' \(did you mean 'rerank'\?\)"),
        ({"denoise": {"workerz": 2}}, r"params\.yaml: unknown key 'denoise\.workerz'"),
        ({"distill": {"temperature": 0}}, r"params\.yaml: distill: temperature must be positive"),  # opt-in, still checked
        ({"distill": {"folds": [0, 3]}}, r"params\.yaml: distill\.folds \[3\] are not in train\.folds \[0\]: no teacher there"),
    ],
)
def test_each_problem_is_named_by_key_and_file(project: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_chain(StageParams(_params(project, **changes)))


def test_every_recipe_of_train_models_is_read_strictly(project: Path) -> None:
    recipe = project / "recipes/densenet121.yaml"
    recipe.write_text(recipe.read_text().replace("epochs:", "epochz:", 1))
    with pytest.raises(ConfigError, match=r"recipes/densenet121\.yaml: unknown key 'train\.epochz'"):
        check_chain(StageParams(_params(project)))
    (project / "recipes/stage2.yaml").write_text((project / "recipes/lite0.yaml").read_text() + "")
    data = yaml.safe_load((project / "recipes/stage2.yaml").read_text())
    data["train"]["init_from"] = "lite2"
    (project / "recipes/stage2.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(ROOT / "configs/demo/densenet121.yaml", recipe)
    with pytest.raises(ConfigError, match=r"recipes/stage2\.yaml: train\.init_from is 'lite2', which must be another recipe "
                                          r"of train\.models"):
        check_chain(StageParams(_params(project, train={"models": ["lite0", "stage2"]})))


def test_a_fold_beyond_folds_k_stops_the_train_stage_naming_the_key(project: Path) -> None:
    from stages.train import main

    params = _params(project, train={"folds": [7]}, folds={"k": 5})
    with pytest.raises(ConfigError, match=r"params\.yaml: train\.folds lists fold 7, but folds\.k is 5"):
        main(["--params", str(params), "--model", "lite0", "--fold", "7"])


def _git_repo(path: Path) -> None:
    for name in ("stages", "pipeline", "dvc.yaml", ".dvcignore", ".dvc/config"):
        source, target = ROOT / name, path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)


def _dvc(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(path), "HOME": str(path)}
    return subprocess.run(["dvc", *args], cwd=path, capture_output=True, text=True, env=env)


@pytest.mark.e2e
def test_dvc_repro_stops_at_the_check_and_a_passing_rerun_leaves_denoise_up_to_date(tmp_path: Path) -> None:
    _git_repo(tmp_path)
    _dataset(tmp_path / "data", images=True)
    shutil.copytree(ROOT / "configs/demo", tmp_path / "recipes")
    shutil.copytree(ROOT / "configs/_base_", tmp_path / "_base_")  # the recipes' _base_ chains
    shutil.copytree(ROOT / "configs/_base_", tmp_path / "configs/_base_")  # the check stage's dependency
    _params(tmp_path, rerank={"k1": -3}, denoise={"workers": 1})
    done = _dvc(tmp_path, "repro", "denoise")
    assert done.returncode != 0 and "error: params.yaml: rerank: k1 must be a positive integer, got -3" in done.stderr
    assert "Running stage 'check'" in done.stdout and "Running stage 'denoise'" not in done.stdout
    _params(tmp_path, denoise={"workers": 1})
    done = _dvc(tmp_path, "repro", "denoise")
    assert done.returncode == 0 and "Running stage 'denoise'" in done.stdout, done.stdout + done.stderr
    _params(tmp_path, denoise={"workers": 1}, submit={"length": 3})  # another valid setting
    done = _dvc(tmp_path, "repro", "denoise")
    assert done.returncode == 0 and "Running stage 'check'" in done.stdout, done.stdout + done.stderr
    assert "Running stage 'denoise'" not in done.stdout  # the check's output did not change


def test_the_submit_stage_names_submit_length_and_the_gallery_size(tmp_path: Path) -> None:
    """A gallery of 4 images and submit.length 10: the stage's own check (run alone, or after the
    params changed) says which key and how many candidates there are."""
    from pipeline.data.layout import write_split
    from pipeline.data.self_match import write_self_matches
    from pipeline.retrieval.candidates import CandidateLists, save_candidate_sets
    from stages.submit import main

    import pandas as pd

    cache, denoised = tmp_path / "cache", tmp_path / "denoised"
    write_split(cache, "query", pd.DataFrame({"image": [f"q{i}.png" for i in range(QUERIES)]}))
    write_split(cache, "gallery", pd.DataFrame({"image": [f"g{i}.png" for i in range(GALLERY)]}))
    denoised.mkdir()
    write_self_matches(denoised, pd.DataFrame(columns=["query", "gallery", "reason"]))
    order = np.tile(np.arange(GALLERY), (QUERIES, 1))
    save_candidate_sets(tmp_path / "fused.npz", {"fused": CandidateLists(order, order.astype(np.float32))})
    params = tmp_path / "params.yaml"
    params.write_text(f"preprocess: {{out: {cache}}}\ndenoise: {{out: {denoised}}}\nfuse: {{out: {tmp_path / 'fused.npz'}}}\n"
                      f"rerank: {{}}\nsubmit: {{out: {tmp_path / 'submission.csv'}, length: 10}}\n")
    with pytest.raises(ConfigError, match=rf"params\.yaml: submit\.length is 10, but the fused lists hold 4 candidates per "
                                          rf"query \(the gallery, {cache}/gallery\.csv, holds 4 images; rerank\.candidates: "
                                          r"1000\): set submit\.length to at most 4"):
        main(["--params", str(params)])
    assert not (tmp_path / "submission.csv").exists()
