#!/usr/bin/env bash
# Issue 15, acceptance 1: the Debian package as a technician meets it, on a disposable
# machine (CI, as root): its file list, lintian, install with apt, the service user,
# groups and directories, the installed config checked by the installed daemon as the
# service user, the simulators finding their installed profiles, then purge and nothing
# left behind.
# Usage: cmake/package-check.sh build/package/lanegate_<version>_amd64.deb
set -euo pipefail
deb=$(realpath "$1")
fail() { echo "package check: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (it installs and purges the package)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "-- dpkg-deb -c"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^$' | sort > "$work/files"
for f in /usr/bin/lanegated /usr/bin/lanegatectl /usr/bin/lanegate-sim \
         /lib/systemd/system/lanegated.service /usr/lib/sysusers.d/lanegate.conf \
         /usr/lib/tmpfiles.d/lanegate.conf /etc/lanegate/lanegate.yaml \
         /etc/lanegate/profiles/ims-generic-v1.yaml /etc/lanegate/profiles/xray-generic-v1.yaml \
         /etc/lanegate/ims/substances.yaml /usr/share/lanegate/schemas/alert.schema.json \
         /usr/share/doc/lanegate/operations.md /usr/share/doc/lanegate/copyright \
         /usr/share/doc/lanegate/changelog.gz /usr/share/man/man8/lanegated.8.gz \
         /usr/share/man/man1/lanegatectl.1.gz /usr/share/man/man1/lanegate-sim.1.gz \
         /usr/share/lanegate/console/index.html; do
  grep -qx "$f" "$work/files" || fail "$f is not in the package"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/lanegate/lanegate.yaml || fail "lanegate.yaml is not a conffile"
echo "$(wc -l < "$work/files") paths, the expected ones among them"

echo "-- lintian"
lintian --fail-on error --tag-display-limit 0 "$deb" || fail "lintian reports errors"

echo "-- apt-get install"
dpkg -s lanegate >/dev/null 2>&1 && fail "lanegate is installed already: this check needs a machine without it"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
getent passwd lanegate >/dev/null || fail "no user lanegate"
for g in lanegate lanegate-admin dialout; do
  id -nG lanegate | tr ' ' '\n' | grep -qx "$g" || fail "lanegate is not in group $g"
done
[ "$(stat -c '%U:%G %a' /var/lib/lanegate)" = "lanegate:lanegate 750" ] ||
  fail "/var/lib/lanegate: $(stat -c '%U:%G %a' /var/lib/lanegate)"
[ "$(stat -c '%G %a' /etc/lanegate/lanegate.yaml)" = "lanegate 640" ] ||
  fail "/etc/lanegate/lanegate.yaml: $(stat -c '%G %a' /etc/lanegate/lanegate.yaml)"
[ -L /etc/systemd/system/multi-user.target.wants/lanegated.service ] || fail "the unit is not enabled"
runuser -u lanegate -- lanegated -c /etc/lanegate/lanegate.yaml --check-config ||
  fail "the installed config does not pass --check-config as the service user"
lanegate-sim xray --help | grep -q '/etc/lanegate/profiles/xray-generic-v1.yaml' ||
  fail "lanegate-sim does not default to the installed profiles"
# The IMS simulator starts on its installed profile and library (it serves, then stops).
lanegate-sim ims --port 0 > "$work/sim.out" 2>&1 &
sim=$!
for _ in $(seq 50); do grep -q "listening on" "$work/sim.out" && break; sleep 0.1; done
kill "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
grep -q "listening on" "$work/sim.out" || fail "lanegate-sim ims did not start: $(cat "$work/sim.out")"
man -w lanegated >/dev/null 2>&1 || [ -f /usr/share/man/man8/lanegated.8.gz ] || fail "no man page"

echo "-- apt-get purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq lanegate >/dev/null
dpkg -s lanegate >/dev/null 2>&1 && fail "lanegate still known to dpkg"
while read -r f; do
  case "$f" in /|/etc|/lib|/usr|/usr/*/|/lib/systemd|/lib/systemd/system) continue ;; esac
  if [ -e "$f" ] && [ ! -d "$f" ]; then fail "$f left behind"; fi
done < "$work/files"
for d in /etc/lanegate /var/lib/lanegate /run/lanegate /usr/share/lanegate /usr/share/doc/lanegate \
         /etc/systemd/system/multi-user.target.wants/lanegated.service; do
  [ -e "$d" ] && fail "$d left behind"
done
getent passwd lanegate >/dev/null && fail "user lanegate left behind"
getent group lanegate-admin >/dev/null && fail "group lanegate-admin left behind"
getent group lanegate >/dev/null && fail "group lanegate left behind"
echo "package check: ok"
