#!/usr/bin/env bash
# One GPU check, under 5 minutes: the L-BFGS, batch_run, hypergradient, transform-step and
# char-LM (larger configuration) benchmarks on the default JAX device, one section each in
# benchmarks/results/gpu.md (and in $OUT/gpu.md when $OUT is set).
#
#   benchmarks/gpu/run.sh            # on the GPU machine
#   benchmarks/gpu/run.sh --smoke    # small sizes, a CPU check of the script (writes $OUT or
#                                    # /tmp, never benchmarks/results)
#
# Installs nothing beyond `make .venv/.installed-test` (only when .venv is missing; PYTHON=...
# picks another interpreter). The CPU sections two benchmarks rewrite in benchmarks/results/
# (lbfgs.md, hypergradient.md) are restored afterwards: only gpu.md changes. Each benchmark runs under its own time limit
# (seconds, overridable: LIMIT_LBFGS=... etc.), so the whole script stays within its budget.
set -uo pipefail

SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export OPENBLAS_NUM_THREADS=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
if [ ! -x "$PY" ]; then
  make .venv/.installed-test || { echo "no Python environment (make .venv/.installed-test failed)" >&2; exit 1; }
  PY="$ROOT/.venv/bin/python"
fi

RESULTS="$ROOT/benchmarks/results"
WORK="$(mktemp -d)"
BACKUP="$WORK/cpu_results"
mkdir -p "$BACKUP"
# bench_lbfgs.py and bench_hypergradient.py write their CPU sections in place: keep those.
KEEP=(lbfgs.md hypergradient.md)
for f in "${KEEP[@]}"; do [ -f "$RESULTS/$f" ] && cp -p "$RESULTS/$f" "$BACKUP/"; done
restore() { for f in "${KEEP[@]}"; do [ -f "$BACKUP/$f" ] && cp -p "$BACKUP/$f" "$RESULTS/$f"; done; return 0; }
trap restore EXIT

if [ "$SMOKE" = 1 ]; then
  DEST="${OUT:-/tmp}/gpu_smoke.md"
  L_LBFGS=${LIMIT_LBFGS:-150}; L_BATCH=${LIMIT_BATCH:-400}; L_HYPER=${LIMIT_HYPER:-150}
  L_STEP=${LIMIT_STEP:-150}; L_LM=${LIMIT_LM:-300}
  BATCH_ARGS=(--smoke); STEP_ARGS=(--n-leaves 2 --dim 64 --matrix-dim 32 --repeats 2 --only adam)
  LM_ARGS=(--smoke)
else
  DEST="$RESULTS/gpu.md"
  L_LBFGS=${LIMIT_LBFGS:-45}; L_BATCH=${LIMIT_BATCH:-75}; L_HYPER=${LIMIT_HYPER:-35}
  L_STEP=${LIMIT_STEP:-35}; L_LM=${LIMIT_LM:-100}
  BATCH_ARGS=(--repeats 3 --segment-sizes 32); STEP_ARGS=(--repeats 5); LM_ARGS=(--steps 400)
fi

SECTIONS="$WORK/sections.md"
: > "$SECTIONS"
SUMMARY=()

# run NAME LIMIT RESULT_FILE CMD...: run CMD under LIMIT seconds; append RESULT_FILE (or the
# output's tail when the benchmark wrote nothing) as a section.
run() {
  local name="$1" limit="$2" result="$3"; shift 3
  local log t0 t1 rc
  log="$WORK/$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_').log"
  rm -f "$result"
  echo "== $name (limit ${limit}s): $*"
  t0=$(date +%s)
  timeout "$limit" "$@" > "$log" 2>&1
  rc=$?
  t1=$(date +%s)
  local state="ok"
  [ "$rc" = 124 ] && state="timed out after ${limit}s"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && state="failed (exit $rc)"
  SUMMARY+=("| $name | $state | $((t1 - t0)) |")
  echo "   $state in $((t1 - t0))s"
  {
    echo "### GPU run: $name ($state, $((t1 - t0)) s)"
    echo
    if [ "$rc" = 0 ] && [ -s "$result" ]; then
      sed -e 's/^## /#### /; s/^### /#### /' -e "s#$WORK/##g" "$result"
    else
      echo '```'
      tail -n 25 "$log" | sed "s#$WORK/##g"
      echo '```'
    fi
    echo
  } >> "$SECTIONS"
}

run "L-BFGS (bench_lbfgs.py)" "$L_LBFGS" "$RESULTS/lbfgs.md" \
  "$PY" benchmarks/bench_lbfgs.py
run "batch_run (bench_batch_run.py)" "$L_BATCH" "$WORK/batch_run.md" \
  "$PY" benchmarks/bench_batch_run.py "${BATCH_ARGS[@]}" --out "$WORK/batch_run.md"
run "hypergradient (bench_hypergradient.py)" "$L_HYPER" "$RESULTS/hypergradient.md" \
  "$PY" benchmarks/bench_hypergradient.py
run "transform step (bench_first_order.py)" "$L_STEP" "$WORK/first_order.md" \
  "$PY" benchmarks/bench_first_order.py "${STEP_ARGS[@]}" --out "$WORK/first_order.md"
run "char-LM, larger config (gpu/char_lm_large.py)" "$L_LM" "$WORK/char_lm.md" \
  "$PY" benchmarks/gpu/char_lm_large.py "${LM_ARGS[@]}" --out "$WORK/char_lm.md"

DEVICE="$("$PY" -c 'import jax; d = jax.devices()[0]; print(f"{jax.default_backend()}: {d.device_kind} x {jax.device_count()}, jax {jax.__version__}")' 2>&1 | tail -n 1)"
GPU="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
{
  echo "## GPU check (issue 18 item 4)"
  echo
  echo "Command: \`benchmarks/gpu/run.sh$([ "$SMOKE" = 1 ] && echo ' --smoke')\` on $(date -u +%Y-%m-%d).  "
  echo "JAX device: $DEVICE${GPU:+; nvidia-smi: $GPU}.  "
  echo "Each benchmark runs in its own process under a time limit; their CPU sections stay in"
  echo "the other files of benchmarks/results/."
  echo
  echo "| benchmark | outcome | wall s |"
  echo "|---|---|---|"
  printf '%s\n' "${SUMMARY[@]}"
  echo
  cat "$SECTIONS"
} > "$WORK/gpu.md"
restore
mkdir -p "$(dirname "$DEST")"
cp "$WORK/gpu.md" "$DEST"
[ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] && cp "$WORK/gpu.md" "$OUT/gpu.md"
echo "wrote $DEST"
