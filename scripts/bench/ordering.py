"""ordering: what ordering costs in throughput, unordered against ordered by patient.

    python scripts/bench/ordering.py [--ordering-files N] [--keys K ...] [--latency-ms MS]
                                     [--workers N] [--error-rate P] [--quick] [--repo DIR ...]

Files/s of ``run --once`` with the files spread round-robin over 1, 10 and 1,000 patients
(``--keys``), each spread run twice: ``ordering.by: none`` and ``ordering.by: patient``. Every
run is a fresh drop folder against one sandbox (latency 100 ms, ``--latency-ms``; no rate
limit anywhere), ``workers`` 8 (``--workers``), N files (1,000; --quick 200) dropped oldest
first; ``--error-rate`` answers that share of SENDs with 503 (retried). Config test-like
otherwise, with retries enough to see every file through (30 attempts, 0.05 s to 1 s).

Beside files/s and the run's seconds (start-up included): the most SENDs the sandbox had in
hand at once, and whether every patient's files were first accepted in drop order (unordered
runs usually are not). One patient ordered is one SEND at a time: at most 1,000 / latency
files/s.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import common
from common import Figure

RETRY = {"max_attempts": 30, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 1}


def drop_files(ws: common.Workspace, files: int, keys: int) -> dict[str, list[str]]:
    """``files`` files of ``keys`` patients, round-robin, mtimes a millisecond apart, oldest
    first (names sort in drop order too). Returns patient → its markers in drop order."""
    expected: dict[str, list[str]] = defaultdict(list)
    for k in range(files):
        patient, seq = f"p{k % keys:04}", k // keys
        marker = f"{patient}-{seq}"
        common.drop_file(ws.inbox, f"f{seq:05}-{patient}.json", common.message(patient, marker),
                         age=10_000 - k * 0.001)
        expected[patient].append(marker)
    return expected


def max_in_flight(records: dict) -> int:
    """The most SENDs the sandbox had in hand at one moment."""
    edges = sorted([(s["received_at"], 1) for s in records["sends"]]
                   + [(s["at"], -1) for s in records["sends"]])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def in_drop_order(records: dict, expected: dict[str, list[str]]) -> bool:
    """Was each patient's file first accepted after the one dropped before it?"""
    first: dict[str, float] = {}
    for send in records["sends"]:
        if send["status"] == 200:
            first.setdefault(send["marker"], send["at"])
    return all([first[m] for m in markers] == sorted(first[m] for m in markers)
               for markers in expected.values())


def one_case(ck: common.Checkout, sandbox: common.Sandbox, args: argparse.Namespace, files: int,
             keys: int, ordered: bool) -> Figure:
    label = f"{keys:,} patient{'s' if keys != 1 else ''}, {'ordered' if ordered else 'unordered'}"
    common.note(f"{ck.label}: {files} files, {label}")
    sandbox.reset()
    with common.Workspace("bench-order-") as ws:
        overrides = common.deep_merge(common.TEST_LIKE, {
            "workers": args.workers, "retry": RETRY,
            "ordering": {"by": "patient" if ordered else "none"}})
        ws.write_config(common.local_config(ws, sandbox.url, overrides))
        expected = drop_files(ws, files, keys)
        usage = common.run_pipeline(ck, ws, "run", "--once", timeout=24 * 3600)
    records = sandbox.records()
    return Figure(label,
                  f"{files / usage.wall:.1f} files/s ({usage.wall:.1f} s; at most "
                  f"{max_in_flight(records)} in flight; "
                  f"{'in' if in_drop_order(records, expected) else 'not in'} drop order)")


def measure(ck: common.Checkout, args: argparse.Namespace, files: int) -> list[Figure]:
    with common.Sandbox("--latency-ms", str(args.latency_ms), "--error-rate", str(args.error_rate),
                        "--error-status", "503") as sandbox:
        return [one_case(ck, sandbox, args, files, keys, ordered)
                for keys in args.keys for ordered in (False, True)]


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    files = common.pick(args.ordering_files, args.quick, 1000, 200)
    print(f"== ordering: {files} files by run --once, sandbox latency {args.latency_ms:g} ms, "
          f"{args.workers} workers, no rate limit, {args.error_rate:.0%} of SENDs answered 503",
          flush=True)
    common.print_table("ordering", {ck.label: measure(ck, args, files) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
