#!/usr/bin/env bash
# GPU check for sftlab: one script, one H100/H200, a fresh machine, under 9 minutes.
#
#   bench/gpu_check.sh [--out DIR]         install, GPU tests, training comparison, estimate --measure
#   bench/gpu_check.sh --dry-run [--out D]  CPU only, in the current venv: the same Python with a tiny
#                                           model (argument parsing, config, path selection, real tiny
#                                           runs, the JSON and Markdown writers); CI runs this
#
# Stages, each time-boxed so that one slow stage cannot take the others' time:
#   1. environment (bench/.venv-gpu): `make venv` (torch $TORCH_VERSION: PyPI's Linux wheel is the CUDA
#      build; set TORCH_INDEX for another), the gpu extra (bitsandbytes, liger-kernel), trl, and flash-attn
#      where a prebuilt wheel exists for this torch (a source build is cut off; FlexAttention is then the path)
#   2. GPU-marked tests: packed == unpacked on flash varlen and FlexAttention, QLoRA trains and saves,
#      Liger loss == reference loss, fused AdamW step == unfused
#   3. bench/gpu_bench.py: TRL default / TRL best / sftlab, full and LoRA, at 2048 tokens, bf16, a ~0.5B
#      Llama-style model with random weights, then `sftlab estimate --measure` for 3 configurations
# Output: $OUT/gpu_bench.json and $OUT/gpu_bench.md (the table for BENCHMARKS.md), $OUT/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=bench/out/gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="${2:?--out needs a folder}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1' (use --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"

if [ "$DRY" = 1 ]; then
  PY="${PYTHON:-.venv/bin/python}"
  exec "$PY" bench/gpu_bench.py --dry-run --out "$OUT"
fi

command -v nvidia-smi >/dev/null || { echo "gpu_check.sh: no nvidia-smi: this needs a CUDA GPU (or --dry-run)" >&2; exit 2; }
VENV="${GPU_VENV:-bench/.venv-gpu}"
PY="$VENV/bin/python"
STAGES="$OUT/stages.json"
echo "{}" > "$STAGES"
stage_done() {  # name, started-at: record the stage's seconds in stages.json
  python3 - "$STAGES" "$1" "$(( $(date +%s) - $2 ))" <<'EOF'
import json, sys
path, name, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = json.load(open(path)); data[name] = secs; json.dump(data, open(path, "w"))
EOF
}

# 1. environment
t=$(date +%s)
timeout 150 make venv VENV="$VENV" > "$OUT/install.log" 2>&1
timeout 60 "$PY" -m pip install -q -e ".[dev,gpu]" trl >> "$OUT/install.log" 2>&1
if MAX_JOBS=8 timeout 45 "$PY" -m pip install -q flash-attn --no-build-isolation >> "$OUT/install.log" 2>&1 \
   && "$PY" -c "import flash_attn" 2>/dev/null; then
  echo "flash-attn: installed"
else  # no prebuilt wheel for this torch/CUDA: never leave a half-built package behind
  "$PY" -m pip uninstall -y -q flash-attn >/dev/null 2>&1 || true
  echo "flash-attn: no wheel for this torch; packed rows use FlexAttention"
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch has no CUDA here'; print(torch.__version__, torch.cuda.get_device_name())"
stage_done install "$t"

# 2. GPU-marked tests (the suite's gpu mark: kernels here, QLoRA in test_train_methods.py)
t=$(date +%s)
timeout 90 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml "$OUT/gpu_tests.xml" \
  tests/test_gpu_kernels.py tests/test_train_methods.py > "$OUT/gpu_tests.log" 2>&1 || echo "GPU tests: failures, see $OUT/gpu_tests.log"
stage_done gpu_tests "$t"

# 3. training comparison and estimate --measure
t=$(date +%s)
status=0
timeout 240 "$PY" bench/gpu_bench.py --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log" || status=$?
stage_done bench "$t"
"$PY" -c "import sys, json; sys.path.insert(0, 'bench'); from gpu_report import write_reports; from pathlib import Path; \
p = Path('$OUT'); r = json.loads((p / 'gpu_bench.json').read_text()); write_reports(r, p)" 2>/dev/null || true
cat "$OUT/gpu_bench.md" 2>/dev/null || true
exit "$status"
