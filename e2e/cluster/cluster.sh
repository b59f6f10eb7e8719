#!/usr/bin/env bash
# The local Kubernetes cluster of the e2e tests: a real etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler run as local processes by `kwokctl --runtime binary`; KWOK simulates the kubelets of the
# GPU nodes in nodes.yaml; one real node (kubelet, containerd, runc, CNI bridge, kube-proxy: real-node.sh)
# runs pods for real. Only binaries built by build-tools.sh are used; nothing is downloaded.
#
# Usage: cluster.sh COMMAND
#   up                 start the cluster (reuse a healthy one), apply nodes.yaml, print the kubeconfig path
#   down               stop every process of the cluster, free its ports and delete its state
#   status             show whether the cluster is healthy, its components and nodes
#   kubeconfig         print the path of the admin kubeconfig
#   audit-log          print the path of the kube-apiserver audit log (write verbs, Metadata level)
#   env                print shell exports (PATH with the tools, KUBECONFIG): eval "$(cluster.sh env)"
#   nodes              (re)apply all nodes of nodes.yaml
#   add-node NAME      (re)create one node of nodes.yaml or nodes-spare.yaml, with its GPU capacity, and wait
#                      until it is Ready
#   delete-node NAME   delete one node (the pod garbage collector deletes its pods ~40s later, as on a real cluster)
#   restart [SECONDS]  stop every control-plane process (etcd included), wait SECONDS (default 5), start them
#                      again on the same state: the fault "kube-apiserver restarted, etcd unavailable meanwhile"
#   pause-etcd SECONDS freeze etcd (SIGSTOP) for SECONDS, then let it go on (SIGCONT): the apiserver stays up
#                      but cannot read or write
#   dry-run            print what kwokctl would start (local binaries only), start nothing
#   load-image ARCHIVE...
#                      import OCI archives (images/build.sh makes them) into the real node's containerd
#   user-kubeconfig NAME [GROUP...]
#                      write (and print the path of) a kubeconfig for a client-certificate user NAME in
#                      GROUPs (default system:masters): distinct identities show up in the audit log
# Env: QWEN_CLUSTER_DIR (default ~/.cache/qwen-operator/cluster), QWEN_TOOLS_DIR (see build-tools.sh),
#      QWEN_NO_BUILD=1 (fail instead of building missing tools), QWEN_CLUSTER_NAME (default qwen-local),
#      QWEN_REAL_NODE_OFF=1 (no real node: simulated nodes only).
set -euo pipefail
# The whole script is one brace group: bash parses it completely before running it, so editing
# the file while it runs (e.g. a git checkout) cannot derail a running instance.
{

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME="${QWEN_CLUSTER_NAME:-qwen-local}"
CLUSTER_DIR="${QWEN_CLUSTER_DIR:-$HOME/.cache/qwen-operator/cluster}"
KUBECONFIG_OUT="$CLUSTER_DIR/kubeconfig"
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
WORKDIR="$KWOK_WORKDIR/clusters/$NAME"
AUDIT_LOG="$WORKDIR/logs/audit.log"
NODES_YAML="$HERE/nodes.yaml"
SPARE_NODES_YAML="$HERE/nodes-spare.yaml"
BIN="$("$HERE/build-tools.sh" --print-dir)"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl)

tools_present() {
  local t
  for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}

ensure_tools() {
  if ! tools_present; then
    [ "${QWEN_NO_BUILD:-0}" = 1 ] && die "tools missing in $BIN and QWEN_NO_BUILD=1: run e2e/cluster/build-tools.sh"
    log "tools missing in $BIN: building them (build-tools.sh; a cold build takes a while)"
    "$HERE/build-tools.sh" >&2
    tools_present || die "build-tools.sh finished but tools are still missing in $BIN"
  fi
  export PATH="$BIN:$PATH"
}

kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

# The cluster answers /readyz with the admin credentials.
healthy() {
  [ -s "$KUBECONFIG_OUT" ] || return 1
  kc get --raw /readyz --request-timeout=5s >/dev/null 2>&1
}

