#!/usr/bin/env bash
# make demo: the local control plane with simulated GPU nodes, the operator, an example QwenDeployment to Ready,
# and a spec the fit check rejects. Leaves the cluster up (make cluster-down stops it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
LOGS="${QWEN_DEMO_LOGS:-/tmp/qwen-demo}"
mkdir -p "$LOGS"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK GPU nodes)"
KUBECONFIG="$(bash e2e/cluster/cluster.sh up | tail -n 1)"
export KUBECONFIG
eval "$(bash e2e/cluster/cluster.sh env)"
kubectl get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count

say "Installing the QwenDeployment CRD and starting the operator (local process, logs in $LOGS)"
kubectl apply --server-side --force-conflicts -f crds/qwendeployments.yaml >/dev/null
kubectl wait --for=condition=Established crd/qwendeployments.qwenops.dev --timeout=60s >/dev/null
PY="$ROOT/.venv/bin/python"
"$PY" e2e/cluster/local_provisioner.py >"$LOGS/provisioner.log" 2>&1 &
PROV=$!
QWEN_RESYNC_SECONDS=5 QWEN_METRICS_PORT=0 PYTHONPATH="$ROOT/operator" "$PY" -m qwen_operator.main >"$LOGS/operator.log" 2>&1 &
OP=$!
trap 'kill $OP $PROV 2>/dev/null || true' EXIT

say "kubectl apply -f examples/qwen3-8b-h100.yaml"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo apply -f examples/qwen3-8b-h100.yaml
echo "waiting for Ready (compile-cache bake first, then the StatefulSet) ..."
if ! kubectl -n demo wait --for=jsonpath='{.status.phase}'=Ready qwendeployment/qwen3-8b --timeout=180s; then
  echo "not Ready in time; operator log tail:"; tail -n 40 "$LOGS/operator.log"; exit 1
fi
kubectl -n demo get qwen -o wide
kubectl -n demo get qwendeployment qwen3-8b -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
echo
echo "fit: $(kubectl -n demo get qwendeployment qwen3-8b -o jsonpath='{.status.fit.message}')"
echo "command: $(kubectl -n demo get qwendeployment qwen3-8b -o jsonpath='{.status.vllmCommand}')"
kubectl -n demo get statefulsets,pods,services,jobs,pvc -o wide

say "A spec that cannot work: Qwen2.5-72B in bf16 on ONE H100"
cat <<'YAML' | kubectl -n demo apply -f -
apiVersion: qwenops.dev/v1alpha1
kind: QwenDeployment
metadata: {name: too-big}
spec:
  model: {name: Qwen/Qwen2.5-72B-Instruct}
  gpu: {product: NVIDIA-H100-80GB-HBM3}
  serving: {maxModelLen: 32768}
YAML
kubectl -n demo wait --for=jsonpath='{.status.phase}'=Invalid qwendeployment/too-big --timeout=60s >/dev/null
kubectl -n demo get qwen
echo "Validated: $(kubectl -n demo get qwendeployment too-big -o jsonpath='{.status.conditions[?(@.type=="Validated")].message}')"
echo "StatefulSets for too-big: $(kubectl -n demo get statefulset too-big --ignore-not-found -o name | wc -l)"

say "Done. The cluster is still up: export KUBECONFIG=$KUBECONFIG ; make cluster-down to stop it."
