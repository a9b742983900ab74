"""Re-id metrics (CMC, mAP, mINP, camera filtering), TAR@FAR and centroids against known answers."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline.evaluate.reid as reid_module
from pipeline.core.errors import DataError
from pipeline.evaluate.metrics import competition_scores
from pipeline.evaluate.reid import centroid_gallery, reid_metrics, reid_per_query, tar_at_far


def reference_per_query(dist, query_labels, gallery_labels, query_cams, gallery_cams, camera_filter):
    """Plain loops: stable sort by (distance, gallery index), drop junk, walk the list."""
    ap, inp, first = [], [], []
    for i, label in enumerate(query_labels):
        order = sorted(range(len(gallery_labels)), key=lambda j: (dist[i][j], j))
        if camera_filter:
            order = [j for j in order if not (gallery_labels[j] == label and gallery_cams[j] == query_cams[i])]
        hits, precisions, last, first_hit = 0, [], 0, 0
        for position, j in enumerate(order, start=1):
            if gallery_labels[j] == label:
                hits += 1
                precisions.append(hits / position)
                last = position
                first_hit = first_hit or position
        ap.append(sum(precisions) / hits if hits else np.nan)
        inp.append(hits / last if hits else np.nan)
        first.append(first_hit)
    return np.array(ap), np.array(inp), np.array(first)


def test_hand_computed_case() -> None:
    gallery = ["a", "b", "a", "c", "a"]
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    # q0 "a": order g0 g1 g2 g3 g4, matches at 1, 3, 5 -> AP = (1/1 + 2/3 + 3/5) / 3, INP = 3/5.
    # q1 "c": order g4 g3 ..., the match at 2 -> AP = 1/2, INP = 1/2.
    result = reid_metrics(dist, ["a", "c"], gallery, ranks=(1, 2, 5))
    assert result["mAP"] == pytest.approx(((1 + 2 / 3 + 3 / 5) / 3 + 1 / 2) / 2)
    assert result["mINP"] == pytest.approx((3 / 5 + 1 / 2) / 2)
    np.testing.assert_allclose(result["cmc"], [0.5, 1, 1, 1, 1])
    assert (result["cmc@1"], result["cmc@2"], result["cmc@5"]) == (0.5, 1.0, 1.0)
    assert (result["evaluated_queries"], result["skipped_queries"]) == (2, 0)


def test_camera_filter_hand_case() -> None:
    gallery = ["a", "b", "a", "c", "a"]
    cams = ["1", "2", "2", "1", "2"]
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1]])
    # q0 "a" cam 1: g0 (a, cam 1) is junk; list g1 g2 g3 g4 -> matches at 2 and 4:
    #   AP = (1/2 + 2/4) / 2 = 1/2, INP = 2/4, first match at rank 2.
    # q1 "c" cam 1: its only match g3 is on cam 1 -> removed -> query skipped.
    result = reid_metrics(dist, ["a", "c"], gallery, ["1", "1"], cams, ranks=(1, 2), camera_filter=True)
    assert result["mAP"] == pytest.approx(0.5)
    assert result["mINP"] == pytest.approx(0.5)
    assert (result["cmc@1"], result["cmc@2"]) == (0.0, 1.0)
    assert (result["evaluated_queries"], result["skipped_queries"]) == (1, 1)
    per_query = reid_per_query(dist, ["a", "c"], gallery, ["1", "1"], cams, camera_filter=True)
    assert np.isnan(per_query.ap[1]) and per_query.first_match_rank.tolist() == [2, 0]


def test_ties_break_by_gallery_index() -> None:
    # All distances equal: the order is g0 g1 g2, matches at 2 and 3 -> AP = (1/2 + 2/3) / 2.
    result = reid_metrics(np.zeros((1, 3)), ["a"], ["b", "a", "a"], ranks=(1,))
    assert result["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["cmc@1"] == 0.0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("camera_filter", [False, True])
def test_matches_brute_force_reference(seed: int, camera_filter: bool, monkeypatch) -> None:
    monkeypatch.setattr(reid_module, "_CHUNK_BYTES", 200)  # several chunks even on tiny inputs
    rng = np.random.default_rng(seed)
    n_query, n_gallery = 17, 23
    gallery = [str(v) for v in rng.integers(0, 6, n_gallery)]
    queries = [str(v) for v in rng.integers(0, 8, n_query)]  # labels 6, 7: no match
    gallery_cams, query_cams = rng.integers(0, 3, n_gallery), rng.integers(0, 3, n_query)
    if seed % 2:  # few distinct values: many ties
        dist = rng.integers(0, 4, (n_query, n_gallery)).astype(np.float32)
    else:
        dist = rng.standard_normal((n_query, n_gallery))
    ap, inp, first = reference_per_query(dist, queries, gallery, query_cams, gallery_cams, camera_filter)

    per_query = reid_per_query(dist, queries, gallery, query_cams, gallery_cams, camera_filter)
    np.testing.assert_allclose(per_query.ap, ap)
    np.testing.assert_allclose(per_query.inp, inp)
    np.testing.assert_array_equal(per_query.first_match_rank, first)

    result = reid_metrics(dist, queries, gallery, query_cams, gallery_cams, (1, 5, 10), camera_filter)
    evaluated = first > 0
    assert result["skipped_queries"] == int((~evaluated).sum())
    assert result["mAP"] == pytest.approx(np.mean(ap[evaluated]))
    assert result["mINP"] == pytest.approx(np.mean(inp[evaluated]))
    expected_cmc = [np.mean(first[evaluated] <= r) for r in range(1, 11)]
    np.testing.assert_allclose(result["cmc"], expected_cmc)
    assert result["cmc@5"] == pytest.approx(expected_cmc[4])


def test_bad_inputs_are_data_errors() -> None:
    with pytest.raises(DataError, match="gallery set is empty"):
        reid_metrics(np.zeros((1, 0)), ["a"], [], ranks=(1,))
    with pytest.raises(DataError, match="query set is empty"):
        reid_metrics(np.zeros((0, 2)), [], ["a", "b"], ranks=(1,))
    with pytest.raises(DataError, match="needs query and gallery cameras"):
        reid_metrics(np.zeros((1, 2)), ["a"], ["a", "b"], ranks=(1,), camera_filter=True)
    with pytest.raises(DataError, match="NaN in query row 1"):
        reid_metrics(np.array([[0.0, 1.0], [np.nan, 0.0]]), ["a", "a"], ["a", "b"], ranks=(1,))
    with pytest.raises(DataError, match="3 rows in the scores but 2 labels"):
        reid_metrics(np.zeros((1, 3)), ["a"], ["a", "b"], ranks=(1,))


def test_tar_at_far_hand_case() -> None:
    similarity = np.array([[0.9, 0.5, 0.3], [0.6, 0.4, 0.2]])
    # Genuine: 0.9 (q0-g0), 0.4 (q1-g1). Impostors: 0.6, 0.5, 0.3, 0.2 (4 pairs).
    # FAR 0.25 -> 1 impostor may pass -> threshold 0.5 (accept > 0.5) -> TAR 1/2.
    # FAR 0.5  -> 2 may pass -> threshold 0.3 -> TAR 2/2. FAR 0.1 -> none -> threshold 0.6 -> 1/2.
    expected = {"tar@far=0.1": 0.5, "tar@far=0.25": 0.5, "tar@far=0.5": 1.0}
    assert tar_at_far(similarity, ["a", "b"], ["a", "b", "c"], fars=(0.1, 0.25, 0.5)) == expected
    np.testing.assert_array_equal(similarity[:, 0], [0.9, 0.6])  # the caller's array is left alone
    distance = 1 - similarity
    assert tar_at_far(distance, ["a", "b"], ["a", "b", "c"], fars=(0.1, 0.25, 0.5), is_distance=True) == expected


@pytest.mark.parametrize("seed", range(4))
def test_tar_at_far_matches_threshold_sweep(seed: int, monkeypatch) -> None:
    monkeypatch.setattr(reid_module, "_CHUNK_BYTES", 300)
    rng = np.random.default_rng(seed)
    queries = [str(v) for v in rng.integers(0, 5, 20)]
    gallery = [str(v) for v in rng.integers(0, 5, 30)]
    similarity = rng.integers(0, 15, (20, 30)).astype(np.float64)  # ties on purpose
    genuine_mask = np.array(queries)[:, None] == np.array(gallery)[None, :]
    genuine, impostor = similarity[genuine_mask], similarity[~genuine_mask]
    fars = (0.01, 0.05, 0.2)
    result = tar_at_far(similarity, queries, gallery, fars=fars)
    for far in fars:
        # The lowest threshold (from all candidate values) whose FAR stays within the target.
        candidates = sorted({-np.inf, *similarity.ravel()})
        threshold = next(t for t in candidates if np.mean(impostor > t) <= far)
        assert result[f"tar@far={far:g}"] == pytest.approx(np.mean(genuine > threshold))


def test_tar_without_genuine_or_impostor_pairs_is_undefined_not_an_error() -> None:
    assert np.isnan(list(tar_at_far(np.zeros((1, 2)), ["z"], ["a", "b"], fars=(0.1,)).values())).all()
    assert np.isnan(list(tar_at_far(np.zeros((1, 2)), ["a"], ["a", "a"], fars=(0.1,)).values())).all()


def test_cmc_ranks_are_capped_to_a_small_gallery() -> None:
    # 3 gallery items, ranks 1/5/10: the match of q0 is at rank 2, of q1 at rank 3.
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    result = reid_metrics(dist, ["b", "c"], ["a", "b", "c"], ranks=(1, 5, 10))
    assert {k: v for k, v in result.items() if k.startswith("cmc@")} == {"cmc@1": 0.0, "cmc@3": 1.0}
    np.testing.assert_allclose(result["cmc"], [0.0, 0.5, 1.0])


def test_no_query_with_a_match_is_counted_not_an_error() -> None:
    result = reid_metrics(np.zeros((2, 2)), ["z", "y"], ["a", "b"], ranks=(1, 2))
    assert result["evaluated_queries"] == 0 and result["skipped_queries"] == 2
    assert result["cmc@1"] == 0.0 and result["cmc@2"] == 0.0
    assert np.isnan(result["mAP"]) and np.isnan(result["mINP"])
    # The competition metrics score such queries 0 and count them (their module docstring).
    assert competition_scores(np.array([[0, 1], [1, 0]]), ["z", "y"], ["a", "b"], k=2) == {
        "top1": 0.0, "map@2": 0.0, "score": 0.0, "queries_without_match": 2}


def test_excluded_self_pairs_are_junk_and_not_relevant() -> None:
    # q0 (label a) is gallery 0 itself; the other 'a' (gallery 2) is at rank 3, or rank 2
    # once gallery 0 is taken out.
    dist = np.array([[0.0, 0.5, 0.6, 0.9]])
    q, g = ["a"], ["a", "b", "a", "c"]
    self_pair = np.array([[0, 0]])
    plain = reid_metrics(dist, q, g, ranks=(1, 2))
    assert plain["cmc@1"] == 1.0 and plain["mAP"] == pytest.approx((1 + 2 / 3) / 2)
    excluded = reid_metrics(dist, q, g, ranks=(1, 2), exclude=self_pair)
    assert excluded["cmc@1"] == 0.0 and excluded["cmc@2"] == 1.0 and excluded["mAP"] == pytest.approx(0.5)
    # Competition AP@2 on the list without gallery 0: [1, 2] -> hit at rank 2, 1 relevant left.
    scores = competition_scores(np.array([[1, 2]]), q, g, k=2, exclude=self_pair)
    assert scores["top1"] == 0.0 and scores["map@2"] == pytest.approx(0.5)
    with pytest.raises(DataError, match="still lists its own image"):
        competition_scores(np.array([[0, 2]]), q, g, k=2, exclude=self_pair)


def test_centroid_gallery() -> None:
    features = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    centroids, ids = centroid_gallery(features, ["x", "y", "x", "w", "w"])
    assert ids.tolist() == ["w", "x", "y"]
    np.testing.assert_allclose(centroids, [[2**-0.5, 2**-0.5], [1, 0], [0, 1]], rtol=1e-6)
    assert centroids.dtype == np.float32
    with pytest.raises(DataError, match="'x' has a zero mean"):
        centroid_gallery(np.array([[1.0, 0.0], [-1.0, 0.0]]), ["x", "x"])


def test_tar_at_far_leaves_excluded_self_pairs_out() -> None:
    # q0's own image (gallery 0) scores 1.0; without it, the genuine pair is q0-g2 at 0.4 and
    # the impostors are 0.5 (g1) and 0.3 (g3): at FAR 0.5 one may pass -> threshold 0.3 -> TAR 1.
    similarity = np.array([[1.0, 0.5, 0.4, 0.3]])
    labels = (["a"], ["a", "b", "a", "c"])
    assert tar_at_far(similarity, *labels, fars=(0.1, 0.5)) == {"tar@far=0.1": 0.5, "tar@far=0.5": 1.0}
    # Without g0: FAR 0.1 of 2 impostors lets none pass -> threshold 0.5 -> the 0.4 pair fails.
    assert tar_at_far(similarity, *labels, fars=(0.1, 0.5), exclude=np.array([[0, 0]])) == {
        "tar@far=0.1": 0.0, "tar@far=0.5": 1.0}
