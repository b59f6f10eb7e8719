#!/usr/bin/env bash
# Build the local Kubernetes tool set from Go modules (no Docker, no release downloads):
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl, helm,
#   the real node's kubelet, kube-proxy, containerd (+ ctr, containerd-shim-runc-v2) and runc, and Prometheus.
#
# Versions come from e2e/cluster/versions.env. Binaries are cached per version under
#   $QWEN_TOOLS_DIR (default ~/.cache/qwen-operator/bin)/<tool>-<version>/
# and linked into $QWEN_TOOLS_DIR/current/, the directory to put on PATH.
# Re-running is cheap: a tool whose versioned directory is complete is skipped.
#
# Usage: build-tools.sh [--print-dir] [--force] [--serial]
#   --print-dir   print the bin dir (…/current) and exit without building
#   --force       rebuild even when the versioned directory is complete
#   --serial      build the tools one after another (default: k8s in parallel with the rest)
# Env: QWEN_TOOLS_DIR, QWEN_TOOLS_SRC (wrapper modules, default $QWEN_TOOLS_DIR/../tools-src),
#      GOMODCACHE/GOCACHE/GOFLAGS as usual.
set -euo pipefail
# The whole script is one brace group: bash parses it completely before running it, so editing
# the file while it runs (e.g. a git checkout) cannot derail a running instance.
{

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

TOOLS_DIR="${QWEN_TOOLS_DIR:-$HOME/.cache/qwen-operator/bin}"
SRC_DIR="${QWEN_TOOLS_SRC:-$(dirname "$TOOLS_DIR")/tools-src}"
CURRENT="$TOOLS_DIR/current"

FORCE=0
SERIAL=0
for arg in "$@"; do
  case "$arg" in
    --print-dir) echo "$CURRENT"; exit 0 ;;
    --force) FORCE=1 ;;
    --serial) SERIAL=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build-tools.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[build-tools] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH (need Go >= $GO_MIN_VERSION)"
GOV="$(go env GOVERSION)"; GOV="${GOV#go}"
if [ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "${GOV%%[-+ ]*}" | sort -V | sed -n 1p)" != "$GO_MIN_VERSION" ]; then
  die "Go $GOV is too old: these modules need Go >= $GO_MIN_VERSION"
fi

# Never fetch another Go toolchain; build static binaries; keep paths out of them.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
export GOPROXY="${GOPROXY:-$(go env GOPROXY)}"

K8S_DIR="$TOOLS_DIR/k8s-$K8S_VERSION"
ETCD_DIR="$TOOLS_DIR/etcd-$ETCD_VERSION"
KWOK_DIR="$TOOLS_DIR/kwok-$KWOK_VERSION"
HELM_DIR="$TOOLS_DIR/helm-$HELM_VERSION"
CONTAINERD_DIR="$TOOLS_DIR/containerd-$CONTAINERD_VERSION"
RUNC_DIR="$TOOLS_DIR/runc-$RUNC_VERSION"
PROMETHEUS_TAGS="remove_all_sd,enable_kubernetes_sd"
# The tags are part of the cache key: a build with other service discoveries is another binary.
PROMETHEUS_DIR="$TOOLS_DIR/prometheus-$PROMETHEUS_VERSION-k8s-sd"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
K8S_PKGS=("${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}")
LOG_DIR="$SRC_DIR/logs"
mkdir -p "$TOOLS_DIR" "$SRC_DIR" "$LOG_DIR"

# done_marker DIR: true when DIR holds a finished build (unless --force).
# The Kubernetes directory must also hold every command of K8S_CMDS (older caches lack the node's).
is_done() {
  [ "$FORCE" = 0 ] && [ -f "$1/.complete" ] || return 1
  [ "$1" != "$K8S_DIR" ] || { local c; for c in "${K8S_CMDS[@]}"; do [ -x "$1/$c" ] || return 1; done; }
}

# Release time of module@version from the proxy, used as the reproducible build date.
module_time() {
  local t
  t="$(go mod download -json "$1@$2" 2>/dev/null | sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' | sed -n 1p)"
  echo "${t:-1970-01-01T00:00:00Z}"
}

