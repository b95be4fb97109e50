#!/usr/bin/env bash
# Installs every Debian 12 package lanegate needs to build, test and demo.
# Idempotent: when everything is present it prints one line and does nothing.
# Runs as root, or through sudo otherwise.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config make git
  clang-14 libclang-rt-14-dev
  libboost-dev
  libmodbus-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libjpeg62-turbo-dev libtiff-dev
  libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev
  libsqlite3-dev sqlite3
  libyaml-cpp-dev libspdlog-dev libfmt-dev libexpected-dev nlohmann-json3-dev libcli11-dev
  libsystemd-dev systemd
  libgtest-dev libgmock-dev libbenchmark-dev
  mosquitto mosquitto-clients
  socat openssl faketime
  python3-jsonschema
  python3-pymodbus python3-serial-asyncio mbpoll
  dpkg-dev help2man lintian
  nodejs chromium chromium-driver python3-selenium
)
# The console's build (console/, npm ci + Vite): Debian's npm, unless the Node.js already
# installed brings its own (NodeSource's nodejs ships npm and conflicts with Debian's).
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

# promtool (MetricsIT checks /metrics with it): only the one binary, taken from Debian's
# prometheus package into build/tools/. The package is 19 MB to fetch and 96 MB installed,
# with a service that would start; the tool is all the tests need.
promtool() {
  local tools
  tools="$(cd "$(dirname "$0")/.." && pwd)/build/tools"
  [ -x "$tools/promtool" ] && return 0
  mkdir -p "$tools"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
                  { "${sudo[@]}" apt-get update -qq && apt-get download prometheus >/dev/null; }; } &&
     dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x --strip-components=3 ./usr/bin/promtool &&
     mv promtool "$tools/promtool")
  rm -rf "$tmp"
  echo "deps: promtool in $tools"
}

if [ "$(id -u)" -eq 0 ] || ! command -v sudo >/dev/null; then sudo=(); else sudo=(sudo); fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  promtool
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "deps: missing packages (${missing[*]}) and not root, and no sudo to install them" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
promtool
echo "deps: done"
