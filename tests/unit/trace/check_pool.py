#!/usr/bin/env python3
"""Compares the analysis of the bench pool with a record, byte for byte.

    check_pool.py TRACE_POOL_DUMP RECORD            exit 0 when every line is identical
    check_pool.py TRACE_POOL_DUMP RECORD --write     record what the analysis gives now

TRACE_POOL_DUMP is the built trace_pool_dump; RECORD holds the SHA-256 of each line of its
output (toJson(analyze()) of each of the 256 bench spectra) and of the whole. The record
in the tree was taken on the commit just before trace/analysis.cpp was split by job, so
this check (ctest: trace.bench_pool_unchanged) shows that the split changed no result.
"""
import hashlib
import subprocess
import sys


def digests(dump):
    out = subprocess.run([dump], check=True, capture_output=True).stdout
    lines = out.split(b"\n")[:-1]
    return [hashlib.sha256(l).hexdigest() for l in lines], hashlib.sha256(out).hexdigest()


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--write"):
        print(__doc__)
        return 2
    lines, whole = digests(argv[1])
    if len(argv) == 4:
        with open(argv[2], "w") as f:
            f.write(f"# SHA-256 of toJson(analyze()) of each bench-pool spectrum, then of the whole dump\n")
            for i, d in enumerate(lines):
                f.write(f"{i} {d}\n")
            f.write(f"all {whole}\n")
        print(f"recorded {len(lines)} analyses in {argv[2]}")
        return 0
    want = {}
    with open(argv[2]) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            key, digest = line.split()
            want[key] = digest
    changed = [str(i) for i, d in enumerate(lines) if want.get(str(i)) != d]
    if len(lines) != len(want) - 1:
        print(f"{len(lines)} analyses, the record has {len(want) - 1}")
        return 1
    if changed or want.get("all") != whole:
        print(f"{len(changed)} of {len(lines)} analyses differ from the record: spectra {' '.join(changed[:20])}")
        return 1
    print(f"all {len(lines)} analyses are byte-identical to the record ({whole[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
