#!/usr/bin/env python3
"""The dependency rules of ../shared/DESIGN.md ("Layout"), checked over the #include lines,
and the size limit of the folders that hold the daemon's logic. Run by ctest
(layout.dependency_rules), so `make test` and CI fail when a rule breaks.

    python3 tests/layout/check_layout.py [SOURCE_DIR]

Rules:
  vision/, trace/   include nothing of the project but themselves
  lane/             includes lane/, vision/, trace/ and the driver event types
                    (drivers/events.h) only; no Asio, Paho or SQLite, in its sources or
                    its CMakeLists.txt
  drivers/          includes nothing of daemon/ or lane/
  daemon/ alone     knows Asio (only through daemon/asio.h), Paho (only in
                    daemon/mqtt_client.cpp) and SQLite (only in the outbox:
                    daemon/outbox*.cpp through daemon/outbox_sql.h)
  nlohmann/json     no spectrum or finding becomes JSON text between a driver and the
                    outbox but once, for the payload: drivers/ (the simulators aside) does
                    not include it, and lane/ only in its payload and calibration-store files
  size              no file in trace/, lane/ or daemon/ is over 900 lines
Prints every breach as FILE:LINE: message and exits 1 if there is any.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
MAX_LINES = 900
# Files allowed over MAX_LINES for now, each with the reason; the check says so when they run.
OVER_LIMIT = {}
SOURCE_EXT = (".h", ".hpp", ".cpp", ".cc")


def sources(root, folder):
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for name in sorted(files):
            if name.endswith(SOURCE_EXT):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, root)


def includes(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield number, m.group(1) == '"', m.group(2)


def project_folder(path):
    return path.split("/", 1)[0] if "/" in path else ""


def check(root):
    errors = []

    def breach(rel, line, message):
        errors.append(f"{rel}:{line}: {message}")

    project = {"vision", "trace", "lane", "drivers", "daemon", "tests"}
    for folder in ("vision", "trace", "lane", "drivers", "daemon"):
        for rel in sources(root, folder):
            in_sim = rel.startswith("drivers/sim/")
            for line, quoted, target in includes(root, rel):
                top = project_folder(target)
                if quoted and top in project:
                    if folder in ("vision", "trace") and top != folder:
                        breach(rel, line, f"{folder}/ includes nothing of the project but itself, not {target}")
                    if folder == "lane" and top not in ("lane", "vision", "trace") and target != "drivers/events.h":
                        breach(rel, line, f"lane/ includes lane/, vision/, trace/ and drivers/events.h only, not {target}")
                    if folder == "drivers" and top in ("daemon", "lane"):
                        breach(rel, line, f"drivers/ includes nothing of {top}/ ({target})")
                    if target == "daemon/asio.h" and folder != "daemon":
                        breach(rel, line, "only daemon/ knows Asio")
                if target.startswith("boost/asio") and rel != "daemon/asio.h":
                    breach(rel, line, f"Asio comes in through daemon/asio.h only (Boost 1.74 needs <utility> first), not {target}")
                if (target.startswith("mqtt/") or target.startswith("MQTT")) and rel != "daemon/mqtt_client.cpp":
                    breach(rel, line, f"Paho is included by daemon/mqtt_client.cpp only, not here ({target})")
                # The outbox is SQLite's one home; past 900 lines it is split into files of
                # its own (outbox*.cpp) that share outbox_sql.h, which alone includes SQLite.
                if target == "sqlite3.h" and rel != "daemon/outbox_sql.h":
                    breach(rel, line, "SQLite is included by daemon/outbox_sql.h only (the outbox's own files use it)")
                if target == "daemon/outbox_sql.h" and not re.fullmatch(r"daemon/outbox[a-z_]*\.cpp", rel):
                    breach(rel, line, "daemon/outbox_sql.h is the outbox's own (outbox*.cpp)")
                if target.startswith("nlohmann/"):
                    if folder == "drivers" and not in_sim:
                        breach(rel, line, "drivers/ emit typed events, never JSON text: no nlohmann/json here")
                    if folder == "lane" and not re.match(r"lane/(payloads|calibration_store)\.(h|cpp)$", rel):
                        breach(rel, line, "lane/ serialises once, in payloads and the calibration store: "
                                          "no nlohmann/json here")
        if folder in ("trace", "lane", "daemon"):
            for rel in sources(root, folder):
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                    count = sum(1 for _ in f)
                if count > MAX_LINES:
                    if rel in OVER_LIMIT:
                        print(f"note: {rel}: {count} lines, over {MAX_LINES} for now: {OVER_LIMIT[rel]}")
                    else:
                        breach(rel, count, f"{count} lines: keep files in {folder}/ under {MAX_LINES} (one job a file)")
    cmake = os.path.join(root, "lane", "CMakeLists.txt")
    with open(cmake, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            code = line.split("#", 1)[0]
            if re.search(r"Boost|Paho|SQLite|sqlite", code):
                breach("lane/CMakeLists.txt", number, "lanegate_lane links no Asio, Paho or SQLite")
    return errors


def main(argv):
    root = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    errors = check(root)
    for e in errors:
        print(e)
    if errors:
        print(f"layout: {len(errors)} breach(es) of the dependency rules (../shared/DESIGN.md, Layout)")
        return 1
    print("layout: the dependency rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
