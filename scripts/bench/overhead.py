"""overhead: the pipeline's own cost next to Redox's, and its CPU per file.

    python scripts/bench/overhead.py [--quick] [--repo DIR ...]

At 0 ms and at 50 ms of sandbox latency (the sandbox's ``latency_ms``: server time), N small
files (2,000; --quick 400) go through ``run --once`` with 4 workers and no rate limit, and the
same number of SENDs through a bare ``requests.Session`` loop with 4 threads (probe.py bare),
against the same sandbox. Prints files/s for both and their ratio, for the whole run (process
start-up included) and for its steady part (first to last SEND answered), and the CPU per
file of the pipeline process (user + system, from os.wait4), of which start-up is measured by
the same command over an empty inbox.
"""

from __future__ import annotations

import argparse
import os

import common
from common import Figure

WORKERS = 4
TARGET_RATIO = {0: "≥ 0.6", 50: "≥ 0.9"}


def measure(ck: common.Checkout, count: int, latency: int) -> list[Figure]:
    with common.Sandbox("--latency-ms", str(latency)) as sandbox, \
            common.Workspace("bench-overhead-") as ws:
        ws.write_config(common.local_config(ws, sandbox.url, common.TEST_LIKE))
        common.fill_inbox(ws.inbox, count)
        run = common.run_pipeline(ck, ws, "run", "--once")
        sends = sandbox.send_times("at")
        bare = common.run_probe(ck, "bare", "--url", sandbox.url, "--sends", str(count),
                                "--threads", str(WORKERS))
        idle = common.run_pipeline(ck, ws, "run", "--once", name="idle")
    steady = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else 0.0
    pipe_rate, bare_rate = count / run.wall, count / bare["wall_s"]
    at = f"{latency} ms:"
    return [
        Figure(f"{at} pipeline files/s, whole run", f"{pipe_rate:.1f} ({run.wall:.2f} s)"),
        Figure(f"{at} pipeline files/s, first to last SEND", f"{steady:.1f}"),
        Figure(f"{at} bare requests loop SENDs/s", f"{bare_rate:.1f}"),
        Figure(f"{at} ratio whole run (steady)",
               f"{pipe_rate / bare_rate:.2f} ({steady / bare_rate:.2f})", TARGET_RATIO.get(latency, "")),
        Figure(f"{at} CPU per file, whole process", f"{1000 * run.cpu / count:.2f} ms", "< 2 ms"),
        Figure(f"{at} start-up CPU (empty inbox)", f"{idle.cpu:.2f} s"),
        Figure(f"{at} CPU per file beyond start-up", f"{1000 * (run.cpu - idle.cpu) / count:.2f} ms"),
    ]


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    count = common.pick(None, args.quick, 2000, 400)
    print(f"== overhead and CPU per file: {count} small files, {WORKERS} workers, no rate limit, "
          f"sandbox on loopback, {os.cpu_count()} cores", flush=True)
    results = {}
    for ck in checkouts:
        results[ck.label] = [fig for latency in (0, 50) for fig in measure(ck, count, latency)]
    common.print_table("overhead", results)


if __name__ == "__main__":
    common.part_main(run, __doc__)
