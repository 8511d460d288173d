"""s3backlog: an S3 prefix holding a big backlog, 30 ms away: time to the first SEND, peak RSS.

    python scripts/bench/s3backlog.py [--s3-backlog N] [--quick] [--repo DIR ...]

N small objects (100,000; --quick 10,000) are put under ``incoming/`` straight to moto (no
proxy, 32 threads), then ``run`` starts in service mode with ``source.kind: s3`` and
``source.endpoint_url`` pointing at latencyproxy.py 30 ms in front of moto; the config is the
drain part's (defaults, max_requests_per_second 20) and the sandbox is on loopback, no latency.
Measured as in backlog.py: from the process's start to the first SEND the sandbox records, and
the service's peak RSS by then and after 12 s more of draining.

moto is not S3: it answers a listing page more slowly the more keys the bucket holds, which
S3 does not. So that its share can be told apart, the part also times moto alone, with no
proxy: the first listing page, and a full listing of the prefix.
"""

from __future__ import annotations

import argparse
import time

import backlog
import common
from common import Figure

FIRST_SEND_TARGET = 3.0


def moto_listing(s3: common.S3Server, bucket: str) -> tuple[float, float, int]:
    """Seconds for the first page and for every page of ``incoming/``, straight to moto."""
    client = s3.client()
    paginator = client.get_paginator("list_objects_v2")
    start = time.perf_counter()
    first = None
    keys = 0
    for page in paginator.paginate(Bucket=bucket, Prefix="incoming/", PaginationConfig={"PageSize": 1000}):
        keys += len(page.get("Contents", []))
        if first is None:
            first = time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start, keys


def measure(ck: common.Checkout, count: int) -> list[Figure]:
    label = f"{count:,} S3 objects, 30 ms"
    bucket = "bench-backlog"
    with common.Sandbox() as sandbox, common.S3Server() as s3, \
            common.LatencyProxy(s3.hostport, 30) as far, common.Workspace("bench-s3backlog-") as ws:
        common.note(f"{ck.label}: putting {count:,} objects into moto")
        filled = s3.fill(bucket, count)
        page, full, keys = moto_listing(s3, bucket)
        ws.write_config(common.s3_config(ws, sandbox.url, far.url, bucket,
                                         {"redox": {"max_requests_per_second": backlog.LIMIT}}))
        time.sleep(2.5)           # the newest objects wait out the default settle_seconds (2 s)
        figures = [Figure(f"{label}: put (setup, 32 threads)", f"{filled:.1f} s"),
                   Figure(f"{label}: moto alone, first page / full listing",
                          f"{page * 1000:.0f} ms / {full:.1f} s ({keys:,} keys)")]
        figures += backlog.service_start(ck, sandbox, ws, label, FIRST_SEND_TARGET,
                                         timeout=max(120.0, count / 200))
    return figures


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    count = common.pick(args.s3_backlog, args.quick, 100_000, 10_000)
    print(f"== s3backlog: {count:,} objects waiting under an S3 prefix 30 ms away (moto behind "
          f"latencyproxy.py); service mode, max_requests_per_second {backlog.LIMIT}", flush=True)
    common.print_table("s3backlog", {ck.label: measure(ck, count) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
