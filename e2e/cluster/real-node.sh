#!/usr/bin/env bash
# The real node of the local cluster: kubelet + containerd + runc + a CNI bridge + kube-proxy, run as local
# processes beside the control plane that cluster.sh starts, so that pods really run (the GPU nodes stay
# simulated by KWOK). Called by cluster.sh (up, down, status, load-image); usable on its own.
#
# Usage: real-node.sh up | down | status | load-image ARCHIVE... | images
#
# The node is named $QWEN_REAL_NODE (default real-0). It advertises nvidia.com/gpu capacity under the product
# label QWEN-CPU-STANDIN: a CPU standing in for a GPU, which the operator's fit check knows (see
# operator/qwen_operator/domain/gpus.py); QwenDeployments on it run the vLLM CPU image (images/vllm-cpu).
# Host settings this needs (cgroup v1, no CAP_SYS_RESOURCE) are written next to each option below.
#
# Network: a bridge qwenbr0 with 10.244.0.1/24 is the node's address and the pods' gateway; pods get
# 10.244.0.10-250. Forwarding is enabled on the bridge only, and an nftables table drops anything a pod
# sends out of the bridge to another interface: pod traffic never leaves this machine.
set -euo pipefail
{
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLUSTER_DIR="${QWEN_CLUSTER_DIR:-$HOME/.cache/qwen-operator/cluster}"
NODE="${QWEN_REAL_NODE:-real-0}"
NODE_DIR="$CLUSTER_DIR/node"
BIN="$("$HERE/build-tools.sh" --print-dir)"
KUBECONFIG_ADMIN="$CLUSTER_DIR/kubeconfig"
BRIDGE=qwenbr0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SOCK="$NODE_DIR/containerd/containerd.sock"
GPU_PRODUCT=QWEN-CPU-STANDIN
GPU_COUNT="${QWEN_REAL_NODE_GPUS:-4}"

log() { printf '[real-node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[real-node] ERROR: %s\n' "$*" >&2; exit 1; }
kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr_() { "$BIN/ctr" --address "$SOCK" -n k8s.io "$@"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

pid_alive() { local p; p="$(cat "$NODE_DIR/$1.pid" 2>/dev/null)" && kill -0 "$p" 2>/dev/null; }

# start NAME LOGFILE COMMAND...: a daemon in its own session, fd 9 (cluster.sh's lock) closed.
start() {
  local name="$1"; shift
  pid_alive "$name" && return 0
  setsid "$@" >>"$NODE_DIR/logs/$name.log" 2>&1 9>&- </dev/null &
  echo $! >"$NODE_DIR/$name.pid"
}

stop() {
  local name="$1" p
  p="$(cat "$NODE_DIR/$name.pid" 2>/dev/null)" || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$NODE_DIR/$name.pid"
}

network_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  local addrs
  addrs="$(ip addr show dev "$BRIDGE")"
  grep -qF "inet $NODE_IP/" <<<"$addrs" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # kube-proxy's Service rules must see bridged pod-to-pod traffic; forwarding only on the bridge.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  sysctl -qw "net.ipv4.conf.$BRIDGE.forwarding=1"
  local port; port="$(apiserver_port)"
  nft -f - <<EOF
table inet qwen-node
delete table inet qwen-node
table inet qwen-node {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$BRIDGE" oifname != "$BRIDGE" drop
  }
  chain input {
    type filter hook input priority -10; policy accept;
    tcp dport { $port, 10250 } iifname != { "lo", "$BRIDGE" } drop
  }
}
EOF
  mkdir -p "$NODE_DIR/cni"
  cat >"$NODE_DIR/cni/10-qwen-bridge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "qwen-pods",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.244.0.10",
              "rangeEnd": "10.244.0.250", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_DIR/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

apiserver_port() {
  kc config view --minify -o jsonpath='{.clusters[0].cluster.server}' | sed 's#.*:##'
}

containerd_up() {
  local pause_ref
  pause_ref="$(image_ref pause)"
  mkdir -p "$NODE_DIR/containerd"
  cat >"$NODE_DIR/containerd/config.toml" <<EOF
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$SOCK"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    # No pause image can be pulled here: the sandbox is the one images/build.sh makes.
    sandbox = "$pause_ref"
[plugins.'io.containerd.cri.v1.runtime']
  # Processes here lack CAP_SYS_RESOURCE: lowering oom_score_adj (-998 for every sandbox) would fail.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$BIN/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$NODE_DIR/cni"
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
EOF
  # containerd finds containerd-shim-runc-v2 on PATH.
  PATH="$BIN:$PATH" start containerd "$BIN/containerd" --config "$NODE_DIR/containerd/config.toml"
  wait_for 60 "containerd" ctr_ version || die "containerd did not start: $NODE_DIR/logs/containerd.log"
  load_archives "$(image_archive pause)"
}

image_line() { "$ROOT/images/build.sh" "$1" | tail -n 1; }
image_ref() { image_line "$1" | cut -d' ' -f2; }
image_archive() { image_line "$1" | cut -d' ' -f3; }

# The listing is read whole before grep sees it: `ctr ... | grep -q` under pipefail fails whenever grep
# exits on its match before ctr has written its last line (ctr then dies of SIGPIPE, status 141).
has_image() {
  local all
  all="$(ctr_ images ls -q)" || return 1
  grep -qxF "$1" <<<"$all"
}

load_archives() {  # import OCI archives into containerd's k8s.io namespace, unless already there
  local a r
  for a in "$@"; do
    r="$(tar -xOf "$a" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])')"
    if has_image "$r"; then continue; fi
    log "importing $r"
    # The archive's ref.name annotation is the full reference: ctr names the image by it, and unpacks it.
    ctr_ images import "$a" >/dev/null
    has_image "$r" || die "importing $a did not give image $r (got: $(ctr_ images ls -q | tr '\n' ' '))"
  done
}

node_kubeconfig() {  # node_kubeconfig USER GROUP: a client-certificate kubeconfig made by cluster.sh
  "$HERE/cluster.sh" user-kubeconfig "$1" "$2"
}

kubelet_up() {
  local kcfg ca
  kcfg="$(node_kubeconfig "system:node:$NODE" system:nodes)"
  ca="$(ls "$CLUSTER_DIR"/kwok/clusters/*/pki/ca.crt | sed -n 1p)"
  mkdir -p "$NODE_DIR/kubelet"
  : >"$NODE_DIR/resolv.conf"
  cat >"$NODE_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The host has cgroup v1 only (a tmpfs at /sys/fs/cgroup); Kubernetes 1.35+ refuses it unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# The API server's calls (logs, exec) are anonymous here: a throwaway cluster, reachable on the bridge only.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {clientCAFile: $ca}
authorization: {mode: AlwaysAllow}
failSwapOn: false
resolvConf: $NODE_DIR/resolv.conf
# Images are imported, never pulled: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
maxPods: 40
serializeImagePulls: false
localStorageCapacityIsolation: false
EOF
  start kubelet "$BIN/kubelet" --config "$NODE_DIR/kubelet/config.yaml" --kubeconfig "$kcfg" \
    --root-dir "$NODE_DIR/kubelet/root" --cert-dir "$NODE_DIR/kubelet/pki" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --register-with-taints nvidia.com/gpu=present:NoSchedule \
    --node-labels "qwen.local/real-node=true,nvidia.com/gpu.present=true,nvidia.com/gpu.product=$GPU_PRODUCT,nvidia.com/gpu.count=$GPU_COUNT"
  wait_for 120 "node $NODE registered" kc get node "$NODE" || die "kubelet did not register: $NODE_DIR/logs/kubelet.log"
  # The GPU stand-in's capacity (an extended resource, kept by the kubelet: no device plugin owns it).
  kc patch node "$NODE" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPU_COUNT\"}]" >/dev/null
  wait_for 120 "node $NODE Ready" node_ready || die "node $NODE not Ready: $NODE_DIR/logs/kubelet.log"
}

node_ready() {
  [ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] &&
    [ -n "$(kc get node "$NODE" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')" ]
}

kube_proxy_up() {
  local kcfg
  kcfg="$(node_kubeconfig system:kube-proxy system:node-proxier)"
  # The group system:node-proxier has no binding by default: bind it to the built-in role.
  kc create clusterrolebinding qwen-node-proxier --clusterrole=system:node-proxier --group=system:node-proxier \
    --dry-run=client -o yaml | kc apply -f - >/dev/null
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $kcfg}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [127.0.0.1/32]
# Leave the host's conntrack sysctls alone (setting them needs privileges this host does not give).
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$BIN/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml"
  wait_for 60 "kube-proxy healthz" curl -fsS http://127.0.0.1:10256/healthz \
    || die "kube-proxy did not start: $NODE_DIR/logs/kube-proxy.log"
}

