"""PK batch sampling for metric learning: P identities x K images per batch.

Hand-written rather than taken from pytorch-metric-learning's ``MPerClassSampler``
because that one samples every identity with replacement, cannot guarantee that every
identity is visited each epoch, and has no per-rank split or resumable state.

Each epoch is a pure function of ``(seed, epoch)``: resuming a killed run only needs the
epoch number, and every rank of a distributed run computes the same global batch list and
takes its own share of it. Each sample comes with an augmentation seed drawn from the same
generator, so augmentation does not depend on the number of loader workers either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

from pipeline.core.errors import DataError

log = logging.getLogger(__name__)

Batch = list[tuple[int, int]]  # (dataset index, augmentation seed) per sample


class PKBatchSampler:
    """Batches of ``p`` distinct identities x ``k`` images, for ``DataLoader(batch_sampler=...)``.

    Per epoch every identity's images are shuffled and cut into chunks of ``k`` (the last,
    incomplete chunk is left out this epoch, a different one next epoch); an identity with
    fewer than ``k`` images gives one chunk of all of them topped up by drawing from them with
    replacement. Chunks are dealt into batches of ``p`` distinct identities, the
    identities with the most chunks left first; when fewer than ``p`` identities have chunks
    left, the batch is filled with fresh chunks of other identities. So every identity
    appears in every epoch. The batches are then shuffled.

    ``max_per_identity`` undersamples the head of a long-tailed set (two-stage long-tail
    training, DIGIX 2020 third place): each epoch an identity with more images uses a fresh
    random subset of that many, so the biggest identities stop dominating the batches.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        p: int,
        k: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_per_identity: int | None = None,
    ) -> None:
        labels = np.asarray(labels)
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be positive, got p={p}, k={k}")
        if max_per_identity is not None and max_per_identity < k:
            raise ValueError(f"max_per_identity must be at least k={k}, got {max_per_identity}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        identities, inverse = np.unique(labels, return_inverse=True)
        if len(identities) < p:
            raise DataError(
                f"PK sampling needs at least p={p} identities in the training split, got {len(identities)}"
            )
        self.p, self.k, self.max_per_identity = p, k, max_per_identity
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, world_size
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self._members = np.split(order, bounds)  # dataset indices of each identity
        short = sum(len(m) < k for m in self._members)
        if short:
            log.warning(
                "PK sampling: %d of %d identities have fewer than k=%d images, so their images repeat "
                "within a batch (a repeat adds no new positive pair); a k of about the typical images per "
                "identity (2 for person sets) avoids this", short, len(self._members), k,
            )
        self._cached: tuple[int, int, list[Batch]] | None = None
        if len(self.global_batches(0)) < world_size:
            raise DataError(f"one epoch has fewer batches than the {world_size} ranks")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def _chunk(self, rng: np.random.Generator, members: np.ndarray) -> list[np.ndarray]:
        shuffled = rng.permutation(members)
        if self.max_per_identity is not None:
            shuffled = shuffled[: self.max_per_identity]  # a fresh random subset every epoch
        if len(shuffled) < self.k:  # the only case drawn with replacement
            extra = rng.choice(shuffled, size=self.k - len(shuffled), replace=True)
            return [np.concatenate([shuffled, extra])]
        return [shuffled[i * self.k : (i + 1) * self.k] for i in range(len(shuffled) // self.k)]

    def global_batches(self, epoch: int) -> list[Batch]:
        """The batches of all ranks for ``epoch``; deterministic in ``(seed, epoch)``."""
        rng = np.random.default_rng([self.seed, epoch])
        chunks = [self._chunk(rng, m) for m in self._members]
        left = np.array([len(c) for c in chunks])
        batches: list[Batch] = []
        while left.any():
            # most chunks left first (ties broken at random) gives the fewest batches possible,
            # max(ceil(chunks / p), most chunks of one identity): few top-ups are needed
            tie_break = rng.permutation(len(left))
            order = tie_break[np.argsort(-left[tie_break], kind="stable")]
            take = min(self.p, int(np.count_nonzero(left)))
            chosen = order[:take]
            picked = [chunks[i][len(chunks[i]) - left[i]] for i in chosen]
            left[chosen] -= 1
            if take < self.p:  # top up with other identities, fresh chunks
                others = np.setdiff1d(np.arange(len(chunks)), chosen)
                for i in rng.choice(others, size=self.p - take, replace=False):
                    picked.append(self._chunk(rng, self._members[i])[0])
            indices = np.concatenate(picked)
            seeds = rng.integers(0, 2**31 - 1, size=len(indices))
            batches.append([(int(i), int(s)) for i, s in zip(indices, seeds)])
        return [batches[i] for i in rng.permutation(len(batches))]  # big identities not all first

    def _rank_batches(self) -> list[Batch]:
        if self._cached is None or self._cached[:2] != (self.seed, self.epoch):
            self._cached = (self.seed, self.epoch, self.global_batches(self.epoch))
        batches = self._cached[2]
        per_rank = len(batches) // self.world_size  # equal step counts keep DDP in lockstep
        return batches[self.rank : per_rank * self.world_size : self.world_size]

    def __iter__(self) -> Iterator[Batch]:
        return iter(self._rank_batches())

    def __len__(self) -> int:
        return len(self._rank_batches())
