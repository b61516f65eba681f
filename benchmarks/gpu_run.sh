#!/usr/bin/env bash
# One prepared GPU run of both benchmarks, for a borrowed machine: checks the environment, installs what is missing
# from the wheels in .whl/ (no network there), then runs the training and the sampling benchmark under one time
# budget, writing log.txt, train_throughput.{json,md} and sample_throughput.{json,md} to $OUT.
#
#   bash benchmarks/gpu_run.sh                   # on the GPU machine; OUT defaults to runs/gpu
#   TOTAL=300 TRAIN=150 bash benchmarks/gpu_run.sh   # a shorter budget (seconds)
#   DEVICE=cpu TRAIN_ARGS=--quick SAMPLE_ARGS=--quick bash benchmarks/gpu_run.sh   # a dry run of this script on a CPU
#   SAMPLE=0 TRAIN_ARGS='--batch 128 --profile compiled' bash benchmarks/gpu_run.sh  # training only, with profiles
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
TOTAL=${TOTAL:-480}          # seconds for everything
TRAIN=${TRAIN:-265}          # of which the training benchmark gets this much; sampling gets the rest
mkdir -p "$OUT"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

{
echo "== environment ($(date -u +%FT%TZ))"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv 2>&1 || echo 'nvidia-smi: not available'
python3 -c 'import torch; print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())'
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the package from this checkout, no pip install needed
missing=$(python3 - <<'EOF'
import importlib.util
print(' '.join(m for m in ('diffusers', 'fastcore') if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "missing: $missing; installing the wheels in .whl/: $(ls .whl 2>/dev/null | tr '\n' ' ')"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" || echo 'wheel install FAILED'
fi
python3 -c 'import diffusers, fastcore, butterfly_diffusion as bd; from butterfly_diffusion import guidance, training; print("butterfly_diffusion", bd.__version__, "| diffusers", diffusers.__version__, "| fastcore", fastcore.__version__)' \
  || echo 'import check FAILED (the benchmarks will report what is missing)'

echo; echo "== training throughput (budget ${TRAIN} s, at $(elapsed) s)"
timeout -k 15 $(( TRAIN + 45 )) python3 benchmarks/train_throughput.py --device "$DEVICE" --time-limit "$TRAIN" \
  --out "$OUT" ${TRAIN_ARGS:-} || echo "train_throughput.py exited with $?"

if [ "${SAMPLE:-1}" != 0 ]; then
  left=$(( TOTAL - $(elapsed) - 10 ))
  [ "$left" -lt 60 ] && left=60
  echo; echo "== sampling throughput (budget ${left} s, at $(elapsed) s)"
  timeout -k 15 $(( left + 30 )) python3 benchmarks/sample_throughput.py --device "$DEVICE" --time-limit "$left" \
    --out "$OUT" ${SAMPLE_ARGS:-} || echo "sample_throughput.py exited with $?"
fi

echo; echo "== results (total $(elapsed) s)"
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv 2>/dev/null
cat "$OUT"/train_throughput.md "$OUT"/sample_throughput.md 2>/dev/null
} 2>&1 | tee "$OUT/log.txt"
