"""Cross-batch memory (Wang et al. 2020, XBM): pytorch-metric-learning's CrossBatchMemory
with a start iteration, which PML lacks: early features drift too fast to be useful
negatives, so before ``start_iteration`` there is no memory loss and nothing is enqueued.
An optional ``stop_iteration`` switches it off again (the DIGIX 2020 second-place team found
XBM helped only when off for the last part of training): from there on the loss is zero and
the memory is emptied, once, so no stale entries are kept or checkpointed.

The memory loss is the batch-hard triplet loss, mined over the memory (which holds the
current batch as well, minus each anchor's own entry).
"""

from __future__ import annotations

from typing import Any

from pytorch_metric_learning.losses import CrossBatchMemory
from torch import Tensor, nn

from pipeline.losses.triplet import batch_hard_parts


class XBMLoss(nn.Module):
    def __init__(
        self,
        feature_dim: int,
        memory_size: int = 1024,
        start_iteration: int = 0,
        margin: float = 0.3,
        normalize: bool = False,
        stop_iteration: int | None = None,
    ) -> None:
        super().__init__()
        loss, miner = batch_hard_parts(margin, normalize)
        self.memory = CrossBatchMemory(loss, embedding_size=feature_dim, memory_size=memory_size, miner=miner)
        if stop_iteration is not None and stop_iteration <= start_iteration:
            raise ValueError(f"XBM stop_iteration ({stop_iteration}) must come after start_iteration ({start_iteration})")
        self.start_iteration = start_iteration
        self.stop_iteration = stop_iteration

    def active(self, iteration: int) -> bool:
        return iteration >= self.start_iteration and (self.stop_iteration is None or iteration < self.stop_iteration)

    def forward(self, features: Tensor, labels: Tensor, iteration: int) -> Tensor:
        if not self.active(iteration):
            if iteration >= self.start_iteration and (self.memory.queue_idx or self.memory.has_been_filled):
                self.memory.reset_queue()  # at the stop: drop the memory (zeroed, queue at 0)
            return features.sum() * 0.0  # zero that keeps the graph connected
        if len(features) > self.memory.memory_size:
            raise ValueError(f"xbm_size={self.memory.memory_size} is smaller than the batch ({len(features)})")
        return self.memory(features, labels)

    # The ring buffer's position is plain Python state, outside the state dict's buffers:
    # carried here so a resumed run continues the same memory.
    def get_extra_state(self) -> dict[str, Any]:
        return {"queue_idx": int(self.memory.queue_idx), "has_been_filled": bool(self.memory.has_been_filled)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.memory.queue_idx = int(state["queue_idx"])
        self.memory.has_been_filled = bool(state["has_been_filled"])
