"""The whole chain through `dvc repro` on a tiny demo configuration, in a temporary repo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.submission import read_submission
from pipeline.data.layout import read_split
from pipeline.data.cache import open_split
from pipeline.infer.store import load_features
from pipeline.infer.tta import average_fold_features, extract_features
from pipeline.core.sections import TTAConfig
from pipeline.train import load_trained_model

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["pipeline", "stages", "configs", "dvc.yaml", "demo/dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore", ".dvc/config"]

pytestmark = pytest.mark.e2e


def run(cmd: list[str], cwd: Path) -> str:
    # The stages import the copy's own pipeline (not the checkout's), writing bytecode beside
    # it as Python does by default, exactly as in a user's clone.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def tiny_project(path: Path) -> Path:
    """A copy of the project in ``path`` with the tiny params applied."""
    for name in COPIED:
        source = ROOT / name
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    run([sys.executable, "-m", "pipeline.params_override", str(ROOT / "tests/data/tiny.params.yaml")], path)
    return path


def brute_force_score(ranked: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, k: int = 10) -> float:
    """0.5 top-1 + 0.5 mAP@k, one query at a time: AP@k = sum of precision@i at the hits / min(k, n_rel)."""
    top1, aps = [], []
    for row, label in zip(ranked[:, :k], query_labels):
        hits = gallery_labels[row] == label
        n_rel = int((gallery_labels == label).sum())
        precision_at_hits = [hits[: i + 1].mean() for i in range(k) if hits[i]]
        aps.append(sum(precision_at_hits) / max(min(k, n_rel), 1))
        top1.append(float(hits[0]))
    return 0.5 * float(np.mean(top1)) + 0.5 * float(np.mean(aps))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the project with the tiny params applied, after one full `dvc repro`."""
    path = tiny_project(tmp_path_factory.mktemp("repo"))
    run(["git", "init", "-q"], path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", "--allow-empty"], path)
    run(["git", "add", "-A"], path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], path)
    run(["dvc", "repro"], path)
    return path


def test_repro_writes_a_valid_submission_and_scores(repo):
    query = read_split(repo / "outputs/cache", "query", check_files=False)
    gallery = read_split(repo / "outputs/cache", "gallery", check_files=False)
    ranked = read_submission(repo / "outputs/submission.csv", query["image"], gallery["image"], length=10)
    assert ranked.shape == (len(query), 10)
    first = (repo / "outputs/submission.csv").read_text().splitlines()[0]
    assert re.fullmatch(r"q\d+\.png,\{(g\d+\.png,){9}g\d+\.png\}", first)

    metrics = json.loads((repo / "outputs/metrics.json").read_text())["table"]
    assert {"tiny", "tiny+rerank", "tiny_resnet", "tiny_resnet+rerank", "tiny_lite0", "fused"} <= set(metrics)
    # the submission file and the plain cosine lists of one model's features, scored by hand
    query_labels, gallery_labels = query["label"].to_numpy(), gallery["label"].to_numpy()
    assert metrics["submission"]["score"] == pytest.approx(brute_force_score(ranked, query_labels, gallery_labels))
    tiny = load_features(repo / "outputs/features/tiny")
    cosine = np.argsort(-(tiny.query.features @ tiny.gallery.features.T), axis=1, kind="stable")
    assert metrics["tiny"]["score"] == pytest.approx(brute_force_score(cosine, query_labels, gallery_labels), abs=1e-6)
    # The submission is the fused ranking cut at 10: the two must score the same.
    assert metrics["submission"]["score"] == pytest.approx(metrics["fused"]["score"])
    fuse = json.loads((repo / "outputs/fuse.json").read_text())
    assert set(fuse["weights"]) == {"tiny", "tiny_resnet", "tiny_lite0"} and sum(fuse["weights"].values()) == pytest.approx(1.0)
    # Per model: every option scored on the pooled out-of-fold lists and tested against the raw
    # lists (fuse.min_gain_se), the best of those that pass chosen (raw where none does) and scored
    # on the test set; the submission scores no lower out of fold than any chosen option alone.
    names = {"raw", "reranked", "reranked_k1-4_k2-3_lambda-0.3"}
    for model, entry in fuse["options"].items():
        # extract.plain_views (on by default): every option again on the single-view features
        assert set(entry["oof_scores"]) == names | {f"plain_{name}" for name in names}
        assert entry["default"] == "raw" and set(entry["tests"]) == set(entry["oof_scores"]) - {"raw"}
        passed = [option for option, test in entry["tests"].items() if test["passed"]]
        assert entry["chosen"] == (max(passed, key=entry["oof_scores"].__getitem__) if passed else "raw")
        assert f"{model} chosen: {entry['chosen']}" in metrics
    assert fuse["oof_score"] >= max(e["oof_scores"][e["chosen"]] for e in fuse["options"].values())
    assert (fuse["submitted"] == "fusion") == fuse["fusion"]["test"]["passed"]
    folds = pd.read_csv(repo / "outputs/folds.csv")
    held_out = folds[folds["fold"].isin([0, 1])]
    assert fuse["tuning_set"] == {
        "folds": 2,
        "held_out_queries": int((held_out["role"] == "query").sum()),
        "gallery_images": int((held_out["role"] == "gallery").sum()),
        "identities": held_out["label"].nunique(),
        # extract.oof_distractors (on by default): each fold's tuning gallery also holds the whole test gallery
        "distractors_per_fold": {"0": len(gallery), "1": len(gallery)},
        "shape": "folds",  # fuse.tuning_shape auto: 2 to 4 gallery images per test query
    }
    assert sorted(p.name for p in (repo / "outputs/report").iterdir()) == ["best1.png", "cmc.png", "worst1.png"]
    duplicates = json.loads((repo / "outputs/duplicates/summary.json").read_text())
    assert duplicates["model"] == "tiny" and duplicates["train_labels"] > 0
    assert len(list((repo / "outputs/duplicates/sheets").glob("group_*.png"))) == min(2, duplicates["groups"])


