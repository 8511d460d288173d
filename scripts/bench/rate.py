"""rate: the rate limit over a long run, with Redox on loopback.

    python scripts/bench/rate.py [--quick] [--repo DIR ...]

1,000 small files (--quick 100) through ``run --once`` with ``max_requests_per_second: 20``,
4 workers, settle 0, the sandbox on loopback with no latency. From the sandbox's records (when
each SEND's request line arrived): the achieved rate from the first SEND to the last, and the
busiest sliding one-second window, which must never exceed the limit. The drain part measures
the same limit with Redox and S3 as far away as in production.
"""

from __future__ import annotations

import argparse

import common
from common import Figure

LIMIT = 20


def measure(ck: common.Checkout, count: int) -> list[Figure]:
    with common.Sandbox() as sandbox, common.Workspace("bench-rate-") as ws:
        overrides = common.deep_merge(common.TEST_LIKE, {"redox": {"max_requests_per_second": LIMIT}})
        ws.write_config(common.local_config(ws, sandbox.url, overrides))
        common.fill_inbox(ws.inbox, count)
        common.run_pipeline(ck, ws, "run", "--once")
        times = sandbox.send_times()
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None
    return [Figure("achieved rate, first to last SEND", common.share(achieved, LIMIT),
                   f"≥ {0.95 * LIMIT:g}/s"),
            Figure("busiest 1-second window", str(common.busiest_window(times)), f"≤ {LIMIT}")]


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    count = common.pick(None, args.quick, 1000, 100)
    print(f"== rate: max_requests_per_second {LIMIT}, {count} files, 4 workers, sandbox on "
          "loopback", flush=True)
    common.print_table("rate", {ck.label: measure(ck, count) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
