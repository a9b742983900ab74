"""PK sampler: batch structure, replacement rule, coverage, per-rank split, state."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest

from pipeline.data.samplers import PKBatchSampler
from pipeline.core.errors import DataError

# identity i has SIZES[i] images; identities 0 and 1 have fewer than K=4
SIZES = [1, 3, 4, 5, 8, 4, 6, 9, 4, 7, 12, 4]
LABELS = np.repeat(np.arange(len(SIZES)), SIZES)
rng = np.random.default_rng(0)
LABELS = LABELS[rng.permutation(len(LABELS))]  # identities interleaved in the dataset
P, K = 3, 4


def indices(batch):
    return np.array([i for i, _ in batch])


def test_batches_hold_p_identities_times_k_own_images():
    sampler = PKBatchSampler(LABELS, P, K, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        idx = indices(batch)
        assert len(idx) == P * K
        groups = idx.reshape(P, K)
        ids = [set(LABELS[g]) for g in groups]
        assert all(len(s) == 1 for s in ids)  # each chunk is one identity
        assert len({s.pop() for s in ids}) == P  # P distinct identities


def test_replacement_only_below_k_and_small_identities_use_all_images():
    sizes = dict(enumerate(SIZES))
    for epoch in range(5):
        sampler = PKBatchSampler(LABELS, P, K, seed=3)
        sampler.set_epoch(epoch)
        for batch in sampler:
            for chunk in indices(batch).reshape(P, K):
                identity = LABELS[chunk[0]]
                distinct = len(set(chunk))
                if sizes[identity] >= K:
                    assert distinct == K
                else:
                    assert distinct == sizes[identity]  # all its images, topped up


def test_every_identity_every_epoch_and_most_images():
    for epoch in range(4):
        sampler = PKBatchSampler(LABELS, P, K, seed=7)
        sampler.set_epoch(epoch)
        seen = np.concatenate([indices(b) for b in sampler])
        assert set(LABELS[seen]) == set(range(len(SIZES)))
        # identity i gives max(1, n_i // K) chunks; P distinct identities per batch need at
        # least max(ceil(chunks / P), most chunks of one identity) batches, and no more are made
        chunks = [max(1, n // K) for n in SIZES]
        assert len(seen) == max(-(-sum(chunks) // P), max(chunks)) * P * K


def test_epochs_differ_and_state_restores_the_same_batches():
    sampler = PKBatchSampler(LABELS, P, K, seed=5)
    sampler.set_epoch(2)
    state = sampler.state_dict()
    first = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) != first
    restored = PKBatchSampler(LABELS, P, K, seed=0)
    restored.load_state_dict(state)
    assert list(restored) == first  # indices and augmentation seeds


def test_ranks_take_disjoint_shares_of_the_global_batches():
    world = 2
    ranks = [PKBatchSampler(LABELS, P, K, seed=9, rank=r, world_size=world) for r in range(world)]
    for sampler in ranks:
        sampler.set_epoch(1)
    shares = [list(s) for s in ranks]
    assert len(shares[0]) == len(shares[1]) > 0  # equal step counts keep DDP in lockstep
    global_batches = ranks[0].global_batches(1)
    taken = Counter()
    for share in shares:
        for batch in share:
            taken[global_batches.index(batch)] += 1
    assert max(taken.values()) == 1  # no global batch goes to two ranks
    assert sorted(taken) == list(range(world * len(shares[0])))


def test_too_few_identities_is_a_data_error():
    with pytest.raises(DataError, match="at least p=20 identities"):
        PKBatchSampler(LABELS, 20, K)


def test_identities_with_fewer_than_k_images_are_warned_about_once(caplog):
    labels = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3]  # identities 1 and 2 have 2 < k=4 images
    with caplog.at_level(logging.WARNING, logger="pipeline.data.samplers"):
        PKBatchSampler(labels, p=2, k=4)
    assert caplog.text.count("2 of 4 identities have fewer than k=4 images") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline.data.samplers"):
        PKBatchSampler(labels, p=2, k=2)
    assert caplog.text == ""


def test_max_per_identity_undersamples_big_identities_with_a_fresh_subset_each_epoch():
    labels = np.array([0] * 40 + [1] * 8 + [2] * 6 + [3] * 4)
    sampler = PKBatchSampler(labels, p=2, k=2, seed=0, max_per_identity=8)
    subsets = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        seen: dict[int, set[int]] = {}
        for batch in sampler:
            for index, _ in batch:
                seen.setdefault(int(labels[index]), set()).add(index)
        # identity 0 gives 8 of its 40 images (top-ups may add one fresh chunk of 2)
        assert 8 <= len(seen[0]) <= 10
        assert (len(seen[1]), len(seen[2]), len(seen[3])) == (8, 6, 4)  # small identities keep all
        subsets.append(frozenset(seen[0]))
    assert len(set(subsets)) == 3
    with pytest.raises(ValueError, match="at least k"):
        PKBatchSampler(labels, p=2, k=4, max_per_identity=3)
