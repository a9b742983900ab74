"""Make ``import timm`` work on a CPU-only torch next to a CUDA torchvision wheel.

With ``torch==2.13.0`` pinned, pip resolves ``torchvision==0.28.0``, a CUDA build whose C
extension cannot load on the CPU build of torch. Its ``_meta_registrations`` module then
fails on import with ``operator torchvision::nms does not exist``, and timm imports
torchvision at import time. This project uses no torchvision operator, so declaring the two
schemas that module registers fake kernels for (``nms`` and ``qnms``) is enough for the
import to succeed. On a machine whose torchvision loads (a GPU box) this does nothing.
"""

from __future__ import annotations

import sys
import types

import torch

_FALLBACK_LIBRARIES: list[torch.library.Library] = []  # keep the definitions alive


def ensure_torchvision_importable() -> None:
    """Import torchvision, declaring its missing operator schemas first if needed."""
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # drop the half-imported package before trying again
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _FALLBACK_LIBRARIES.append(library)
    import torchvision  # noqa: F401


def import_timm() -> types.ModuleType:
    """Return the timm module, importable on CPU-only machines (see module docstring)."""
    ensure_torchvision_importable()
    import timm

    return timm