cluster_exists() { [ -d "$WORKDIR" ]; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

config_text() {
  # Bind every component to loopback (kwokctl's default is 0.0.0.0). No leader election for the one
  # controller-manager and scheduler: a lease lost while etcd stalls makes them exit, and nothing here plays
  # the kubelet that would restart a real cluster's static pods.
  cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
  quietPull: true
  # Pods on the real node reach the API server through the kubernetes Service (10.96.0.1) at the bridge
  # address (real-node.sh): its certificate must name both.
  kubeApiserverCertSANs: [10.96.0.1, 10.244.0.1]
componentsPatches:
- name: kube-apiserver
  extraArgs:
  # Listening on all addresses so that pods reach it at the real node's bridge address; real-node.sh drops
  # connections to its port from any interface but loopback and the bridge.
  - key: bind-address
    value: 0.0.0.0
  - key: advertise-address
    value: 10.244.0.1
  # kubectl logs/exec reach the real node's kubelet at its bridge address (its hostname resolves nowhere).
  - key: kubelet-preferred-address-types
    value: InternalIP
  # A /16 like kubeadm's default; kube-apiserver's own default (/24, 254 addresses) runs out at 254 Services.
  - key: service-cluster-ip-range
    value: 10.96.0.0/16
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kwok-controller
  extraArgs:
  # KWOK plays the simulated nodes only (annotated in nodes.yaml), never the real node's kubelet.
  - key: manage-all-nodes
    value: "false"
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
  # A kubelet's node lease lasts 40 s; kwokctl's 200 s default leaves the nodes' pods unmanaged for up to
  # 200 s after a restart, until a restarted kwok may take over the previous instance's leases.
  - key: node-lease-duration-seconds
    value: "40"
  # Stages added to kwokctl's defaults (pods of Jobs on "held-" nodes keep running: see the file).
  - key: config
    value: $CLUSTER_DIR/kwok-stages.yaml
EOF
}

write_config() {
  mkdir -p "$CLUSTER_DIR"
  config_text >"$CLUSTER_DIR/kwokctl.yaml"
  cp "$HERE/kwok-stages.yaml" "$CLUSTER_DIR/kwok-stages.yaml"
}

# What the running cluster was created from; a change (this script's config or the tools' versions) means
# the cluster must be recreated rather than reused.
config_stamp() {
  { config_text; cat "$HERE/kwok-stages.yaml"; readlink -f "$BIN/kube-apiserver"; } | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$CLUSTER_DIR/created-from.sha256"

# Every process kwokctl started is still running (a dead controller-manager leaves /readyz green).
components_alive() {
  local f pid
  [ -d "$WORKDIR/pids" ] || return 1
  for f in "$WORKDIR"/pids/*.pid; do
    [ -e "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || { log "$(basename "$f" .pid) is not running"; return 1; }
  done
}

create_args() {
  local a=(
    create cluster --name "$NAME" --runtime binary
    --config "$CLUSTER_DIR/kwokctl.yaml"
    --kubeconfig "$KUBECONFIG_OUT"
    # Versioned paths (not current/): a running cluster keeps its binaries across a version bump.
    --kube-apiserver-binary "$(readlink -f "$BIN/kube-apiserver")"
    --kube-controller-manager-binary "$(readlink -f "$BIN/kube-controller-manager")"
    --kube-scheduler-binary "$(readlink -f "$BIN/kube-scheduler")"
    --etcd-binary "$(readlink -f "$BIN/etcd")"
    --kwok-controller-binary "$(readlink -f "$BIN/kwok")"
    --secure-port=true --kube-authorization=true --kube-admission=true
    --kube-audit-policy "$HERE/audit-policy.yaml"
    --wait 90s
  )
  printf '%s\n' "${a[@]}"
}

KWOKCTL_LOG="$CLUSTER_DIR/kwokctl.log"
# kwokctl logs JSON lines; keep them in a file and show its tail when it fails.
kwokctl_() {
  mkdir -p "$CLUSTER_DIR"
  echo "+ kwokctl $*" >>"$KWOKCTL_LOG"
  if ! "$BIN/kwokctl" "$@" >>"$KWOKCTL_LOG" 2>&1 9>&-; then
    tail -n 20 "$KWOKCTL_LOG" >&2
    return 1
  fi
}

# Apply the nodes (metadata + spec), then set their capacity/allocatable through the status subresource
# (status is dropped on create). KWOK's node-initialize stage keeps an allocatable it finds, and when it
# runs first, our patch replaces its defaults key by key.
apply_nodes() {  # apply_nodes [NAME]
  local only="${1:-}" rendered names=() n obj status
  rendered="$(mktemp)"
  # kubectl renders the YAML to JSON (client-side); python splits it into per-node object and status.
  # One node by name may also come from the spare nodes (not part of the cluster `up` makes).
  local files=(-f "$NODES_YAML")
  [ -z "$only" ] || files+=(-f "$SPARE_NODES_YAML")
  kc create --dry-run=client "${files[@]}" -o json >"$rendered.json"
  python3 - "$rendered.json" "$only" >"$rendered" <<'PY'
import json, sys
text, dec, pos, items = open(sys.argv[1]).read(), json.JSONDecoder(), 0, []
while True:  # kubectl prints one JSON document per YAML document (or a List)
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    doc, pos = dec.raw_decode(text, pos)
    items.extend(doc.get("items", [doc]) if doc.get("kind") == "List" else [doc])
only = sys.argv[2]
found = False
for it in items:
    name = it["metadata"]["name"]
    if only and name != only:
        continue
    found = True
    status = it.pop("status", {})
    print(name, json.dumps(it, separators=(",", ":")), json.dumps({"status": status}, separators=(",", ":")), sep="\t")
if only and not found:
    sys.exit("no node named %s in nodes.yaml or nodes-spare.yaml" % only)
PY
  local pids=() objs=()
  while IFS=$'\t' read -r n obj status; do
    names+=("$n"); objs+=("$obj")
  done <"$rendered"
  [ "${#names[@]}" -gt 0 ] || die "no nodes applied from $NODES_YAML"
  # One server-side apply for all nodes, then the status patches in parallel.
  printf '%s\n' "${objs[@]}" | kc apply --server-side --force-conflicts --field-manager=qwen-cluster-sh -f - >/dev/null
  while IFS=$'\t' read -r n obj status; do
    kc patch node "$n" --subresource=status --type=merge -p "$status" >/dev/null & pids+=($!)
  done <"$rendered"
  local p rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || die "patching node status failed"
  rm -f "$rendered" "$rendered.json"
  log "applied nodes: ${names[*]}"
  wait_nodes_ready "${names[@]}"
}

node_ready_with_capacity() {  # the node is Ready and its allocatable matches nodes.yaml
  local n="$1" got
  got="$(kc get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.allocatable.cpu}')"
  # Ready, and allocatable is ours (KWOK's defaults would be cpu 1k).
  [ "${got%% *}" = True ] && [ "${got#* }" != 1k ] && [ -n "${got#* }" ]
}

wait_nodes_ready() {
  local n
  for n in "$@"; do
    wait_for 60 "node $n Ready with its capacity" node_ready_with_capacity "$n" \
      || die "node $n did not become Ready with its capacity (see: $0 status)"
  done
}

# The control plane really works: controllers create the default ServiceAccount in a namespace.
wait_controllers() {
  wait_for 60 "kube-controller-manager (default ServiceAccount)" kc get serviceaccount default -n default \
    || die "kube-controller-manager does not seem to run (no default ServiceAccount); logs: $WORKDIR/logs"
}

# KWOK plays the kubelets and restarts with the control plane, but starts managing its nodes some 20 s after the
# apiserver answers. A bake pod bound in between was never run (CI, session 24: bound 9 s after KWOK started,
# untouched until its namespace was deleted 150 s later), so a restart is over only when KWOK has renewed every fake
# node's lease again, as a node is back only when its kubelet is.
kwok_leases_renewed_since() {  # kwok_leases_renewed_since UTC-TIME: every fake node's lease renewed at or after it
  local since="$1" n renewed nodes
  nodes="$(kc get nodes -o jsonpath='{range .items[?(@.metadata.annotations.kwok\.x-k8s\.io/node=="fake")]}{.metadata.name}{" "}{end}')" \
    && [ -n "$nodes" ] || return 1
  for n in $nodes; do
    renewed="$(kc get lease "$n" -n kube-node-lease -o jsonpath='{.spec.renewTime}')" || return 1
    [[ -n "$renewed" && ! "$renewed" < "$since" ]] || return 1
  done
}

wait_node_agents() {  # wait_node_agents UTC-TIME
  wait_for 90 "KWOK managing its nodes again (leases renewed)" kwok_leases_renewed_since "$1" \
    || die "KWOK did not renew its nodes' leases after the restart; logs: $WORKDIR/logs"
}

# Embed the certificates in the kubeconfig, so that it works as a single file (copied, mounted, ...).
flatten_kubeconfig() {
  local tmp="$KUBECONFIG_OUT.tmp.$$"
  (umask 077; kc config view --flatten >"$tmp") && mv -f "$tmp" "$KUBECONFIG_OUT"
}

print_kubeconfig() {
  echo "$KUBECONFIG_OUT"
}

# Serialise up/down of concurrent callers. The cluster's processes are started with fd 9 closed
# (`9>&-`), or they would inherit the lock and hold it for their lifetime.
LOCK_FILE="$CLUSTER_DIR/.cluster-sh.lock"
take_lock() {
  mkdir -p "$CLUSTER_DIR"
  exec 9>"$LOCK_FILE"
  flock -w 300 9 || die "timed out waiting for another cluster.sh (lock $LOCK_FILE)"
}

restart_locked() {  # restart_locked DOWN_SECONDS: stop every process, wait, start them again on the same state
  local pids=()
  mapfile -t pids < <(cluster_pids)
  kwokctl_ stop cluster --name "$NAME" || log "kwokctl stop failed; stopping the processes by hand"
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done  # no-op when kwokctl stopped them
  reap "${pids[@]}"
  sleep "${1:-0}"
  STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%S)"  # every process is down: a lease renewed after this is a new one
  kwokctl_ start cluster --name "$NAME" --wait 60s && wait_for 60 "kube-apiserver /readyz" healthy
}

cmd_up() {
  ensure_tools
  take_lock
  local start=$SECONDS
  if cluster_exists && [ "$(cat "$STAMP_FILE" 2>/dev/null)" != "$(config_stamp)" ]; then
    log "cluster $NAME was created from another configuration or tool version: recreating it"
    cmd_down_locked
  fi
  if cluster_exists && healthy && components_alive; then
    log "cluster $NAME already running: reusing it"
    grep -q 'client-certificate-data' "$KUBECONFIG_OUT" || flatten_kubeconfig
  else
    if cluster_exists; then
      log "cluster $NAME exists but is not healthy: restarting it"
      if restart_locked 0; then
        log "cluster $NAME restarted"
      else
        log "restart failed: recreating cluster $NAME"
        cmd_down_locked
      fi
    fi
    if ! cluster_exists; then
      write_config
      rm -f "$KUBECONFIG_OUT"
      local args
      mapfile -t args < <(create_args)
      log "creating cluster $NAME (kwokctl ${args[*]})"
      if ! kwokctl_ "${args[@]}"; then
        log "kwokctl create failed; logs in $WORKDIR/logs"
        ls "$WORKDIR/logs" >&2 2>/dev/null || true
        die "cluster creation failed"
      fi
      wait_for 60 "kube-apiserver /readyz" healthy || die "kube-apiserver not ready; logs in $WORKDIR/logs"
      flatten_kubeconfig
      config_stamp >"$STAMP_FILE"
    fi
    wait_controllers
  fi
  apply_nodes
  real_node_up
  log "cluster $NAME ready in $((SECONDS - start))s; kubeconfig: $KUBECONFIG_OUT"
  print_kubeconfig
}

# Pids of the cluster's processes, from kwokctl's pid files; only those still running this cluster's
# binaries (a pid file may outlive its process, and the pid be reused).
cluster_pids() {
  local f pid
  [ -d "$WORKDIR/pids" ] || return 0
  for f in "$WORKDIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -F "$WORKDIR" >/dev/null; then echo "$pid"; fi
  done
}

# Wait for the given pids to exit (kwokctl only signals them); SIGKILL what is left after 20s.
reap() {
  local pid deadline=$((SECONDS + 20))
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid still running after 20s: SIGTERM, then SIGKILL"
      kill "$pid" 2>/dev/null || true; sleep 1; kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

REAL_NODE_SH="$HERE/real-node.sh"
real_node_on() { [ "${QWEN_REAL_NODE_OFF:-0}" != 1 ]; }
# The real node, started when one of its daemons is not running (the state of a healthy one is reused).
real_node_up() {
  real_node_on || return 0
  "$REAL_NODE_SH" status >/dev/null 2>&1 && return 0
  "$REAL_NODE_SH" down 9>&- || log "stopping what was left of the real node failed: starting it anyway"
  "$REAL_NODE_SH" up 9>&- || die "the real node did not start (e2e/cluster/real-node.sh; logs in $CLUSTER_DIR/node/logs)"
}

cmd_down_locked() {
  local pids=()
  "$REAL_NODE_SH" down 9>&- || log "stopping the real node failed"
  # The demo's volume provisioner (e2e/demo.sh), if one runs.
  if [ -f "$CLUSTER_DIR/provisioner.pid" ]; then kill "$(cat "$CLUSTER_DIR/provisioner.pid")" 2>/dev/null || true; fi
  rm -f "$CLUSTER_DIR/provisioner.pid"
  mapfile -t pids < <(cluster_pids)
  if [ -x "$BIN/kwokctl" ] && cluster_exists; then
    kwokctl_ delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_OUT" \
      || log "kwokctl delete failed; stopping the processes by hand"
  fi
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done  # no-op when kwokctl stopped them
  reap "${pids[@]}"
  rm -rf "$WORKDIR" "$KUBECONFIG_OUT" "$STAMP_FILE"
  log "cluster $NAME is down (${#pids[@]} processes stopped)"
}

cmd_down() {
  take_lock
  cmd_down_locked
}

cmd_status() {
  tools_present || { echo "tools: missing in $BIN (run e2e/cluster/build-tools.sh)"; exit 1; }
  if ! cluster_exists; then echo "cluster $NAME: not created"; exit 1; fi
  if healthy; then echo "cluster $NAME: healthy"; else echo "cluster $NAME: NOT healthy"; fi
  echo "kubeconfig: $KUBECONFIG_OUT"
  echo "audit log:  $AUDIT_LOG"
  echo "logs:       $WORKDIR/logs"
  "$BIN/kwokctl" get components --name "$NAME" 2>/dev/null || true
  healthy || exit 1
  kc version 2>/dev/null | sed 's/^/  /' || true
  kc get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count 2>/dev/null || true
  if real_node_on; then "$REAL_NODE_SH" status | sed 's/^/  real node: /' || exit 1; fi
}

cmd_restart() {
  local down_s="${1:-5}"
  [[ "$down_s" =~ ^[0-9]+$ ]] || die "restart: SECONDS must be a whole number"
  ensure_tools
  take_lock
  cluster_exists || die "cluster $NAME does not exist: run '$0 up' first"
  log "stopping cluster $NAME for ${down_s}s"
  restart_locked "$down_s" || die "cluster $NAME did not come back; logs in $WORKDIR/logs"
  wait_controllers
  wait_node_agents "$STARTED_AT"
  log "cluster $NAME restarted"
}

cmd_pause_etcd() {
  local secs="${1:?usage: $0 pause-etcd SECONDS}" pid
  [[ "$secs" =~ ^[0-9]+$ ]] || die "pause-etcd: SECONDS must be a whole number"
  pid="$(cat "$WORKDIR/pids/etcd.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -F "$WORKDIR" >/dev/null \
    || die "no running etcd of cluster $NAME"
  # SIGCONT even if this script is interrupted: a frozen etcd would take every later test down with it.
  trap 'kill -CONT "$pid" 2>/dev/null || true' EXIT
  kill -STOP "$pid"
  log "etcd (pid $pid) frozen for ${secs}s"
  sleep "$secs"
  kill -CONT "$pid"
  trap - EXIT
  log "etcd (pid $pid) running again"
}

cmd_kubeconfig() {
  [ -s "$KUBECONFIG_OUT" ] || die "no kubeconfig at $KUBECONFIG_OUT: run '$0 up' first"
  print_kubeconfig
}

cmd_env() {
  echo "export PATH=\"$BIN:\$PATH\""
  echo "export KUBECONFIG=\"$KUBECONFIG_OUT\""
}

cmd_user_kubeconfig() {
  local user="${1:?usage: $0 user-kubeconfig NAME [GROUP...]}"; shift
  local groups=("$@"); [ "${#groups[@]}" -gt 0 ] || groups=(system:masters)
  [[ "$user" =~ ^[A-Za-z0-9:._@-]+$ ]] || die "bad user name: $user"
  healthy || die "cluster $NAME is not running: run '$0 up' first"
  local pki="$WORKDIR/pki" out="$CLUSTER_DIR/users/$user" subj g
  [ -f "$pki/ca.key" ] || die "no CA key at $pki/ca.key"
  mkdir -p "$out"
  subj="/CN=$user"; for g in "${groups[@]}"; do subj="$subj/O=$g"; done
  openssl req -new -newkey rsa:2048 -nodes -keyout "$out/client.key" -subj "$subj" -out "$out/client.csr" 2>/dev/null
  openssl x509 -req -in "$out/client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -out "$out/client.crt" 2>/dev/null
  local server
  server="$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  local k="$out/kubeconfig"
  rm -f "$k"
  "$BIN/kubectl" --kubeconfig "$k" config set-cluster "$NAME" --server "$server" --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
  "$BIN/kubectl" --kubeconfig "$k" config set-credentials "$user" --client-certificate "$out/client.crt" --client-key "$out/client.key" --embed-certs >/dev/null
  "$BIN/kubectl" --kubeconfig "$k" config set-context "$user@$NAME" --cluster "$NAME" --user "$user" >/dev/null
  "$BIN/kubectl" --kubeconfig "$k" config use-context "$user@$NAME" >/dev/null
  echo "$k"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) cmd_kubeconfig ;;
  audit-log) echo "$AUDIT_LOG" ;;
  env) cmd_env ;;
  nodes) ensure_tools; healthy || die "cluster not running"; apply_nodes ;;
  add-node) ensure_tools; healthy || die "cluster not running"; apply_nodes "${2:?usage: $0 add-node NAME}" ;;
  delete-node)
    ensure_tools; healthy || die "cluster not running"
    kc delete node "${2:?usage: $0 delete-node NAME}" --ignore-not-found --wait=true >&2 ;;
  user-kubeconfig) shift; cmd_user_kubeconfig "$@" ;;
  load-image) shift; "$REAL_NODE_SH" load-image "$@" ;;
  restart) cmd_restart "${2:-5}" ;;
  pause-etcd) cmd_pause_etcd "${2:-}" ;;
  dry-run)  # show what kwokctl would run, without starting anything
    ensure_tools; write_config; mapfile -t args < <(create_args); "$BIN/kwokctl" "${args[@]}" --dry-run ;;
  -h|--help|help|"") awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
  *) die "unknown command: $1 (try --help)" ;;
esac
exit
}