cmd_up() {
  [ -s "$KUBECONFIG_ADMIN" ] || die "the control plane is not up (cluster.sh up starts it)"
  local t
  for t in kubelet kube-proxy containerd ctr containerd-shim-runc-v2 runc; do
    [ -x "$BIN/$t" ] || die "$t missing in $BIN: run e2e/cluster/build-tools.sh"
  done
  mkdir -p "$NODE_DIR/logs"
  local start=$SECONDS
  network_up
  containerd_up
  kubelet_up
  kube_proxy_up
  log "node $NODE ready in $((SECONDS - start))s ($GPU_COUNT x $GPU_PRODUCT, logs in $NODE_DIR/logs)"
}

cmd_down() {
  [ -d "$NODE_DIR" ] || return 0
  stop kube-proxy
  stop kubelet
  # Every container and sandbox of the node, then containerd itself.
  if pid_alive containerd; then
    local t
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $SOCK" 2>/dev/null || true
  # Mounts left by sandboxes and the overlay snapshotter.
  # awk, not grep: no mount left is the usual case, and grep's status 1 would fail the pipeline.
  awk -v d="$NODE_DIR" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  nft delete table inet qwen-node 2>/dev/null || true
  kc delete node "$NODE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$NODE_DIR"
  log "node $NODE is down"
}

cmd_status() {
  local n ok=0
  for n in containerd kubelet kube-proxy; do
    if pid_alive "$n"; then echo "$n: running"; else echo "$n: NOT running"; ok=1; fi
  done
  kc get node "$NODE" -L nvidia.com/gpu.product 2>/dev/null || { echo "node $NODE: not registered"; ok=1; }
  return "$ok"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  load-image) shift; [ $# -gt 0 ] || die "usage: $0 load-image ARCHIVE..."; load_archives "$@" ;;
  images) ctr_ images ls -q ;;
  -h|--help|help|"") awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
  *) die "unknown command: $1 (try --help)" ;;
esac
exit
}
