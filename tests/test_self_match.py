"""Queries that are also gallery images: found when the dataset is read, refused or excluded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.retrieval.candidates import CandidateLists
from pipeline.chain.score_table import Truth, score_lists
from pipeline.denoise.dataset import denoise_dataset
from pipeline.data.images import write_image
from pipeline.data.layout import read_split
from pipeline.data.self_match import find_self_matches, read_self_matches, self_match_pairs
from pipeline.core.errors import DataError
from pipeline.core.sections import DenoiseConfig, EvaluateConfig


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)


def _dataset(root: Path, query: list[str], gallery: list[str]) -> None:
    """Images named <label>_<seed>.png hold the pixels of that seed; a 'copy/' prefix is a byte copy."""
    for image in {*query, *gallery, "t_0.png", "t_1.png"}:
        write_image(root / image, _image(int(Path(image).stem.split("_")[1])))
    pd.DataFrame({"image": ["t_0.png", "t_1.png"], "label": ["t", "u"]}).to_csv(root / "train.csv", index=False)
    for split, images in (("query", query), ("gallery", gallery)):
        labels = [Path(i).stem.split("_")[0] for i in images]
        pd.DataFrame({"image": images, "label": labels}).to_csv(root / f"{split}.csv", index=False)


def test_same_path_and_same_content_are_found_with_their_rows(tmp_path):
    _dataset(tmp_path, ["a_1.png", "b_2.png", "c_3.png"], ["b_9.png", "a_1.png", "copy/b_2.png", "c_4.png"])
    query, gallery = read_split(tmp_path, "query"), read_split(tmp_path, "gallery")
    found = [(m.query_row, m.gallery_row, m.reason) for m in find_self_matches(tmp_path, query, gallery)]
    assert found == [(0, 1, "same path"), (1, 2, "same content")]


def test_a_query_in_the_gallery_stops_the_first_stage_naming_both_rows(tmp_path):
    src = tmp_path / "src"
    _dataset(src, ["a_1.png", "b_2.png"], ["c_5.png", "x/b_2.png"])
    with pytest.raises(DataError) as caught:
        denoise_dataset(src, tmp_path / "out", DenoiseConfig(workers=1))
    message = str(caught.value)
    assert f"{src / 'query.csv'}: line 3 ('b_2.png') and {src / 'gallery.csv'}: line 3 ('x/b_2.png')" in message
    assert "same content" in message and "dataset.self_matches: exclude" in message
    assert not (tmp_path / "out").exists()


def test_excluded_self_matches_are_recorded_and_leave_the_ranking_and_the_scores(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    _dataset(src, ["a_1.png", "b_2.png"], ["a_1.png", "b_7.png", "a_8.png", "c_6.png"])
    denoise_dataset(src, out, DenoiseConfig(workers=1), self_matches="exclude")
    table = read_self_matches(out)
    assert table.values.tolist() == [["a_1.png", "a_1.png", "same path"]]
    query, gallery = read_split(out, "query"), read_split(out, "gallery")
    pairs = self_match_pairs(table, query["image"], gallery["image"])
    assert pairs.tolist() == [[0, 0]]
    # q0 ranks itself first, then b_7 (wrong), a_8 (right); q1 ranks b_7 first.
    lists = CandidateLists(np.array([[0, 1, 2, 3], [1, 0, 2, 3]]), np.array([[0.0, 0.2, 0.3, 0.9], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32))
    cfg = EvaluateConfig(k=2, cmc_ranks=(1, 2))
    with_self = score_lists(lists, Truth(query, gallery), cfg)
    without = score_lists(lists, Truth(query, gallery, excluded=pairs), cfg)
    # With it, q0's AP@2 is 1/2 (a_1 hit, b_7 miss, 2 relevant) and q1's is 1.
    assert with_self["top1"] == 1.0 and with_self["map@2"] == pytest.approx(0.75) and with_self["cmc@1"] == 1.0
    # Without its own image q0 finds a_8 at rank 2 (AP@2 = 0.5 over its one relevant item); q1: 1.
    assert without["top1"] == 0.5 and without["map@2"] == pytest.approx(0.75)
    assert without["cmc@1"] == 0.5 and without["cmc@2"] == 1.0


def test_candidate_lists_without_pairs_keep_order_and_equal_length():
    lists = CandidateLists(np.array([[3, 1, 0], [0, 2, 1]]), np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=np.float32))
    cut = lists.without(np.array([[0, 1]]))
    np.testing.assert_array_equal(cut.indices, [[3, 0], [0, 2]])
    np.testing.assert_allclose(cut.values, [[0.1, 0.3], [0.4, 0.5]])
    assert lists.without(np.zeros((0, 2))) is lists


def test_the_submit_stage_leaves_each_querys_own_image_out_of_its_line(tmp_path, monkeypatch):
    import importlib.util

    from pipeline.retrieval.candidates import save_candidate_sets
    from pipeline.data.layout import write_split

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "denoise: {out: denoised}\npreprocess: {out: cache}\nfuse: {out: fused.npz}\nsubmit: {out: submission.csv, length: 2}\n"
    )
    for folder in ("denoised", "cache"):
        write_split(folder, "query", pd.DataFrame({"image": ["a_1.png", "b_2.png"]}))
        write_split(folder, "gallery", pd.DataFrame({"image": ["a_1.png", "b_7.png", "a_8.png"]}))
    pd.DataFrame({"query": ["a_1.png"], "gallery": ["a_1.png"], "reason": ["same path"]}).to_csv("denoised/self_matches.csv", index=False)
    ranked = np.array([[0, 1, 2], [1, 0, 2]])
    save_candidate_sets("fused.npz", {"fused": CandidateLists(ranked, np.tile(np.float32([0.0, 0.5, 0.6]), (2, 1)))})
    spec = importlib.util.spec_from_file_location("submit_stage", Path(__file__).resolve().parents[1] / "stages/submit.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    stage.main([])
    assert (tmp_path / "submission.csv").read_text().splitlines() == ["a_1.png,{b_7.png,a_8.png}", "b_2.png,{b_7.png,a_1.png}"]
