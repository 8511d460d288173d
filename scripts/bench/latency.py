"""latency: drop-to-done for one file at a time in service mode.

    python scripts/bench/latency.py [--quick] [--repo DIR ...]

``run`` (service mode, file events on, ``settle_seconds: 0.5``) against the sandbox on
loopback; five files are dropped one at a time (written as a dotfile, renamed in) and each is
timed from the rename to its appearance in done/. The target is settle + 0.5 s.
"""

from __future__ import annotations

import argparse
import time

import common
from common import Figure

SETTLE = 0.5
SAMPLES = 5


def wait_for(predicate, timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def measure(ck: common.Checkout) -> list[Figure]:
    with common.Sandbox() as sandbox, common.Workspace("bench-latency-") as ws:
        overrides = common.deep_merge(common.TEST_LIKE, {"source": {"settle_seconds": SETTLE}})
        ws.write_config(common.local_config(ws, sandbox.url, overrides))
        proc = common.start_pipeline(ck, ws)
        try:
            # The service makes its processing/<owner>/ folder once it is running.
            if not wait_for(lambda: any(ws.folder("processing").iterdir()), 60, 0.05):
                raise SystemExit(f"{ck.label}: the service did not start:\n{proc.tail()}")
            figures = []
            for i in range(SAMPLES):
                name = f"l{i}.json"
                done = ws.folder("done") / name
                start = time.time()
                common.drop_file(ws.inbox, name, common.message(f"l{i}"))
                if not wait_for(done.exists, 60):
                    raise SystemExit(f"{ck.label}: {name} did not reach done/:\n{proc.tail()}")
                figures.append(time.time() - start)
                time.sleep(0.3)
        finally:
            proc.stop()
    return [Figure(f"drop-to-done, {SAMPLES} files one at a time",
                   ", ".join(f"{f:.3f}" for f in figures) + " s", f"< {SETTLE + 0.5:.1f} s")]


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    print(f"== latency: drop-to-done in service mode, settle_seconds {SETTLE}", flush=True)
    common.print_table("latency", {ck.label: measure(ck) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
