#!/usr/bin/env bash
# make demo: the local control plane with simulated GPU nodes and one real node, the operator installed by Helm
# from its own image (a pod on the real node), an example QwenDeployment to Ready on the simulated H100s, a spec
# the fit check rejects, and the tiny Qwen3 served for real on the real node's CPU stand-in, answering a chat
# completion through its Service. Leaves the cluster and the operator up (make cluster-down stops them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
LOGS="${QWEN_DEMO_LOGS:-/tmp/qwen-demo}"
mkdir -p "$LOGS"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK GPU nodes, a real node)"
KUBECONFIG="$(bash e2e/cluster/cluster.sh up | tail -n 1)"
export KUBECONFIG
eval "$(bash e2e/cluster/cluster.sh env)"
kubectl get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count

say "Building the images (buildah) and installing the operator with Helm: a pod on the real node"
PY="$ROOT/.venv/bin/python"
# The volume provisioner outlives the demo (cluster.sh down stops it), like the cluster it serves.
CDIR="${QWEN_CLUSTER_DIR:-$HOME/.cache/qwen-operator/cluster}"
if ! { [ -f "$CDIR/provisioner.pid" ] && kill -0 "$(cat "$CDIR/provisioner.pid")" 2>/dev/null; }; then
  setsid "$PY" e2e/cluster/local_provisioner.py >"$LOGS/provisioner.log" 2>&1 < /dev/null &
  echo $! >"$CDIR/provisioner.pid"
fi
"$PY" e2e/demo_real.py operator
kubectl -n qwen-system get pods -o wide

say "kubectl apply -f examples/qwen3-8b-h100.yaml"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo apply -f examples/qwen3-8b-h100.yaml
echo "waiting for Ready (compile-cache bake first, then the StatefulSet) ..."
if ! kubectl -n demo wait --for=jsonpath='{.status.phase}'=Ready qwendeployment/qwen3-8b --timeout=180s; then
  echo "not Ready in time; operator log tail:"; kubectl -n qwen-system logs deploy/qwen-operator --tail=40; exit 1
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

say "For real: the tiny Qwen3 (random weights) on the real node's CPU stand-in, through its Service"
"$PY" e2e/demo_real.py serve demo-real

say "Done. The cluster and the operator pod are still up:"
cat <<EOF
  export KUBECONFIG=$KUBECONFIG PATH=$(bash e2e/cluster/build-tools.sh --print-dir):\$PATH
  kubectl get qwen -A -w                                  # watch every QwenDeployment
  kubectl -n demo-real scale qwen tiny --replicas=2       # a second real vLLM pod, seeded from the baked cache
  kubectl -n qwen-system logs deploy/qwen-operator -f     # the operator's log
  make cluster-down                                       # stop everything
  (make test on this cluster removes the demo's operator and namespaces first)
EOF
