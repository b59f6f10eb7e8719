#!/usr/bin/env bash
# Copy the generated CRD (crds/qwendeployments.yaml, made by `make crds`) into the chart's crds/ directory.
#
# Helm installs the files of a chart's crds/ directory before the templates, once, and never upgrades or deletes
# them: `helm uninstall` leaves the CRD, and so every user's QwenDeployment, in place. The copy must be a byte-for-
# byte copy (tests/test_chart_static.py checks it).
#
# Usage: charts/sync-crds.sh           copy
#        charts/sync-crds.sh --check   exit 1 if the chart's copy differs (for CI)
# From make:  bash charts/sync-crds.sh   (e.g. at the end of the `crds` target)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DEST_DIR="$HERE/qwen-operator/crds"
CRDS=(qwendeployments.yaml)

mode="${1:-copy}"
rc=0
for f in "${CRDS[@]}"; do
  src="$ROOT/crds/$f" dst="$DEST_DIR/$f"
  [ -f "$src" ] || { echo "sync-crds: missing $src (run: make crds)" >&2; exit 2; }
  case "$mode" in
    --check)
      if ! cmp -s "$src" "$dst"; then
        echo "sync-crds: $dst differs from crds/$f: run charts/sync-crds.sh" >&2
        rc=1
      fi ;;
    copy)
      mkdir -p "$DEST_DIR"
      if ! cmp -s "$src" "$dst"; then
        cp "$src" "$dst.tmp" && mv "$dst.tmp" "$dst"
        echo "sync-crds: updated ${dst#"$ROOT"/}" >&2
      fi ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
  esac
done
exit "$rc"
