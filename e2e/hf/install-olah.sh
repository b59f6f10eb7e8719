#!/usr/bin/env bash
# Install olah (PyPI olah==0.5.4, a Hugging Face-compatible mirror server) into its own virtualenv,
# for the e2e tests (e2e/hf_mirror.py serves local git repos with it, offline).
#
#   e2e/hf/install-olah.sh                  # idempotent: exits at once when already installed
#   QWEN_OLAH_VENV=/some/dir e2e/hf/install-olah.sh
#   QWEN_OLAH_PYTHON=python3.12 ...         # another interpreter (default python3.11)
#
# The venv is built in a temporary sibling directory and renamed into place, so an interrupted
# install leaves no half-made venv behind.
set -euo pipefail

OLAH_VERSION=0.5.4
VENV="${QWEN_OLAH_VENV:-$HOME/.cache/qwen-operator/olah-$OLAH_VERSION}"
PYTHON="${QWEN_OLAH_PYTHON:-python3.11}"

log() { printf '[install-olah %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -x "$VENV/bin/olah-cli" ]] && "$VENV/bin/python" -c 'import olah' 2>/dev/null; then
  echo "olah $OLAH_VERSION already installed: $VENV"
  exit 0
fi

start=$(date +%s)
mkdir -p "$(dirname "$VENV")"
TMP="$(mktemp -d "$VENV.tmp-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

chmod 755 "$TMP"  # mktemp's 0700 would make the venv private to this user
"$PYTHON" -m venv --prompt "$(basename "$VENV")" "$TMP"
export PIP_PROGRESS_BAR=off
"$TMP/bin/python" -m pip --disable-pip-version-check --no-input install -q "olah==$OLAH_VERSION"

# A venv's scripts (olah-cli's shebang, activate) and pyvenv.cfg name the directory it was made in:
# point them at the final place before the rename.
grep -rlIF -- "$TMP" "$TMP/bin" "$TMP/pyvenv.cfg" | while read -r f; do
  sed -i "s|$TMP|$VENV|g" "$f"
done
rm -rf "$VENV"
mv "$TMP" "$VENV"
trap - EXIT

"$VENV/bin/python" -c 'import olah' >/dev/null
[[ -x "$VENV/bin/olah-cli" ]] || { log "no olah-cli in $VENV/bin"; exit 1; }
echo "olah $OLAH_VERSION installed in $VENV ($("$VENV/bin/python" -V), $(( $(date +%s) - start )) s)"