# Is the checksum database reachable? If not, fall back to GONOSUMDB for these module paths only.
check_sumdb() {
  local sumdb; sumdb="$(go env GOSUMDB)"
  [ "$sumdb" = off ] && { log "GOSUMDB=off in the environment: module checksums are not verified"; return; }
  local probe out
  probe="$(mktemp -d)"
  # A lookup of a module not yet in go.sum goes through the checksum database.
  if out="$(cd "$probe" && GOFLAGS=-mod=mod GONOSUMDB='' GOPRIVATE='' go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" 2>&1)" \
      && ! grep -q '"Error"' <<<"$out"; then
    log "checksum database $sumdb reachable: module checksums verified"
  else
    if grep -q 'SECURITY ERROR\|checksum mismatch' <<<"$out"; then
      die "checksum mismatch while probing the checksum database: $out"
    fi
    log "WARNING: checksum database $sumdb not reachable; continuing with GOSUMDB=off (checksums unverified)"
    log "$(tail -n 3 <<<"$out")"
    export GOSUMDB=off
  fi
  rm -rf "$probe"
}

# Run "$@" with output in $LOG_DIR/$1.log; on failure show the log's tail.
run_logged() {
  local name="$1"; shift
  local logf="$LOG_DIR/$name.log" start=$SECONDS
  log "$name: building (log: $logf)"
  local rc=0
  # A subshell with its own errexit: `if ! func` would silently disable set -e inside func.
  set +e
  ( set -euo pipefail; "$@" ) >"$logf" 2>&1
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    echo "----- last lines of $logf -----" >&2
    tail -n 40 "$logf" >&2
    die "$name: build failed after $((SECONDS - start))s"
  fi
  log "$name: done in $((SECONDS - start))s"
}

