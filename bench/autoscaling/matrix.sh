#!/usr/bin/env bash
# Every suite under every service-model variant, with the product's router (cache-aware) and a plain Service
# (random), joint SLO; then the plots and the cross-variant summary.  Results in bench/results/.
#   JOBS=2 bash bench/autoscaling/matrix.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}
OUT=${OUT:-bench/results/}
POLICIES=ours,ours-no-warm-pool,ours-load-tested,hpa-gpu-util,keda-prodstack,aibrix-kpa,kubeai
export PYTHONPATH=operator:.
run() { "$PY" -m bench.autoscaling.run --out "$OUT" --jobs "$JOBS" "$@"; }
# the headline first: calibrated-v1 with cache-aware and random routing, main and held-out
for router in cache-aware random; do
  run --suite main --variant calibrated-v1 --router "$router"
  run --suite heldout --variant calibrated-v1 --router "$router" --policies "$POLICIES"
done
for variant in calibrated-v060 roofline; do
  for router in cache-aware random; do
    run --suite main --variant "$variant" --router "$router" --policies "$POLICIES"
    run --suite heldout --variant "$variant" --router "$router" --policies "$POLICIES"
  done
done
"$PY" -m bench.autoscaling.summary --out "$OUT"
"$PY" -m bench.autoscaling.plots --out "$OUT"