def test_training_records_untrained_and_trained_scores(repo):
    live = repo / "outputs/models/tiny/fold0/live"
    rows = [line.split("\t") for line in (live / "plots/metrics/val/score.tsv").read_text().splitlines()[1:]]
    scores = {int(step): float(score) for step, score in rows}
    assert sorted(scores) == [0, 1, 2]  # step 0 is the untrained network, then one row per epoch
    best = json.loads((live / "metrics.json").read_text())["best"]
    trained = {step: score for step, score in scores.items() if step > 0}
    assert best["score"] == pytest.approx(max(trained.values()))
    assert scores[int(best["epoch"])] == pytest.approx(best["score"])
    assert (repo / "outputs/models/tiny/fold0/checkpoints/best.pt").is_file()


def test_pretrained_recipe_carries_its_weights_normalisation(repo):
    """tiny_lite0 starts from the packaged ImageNet weights; their [-1, 1] scaling reaches extraction."""
    _, meta = load_trained_model(repo / "outputs/models/tiny_lite0/fold0/checkpoints/best.pt")
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == [0.5, 0.5, 0.5]
    _, scratch = load_trained_model(repo / "outputs/models/tiny/fold0/checkpoints/best.pt")
    assert scratch["mean"] != meta["mean"]


def test_second_repro_with_bytecode_written_runs_nothing(repo):
    assert list((repo / "pipeline/data").glob("__pycache__/*.pyc")), "the first run wrote no bytecode: test is void"
    log = run(["dvc", "repro"], repo)
    assert "Running stage" not in log, log


def test_denoise_param_change_reruns_denoise_and_later_stages_not_the_generator(repo):
    run([sys.executable, "-c", "import yaml,pathlib; p=pathlib.Path('params.yaml'); d=yaml.safe_load(p.read_text()); "
         "d['denoise']['gaussian_method']='bilateral'; p.write_text(yaml.safe_dump(d, sort_keys=False))"], repo)
    status = run(["dvc", "status", "--json"], repo)
    changed = set(json.loads(status))
    assert "denoise" in changed and "demo/dvc.yaml:demo" not in changed
    log = run(["dvc", "repro", "denoise"], repo)
    assert "Running stage 'denoise'" in log and "Running stage 'demo/dvc.yaml:demo'" not in log


