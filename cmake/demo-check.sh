#!/usr/bin/env bash
# A scripted `make demo`: runs it for DEMO_SECONDS (60 by default), then checks that the
# control-room watcher saw every kind of alert in cmake/demo-kinds.txt (alert types and
# trace substances) and no other type. Prints what it saw (the whole run stays in
# .demo/demo-check.log); exit 0 when the kinds match.
#   bash cmake/demo-check.sh            # or: DEMO_SECONDS=90 bash cmake/demo-check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$root/.demo"
log="$root/.demo/demo-check.log"  # the whole run, kept for a look afterwards
DEMO_SECONDS=${DEMO_SECONDS:-60} make --no-print-directory demo > "$log" 2>&1 || true

seen_types=$(grep -o ' org\.lanegate\.[a-z.]* ' "$log" | tr -d ' ' | sort | uniq -c || true)
seen_substances=$(sed -n 's/.*  TRACE \([^(]*\) (.*/\1/p' "$log" | tr ',' '\n' | sed 's/^ *//; s/ *$//' |
                  grep -v '^$' | sort | uniq -c || true)
echo "demo-check: alerts seen by type"; echo "$seen_types" | sed 's/^/  /'
echo "demo-check: trace substances"; echo "$seen_substances" | sed 's/^/  /'
echo "demo-check: trace hits naming a conveyance: $(grep -c 'TRACE .* on [a-z_]*' "$log" || true)"

status=0
while read -r what name; do
  case "$what" in
    type) echo "$seen_types" | grep -qw "$name" || { echo "demo-check: MISSING alert type $name"; status=1; } ;;
    substance) echo "$seen_substances" | grep -qw "$name" || { echo "demo-check: MISSING trace substance $name"; status=1; } ;;
  esac
done < <(grep -v '^#' "$root/cmake/demo-kinds.txt" | grep -v '^$')
for t in $(echo "$seen_types" | awk '{print $2}'); do
  grep -qx "type $t" "$root/cmake/demo-kinds.txt" || { echo "demo-check: UNEXPECTED alert type $t"; status=1; }
done
[ $status -eq 0 ] && echo "demo-check: the same kinds of alerts as recorded"
exit $status