# ---------------------------------------------------------------- Kubernetes
build_k8s() {
  set -euo pipefail
  local ver="$K8S_VERSION" minor patch libver mod="$SRC_DIR/k8s-$K8S_VERSION" gomod
  minor="$(cut -d. -f2 <<<"${ver#v}")"; patch="$(cut -d. -f3 <<<"${ver#v}")"
  libver="v0.$minor.$patch"
  mkdir -p "$mod"
  # The replace lines are derived from k8s.io/kubernetes' own go.mod: every "k8s.io/x => ./staging/..."
  # becomes "k8s.io/x => k8s.io/x v0.MINOR.PATCH" (the published staging module).
  gomod="$(go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')"
  [ -f "$gomod" ] || { echo "cannot download k8s.io/kubernetes@$ver"; return 1; }
  local staging
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")"
  [ -n "$staging" ] || { echo "no staging replace lines found in $gomod"; return 1; }
  echo "staging modules ($(wc -l <<<"$staging")): $(tr '\n' ' ' <<<"$staging")"
  {
    echo "module qwen-operator.local/tools/k8s"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $ver"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $libver"; done <<<"$staging"
    echo ")"
  } >"$mod/go.mod"
  rm -f "$mod/go.sum"
  local pkgs=("${K8S_PKGS[@]}")
  # go get resolves exactly the dependencies of these packages and records their checksums.
  (cd "$mod" && go get "${pkgs[@]/%/@$ver}")
  local date x=() k
  date="$(module_time k8s.io/kubernetes "$ver")"
  for k in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    x+=("-X" "$k.gitVersion=$ver" "-X" "$k.gitMajor=1" "-X" "$k.gitMinor=$minor"
        "-X" "$k.gitTreeState=clean" "-X" "$k.buildDate=$date")
  done
  rm -rf "$K8S_DIR.tmp"; mkdir -p "$K8S_DIR.tmp"
  # One go build for all four commands: shared packages compile once.
  (cd "$mod" && go build -ldflags "-s -w ${x[*]}" -o "$K8S_DIR.tmp/" "${pkgs[@]}")
  "$K8S_DIR.tmp/kube-apiserver" --version
  "$K8S_DIR.tmp/kubectl" version --client
  "$K8S_DIR.tmp/kubelet" --version
  touch "$K8S_DIR.tmp/.complete"
  rm -rf "$K8S_DIR"; mv "$K8S_DIR.tmp" "$K8S_DIR"
}

# ---------------------------------------------------------------- etcd
build_etcd() {
  set -euo pipefail
  local mod="$SRC_DIR/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  # go.etcd.io/etcd/server/v3 has replace directives (../api, …), so `go install …@v` refuses it;
  # a wrapper module that requires it resolves its sibling modules at the same version instead.
  cat >"$mod/go.mod" <<EOF
module qwen-operator.local/tools/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  rm -f "$mod/go.sum"
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  rm -rf "$ETCD_DIR.tmp"; mkdir -p "$ETCD_DIR.tmp"
  (cd "$mod" && go build -ldflags "-s -w" -o "$ETCD_DIR.tmp/etcd" go.etcd.io/etcd/server/v3)
  "$ETCD_DIR.tmp/etcd" --version
  touch "$ETCD_DIR.tmp/.complete"
  rm -rf "$ETCD_DIR"; mv "$ETCD_DIR.tmp" "$ETCD_DIR"
}

# ---------------------------------------------------------------- kwok, kwokctl
build_kwok() {
  set -euo pipefail
  local kv="${K8S_VERSION#v}"
  rm -rf "$KWOK_DIR.tmp"; mkdir -p "$KWOK_DIR.tmp"
  # No replace directives in kwok's go.mod: go install module@version works directly.
  # KubeVersion: the Kubernetes version kwokctl assumes by default (we pass our binaries anyway).
  GOBIN="$KWOK_DIR.tmp" go install \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$kv -X sigs.k8s.io/kwok/pkg/consts.PreRelease=GA" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  "$KWOK_DIR.tmp/kwokctl" --version
  touch "$KWOK_DIR.tmp/.complete"
  rm -rf "$KWOK_DIR"; mv "$KWOK_DIR.tmp" "$KWOK_DIR"
}

# ---------------------------------------------------------------- helm
build_helm() {
  set -euo pipefail
  local gomod cg minor
  gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')"
  # Helm stamps the Kubernetes minor of its client-go into its default capabilities (as its Makefile does).
  cg="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | sed -n 1p)"
  minor="${cg:-20}"
  rm -rf "$HELM_DIR.tmp"; mkdir -p "$HELM_DIR.tmp"
  GOBIN="$HELM_DIR.tmp" go install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  "$HELM_DIR.tmp/helm" version
  touch "$HELM_DIR.tmp/.complete"
  rm -rf "$HELM_DIR"; mv "$HELM_DIR.tmp" "$HELM_DIR"
}

# ---------------------------------------------------------------- containerd (the real node's runtime)
build_containerd() {
  set -euo pipefail
  rm -rf "$CONTAINERD_DIR.tmp"; mkdir -p "$CONTAINERD_DIR.tmp"
  # No replace directives in containerd's go.mod; static build without the snapshotters this host lacks.
  local m=github.com/containerd/containerd/v2
  GOBIN="$CONTAINERD_DIR.tmp" go install -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION" \
    "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  "$CONTAINERD_DIR.tmp/containerd" --version
  touch "$CONTAINERD_DIR.tmp/.complete"
  rm -rf "$CONTAINERD_DIR"; mv "$CONTAINERD_DIR.tmp" "$CONTAINERD_DIR"
}

# ---------------------------------------------------------------- runc
build_runc() {
  set -euo pipefail
  # runc needs cgo for seccomp (Debian's libseccomp-dev, installed by `make system-deps`); Debian's own
  # runc 1.1.5 fails to start sandboxes on these hosts, so it is built at a pinned version.
  pkg-config --exists libseccomp || { echo "libseccomp-dev is missing (make system-deps installs it)"; return 1; }
  rm -rf "$RUNC_DIR.tmp"; mkdir -p "$RUNC_DIR.tmp"
  CGO_ENABLED=1 GOBIN="$RUNC_DIR.tmp" go install -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
  "$RUNC_DIR.tmp/runc" --version
  touch "$RUNC_DIR.tmp/.complete"
  rm -rf "$RUNC_DIR"; mv "$RUNC_DIR.tmp" "$RUNC_DIR"
}

# ---------------------------------------------------------------- prometheus
build_prometheus() {
  set -euo pipefail
  # Debian's prometheus package is built without Kubernetes service discovery; the e2e tests discover the vLLM
  # pods through the API server as a cluster's Prometheus does, so it is built from its Go module (no web UI
  # assets: the API and the scraping are what the tests use). Of the service discoveries only Kubernetes' is
  # built: Prometheus' own build tags (plugins/plugin_*.go: remove_all_sd, enable_<name>_sd) leave out the
  # cloud SDKs, half of the Go files of the build (5,728 of 11,480 at v0.316.0, `go list -deps`).
  rm -rf "$PROMETHEUS_DIR.tmp"; mkdir -p "$PROMETHEUS_DIR.tmp"
  local v=github.com/prometheus/common/version
  GOBIN="$PROMETHEUS_DIR.tmp" go install -tags "$PROMETHEUS_TAGS" \
    -ldflags "-s -w -X $v.Version=$PROMETHEUS_VERSION -X $v.Branch=module -X $v.Revision=$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
  "$PROMETHEUS_DIR.tmp/prometheus" --version
  touch "$PROMETHEUS_DIR.tmp/.complete"
  rm -rf "$PROMETHEUS_DIR"; mv "$PROMETHEUS_DIR.tmp" "$PROMETHEUS_DIR"
}

# What is still to build, in todo[] (re-run after waiting for another builder's lock).
compute_todo() {
  todo=()
  is_done "$K8S_DIR"  || todo+=(k8s)
  is_done "$ETCD_DIR" || todo+=(etcd)
  is_done "$KWOK_DIR" || todo+=(kwok)
  is_done "$HELM_DIR" || todo+=(helm)
  is_done "$CONTAINERD_DIR" || todo+=(containerd)
  is_done "$RUNC_DIR" || todo+=(runc)
  is_done "$PROMETHEUS_DIR" || todo+=(prometheus)
}

# ---------------------------------------------------------------- main
TOTAL_START=$SECONDS
log "tools dir: $TOOLS_DIR (go $GOV, $(nproc) cores)"
compute_todo

if [ "${#todo[@]}" -gt 0 ]; then
  # One build at a time per tools dir (make tools and a test session may start together).
  exec 8>"$TOOLS_DIR/.build.lock"
  if ! flock -n 8; then
    log "another build-tools.sh is building in $TOOLS_DIR: waiting for it"
    flock 8
    compute_todo
  fi
fi

if [ "${#todo[@]}" -gt 0 ]; then
  log "to build: ${todo[*]}"
  check_sumdb
  others=()
  for t in "${todo[@]}"; do [ "$t" = k8s ] || others+=("$t"); done
  if [ "$SERIAL" = 1 ] || [ "${#todo[@]}" = 1 ]; then
    for t in "${todo[@]}"; do run_logged "$t" "build_$t"; done
  else
    # Two lanes: Kubernetes (the long one) and the others one after another. Module downloads,
    # single-threaded link steps and compiles then overlap on a small machine.
    pids=()
    if [[ " ${todo[*]} " == *" k8s "* ]]; then
      ( run_logged k8s build_k8s ) & pids+=($!)
    fi
    if [ "${#others[@]}" -gt 0 ]; then
      ( for t in "${others[@]}"; do run_logged "$t" "build_$t"; done ) & pids+=($!)
    fi
    fail=0
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    [ "$fail" = 0 ] || die "some builds failed (logs in $LOG_DIR)"
  fi
else
  log "all tools already built for the pinned versions"
fi

# The stable directory others put on PATH: symlinks to the versioned binaries. Replaced only when
# a link changed, so that tools on PATH do not vanish under a running test.
want=("$K8S_DIR"/kube-apiserver "$K8S_DIR"/kube-controller-manager "$K8S_DIR"/kube-scheduler
      "$K8S_DIR"/kubectl "$K8S_DIR"/kubelet "$K8S_DIR"/kube-proxy "$ETCD_DIR"/etcd "$KWOK_DIR"/kwok
      "$KWOK_DIR"/kwokctl "$HELM_DIR"/helm "$CONTAINERD_DIR"/containerd "$CONTAINERD_DIR"/ctr
      "$CONTAINERD_DIR"/containerd-shim-runc-v2 "$RUNC_DIR"/runc "$PROMETHEUS_DIR"/prometheus)
stale=0
for f in "${want[@]}"; do
  [ -x "$f" ] || die "missing binary after build: $f"
  [ "$(readlink "$CURRENT/$(basename "$f")" 2>/dev/null)" = "$f" ] || stale=1
done
if [ "$stale" = 1 ]; then
  tmp="$TOOLS_DIR/.current.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  for f in "${want[@]}"; do ln -s "$f" "$tmp/$(basename "$f")"; done
  rm -rf "$CURRENT"; mv "$tmp" "$CURRENT"
fi
log "all tools ready in $CURRENT ($((SECONDS - TOTAL_START))s)"
echo "$CURRENT"
exit
}
