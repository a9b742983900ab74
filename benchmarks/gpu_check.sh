#!/usr/bin/env bash
# The prepared GPU check (issue 12): the GPU tests (tests/gpu, marker `gpu`) and the GPU
# benchmarks (benchmarks/gpu_check_bench.py) in one command of at most 8 minutes.
#
# On a CUDA machine, from the repository root, with the packages it lacks carried as wheels
# in .whl/ (fetch them here first: python tools/gpu_wheels.py --download .whl):
#     bash benchmarks/gpu_check.sh
# On a CPU machine, to check the script itself (GPU tests skip, benchmarks at tiny sizes):
#     bash benchmarks/gpu_check.sh --dry-run
#
# Writes under $OUT (default ./gpu_check_out): gpu_check.md (the summary to record in
# benchmarks/results/gpu_check.md), gpu_check_bench.md, gpu_tests.log, gpu_bench.log, env.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=""
[[ "${1:-}" == "--dry-run" ]] && DRY="--dry-run --in-process"
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
started=$(date +%s)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

{ if command -v nvidia-smi >/dev/null; then nvidia-smi -L; else echo "no nvidia-smi (no GPU)"; fi; "$PY" --version; "$PY" -m pip list 2>/dev/null; } >"$OUT/env.txt"

# 1. GPU tests (about 2 minutes on an H200; cut at 200 s so the benchmarks keep their share)
timeout 200 "$PY" -m pytest -m gpu -p no:cacheprovider -q -rA tests/gpu 2>&1 | tee "$OUT/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}

# 2. GPU benchmarks, each item in its own process, started only while the time left of the
#    7.5 minutes lasts (the last one is cut at that limit too)
budget=$(( 450 - ($(date +%s) - started) ))
timeout $(( budget + 20 )) "$PY" benchmarks/gpu_check_bench.py $DRY --budget "$budget" --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}

elapsed=$(( $(date +%s) - started ))
{
    echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Command: \`bash benchmarks/gpu_check.sh${1:+ $1}\`; ${elapsed} s in all; $(head -n 1 "$OUT/env.txt")."
    echo
    echo "## GPU tests (exit status ${tests_rc})"
    echo
    echo '```'
    grep -E '^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed|skipped|error' "$OUT/gpu_tests.log" | tail -n 60
    echo '```'
    echo
    echo "## GPU benchmarks (exit status ${bench_rc})"
    echo
    if [[ -f "$OUT/gpu_check_bench.md" ]]; then tail -n +2 "$OUT/gpu_check_bench.md"; else echo "no results: see gpu_bench.log"; fi
} >"$OUT/gpu_check.md"
echo "gpu_check: ${elapsed} s; tests exit ${tests_rc}, benchmarks exit ${bench_rc}; summary in $OUT/gpu_check.md"
exit $(( tests_rc != 0 || bench_rc != 0 ))
