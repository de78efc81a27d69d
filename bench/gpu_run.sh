#!/usr/bin/env bash
# The GPU benchmark in one command on the device machine (Python 3.12, no package registry):
# install the kit that travelled in .whl/ (bench/gpu_kit.py gather made it on the CPU machine),
# check the imports, run bench/gpu_bench.py within its time budget, results in $OUT.
#
#   device run, carry [".whl"], timeout_s 600:   bash bench/gpu_run.sh
#   on the CPU machine, the proof (a kit for its Python 3.11 installed the same way, in front of a
#   venv that plays the GPU image):
#     python bench/gpu_kit.py gather --dir /tmp/kit311 --python 3.11
#     KIT=/tmp/kit311 SITE=/tmp/site311 PYTHON=.venv/bin/python DEVICE=cpu SIZE=tiny bash bench/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_out}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"
if [ -z "${SKIP_INSTALL:-}" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${KIT:-.whl}"/*.whl
  export PYTHONPATH="$SITE:$PWD:$PWD/server:$PWD/client${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD:$PWD/server:$PWD/client${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
"$PYTHON" - <<'PY' 2>&1 | tee "$OUT/imports.txt"
import importlib, sys
for name in ("torch", "TTS.tts.models.vits", "synth", "synth.engines.coqui", "synth_server", "synth_client",
             "soundfile", "soxr", "quicktok", "grpc_health.v1", "grpc_reflection.v1alpha"):
    importlib.import_module(name)
import torch, TTS, soxr, quicktok
print("imports ok; python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())
print("from the kit:", TTS.__file__, soxr.__file__, quicktok.__file__)
PY
if [ "${DEVICE:-cuda}" = cuda ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true; fi
"$PYTHON" bench/gpu_bench.py --device "${DEVICE:-cuda}" --size "${SIZE:-vctk}" --out "$OUT" \
  --budget-sec "${BUDGET:-420}" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/log.txt"
