"""drain: how close a backlog's drain comes to Redox's rate limit when Redox and S3 are far away.

    python scripts/bench/drain.py [--files N] [--quick] [--repo DIR ...]

Production-like config: every key at the pipeline's default (workers included: config.yaml
does not set it), except ``redox.max_requests_per_second: 20``. N small files (300; --quick
100) are already waiting (mtime a minute back, so settle_seconds is met on first sight), and
latencyproxy.py puts the services as far away as in production:

  local, Redox 250 ms     local inbox; sandbox behind a 250 ms round trip; ``run --once``
  local, Redox 1 s        the same, 1 s round trip
  S3 30 ms, Redox 100 ms  ``source.kind: s3``, moto behind a 30 ms proxy (objects put
                          straight to moto first), sandbox behind 100 ms; ``run --once``
  two services, 250 ms    two ``run`` services (not --once) on the same folders and state,
                          started together, stopped once every file is finished

From the sandbox's records (when each SEND's request line reached it, as Redox's limiter
counts): the steady rate, i.e. the SENDs between the 10th and the 90th percentile of those
times over the time between them (start-up and the last workers' tail left out), as a share
of the limit; and the busiest sliding 1-second window, which must never exceed the limit.
Targets are printed, not asserted.
"""

from __future__ import annotations

import argparse
import time

import common
from common import Figure

LIMIT = 20
TARGET_SHARE = 0.95
CONFIG = {"redox": {"max_requests_per_second": LIMIT}}


def figures(label: str, times: list[float], wall: float, files: int) -> list[Figure]:
    return [
        Figure(f"{label}: steady SENDs/s (p10-p90)", common.share(common.steady_rate(times), LIMIT),
               f"≥ {TARGET_SHARE * LIMIT:g}/s ({TARGET_SHARE:.0%})"),
        Figure(f"{label}: busiest 1-second window", str(common.busiest_window(times)), f"≤ {LIMIT}"),
        Figure(f"{label}: whole drain", f"{len(times)} SENDs for {files} files in {wall:.1f} s"),
    ]


def drain_once(ck: common.Checkout, sandbox: common.Sandbox, ws: common.Workspace, label: str,
               files: int) -> list[Figure]:
    common.note(f"{ck.label}: {label}")
    sandbox.reset()
    usage = common.run_pipeline(ck, ws, "run", "--once", timeout=3600)
    return figures(label, sandbox.send_times(), usage.wall, files)


def local(ck: common.Checkout, sandbox: common.Sandbox, redox_url: str, label: str,
          files: int) -> list[Figure]:
    with common.Workspace("bench-drain-") as ws:
        ws.write_config(common.local_config(ws, redox_url, CONFIG))
        common.fill_inbox(ws.inbox, files)
        return drain_once(ck, sandbox, ws, label, files)


def s3(ck: common.Checkout, sandbox: common.Sandbox, redox_url: str, label: str,
       files: int) -> list[Figure]:
    with common.S3Server() as moto, common.LatencyProxy(moto.hostport, 30) as far_s3, \
            common.Workspace("bench-drain-s3-") as ws:
        moto.fill("bench-drain", files)
        ws.write_config(common.s3_config(ws, redox_url, far_s3.url, "bench-drain", CONFIG))
        # Objects carry their real LastModified: wait out the default settle_seconds (2 s),
        # so they are a waiting backlog, as the local files are.
        time.sleep(2.5)
        moto.counts(reset=True)
        out = drain_once(ck, sandbox, ws, label, files)
        counts = moto.counts()
        total = sum(counts.values())
        kinds = ", ".join(f"{k} {v / files:.2f}" for k, v in sorted(counts.items()))
        out.append(Figure(f"{label}: S3 requests per object", f"{total / files:.2f} ({kinds})"))
        return out


def two_services(ck: common.Checkout, sandbox: common.Sandbox, redox_url: str, label: str,
                 files: int) -> list[Figure]:
    common.note(f"{ck.label}: {label}")
    with common.Workspace("bench-drain-two-") as ws:
        ws.write_config(common.local_config(ws, redox_url, CONFIG))
        common.fill_inbox(ws.inbox, files)
        sandbox.reset()
        procs = [common.start_pipeline(ck, ws, name=f"service{i}") for i in (1, 2)]
        started = time.perf_counter()
        deadline = time.monotonic() + 3600
        try:
            while time.monotonic() < deadline and all(p.poll() is None for p in procs):
                finished = (common.count_files(ws.folder("done"))
                            + common.count_files(ws.folder("failed")))
                if finished >= files:
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - started
        finally:
            usages = [p.stop() for p in procs]
        if any(u.exit not in (0, -15) for u in usages):
            tails = "\n".join(p.tail() for p in procs)
            raise SystemExit(f"{ck.label}: a service exited with {[u.exit for u in usages]}:\n{tails}")
        return figures(label, sandbox.send_times(), wall, files)


def measure(ck: common.Checkout, files: int) -> list[Figure]:
    out: list[Figure] = []
    with common.Sandbox() as sandbox:
        with common.LatencyProxy(sandbox.hostport, 250) as far:
            out += local(ck, sandbox, far.url, "local, Redox 250 ms", files)
            out += two_services(ck, sandbox, far.url, "two services, Redox 250 ms", files)
        with common.LatencyProxy(sandbox.hostport, 1000) as far:
            out += local(ck, sandbox, far.url, "local, Redox 1 s", files)
        with common.LatencyProxy(sandbox.hostport, 100) as far:
            out += s3(ck, sandbox, far.url, "S3 30 ms, Redox 100 ms", files)
    return out


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    files = common.pick(args.files, args.quick, 300, 100)
    print(f"== drain: {files} waiting files, max_requests_per_second {LIMIT}, default workers, "
          "Redox and S3 behind latencyproxy.py", flush=True)
    common.print_table("drain", {ck.label: measure(ck, files) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
