"""Domain adaptation: the Jaccard distance against the reference re-ranking, DBSCAN pseudo-labels
on planted identities and outliers, the three kinds of target (the test split's labels never
read), the rounds (fresh classifier, noise left out, exact resume) and the stage's errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import adjusted_rand_score

from pipeline.adapt import rounds
from pipeline.adapt.cluster import NOISE, cluster_features, eps_from_distances, pseudo_label_quality
from pipeline.adapt.rounds import AdaptTrainer, adapt_model, pseudo_labels_path, round_dir, target_features
from pipeline.adapt.target import target_images
from pipeline.data.images import write_image
from pipeline.data.rescale_pad import rescale_pad
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.params import FoldDir, StageParams
from pipeline.retrieval.rerank import jaccard_distance
from pipeline.core.sections import AdaptConfig
from pipeline.train import load_trained_model
from pipeline.train.data import FoldData
from pipeline.train.distributed import DistInfo
from reference_rerank import euclidean_distances, re_ranking
from test_train_loop import Killed, assert_same, run, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]


def blobs(seed: int, identities: int = 12, per: int = 10, dim: int = 32, outliers: int = 5):
    """Tight unit-norm blobs (noise 0.05 around random centres) plus isolated points, shuffled;
    labels -1 for the planted outliers."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.repeat(centres, per, axis=0) + rng.normal(scale=0.05, size=(identities * per, dim))
    x = np.concatenate([points, rng.normal(size=(outliers, dim))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truth = np.r_[np.repeat(np.arange(identities), per), np.full(outliers, -1)]
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), truth[order]


@pytest.mark.parametrize("xp", ["numpy", "torch"])  # torch: the GPU code path, here on the CPU
def test_jaccard_distance_is_the_reference_rerankings_jaccard_term_over_every_pair(xp):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    distance = jaccard_distance(x, k1=6, k2=3, xp=xp, device="cpu")
    assert distance.shape == (50, 50) and distance.dtype == np.float32
    np.testing.assert_array_equal(np.diag(distance), 0.0)
    assert distance.min() >= 0.0 and distance.max() <= 1.0
    np.testing.assert_allclose(distance, distance.T, atol=1e-6)
    # the published algorithm at lambda 0 on queries x[:20] + gallery x[20:], then the roles swapped
    for head, tail in ((slice(0, 20), slice(20, 50)), (slice(20, 50), slice(0, 20))):
        q, g = x[head], x[tail]
        reference = re_ranking(euclidean_distances(q, g), euclidean_distances(q, q), euclidean_distances(g, g), 6, 3, 0.0)
        np.testing.assert_allclose(distance[head, tail], reference, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("radius", [{"eps": 0.3}, {"rho": 0.1}])
def test_dbscan_recovers_planted_identities_and_leaves_the_outliers_out(seed, radius):
    """k1 + 1 = the blob size: each blob is its own k-reciprocal set (within-blob distances
    about 0.03, between blobs 1, outliers 0.5 from their nearest blob). rho 0.1 sits above
    the share of same-blob pairs (7 %), as MMT's 0.16 % sits above Market-1501's 0.12 %."""
    x, truth = blobs(seed)
    clustering = cluster_features(x, k1=9, k2=3, min_samples=4, **radius)
    inliers = truth >= 0
    assert adjusted_rand_score(truth[inliers], clustering.labels[inliers]) == 1.0
    assert clustering.num_clusters == 12
    assert (clustering.labels[~inliers] == NOISE).all()
    np.testing.assert_array_equal(clustering.kept, np.flatnonzero(inliers))  # what the fine-tuning trains on
    assert clustering.noise_fraction == pytest.approx(5 / 125)


def test_eps_rule_is_the_mean_of_the_smallest_share_of_non_zero_pairs():
    distance = np.array([[0.0, 0.2, 0.0, 0.8], [0.2, 0.0, 0.4, 1.0], [0.0, 0.4, 0.0, 0.6], [0.8, 1.0, 0.6, 0.0]])
    # upper pairs 0.2, 0.0, 0.8, 0.4, 1.0, 0.6; the 0 is left out: five pairs, the smallest two are 0.2 and 0.4
    assert eps_from_distances(distance, 0.4) == pytest.approx(0.3)
    assert eps_from_distances(distance, 0.01) == pytest.approx(0.2)  # at least one pair
    with pytest.raises(DataError, match="set adapt.eps"):
        eps_from_distances(np.zeros((3, 3)), 0.5)


def test_pseudo_label_quality_hand_case():
    pseudo = np.array([0, 0, 1, 1, NOISE])
    truth = np.array(["a", "a", "a", "b", "c"])
    quality = pseudo_label_quality(pseudo, truth)
    assert quality["purity"] == pytest.approx(3 / 4)  # cluster 1 mixes a and b; the noise image is not counted
    perfect = pseudo_label_quality(np.array([1, 1, 0, 0, NOISE]), np.array(["x", "x", "y", "y", "z"]))
    assert perfect == {"purity": 1.0, "nmi": pytest.approx(1.0)}


def write_cache(folder: Path, query: np.ndarray, gallery: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "query.npy", query)
    np.save(folder / "gallery.npy", gallery)
    return folder


def test_a_cache_target_is_its_query_then_gallery_images_and_its_csvs_are_never_opened(tmp_path):
    rng = np.random.default_rng(0)
    query, gallery = (rng.integers(0, 256, (n, 12, 8, 3), dtype=np.uint8) for n in (3, 5))
    cache = write_cache(tmp_path / "cache", query, gallery)
    # label files that cannot be read: were anything to open them, the call would fail
    for split in ("query", "gallery"):
        (cache / f"{split}.csv").mkdir()
    np.testing.assert_array_equal(target_images(cache, 99), np.concatenate([query, gallery]))  # no resize
    np.save(cache / "gallery.npy", gallery[:, :6])
    with pytest.raises(DataError, match="query and gallery images differ in size"):
        target_images(cache, 99)


def test_folder_and_csv_targets_are_decoded_and_rescale_padded(tmp_path):
    rng = np.random.default_rng(1)
    pictures = {"b/x.png": rng.integers(0, 256, (20, 10, 3), dtype=np.uint8),
                "a.png": rng.integers(0, 256, (9, 30, 3), dtype=np.uint8)}
    for name, picture in pictures.items():
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / "images" / name, picture)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    expected = np.stack([rescale_pad(pictures[n], (16, 8)) for n in ("a.png", "b/x.png")])  # sorted by path
    np.testing.assert_array_equal(target_images(tmp_path / "images", (16, 8)), expected)
    listing = tmp_path / "images" / "list.csv"
    pd.DataFrame({"label": ["p1", "p2"], "image": ["b/x.png", "a.png"]}).to_csv(listing, index=False)
    np.testing.assert_array_equal(target_images(listing, (16, 8)), expected[::-1])  # the CSV's order
    pd.DataFrame({"path": ["a.png"]}).to_csv(listing, index=False)
    with pytest.raises(DataError, match="list.csv: no 'image' column"):
        target_images(listing, 16)
    pd.DataFrame({"image": ["../a.png"]}).to_csv(listing, index=False)
    with pytest.raises(DataError, match="list.csv: line 2: image path '../a.png' points outside"):
        target_images(listing, 16)
    with pytest.raises(DataError, match="adapt.target not found"):
        target_images(tmp_path / "nowhere", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        target_images(tmp_path / "empty", 16)


def target_set(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Six colour identities x six 16 px images, unseen by the source (tiny_data's style)."""
    rng = np.random.default_rng(seed)
    identities = np.repeat(np.arange(6), 6)
    base = rng.integers(0, 256, (6, 1, 1, 3))
    return np.clip(base[identities] + rng.normal(0, 40, (36, 16, 16, 3)), 0, 255).astype(np.uint8), identities


CFG = AdaptConfig(models=["tiny"], rounds=2, epochs=1, k1=5, k2=2, eps=0.5, min_samples=3, min_clusters=2)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("source")
    run(tiny_recipe(epochs=1), out)
    return out / "checkpoints" / "best.pt"


def test_a_round_trains_a_fresh_classifier_of_the_clusters_on_the_kept_images_only(tmp_path, source):
    images, _ = target_set()
    features = target_features(source, images, 64, torch.device("cpu"))
    clustering = cluster_features(features, k1=CFG.k1, k2=CFG.k2, min_samples=CFG.min_samples, eps=CFG.eps)
    assert 2 <= clustering.num_clusters and 0 < clustering.noise_fraction < 0.5  # the case the test needs
    data = FoldData(images=images, labels=clustering.labels.astype(str), train_rows=clustering.kept,
                    query_rows=rounds.NO_ROWS, gallery_rows=rounds.NO_ROWS)
    recipe = rounds.round_recipe(tiny_recipe(epochs=1), torch.load(source, weights_only=True)["meta"], CFG)
    trainer = AdaptTrainer(dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, p=2)), data, DistInfo(),
                           start=source, features=features)
    assert trainer.num_classes == clustering.num_clusters
    dataset = trainer.loader.dataset
    np.testing.assert_array_equal(dataset.rows, clustering.kept)  # the noise images are not in the training set
    sampled = {int(dataset.rows[position]) for batch in trainer.sampler for position, _ in batch}
    assert sampled <= set(clustering.kept.tolist())
    trained = torch.load(source, weights_only=True)["model"]
    for name, tensor in trainer.model.state_dict().items():
        if name.startswith("head."):
            continue
        assert torch.equal(tensor, trained[name]), name  # every other weight is the source model's
    # classifier rows: the normalised centre of each cluster, in the trainer's (sorted label) order
    for row, label in enumerate(np.unique(data.labels[data.train_rows])):
        centre = features[clustering.labels.astype(str) == label].mean(axis=0)
        np.testing.assert_allclose(trainer.model.head.weight[row].detach().numpy(), centre / np.linalg.norm(centre), atol=1e-6)


def test_rounds_write_trains_layout_log_the_clusters_and_resume_exactly(tmp_path, source, monkeypatch):
    images, identities = target_set()
    history = adapt_model(source, images, CFG, FoldDir(tmp_path / "a"), model_name="tiny", fold=0)
    assert [entry["round"] for entry in history] == [1.0, 2.0]
    for number, entry in enumerate(history, start=1):
        labels = np.load(pseudo_labels_path(FoldDir(tmp_path / "a"), number))
        assert entry["clusters"] == labels.max() + 1 and entry["noise_fraction"] == pytest.approx(np.mean(labels == NOISE))
        assert entry["eps"] == CFG.eps and entry["images_kept"] == np.sum(labels != NOISE)
        assert 0 < pseudo_label_quality(labels, identities)["purity"] <= 1
    model, meta = load_trained_model(tmp_path / "a" / "checkpoints" / "best.pt")  # what extract reads
    source_meta = torch.load(source, weights_only=True)["meta"]
    assert meta["adapted_from"] == str(source)
    assert (meta["mean"], meta["std"], meta["input_size"]) == (source_meta["mean"], source_meta["std"], source_meta["input_size"])
    assert model.num_classes == history[-1]["clusters"]
    last_round = torch.load(round_dir(FoldDir(tmp_path / "a"), 2).best, weights_only=True)["model"]
    assert_same(torch.load(tmp_path / "a" / "checkpoints" / "best.pt", weights_only=True)["model"], last_round)

    real_fit = rounds.fit
    calls = []

    def killed_in_round_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(rounds, "fit", killed_in_round_two)
    with pytest.raises(Killed):
        adapt_model(source, images, CFG, FoldDir(tmp_path / "b"), model_name="tiny", fold=0)
    monkeypatch.setattr(rounds, "fit", real_fit)
    resumed = adapt_model(source, images, CFG, FoldDir(tmp_path / "b"), model_name="tiny", fold=0)
    assert resumed == history
    assert_same(torch.load(tmp_path / "b" / "checkpoints" / "best.pt", weights_only=True)["model"],
                torch.load(tmp_path / "a" / "checkpoints" / "best.pt", weights_only=True)["model"])


def test_too_few_clusters_in_round_one_keeps_the_source_model_and_says_why(tmp_path, source, caplog):
    images, _ = target_set()
    tight = dataclasses.replace(CFG, eps=1e-6)  # every image its own noise point: 0 clusters
    history = adapt_model(source, images, tight, FoldDir(tmp_path), model_name="tiny", fold=0)
    assert len(history) == 1 and history[0]["stopped"] == 1.0 and history[0]["clusters"] == 0
    assert "fewer than adapt.min_clusters 2" in caplog.text and "raise adapt.eps" in caplog.text
    assert not round_dir(FoldDir(tmp_path), 1).root.exists()  # nothing was trained
    adapted = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert_same(adapted["model"], torch.load(source, weights_only=True)["model"])
    assert adapted["meta"]["adapt_rounds"] == 0 and adapted["meta"]["adapted_from"] == str(source)


def test_a_round_below_min_clusters_ends_the_rounds_with_the_last_trained_model(tmp_path, source, monkeypatch):
    """Planted clusterings: round 1 finds 3 clusters (trains), round 2 finds 2, below a floor of 3."""
    images, identities = target_set()
    planted = iter([identities % 3, identities % 2, identities % 3])
    real_cluster = rounds.cluster_features

    def cluster_as_planted(features, **knobs):
        found = real_cluster(features, **knobs)
        return dataclasses.replace(found, labels=next(planted).astype(np.int64))

    monkeypatch.setattr(rounds, "cluster_features", cluster_as_planted)
    cfg = dataclasses.replace(CFG, rounds=3, min_clusters=3)
    history = adapt_model(source, images, cfg, FoldDir(tmp_path), model_name="tiny", fold=0)
    assert [entry["clusters"] for entry in history] == [3.0, 2.0]
    assert "stopped" not in history[0] and history[1]["stopped"] == 1.0
    assert not round_dir(FoldDir(tmp_path), 2).root.exists() and not round_dir(FoldDir(tmp_path), 3).root.exists()
    adapted = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert_same(adapted["model"], torch.load(round_dir(FoldDir(tmp_path), 1).best, weights_only=True)["model"])
    assert adapted["meta"]["adapt_rounds"] == 1


def test_config_refuses_bad_knobs():
    with pytest.raises(ValueError, match="min_samples must be at least 2"):
        AdaptConfig(models=[], min_samples=1).validate()
    with pytest.raises(ValueError, match="min_clusters must be at least 2"):
        AdaptConfig(models=[], min_clusters=1).validate()
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        AdaptConfig(models=[], eps=1.5).validate()
    with pytest.raises(ValueError, match="k1 must be a positive integer"):
        AdaptConfig(models=[], k1=0).validate()


def adapt_stage():
    spec = importlib.util.spec_from_file_location("adapt_stage", ROOT / "stages/adapt.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    return stage


def test_the_stage_adapts_to_a_cache_without_its_label_files_and_points_extract_at_the_result(tmp_path, source):
    models = tmp_path / "models"
    (models / "tiny" / "fold0" / "checkpoints").mkdir(parents=True)
    shutil.copy(source, models / "tiny" / "fold0" / "checkpoints" / "best.pt")
    images, _ = target_set()
    cache = write_cache(tmp_path / "cache", images[:6], images[6:])  # no query.csv / gallery.csv at all
    params = tmp_path / "params.yaml"
    knobs = {k: v for k, v in dataclasses.asdict(CFG).items() if k != "models"}
    base = {"train": {"models": ["tiny"], "folds": [0], "out": str(models)}, "preprocess": {"out": str(cache), "size": 16},
            "adapt": {**knobs, "models": ["tiny"], "target": str(cache)}}
    params.write_text(yaml.safe_dump(base))
    with pytest.raises(DataError, match="missing adapted checkpoints"):
        StageParams(params).retrieval_checkpoints("tiny")  # extract refuses to fall back to the source
    adapt_stage().main(["--params", str(params), "--model", "tiny", "--fold", "0"])
    log = yaml.safe_load((models / "tiny" / "fold0" / "adapt.json").read_text())
    assert log["target_images"] == 36 and list(log["rounds"]) == ["round1", "round2"]
    adapted = models / "tiny" / "fold0" / "adapted" / "checkpoints" / "best.pt"
    assert StageParams(params).retrieval_checkpoints("tiny") == {0: adapted}
    params.write_text(yaml.safe_dump({**base, "adapt": {**base["adapt"], "models": []}}))
    assert StageParams(params).retrieval_checkpoints("tiny") == {0: models / "tiny" / "fold0" / "checkpoints" / "best.pt"}


def test_the_stage_names_an_unlisted_model_and_a_missing_adapted_checkpoint(tmp_path):
    params = tmp_path / "params.yaml"
    base = {"train": {"models": ["lite0"], "folds": [0], "out": str(tmp_path / "models")}, "preprocess": {"out": "cache"}}
    params.write_text(yaml.safe_dump({**base, "adapt": {"models": ["lite1"]}}))
    with pytest.raises(ConfigError, match="adapt.models does not list 'lite0'"):
        adapt_stage().main(["--params", str(params), "--model", "lite0", "--fold", "0"])
    with pytest.raises(ConfigError, match="adapt.models names 'lite1', which train.models does not list"):
        adapt_stage().main(["--params", str(params), "--model", "lite1", "--fold", "0"])
    params.write_text(yaml.safe_dump({**base, "adapt": {"models": ["lite0"]}}))
    missing = tmp_path / "models" / "lite0" / "fold0" / "adapted" / "checkpoints" / "best.pt"
    with pytest.raises(DataError, match=f"missing adapted checkpoints .*run `dvc repro adapt/dvc.yaml`.*{missing}"):
        StageParams(params).retrieval_checkpoints("lite0")


# dvc's own graph code warns about a deprecation in a library it uses (pygtrie); not ours to fix.
@pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning")
def test_adapt_stages_exist_only_for_listed_models_and_feed_their_extraction(tmp_path, monkeypatch):
    """A bare `dvc repro` runs no adaptation until adapt.models lists a model; then extract of that
    model depends on each of its folds' adaptation (and nothing else does)."""
    from dvc.repo import Repo

    monkeypatch.chdir(tmp_path)
    for name in ("dvc.yaml", "demo/dvc.yaml", "distill/dvc.yaml", "adapt/dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    def upstream(target: str) -> set[str]:
        with Repo(tmp_path) as repo:
            return {stage.addressing for stage in repo.stage.collect(target, with_deps=True)}

    assert not any("adapt" in name for name in upstream("dvc.yaml"))
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    model = params["train"]["models"][0]
    params["adapt"]["models"] = [model]
    params["train"]["folds"] = [0, 1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    adapted = {f"adapt/dvc.yaml:adapt@{model}-0", f"adapt/dvc.yaml:adapt@{model}-1"}
    assert adapted <= upstream(f"extract@{model}")
    assert not any("adapt" in name for name in upstream(f"extract@{params['train']['models'][1]}"))
