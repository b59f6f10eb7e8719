#!/usr/bin/env bash
# Install the pinned vLLM router (PyPI vllm-router==0.1.17, a Rust router in a Python wheel) into its own
# virtualenv, with the exact dependency versions of requirements.lock. Used by images/vllm-router/Dockerfile
# (QWEN_ROUTER_VENV=/opt/vllm-router), by `make router-flags` (dump_flags.py) and by probe_router.py.
#
#   e2e/vllm_router/install-vllm-router.sh            # idempotent: exits at once when already installed
#   QWEN_ROUTER_VENV=/some/dir e2e/vllm_router/install-vllm-router.sh
#   QWEN_ROUTER_FORCE=1 ...                           # reinstall into a fresh venv
set -euo pipefail

ROUTER_VERSION=0.1.17
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${QWEN_ROUTER_VENV:-$HOME/.cache/qwen-operator/vllm-router-$ROUTER_VERSION}"
PYTHON="${QWEN_ROUTER_PYTHON:-python3}"
MARKER="$VENV/.qwen-operator-installed"
STAMP="vllm-router==$ROUTER_VERSION $(cat "$HERE/install-vllm-router.sh" "$HERE/requirements.lock" | sha256sum | cut -c1-16)"

log() { printf '[install-vllm-router %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ "${QWEN_ROUTER_FORCE:-0}" != 1 && -f "$MARKER" && "$(cat "$MARKER")" == "$STAMP" && -x "$VENV/bin/vllm-router" ]]; then
  log "already installed: $VENV ($STAMP)"
  exit 0
fi
if [[ "${QWEN_ROUTER_FORCE:-0}" == 1 || ! -x "$VENV/bin/python" ]]; then
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
rm -f "$MARKER"
export PIP_PROGRESS_BAR=off PIP_DISABLE_PIP_VERSION_CHECK=1
# --no-deps with the whole lock: every package at the version written there, nothing resolved anew.
"$VENV/bin/python" -m pip install -q --no-input --no-deps -r "$HERE/requirements.lock"
"$VENV/bin/python" -m pip check >&2
# The entry point of the wheel (entry_points.txt: vllm-router = vllm_router.launch_router:main) must start.
"$VENV/bin/vllm-router" --help >/dev/null
"$VENV/bin/python" -c "import vllm_router, sys; sys.exit(vllm_router.__version__ != '$ROUTER_VERSION')"
echo "$STAMP" > "$MARKER"
log "installed vllm-router $ROUTER_VERSION: $VENV/bin/vllm-router"
