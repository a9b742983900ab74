import math

import numpy as np
import pytest
import torch

from pipeline.losses import XBMLoss


def _batches(count: int, size: int = 2, dim: int = 3, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    for b in range(count):
        x = torch.randn(size, dim, generator=generator, dtype=dtype)
        labels = torch.tensor([(b + i) % 3 for i in range(size)])
        yield x, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ring_buffer_wraps_like_a_hand_tracked_buffer(dtype):
    xbm = XBMLoss(feature_dim=3, memory_size=5)
    slots: list = [None] * 5
    position = 0
    for b, (x, labels) in enumerate(_batches(4, dtype=dtype)):
        xbm(x, labels, iteration=b)
        for row, label in zip(x, labels):
            slots[position] = (row, int(label))
            position = (position + 1) % 5
        assert xbm.memory.queue_idx == position
        assert xbm.memory.has_been_filled == ((b + 1) * 2 >= 5)
        for k, slot in enumerate(slots):
            if slot is not None:
                row, label = slot
                assert torch.equal(xbm.memory.embedding_memory[k], row)
                assert int(xbm.memory.label_memory[k]) == label
    # 8 rows through 5 slots: rows 5..7 overwrote slots 0..2
    assert position == 3


def _brute_memory_loss(
    x: np.ndarray, y: np.ndarray, mem: np.ndarray, mem_y: np.ndarray, own: list[int], margin: float
) -> float:
    losses = []
    for i in range(len(x)):
        pos = [np.linalg.norm(x[i] - mem[j]) for j in range(len(mem)) if mem_y[j] == y[i] and j != own[i]]
        neg = [np.linalg.norm(x[i] - mem[j]) for j in range(len(mem)) if mem_y[j] != y[i]]
        if pos and neg:
            losses.append(max(0.0, max(pos) - min(neg) + margin))
    return float(np.mean(losses))


def test_memory_loss_is_batch_hard_over_the_memory_without_self_pairs():
    xbm = XBMLoss(feature_dim=3, memory_size=6, margin=0.3)
    batches = list(_batches(3, size=3, dtype=torch.float64))
    for b, (x, labels) in enumerate(batches[:2]):
        xbm(x, labels, iteration=b)
    x, labels = batches[2]
    got = float(xbm(x, labels, iteration=2))
    # after the third enqueue the memory holds exactly batches 1 and 2 (slots 0..2 = batch 2)
    mem = torch.cat([batches[2][0], batches[1][0]]).numpy()
    mem_y = torch.cat([batches[2][1], batches[1][1]]).numpy()
    expected = _brute_memory_loss(x.numpy(), labels.numpy(), mem, mem_y, own=[0, 1, 2], margin=0.3)
    assert math.isclose(got, expected, rel_tol=1e-9)


def test_nothing_happens_before_the_start_iteration():
    xbm = XBMLoss(feature_dim=3, memory_size=5, start_iteration=2)
    for b, (x, labels) in enumerate(_batches(3)):
        x.requires_grad_(True)
        loss = xbm(x, labels, iteration=b)
        if b < 2:
            assert float(loss.detach()) == 0.0 and loss.requires_grad
            assert xbm.memory.queue_idx == 0 and not xbm.memory.embedding_memory.any()
    assert xbm.memory.queue_idx == 2


def test_memory_position_survives_a_state_dict_round_trip():
    xbm = XBMLoss(feature_dim=3, memory_size=5)
    for b, (x, labels) in enumerate(_batches(3)):
        xbm(x, labels, iteration=b)
    restored = XBMLoss(feature_dim=3, memory_size=5)
    restored.load_state_dict(xbm.state_dict())
    assert restored.memory.queue_idx == 1 and restored.memory.has_been_filled
    assert torch.equal(restored.memory.embedding_memory, xbm.memory.embedding_memory)


def test_batch_larger_than_memory_is_a_clear_error():
    x, labels = next(_batches(1, size=6))
    with pytest.raises(ValueError, match="xbm_size=5"):
        XBMLoss(feature_dim=3, memory_size=5)(x, labels, iteration=0)


def test_memory_is_dropped_at_the_stop_and_the_loss_is_zero_outside_the_window():
    xbm = XBMLoss(feature_dim=3, memory_size=5, start_iteration=1, stop_iteration=3)
    losses = [float(xbm(x, labels, iteration=b).detach()) for b, (x, labels) in enumerate(_batches(5))]
    assert losses[0] == 0.0 and losses[3] == losses[4] == 0.0
    assert losses[1] > 0.0 or losses[2] > 0.0  # on inside the window (4 rows of 3 identities)
    assert xbm.memory.queue_idx == 0 and not xbm.memory.has_been_filled
    assert not xbm.memory.embedding_memory.any()


def test_a_run_resumed_across_the_stop_equals_an_uninterrupted_one():
    def make() -> XBMLoss:
        return XBMLoss(feature_dim=3, memory_size=5, start_iteration=1, stop_iteration=4)

    batches = list(_batches(6))
    whole, first = make(), make()
    whole_losses = [float(whole(x, y, iteration=b)) for b, (x, y) in enumerate(batches)]
    first_losses = [float(first(x, y, iteration=b)) for b, (x, y) in enumerate(batches[:3])]
    resumed = make()
    resumed.load_state_dict(first.state_dict())  # killed after iteration 2, before the stop
    snapshots = []
    for b, (x, y) in enumerate(batches[3:], start=3):
        first_losses.append(float(resumed(x, y, iteration=b)))
        snapshots.append(resumed.state_dict())
    assert first_losses == whole_losses
    final = whole.state_dict()
    assert final.keys() == snapshots[-1].keys()
    for key, value in final.items():
        assert value == snapshots[-1][key] if not isinstance(value, torch.Tensor) else torch.equal(value, snapshots[-1][key])


def test_a_stop_before_the_start_is_refused():
    with pytest.raises(ValueError, match="stop_iteration"):
        XBMLoss(feature_dim=3, start_iteration=5, stop_iteration=5)
