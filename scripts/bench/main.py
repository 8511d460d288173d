"""The benchmarks in one command: chosen parts, for one checkout or several side by side.

    scripts/bench/run [PART ...] [--quick] [--repo DIR ...] [part options]
    python scripts/bench/main.py ...          (the same, without the .venv set-up)

Parts (all of them, in this order, when none is named):
    overhead   files/s vs a bare requests loop; CPU per file              (overhead.py)
    rate       max_requests_per_second 20 over 1,000 files, on loopback   (rate.py)
    latency    drop-to-done in service mode                               (latency.py)
    memory     peak RSS per file size                                     (memory.py)
    drain      rate at the limit with Redox/S3 far away; two services     (drain.py)
    backlog    1,000,000 local files: first SEND, peak RSS, scan          (backlog.py)
    s3backlog  100,000 S3 objects 30 ms away: first SEND, peak RSS        (s3backlog.py)
    client     CPU per SEND of the HTTP client alone                      (clientcpu.py)
    s3         S3 list, claim and claim race                              (s3claim.py)
    ops        status and report timings                                  (opscmds.py)
    reconcile  delivery-confirmation passes                               (reconcile.py)
    validation CPU per schema validation of a Redox-shaped message        (validation.py)
    ordering   files/s unordered vs ordered by patient, 1/10/1,000 keys   (ordering.py)

Prints figures, never asserts: a missed target is a figure like any other. Every option is
described by --help; README.md beside this file says what each figure means.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

import common

PARTS = {"overhead": "overhead", "rate": "rate", "latency": "latency", "memory": "memory",
         "drain": "drain", "backlog": "backlog", "s3backlog": "s3backlog", "client": "clientcpu",
         "s3": "s3claim", "ops": "opscmds", "reconcile": "reconcile", "validation": "validation",
         "ordering": "ordering"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART", help="parts to run (default: all)")
    common.add_arguments(parser)
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}; known: {', '.join(PARTS)}")
    common.this_checkout()                      # the sandbox's code, compiled once
    checkouts = common.checkouts(args)
    print(f"redox-pipeline benchmarks: {', '.join(ck.label for ck in checkouts)}; "
          f"{'quick' if args.quick else 'full'} counts; Python {platform.python_version()}, "
          f"{os.cpu_count()} cores", flush=True)
    for part in args.parts or list(PARTS):
        started = time.monotonic()
        importlib.import_module(PARTS[part]).run(checkouts, args)
        common.note(f"{part} took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
