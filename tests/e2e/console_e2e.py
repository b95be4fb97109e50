#!/usr/bin/python3
"""The control room's web console end to end (issue 16, acceptance 1, 2 and 4).

Real parts only: mosquitto with a plain loopback listener and a password-protected
WebSockets listener that serves the built console (http_dir); the real lanegated with an
X-ray scanner played by `lanegate-sim xray`; Debian's headless Chromium driven through its
own chromedriver by python3-selenium. Three browser sessions: the first sees the X-ray hit
flashing with its image (SHA-256 and size as the page computed them equal the alert's) and
acks it with a disposition; the second sees it stop flashing; the third, opened afterwards,
sees it acked with its image from the retained topics. Then a shelf on a device (shared
through the retained shelves topic) lists that device's new alerts as shelved until it
expires, and 12 alerts within a minute raise the flood banner. The WebSockets listener
refuses an MQTT connection without a password. Every process started is reaped.

With --centre it checks the console at a centre (acceptance 3): two site brokers bridged
to a centre broker as docs/integration.md says, a lane on each; a console on the centre
lists both lanes' alerts, and its ack reaches the lane. With --demo it checks `make demo`
instead (acceptance 4): cmake/demo.sh on BUILD prints the
console's URL and login, the console shows the demo's alerts, and its WebSockets listener
refuses a connection without the password.

Usage: console_e2e.py --build-dir BUILD --source-dir SRC [--screenshot FILE] [--demo|--centre]
Exit 0 when every check passed; 1 with the failed check on stderr.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

SITE, LANE = "it", "lane-1"
PREFIX = f"lanegate/v1/{SITE}/{LANE}"
# Started as root, mosquitto drops to user mosquitto before it opens http_dir, and a clone
# under a private directory (/root, mktemp -d) is closed to that user: stay root, as the
# tests' other brokers and the demo do.
MOSQUITTO_USER = "user root\n" if os.geteuid() == 0 else ""
USER, PASSWORD = "operator", "e2e-secret"


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def wait_for(pred, timeout, what, step=0.25):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # a stale element while the page re-renders: try again
            last = e
        time.sleep(step)
    raise Failed(f"{what} (within {timeout} s; last: {last!r})")


def free_port():
    """A free port below the kernel's ephemeral range, at random, as tests/support/harness.cpp
    chooses them: no outgoing connection can take it before the server binds it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0]) - 1
    except (OSError, ValueError, IndexError):
        high = 32767
    low = max(1024, high - 20000)
    for _ in range(200 if high - low >= 1000 else 0):
        port = random.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Starts processes with their output in files; stop() reaps every one."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv):
        log = open(os.path.join(self.workdir, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))
        return p

    def log(self, name):
        with open(os.path.join(self.workdir, name + ".log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def mqtt_over_ws_connack(port, username=None, password=None):
    """Sends an MQTT 5 CONNECT over a raw WebSocket; returns the CONNACK reason code (or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                return None
            head += chunk
        check(b" 101 " in head.split(b"\r\n")[0], f"no WebSocket upgrade: {head[:80]!r}")
        flags = 0x02  # clean start
        payload = b"\x00\x0ae2e-refuse"
        if username is not None:
            flags |= 0x80
            payload += len(username).to_bytes(2, "big") + username.encode()
        if password is not None:
            flags |= 0x40
            payload += len(password).to_bytes(2, "big") + password.encode()
        var = b"\x00\x04MQTT\x05" + bytes([flags]) + b"\x00\x3c\x00"
        body = var + payload
        packet = bytes([0x10, len(body)]) + body
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(packet))
        s.sendall(bytes([0x82, 0x80 | len(packet)]) + mask + masked)
        frame = s.recv(4096)
        if len(frame) < 2:
            return None
        data = frame[2:]
        # CONNACK: 0x20, length, flags, reason code
        if len(data) >= 4 and data[0] == 0x20:
            return data[3]
        return None


def mqtt_cmd(tool, port, *args, timeout=30):
    r = subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True, timeout=timeout)
    return r


def retained(port, topic):
    r = mqtt_cmd("mosquitto_sub", port, "-t", topic, "-C", "1", "-W", "2", "--retained-only", "-N")
    return r.stdout if r.returncode == 0 else b""


def browser():
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
              "--disable-gpu", "--no-first-run", "--password-store=basic"):
        o.add_argument(a)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    # The page sees a 1280×800 screen, as the control room's displays are.
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    return drv


def login(drv, ws_port, password=PASSWORD):
    drv.get(f"http://127.0.0.1:{ws_port}/index.html")
    wait_for(lambda: drv.find_element(By.ID, "login-user").is_displayed(), 20, "the login form")
    drv.find_element(By.ID, "login-user").clear()
    drv.find_element(By.ID, "login-user").send_keys(USER)
    drv.find_element(By.ID, "login-pass").send_keys(password)
    drv.find_element(By.ID, "login-go").click()


def logged_in(drv):
    wait_for(lambda: drv.find_element(By.ID, "app").is_displayed(), 20, "the console after login")
    wait_for(lambda: "connected" in drv.find_element(By.ID, "conn").text, 20, "connected")


def row(drv, alert_id):
    for tr in drv.find_elements(By.CSS_SELECTOR, "#alarm-rows tr"):
        if tr.get_attribute("data-id") == alert_id:
            return tr
    return None


def classes(el):
    return (el.get_attribute("class") or "").split()


def shown_image(drv):
    img = drv.find_element(By.ID, "alert-image")
    return {
        "sha256": img.get_attribute("data-sha256"),
        "bytes": int(img.get_attribute("data-bytes")),
        "verified": img.get_attribute("data-verified"),
        "complete": drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img),
    }


def demo_check(src, build, screenshot):
    """Acceptance 4: the demo prints the console's URL and login; the console shows its alerts."""
    work = tempfile.mkdtemp(prefix="lanegate-console-demo-")
    procs = Processes(work)
    drv = None
    try:
        env = dict(os.environ, DEMO_SECONDS="120")
        demo = subprocess.Popen(["bash", os.path.join(src, "cmake", "demo.sh"), os.path.relpath(build, src)], cwd=src, env=env,
                                stdout=open(os.path.join(work, "demo.log"), "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.procs.append(("demo", demo))
        line = wait_for(lambda: [l for l in procs.log("demo").splitlines() if "web console:" in l], 60,
                        "the demo printing the console's URL and login")[0]
        # demo: web console: http://localhost:PORT/  (user U, password P)
        url = line.split("web console:")[1].split()[0]
        user = line.split("(user ")[1].split(",")[0]
        password = line.split("password ")[1].rstrip(")").strip()
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        check(mqtt_over_ws_connack(port) not in (None, 0), "the demo's WebSockets listener accepted no password")
        drv = browser()
        drv.get(url)
        wait_for(lambda: drv.find_element(By.ID, "login-user").is_displayed(), 20, "the login form")
        drv.find_element(By.ID, "login-user").clear()
        drv.find_element(By.ID, "login-user").send_keys(user)
        drv.find_element(By.ID, "login-pass").send_keys(password)
        drv.find_element(By.ID, "login-go").click()
        logged_in(drv)
        wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, '#lanes .lane[data-lane="demo-port/lane-1"]'), 20,
                 "the demo's lane in the strip")
        # The test alerts this run of the demo fired (its broker keeps earlier runs' states).
        fired = wait_for(lambda: [l.split()[-1] for l in procs.log("demo").splitlines()
                                  if l.startswith("demo: accepted ")], 60, "the demo firing test alerts")
        wait_for(lambda: all(row(drv, i) is not None and "flash" in classes(row(drv, i)) for i in fired), 30,
                 "the demo's alerts listed, flashing")
        if screenshot:
            drv.save_screenshot(screenshot)
        print("console_e2e --demo: all checks passed")
        return 0
    except (Failed, subprocess.TimeoutExpired) as e:
        print(f"console_e2e --demo: FAILED: {e}\n--- demo (tail)\n" + "\n".join(procs.log("demo").splitlines()[-30:]),
              file=sys.stderr)
        return 1
    finally:
        if drv:
            drv.quit()
        # demo.sh's trap stops everything it started.
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()


def centre_check(src, build, dist):
    """Acceptance 3, the console side: at the centre, alerts of two bridged sites; acks go back."""
    work = tempfile.mkdtemp(prefix="lanegate-console-centre-")
    os.chmod(work, 0o755)
    procs = Processes(work)
    drv = None
    try:
        pw = os.path.join(work, "passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", pw, USER, PASSWORD], check=True)
        os.chmod(pw, 0o644)
        centre, ws = free_port(), free_port()
        with open(os.path.join(work, "centre.conf"), "w") as f:
            f.write(f"{MOSQUITTO_USER}per_listener_settings true\nlistener {centre} 127.0.0.1\nallow_anonymous true\n"
                    f"listener {ws}\nprotocol websockets\nhttp_dir {dist}\nallow_anonymous false\n"
                    f"password_file {pw}\n")
        procs.start("centre", ["mosquitto", "-c", os.path.join(work, "centre.conf")])
        wait_for(lambda: mqtt_cmd("mosquitto_pub", centre, "-t", "e2e/ping", "-m", "x").returncode == 0, 15,
                 "the centre broker up")
        daemons = {}
        for site in ("sa", "sb"):
            port = free_port()
            os.makedirs(os.path.join(work, site))
            with open(os.path.join(work, site, "mosquitto.conf"), "w") as f:
                f.write(f"{MOSQUITTO_USER}listener {port} 127.0.0.1\nallow_anonymous true\n"
                        f"connection centre\naddress 127.0.0.1:{centre}\nbridge_protocol_version mqttv50\n"
                        f"cleansession false\nclientid bridge-{site}\nrestart_timeout 1\n"
                        f"topic lanegate/v1/{site}/# out 1\ntopic lanegate/v1/{site}/+/acks in 1\n"
                        f"topic lanegate/v1/{site}/+/shelves in 1\n")
            procs.start(f"broker-{site}", ["mosquitto", "-c", os.path.join(work, site, "mosquitto.conf")])
            conf = os.path.join(work, site, "lanegate.yaml")
            with open(conf, "w") as f:
                f.write(f"site: {site}\nlane: {LANE}\nstate_dir: {work}/{site}/state\n"
                        f"control_socket: {work}/{site}/control.sock\nadmin_socket: {work}/{site}/admin.sock\n"
                        f"broker:\n  uri: tcp://127.0.0.1:{port}\n  reconnect_min_s: 0.1\n  reconnect_max_s: 0.5\n"
                        "devices: []\n")
            procs.start(f"lanegated-{site}", [os.path.join(build, "daemon", "lanegated"), "-c", conf])
            daemons[site] = os.path.join(work, site)

        def ctl(site, *a, sock="control.sock"):
            return subprocess.run([os.path.join(build, "daemon", "lanegatectl"), "-s",
                                   os.path.join(daemons[site], sock), *a], capture_output=True, timeout=60)
        for site in daemons:
            wait_for(lambda site=site: b'"connected":true' in ctl(site, "status", "--json").stdout, 20,
                     f"lane {site} connected")
        fired = {}
        for site in daemons:
            r = ctl(site, "test-alert", "--count", "2", sock="admin.sock")
            check(r.returncode == 0, f"test-alert on {site}: {r.stderr.decode()}")
            fired[site] = [l for l in r.stdout.decode().split() if len(l) == 36]
        drv = browser()
        login(drv, ws)
        logged_in(drv)
        for site in daemons:
            wait_for(lambda site=site: drv.find_elements(By.CSS_SELECTOR, f'#lanes .lane[data-lane="{site}/{LANE}"]'),
                     20, f"lane {site} in the centre's strip")
            wait_for(lambda site=site: all(row(drv, i) is not None and "flash" in classes(row(drv, i))
                                           for i in fired[site]), 20, f"lane {site}'s alerts at the centre")
        row(drv, fired["sb"][0]).click()
        wait_for(lambda: drv.find_element(By.ID, "ack-button").is_enabled(), 10, "the Ack button")
        Select(drv.find_element(By.ID, "ack-disposition")).select_by_value("seized")
        drv.find_element(By.ID, "ack-button").click()
        wait_for(lambda: json.loads(ctl("sb", "outbox", "--json").stdout)["acked"] == 1, 20,
                 "the centre's ack applied by lane sb")
        wait_for(lambda: row(drv, fired["sb"][0]).get_attribute("data-state") == "acked", 20,
                 "the acked state back at the centre's console")
        check(json.loads(ctl("sa", "outbox", "--json").stdout)["acked"] == 0, "lane sa acked nothing")
        print("console_e2e --centre: all checks passed")
        return 0
    except (Failed, subprocess.TimeoutExpired) as e:
        print(f"console_e2e --centre: FAILED: {e}", file=sys.stderr)
        for name in ("centre", "broker-sa", "broker-sb", "lanegated-sa", "lanegated-sb"):
            try:
                print(f"--- {name} (tail)\n" + "\n".join(procs.log(name).splitlines()[-15:]), file=sys.stderr)
            except OSError:
                pass
        return 1
    finally:
        if drv:
            drv.quit()
        procs.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--screenshot")
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--centre", action="store_true")
    args = ap.parse_args()
    src, build = os.path.abspath(args.source_dir), os.path.abspath(args.build_dir)
    dist = os.path.join(src, "console", "dist")
    if not os.path.exists(os.path.join(dist, "index.html")):
        print(f"console_e2e: {dist}/index.html missing: build the console first (make console)", file=sys.stderr)
        return 1
    if args.demo:
        return demo_check(src, build, args.screenshot)
    if args.centre:
        return centre_check(src, build, dist)
    lanegated = os.path.join(build, "daemon", "lanegated")
    lanegatectl = os.path.join(build, "daemon", "lanegatectl")
    sim = os.path.join(build, "drivers", "sim", "lanegate-sim")

    work = tempfile.mkdtemp(prefix="lanegate-console-e2e-")
    os.chmod(work, 0o755)  # mosquitto, started as root, reads its files as user mosquitto
    procs = Processes(work)
    drivers = []
    try:
        plain, ws = free_port(), free_port()
        pw = os.path.join(work, "passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", pw, USER, PASSWORD], check=True)
        os.chmod(pw, 0o644)
        with open(os.path.join(work, "mosquitto.conf"), "w") as f:
            f.write(f"{MOSQUITTO_USER}per_listener_settings true\n"
                    f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
                    f"listener {ws}\nprotocol websockets\nhttp_dir {dist}\n"
                    f"allow_anonymous false\npassword_file {pw}\n")
        procs.start("mosquitto", ["mosquitto", "-c", os.path.join(work, "mosquitto.conf")])
        wait_for(lambda: mqtt_cmd("mosquitto_pub", plain, "-t", "e2e/ping", "-m", "x").returncode == 0, 15,
                 "mosquitto up")

        # Acceptance 4: no password, no connection (the listener binds every address).
        check(mqtt_over_ws_connack(ws) not in (None, 0), "the WebSockets listener accepted a connection without a password")
        check(mqtt_over_ws_connack(ws, USER, "wrong") not in (None, 0), "the WebSockets listener accepted a wrong password")
        check(mqtt_over_ws_connack(ws, USER, PASSWORD) == 0, "the WebSockets listener refused the right password")

        inbox = os.path.join(work, "inbox")
        os.makedirs(inbox)
        # Declared empty but loaded: the scan kind that raises an X-ray hit whatever the stash
        # detectors can do (this test is the console's, not detection's).
        xsim = procs.start("xray-sim", [sim, "xray", "--port", "0", "--inbox", inbox, "--every-ms", "1500",
                                        "--count", "3", "--mix", "empty_content:100", "--pixel-mm", "10",
                                        "--seed", "2", "--id-prefix", "e2e"])
        sim_port = wait_for(lambda: [int(l.rsplit(":", 1)[1]) for l in procs.log("xray-sim").splitlines()
                                     if "listening on" in l], 15, "the X-ray simulator's port")[0]
        check(xsim.poll() is None, "lanegate-sim xray exited")
        conf = os.path.join(work, "lanegate.yaml")
        with open(conf, "w") as f:
            f.write(f"site: {SITE}\nlane: {LANE}\nstate_dir: {work}/state\ncontrol_socket: {work}/control.sock\n"
                    f"admin_socket: {work}/admin.sock\nbroker:\n  uri: tcp://127.0.0.1:{plain}\n"
                    f"devices:\n  - name: xray-1\n    type: xray\n    host: 127.0.0.1\n    port: {sim_port}\n"
                    f"    inbox: {inbox}\n    profile: {src}/config/profiles/xray-generic-v1.yaml\n")
        procs.start("lanegated", [lanegated, "-c", conf])

        def ctl(*a, sock="control.sock"):
            r = subprocess.run([lanegatectl, "-s", os.path.join(work, sock), *a], capture_output=True, timeout=60)
            return r

        # The first X-ray hit, as its retained state gives it.
        def first_hit():
            r = mqtt_cmd("mosquitto_sub", plain, "-t", f"{PREFIX}/alerts/+/state", "--retained-only", "-W", "2")
            for line in r.stdout.decode().splitlines():
                s = json.loads(line)
                if s["alert"]["type"] == "org.lanegate.xray.hit":
                    return s["alert"]
            return None
        alert = wait_for(first_hit, 120, "an X-ray hit from lanegate-sim xray")
        aid = alert["id"]
        image = alert["data"]["image"]
        jpeg = retained(plain, image["topic"])
        check(len(jpeg) == image["bytes"] and hashlib.sha256(jpeg).hexdigest() == image["sha256"],
              "the retained image is the alert's")

        # Session 1 and 2: the hit flashes, with its image, verified in the page.
        s1 = browser()
        drivers.append(s1)
        s2 = browser()
        drivers.append(s2)
        for d in (s1, s2):
            login(d, ws)
            logged_in(d)
            wait_for(lambda d=d: row(d, aid) is not None and "flash" in classes(row(d, aid)), 20,
                     "the X-ray hit listed and flashing")
        lane_tile = s1.find_element(By.CSS_SELECTOR, f'#lanes .lane[data-lane="{SITE}/{LANE}"]')
        check("online" in lane_tile.text, f"the lane strip shows the lane online: {lane_tile.text!r}")
        row(s1, aid).click()
        shown = wait_for(lambda: (lambda i: i if i["verified"] == "verified" and i["complete"] else None)(shown_image(s1)),
                         20, "the alert's image shown and verified")
        check(shown["sha256"] == image["sha256"], f"page SHA-256 {shown['sha256']} != alert {image['sha256']}")
        check(shown["bytes"] == image["bytes"], f"page size {shown['bytes']} != alert {image['bytes']}")
        view = s1.find_element(By.ID, "alert-view").text
        check("Findings" in view and "Conveyance" in view, f"findings and conveyance in words: {view[:300]!r}")
        if args.screenshot:
            s1.save_screenshot(args.screenshot)

        # Ack with a disposition: a valid ack on the lane's acks topic.
        acks = procs.start("acks", ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(plain), "-t", f"{PREFIX}/acks",
                                    "-C", "1", "-W", "30", "-q", "1"])
        time.sleep(0.5)
        Select(s1.find_element(By.ID, "ack-disposition")).select_by_value("searched-nothing-found")
        s1.find_element(By.ID, "ack-button").click()
        acks.wait(35)
        ack = json.loads(procs.log("acks").strip().splitlines()[0])
        check(ack["id"] == aid and ack["ack_token"] == alert["data"]["ack_token"], f"the ack names the alert: {ack}")
        check(ack["disposition"] == "searched-nothing-found" and ack["by"] == USER, f"the ack's disposition and by: {ack}")
        with open(os.path.join(work, "ack.json"), "w") as f:
            json.dump(ack, f)
        v = subprocess.run(["/usr/bin/python3", f"{src}/tests/support/validate_json.py", "--schemas",
                            f"{src}/config/schemas", "ack", os.path.join(work, "ack.json")], capture_output=True)
        check(v.returncode == 0, f"the ack validates: {v.stdout.decode()}{v.stderr.decode()}")

        # Every console sees the state change; the lane's outbox has it acked.
        for d in (s2, s1):
            wait_for(lambda d=d: row(d, aid).get_attribute("data-state") == "acked" and "flash" not in classes(row(d, aid)),
                     20, "the alert stops flashing in every session")
        ob = json.loads(ctl("outbox", "--json").stdout)
        check(ob["acked"] >= 2, f"the outbox shows the alert (and its image) acked: {ob}")

        # Session 3, opened afterwards: acked, with its image, from the retained topics.
        s3 = browser()
        drivers.append(s3)
        login(s3, ws)
        logged_in(s3)
        wait_for(lambda: row(s3, aid) is not None and row(s3, aid).get_attribute("data-state") == "acked", 20,
                 "a console opened later lists the alert as acked")
        row(s3, aid).click()
        shown3 = wait_for(lambda: (lambda i: i if i["verified"] == "verified" and i["complete"] else None)(shown_image(s3)),
                          20, "a console opened later shows the image, verified")
        check(shown3["sha256"] == image["sha256"], "the later console's image is the alert's")
        check("searched, nothing found" in s3.find_element(By.ID, "acked-by").text, "the disposition in words")

        # Acceptance 2: a shelf on the device that raises test alerts (lanegated itself),
        # shared through the retained shelves topic; 12 alerts within a minute.
        until = (datetime.now(timezone.utc) + timedelta(seconds=25)).isoformat().replace("+00:00", "Z")
        shelves = {"shelves": [{"device": "lanegated", "until": until, "by": "e2e", "reason": "maintenance"}],
                   "time": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"), "by": "e2e"}
        with open(os.path.join(work, "shelves.json"), "w") as f:
            json.dump(shelves, f)
        v = subprocess.run(["/usr/bin/python3", f"{src}/tests/support/validate_json.py", "--schemas",
                            f"{src}/config/schemas", "shelves", os.path.join(work, "shelves.json")], capture_output=True)
        check(v.returncode == 0, f"the shelves message validates: {v.stdout.decode()}{v.stderr.decode()}")
        check(mqtt_cmd("mosquitto_pub", plain, "-t", f"{PREFIX}/shelves", "-r", "-q", "1", "-m",
                       json.dumps(shelves)).returncode == 0, "shelf published")
        wait_for(lambda: "lanegated" in s2.find_element(By.CSS_SELECTOR, "#lanes").text, 10, "the shelf on the lane strip")
        t = ctl("test-alert", "--count", "12", sock="admin.sock")
        check(t.returncode == 0, f"test-alert: {t.stderr.decode()}")
        test_ids = [json.loads(l)["accepted"] if l.startswith("{") else l for l in t.stdout.decode().split()]
        test_ids = [i for i in test_ids if len(i) == 36]
        check(len(test_ids) == 12, f"12 test alerts accepted: {t.stdout.decode()}")

        def all_rows(d, state):
            return all(row(d, i) is not None and row(d, i).get_attribute("data-state") == state for i in test_ids)
        wait_for(lambda: all_rows(s2, "shelved"), 20, "the shelved device's new alerts listed as shelved")
        check(not any("flash" in classes(row(s2, i)) for i in test_ids), "shelved alerts do not flash")
        check(not s2.find_element(By.ID, "flood-banner").is_displayed(), "shelved alerts are not a flood")
        wait_for(lambda: all_rows(s2, "open"), 40, "the alerts return when the shelf expires")
        check(all("flash" in classes(row(s2, i)) for i in test_ids), "returned alerts flash")
        wait_for(lambda: s2.find_element(By.ID, "flood-banner").is_displayed(), 10, "the flood banner")
        check("FLOOD" in s2.find_element(By.ID, "flood-banner").text, "the flood banner says so")

        # A shelf made in the console reaches the broker (retained) for every console.
        tile = s3.find_element(By.CSS_SELECTOR, f'#lanes .lane[data-lane="{SITE}/{LANE}"]')
        Select(tile.find_element(By.CSS_SELECTOR, "select.shelve-what")).select_by_value("xray-1")
        tile.find_element(By.CSS_SELECTOR, "button.shelve").click()
        wait_for(lambda: b'"xray-1"' in retained(plain, f"{PREFIX}/shelves"), 10, "the console's shelf retained")
        wait_for(lambda: s1.find_elements(By.CSS_SELECTOR, '#lanes .shelf[data-shelf="xray-1"]'), 10,
                 "another console shows the shelf")

        # The lane offline: the strip says so.
        daemon = [p for n, p in procs.procs if n == "lanegated"][0]
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)
        wait_for(lambda: "OFFLINE" in s1.find_element(By.CSS_SELECTOR, f'#lanes .lane[data-lane="{SITE}/{LANE}"]').text,
                 15, "the lane shown offline")
        # The broker gone: every console says the connection is lost.
        [p for n, p in procs.procs if n == "mosquitto"][0].send_signal(signal.SIGTERM)
        wait_for(lambda: "CONNECTION LOST" in s2.find_element(By.ID, "conn").text, 20, "connection lost shown")
        print("console_e2e: all checks passed")
        return 0
    except (Failed, subprocess.TimeoutExpired) as e:
        print(f"console_e2e: FAILED: {e}", file=sys.stderr)
        for name in ("lanegated", "mosquitto", "xray-sim"):
            try:
                print(f"--- {name} (tail)\n" + "\n".join(procs.log(name).splitlines()[-25:]), file=sys.stderr)
            except OSError:
                pass
        for i, d in enumerate(drivers):
            try:
                d.save_screenshot(os.path.join(work, f"session{i + 1}.png"))
                print(f"console_e2e: screenshot of session {i + 1} in {work}/session{i + 1}.png", file=sys.stderr)
            except Exception:
                pass
        return 1
    finally:
        for d in drivers:
            try:
                d.quit()
            except Exception:
                pass
        procs.stop()


if __name__ == "__main__":
    sys.exit(main())
