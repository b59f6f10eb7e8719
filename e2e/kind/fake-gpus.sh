#!/usr/bin/env bash
# Make the workers of a kind cluster look like GPU nodes to the scheduler: NVIDIA GPU feature discovery
# labels, the nvidia.com/gpu=present:NoSchedule taint, and an nvidia.com/gpu extended resource in the
# node status (the kubelet keeps extended resources that it does not manage, and derives allocatable).
# No GPU exists: containers that request one run on the node like any other container.
# Roles, in `kubectl get nodes` order of the workers: h100, h100, a10g, cpu (then cpu for any extra).
# Usage: KUBECONFIG=... fake-gpus.sh        (idempotent)
set -euo pipefail

command -v kubectl >/dev/null || { echo "fake-gpus.sh: kubectl not on PATH" >&2; exit 1; }

mapfile -t workers < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' \
  -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
[ "${#workers[@]}" -ge 4 ] || { echo "fake-gpus.sh: need 4 worker nodes, found ${#workers[@]}" >&2; exit 1; }

gpu_node() {  # gpu_node NODE PRODUCT MEMORY_MIB COUNT FAMILY INSTANCE_TYPE
  local node="$1" product="$2" mem="$3" count="$4" family="$5" itype="$6"
  kubectl label node "$node" --overwrite \
    nvidia.com/gpu.present=true nvidia.com/gpu.product="$product" nvidia.com/gpu.memory="$mem" \
    nvidia.com/gpu.count="$count" nvidia.com/gpu.family="$family" \
    node.kubernetes.io/instance-type="$itype" topology.kubernetes.io/zone=kind-a >/dev/null
  kubectl taint node "$node" nvidia.com/gpu=present:NoSchedule --overwrite >/dev/null
  kubectl patch node "$node" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$count\"},\"allocatable\":{\"nvidia.com/gpu\":\"$count\"}}}" >/dev/null
  echo "$node: ${count}x $product"
}

gpu_node "${workers[0]}" NVIDIA-H100-80GB-HBM3 81559 8 hopper p5.48xlarge
gpu_node "${workers[1]}" NVIDIA-H100-80GB-HBM3 81559 8 hopper p5.48xlarge
gpu_node "${workers[2]}" NVIDIA-A10G 23028 1 ampere g5.4xlarge
for n in "${workers[@]:3}"; do
  kubectl label node "$n" --overwrite node.kubernetes.io/instance-type=m6i.8xlarge topology.kubernetes.io/zone=kind-a >/dev/null
  echo "$n: CPU only"
done

# The kubelet recomputes allocatable on its next status update; wait until the scheduler can see the GPUs.
for n in "${workers[@]:0:3}"; do
  for _ in $(seq 1 60); do
    [ -n "$(kubectl get node "$n" -o jsonpath="{.status.allocatable['nvidia\.com/gpu']}")" ] && break
    sleep 1
  done
done
kubectl get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count
