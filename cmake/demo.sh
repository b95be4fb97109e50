#!/usr/bin/env bash
# make demo: a local mosquitto (loopback only), two simulated IMS trace detectors
# (lanegate-sim ims over Modbus TCP), lanegated with the example config pointed at them,
# and `lanegatectl watch` showing alerts as the control room sees them. Fires a few test
# alerts too. Ctrl-C stops everything it started.
# DEMO_SECONDS=N stops by itself after N seconds (for scripted runs; cmake/demo-check.sh
# runs 60 s and checks the kinds of alerts raised).
set -euo pipefail
build=${1:-build/release}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$build/daemon"
sim="$root/$build/drivers/sim/lanegate-sim"
demo="${DEMO_DIR:-$root/.demo}"  # DEMO_DIR: elsewhere (tests run it in a temporary one)
mkdir -p "$demo/state" "$demo/mosquitto"

# A free loopback port, starting from 1883.
port=1883
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
uri="tcp://127.0.0.1:$port"
# The web console's WebSockets listener (every address, so with a password), from 9001.
ws_port=9001
while (exec 3<>"/dev/tcp/127.0.0.1/$ws_port") 2>/dev/null; do ws_port=$((ws_port + 1)); done
console_user=operator console_password=lanegate-demo

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

{
  cat "$root/config/demo/mosquitto.conf"
  echo "listener $port 127.0.0.1"
  echo "allow_anonymous true"
  echo "listener $ws_port"
  echo "protocol websockets"
  echo "http_dir $root/console/dist"
  echo "allow_anonymous false"
  echo "password_file $demo/passwd"
  echo "persistence_location $demo/mosquitto/"
  [ "$(id -u)" -eq 0 ] && echo "user root"
} > "$demo/mosquitto.conf"
rm -f "$demo/passwd"
mosquitto_passwd -b -c "$demo/passwd" "$console_user" "$console_password"
chmod 644 "$demo/passwd"  # mosquitto started as a user reads it as that user
mosquitto -c "$demo/mosquitto.conf" > "$demo/mosquitto.log" 2>&1 &
pids+=($!)

# The port a simulator printed in its log ("listening on 127.0.0.1:PORT"), within 10 s.
port_in() {  # log file
  for _ in $(seq 100); do
    grep -q "listening on" "$1" && break
    sleep 0.1
  done
  sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$1" | head -1
}

# Two trace detectors: each swab sequence repeats; every few samples one carries a drug.
# Not in a $(...) subshell: the pid must reach this shell's list, or Ctrl-C leaves it running.
start_sim() {  # name, sequence; sets sim_port
  "$sim" ims --port 0 --every-ms 4000 --sequence "$2" --seed "$RANDOM" \
    --library "$root/config/ims/substances.yaml" > "$demo/$1.log" 2>&1 &
  pids+=($!)
  sim_port=$(port_in "$demo/$1.log")
}
# A cargo X-ray scanner: its PLC on Modbus TCP, its scan bundles written to the inbox.
mkdir -p "$demo/inbox" "$demo/images"
# Each conveyance stays in the lane 6 s after its scan (lane_occupied), so trace hits taken
# meanwhile name it.
"$sim" xray --port 0 --inbox "$demo/inbox" --every-ms 8000 --dwell-ms 6000 --pixel-mm 10 --seed "$RANDOM" \
  --mix clear:40,concealment:45,empty_content:15 --id-prefix "demo-$(date +%H%M%S)" > "$demo/xray-1.log" 2>&1 &
pids+=($!)
xray_port=$(port_in "$demo/xray-1.log")

start_sim ims-1 "clear,clear,cocaine:900,clear,methamphetamine:700"
ims1_port=$sim_port
start_sim ims-2 "clear,fentanyl:500,clear,clear"
ims2_port=$sim_port

# The example config, pointed at the demo's broker, directories and detectors.
sed -e "s|uri: tcp://127.0.0.1:1883|uri: $uri|" \
    -e "s|/var/lib/lanegate|$demo/state|" \
    -e "s|/run/lanegate/control.sock|$demo/control.sock|" \
    -e "s|/run/lanegate/admin.sock|$demo/admin.sock|" \
    -e "s|ims_library: .*|ims_library: $root/config/ims/substances.yaml|" \
    -e "s|^site: .*|site: demo-port|" \
    -e "s|^devices: \[\]|devices:|" \
    "$root/config/lanegate.yaml" > "$demo/lanegate.yaml"
for dev in "ims-1 $ims1_port" "ims-2 $ims2_port"; do
  set -- $dev
  cat >> "$demo/lanegate.yaml" <<YAML
  - name: $1
    type: ims
    host: 127.0.0.1
    port: $2
    profile: $root/config/profiles/ims-generic-v1.yaml
YAML
done
cat >> "$demo/lanegate.yaml" <<YAML
  - name: xray-1
    type: xray
    host: 127.0.0.1
    port: $xray_port
    inbox: $demo/inbox
    workers: 2
    profile: $root/config/profiles/xray-generic-v1.yaml
YAML
"$bin/lanegated" -c "$demo/lanegate.yaml" --check-config
"$bin/lanegated" -c "$demo/lanegate.yaml" 2> "$demo/lanegated.log" &
pids+=($!)

# status, devices and outbox on the control socket; test-alert (like calibrate and reload)
# on the admin socket.
ctl=("$bin/lanegatectl" -s "$demo/control.sock")
admin=("$bin/lanegatectl" -s "$demo/admin.sock")
for _ in $(seq 100); do
  "${ctl[@]}" status --json 2>/dev/null | grep -q '"connected":true' && break
  sleep 0.1
done
"${ctl[@]}" status || true  # exit 4 (not yet fully healthy) while the devices come up

echo
echo "demo: control room watching $uri (lanegatectl watch); X-ray hits from xray-1 (every 8 s a"
echo "demo: scan; overlays saved in .demo/images) and trace hits from ims-1 and ims-2 arrive as"
echo "demo: the simulators scan and swab; daemon log in .demo/lanegated.log"
echo "demo: web console: http://localhost:$ws_port/  (user $console_user, password $console_password)"
# --no-ack: the alerts wait for an operator's ack in the web console.
"$bin/lanegatectl" watch -b "$uri" --site demo-port --lane lane-1 --client-id demo-control-room \
  --save-images "$demo/images" --no-ack &
pids+=($!)
sleep 1

end=$(( $(date +%s) + ${DEMO_SECONDS:-1000000000} ))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  if [ $round -le 3 ]; then
    echo "demo: firing 2 test alerts (lanegatectl test-alert --count 2)"
    "${admin[@]}" test-alert --count 2 | sed 's/^/demo: accepted /'
  elif [ $round -eq 4 ]; then
    echo "demo: running; press Ctrl-C to stop"
  fi
  sleep 2
done
