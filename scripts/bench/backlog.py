"""backlog: a big local backlog: time to the first SEND, the service's peak RSS, one scan.

    python scripts/bench/backlog.py [--backlog N] [--quick] [--repo DIR ...]

N small files (1,000,000; --quick 100,000) are written straight into the inbox (os.open and
os.write, mtime a minute back: they have been waiting), then ``run`` starts in service mode
with the production-like config of the drain part (defaults, max_requests_per_second 20),
the sandbox on loopback with no latency, so the figure is the pipeline's own start and not
the network's. Measured:

  first SEND     from the process's start (just before fork) to the arrival of the first
                 SEND the sandbox records
  peak RSS       the service's high-water mark when the first SEND is seen (/proc VmHWM),
                 and after HOLD more seconds of draining (os.wait4 after SIGTERM), which
                 takes in one periodic rescan (rescan_seconds defaults to 10)
  scan           one full scan of the inbox by the store the service uses (probe.py scan)

The files were just written, so their directory and inodes are in the page cache: a cold
cache on a real disk would be slower. Needs about 4 KB of disk per file (4 GB for a million);
the folder is removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import common
from common import Figure

LIMIT = 20
HOLD = 12.0
FIRST_SEND_TARGET = 2.0
RSS_TARGET_MB = 400


def high_water_mb(pid: int) -> float | None:
    """VmHWM of a live process (what ru_maxrss reports once it has ended), in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def service_start(ck: common.Checkout, sandbox: common.Sandbox, ws: common.Workspace,
                  label: str, first_target: float, timeout: float) -> list[Figure]:
    """Start the service on ``ws``, time its first SEND, hold, stop: the figures."""
    sandbox.reset()
    proc = common.start_pipeline(ck, ws)
    try:
        first = sandbox.wait_first_send(timeout, alive=lambda: proc.poll() is None)
        hwm_first = high_water_mb(proc.pid) if proc.pid else None
        if first is not None:
            time.sleep(HOLD)
        sends = sandbox.send_count()
    finally:
        usage = proc.stop(timeout=300)
    if first is None:
        common.note(f"{ck.label}: no SEND within {timeout:.0f} s (exit {usage.exit}):\n{proc.tail()}")
    held = f" and {HOLD:g} s more ({sends} SENDs)" if first is not None else ""
    return [
        Figure(f"{label}: first SEND after start", common.seconds(
            None if first is None else first - proc.started, f"none in {timeout:.0f} s"),
            f"≤ {first_target:g} s"),
        Figure(f"{label}: peak RSS by the first SEND",
               "-" if hwm_first is None or first is None else f"{hwm_first:.0f} MB",
               f"< {RSS_TARGET_MB} MB"),
        Figure(f"{label}: peak RSS over the run", f"{usage.maxrss_mb:.0f} MB (start to first "
               f"SEND{held}; CPU {usage.cpu:.1f} s)", f"< {RSS_TARGET_MB} MB"),
    ]


def measure(ck: common.Checkout, count: int) -> list[Figure]:
    label = f"{count:,} local files"
    with common.Sandbox() as sandbox, common.Workspace("bench-backlog-") as ws:
        ws.write_config(common.local_config(ws, sandbox.url, {"redox": {"max_requests_per_second": LIMIT}}))
        common.note(f"{ck.label}: writing {count:,} files")
        started = time.perf_counter()
        common.fill_inbox(ws.inbox, count)
        written = time.perf_counter() - started
        figures = [Figure(f"{label}: written (setup)", f"{written:.1f} s")]
        figures += service_start(ck, sandbox, ws, label, FIRST_SEND_TARGET,
                                 timeout=max(120.0, count / 2000))
        scan = common.run_probe(ck, "scan", "--config", str(ws.config))
        figures.append(Figure(f"{label}: one full scan of the inbox",
                              f"{scan['seconds']:.2f} s ({scan['listed']:,} listed)"))
        common.note(f"{ck.label}: removing the backlog")
        shutil.rmtree(ws.inbox, ignore_errors=True)
    return figures


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    count = common.pick(args.backlog, args.quick, 1_000_000, 100_000)
    print(f"== backlog: {count:,} small files waiting in the local inbox; service mode, default "
          f"config with max_requests_per_second {LIMIT}, sandbox on loopback", flush=True)
    usage = shutil.disk_usage(tempfile.gettempdir())
    if usage.free < count * 8192:
        common.note(f"only {usage.free / 2**30:.1f} GiB free for {count:,} files: may run out")
    common.print_table("backlog", {ck.label: measure(ck, count) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