def ranked_similarities(similarities: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """Each row of ``similarities`` taken in the descending order of ``order_by``'s row."""
    return np.take_along_axis(similarities, np.argsort(-order_by, axis=1), axis=1)


def test_cpu_extraction_runs_checked_onnx_and_its_lists_are_the_torch_lists(repo):
    """extract.engine auto (the default) on the CPU: every fold exported, checked at every TTA
    scale and extracted through onnxruntime; the torch engine gives the same features within the
    export check's tolerance and rankings that agree wherever two gallery images are not tied."""
    onnx_dir = repo / "outputs/onnx/tiny_lite0"
    check = json.loads((onnx_dir / "check.json").read_text())
    assert check["scales"] == [1.0]  # the tiny params' TTA scales
    assert {fold: entry["engine"] for fold, entry in check["folds"].items()} == {"0": "onnx", "1": "onnx"}
    assert all(entry["max_abs_normalised"] <= 1e-4 for entry in check["folds"].values())
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["check.json", "fold0.onnx", "fold1.onnx"]
    onnx_features = load_features(repo / "outputs/features/tiny_lite0")
    run([sys.executable, "-c", "import yaml,pathlib; p=pathlib.Path('params.yaml'); d=yaml.safe_load(p.read_text()); "
         "d['extract']['engine']='torch'; p.write_text(yaml.safe_dump(d, sort_keys=False))"], repo)
    run(["dvc", "repro", "-s", "extract@tiny_lite0"], repo)
    assert json.loads((onnx_dir / "check.json").read_text()) == {"engine": "torch", "reason": "extract.engine: torch"}
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["check.json"]  # no stale export outlives its use
    torch_features = load_features(repo / "outputs/features/tiny_lite0")
    pairs = [(torch_features.query, onnx_features.query), (torch_features.gallery, onnx_features.gallery)]
    pairs += [(torch_features.oof[f][r], onnx_features.oof[f][r]) for f in (0, 1) for r in (0, 1)]
    for ours, theirs in pairs:
        assert ours.ids == theirs.ids
        np.testing.assert_allclose(theirs.features, ours.features, atol=1e-4, rtol=0)
    torch_sims = torch_features.query.features @ torch_features.gallery.features.T
    onnx_sims = onnx_features.query.features @ onnx_features.gallery.features.T
    # the onnx ranking, scored by torch similarities, is the torch ranking up to ties within 2 x tolerance
    np.testing.assert_allclose(ranked_similarities(torch_sims, onnx_sims), ranked_similarities(torch_sims, torch_sims),
                               atol=2e-4, rtol=0)


def test_plain_views_are_the_fold_average_of_single_view_features(repo):
    """extract.plain_views (on by default): each model's single-view features (scale 1, upright,
    unflipped; fold models averaged) beside the TTA ones. The first repro's features of 'tiny'."""
    query = open_split(repo / "outputs/cache", "query")
    single = TTAConfig(scales=(1.0,), rotations=(0,), flip=False)
    per_fold = []
    for fold in (0, 1):
        model, meta = load_trained_model(repo / f"outputs/models/tiny/fold{fold}/checkpoints/best.pt")
        per_fold.append(extract_features(model, query.images, input_size=meta["input_size"], mean=meta["mean"],
                                         std=meta["std"], cfg=single))
    plain, tta = (load_features(repo / f"outputs/features/tiny{sub}") for sub in ("/plain", ""))
    assert plain.query.ids == tta.query.ids
    # the first repro extracted through onnxruntime: equal within the export check's tolerance
    np.testing.assert_allclose(plain.query.features, average_fold_features(per_fold), atol=1e-4)
    assert not np.allclose(plain.query.features, tta.query.features, atol=1e-3)  # TTA adds the mirror images


def test_the_summary_reads_the_chain_it_ran(repo):
    """The README's last command, on a chain whose models share no name with the defaults."""
    out = run([sys.executable, "-m", "pipeline.evaluate.summary"], repo)
    assert "| submission |" in out and "Fusion weights: tiny " in out
