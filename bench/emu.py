"""The emulator in its own process for the benchmarks, controlled over stdin.

The suite starts this once and points the agent and every baseline at it, so they all talk to the same
server and the server's CPU is not charged to (or competing inside) the process being measured. It is
`watcher.emulator.Emulator` unchanged, with per-request logging turned down.

Protocol: prints one JSON line {"base_url", "pid"} when listening, then reads commands on stdin and
answers each with one JSON line:
    stats            {"requests": N, "ok": N, "by_status": {...}}
    fault STATUS     every upload is answered STATUS until `clear` (e.g. `fault 503`)
    clear            drop faults and the request log
EOF is a stop.

The emulator hashes every body it receives (sha256, for the tests' assertions). Here that would put a
second sha256 of every byte on the same two cores as the process being measured, and cap loopback
throughput at the speed of sha256, so by default the benchmark emulator is made with hash_bodies=False
and counts bytes without hashing them (BENCH_EMULATOR_HASH=1 restores the hash). Nothing in the
benchmarks reads the emulator's digests.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys

from watcher.emulator import Emulator, Fault


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    token = os.environ["USEAPI_TOKEN"]
    accounts = (os.environ.get("BENCH_ACCOUNTS") or "123456").split(",")
    hash_bodies = os.environ.get("BENCH_EMULATOR_HASH") == "1"
    emulator = Emulator(token=token, accounts=accounts, hash_bodies=hash_bodies).start()
    print(json.dumps({"base_url": emulator.base_url, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        answer: dict[str, object]
        if words[0] == "stats":
            requests = emulator.requests
            by_status = collections.Counter(str(r.status) for r in requests)
            answer = {"requests": len(requests), "ok": by_status.get("200", 0), "by_status": by_status}
        elif words[0] == "fault":
            emulator.add_fault(Fault(kind="status", status=int(words[1]), times=-1))
            answer = {"fault": int(words[1])}
        elif words[0] == "clear":
            answer = {"faults": emulator.clear_faults(), "requests": emulator.clear_requests()}
        else:
            answer = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(answer), flush=True)
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
