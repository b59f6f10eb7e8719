#!/usr/bin/env bash
# Every suite under every service-model variant with the router the product will ship (cache-aware) and the one it
# ships today (a plain Service: random), joint SLO; then the summary and the plots.  Results in bench/results/.
#   JOBS=2 bash bench/autoscaling/matrix.sh
# The headline (calibrated-v1) runs get every policy and both searched bounds; the other variants get the policies
# of the held-out suite and no bounds (the bounds are the slowest jobs).
set -euo pipefail
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}
OUT=${OUT:-bench/results/}
POLICIES=ours,ours-no-estimate,ours-no-warm-pool,ours-load-tested,hpa-gpu-util,keda-prodstack,aibrix-kpa,kubeai
export PYTHONPATH=operator:.
# the plots at the end need the 'bench' extra: say so now, not after the hour of runs
"$PY" -c 'import matplotlib' 2>/dev/null || { echo "matrix.sh: matplotlib missing: $PY -m pip install -e '.[bench]' (or make bench)" >&2; exit 2; }
run() { "$PY" -m bench.autoscaling.run --out "$OUT" --jobs "$JOBS" "$@"; }
if [ "${SKIP_HEADLINE_MAIN:-0}" != 1 ]; then run --suite main --variant calibrated-v1 --router cache-aware; fi
run --suite main --variant calibrated-v1 --router random --policies "$POLICIES"
run --suite heldout --variant calibrated-v1 --router cache-aware --policies "$POLICIES"
for variant in calibrated-v060 roofline; do
  run --suite main --variant "$variant" --router cache-aware --policies "$POLICIES" --skip-bounds
  run --suite heldout --variant "$variant" --router cache-aware --policies "$POLICIES" --skip-bounds
done
run --suite heldout --variant calibrated-v1 --router random --policies "$POLICIES" --skip-bounds
for variant in calibrated-v060 roofline; do
  for suite in main heldout; do
    run --suite "$suite" --variant "$variant" --router random --policies "$POLICIES" --skip-bounds
  done
done
"$PY" -m bench.autoscaling.summary --out "$OUT"
"$PY" -m bench.autoscaling.plots --out "$OUT"
