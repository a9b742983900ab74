"""extract[model]: TTA features of one model's fold ensemble on the test set, plus each fold
model's features of its own held-out identities (out-of-fold, for tuning the fusion).

On the CPU (``extract.engine: auto``) each fold model is first exported to
<export.out>/<model>/fold<f>.onnx, checked against PyTorch, and run by onnxruntime."""

from __future__ import annotations

from pipeline.chain import extract
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.params import StageParams


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model name from train.models")
    args = parser.parse_args(argv)
    extract.run(StageParams(args.params), args.model)


if __name__ == "__main__":
    run_stage(main)
