#!/usr/bin/env bash
# Checks systemd/lanegated.service offline: `systemd-analyze verify` (which exits 0 on
# unknown keys, so any output fails) and the exposure score (must be at most 1.5).
# Usage: check-unit.sh UNIT LANEGATED_BINARY LANEGATECTL_BINARY
set -euo pipefail
unit=$1 bin=$2 ctl=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify needs the Exec* binaries to exist: point the unit at the built ones.
sed -e "s|/usr/bin/lanegatectl|$ctl|g" -e "s|/usr/bin/lanegated|$bin|g" "$unit" > "$work/lanegated.service"
out=$(systemd-analyze verify "$work/lanegated.service" 2>&1 || true)
# Outside a booted systemd, verify also talks about the host's own units; keep ours.
out=$(printf '%s\n' "$out" | grep -F "lanegated.service" || true)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained:"; echo "$out"; exit 1
fi
systemd-analyze security --offline=true --threshold=15 "$work/lanegated.service" > "$work/security.txt" 2>&1 || {
  tail -5 "$work/security.txt"; echo "exposure above 1.5"; exit 1; }
grep -E "Overall exposure level" "$work/security.txt"
echo "unit ok"
