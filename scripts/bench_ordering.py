"""What ordering costs in throughput: files/s through `run --once`, unordered and ordered by
patient, with the files spread over 1, 10 and 1,000 patients. Prints figures; asserts nothing.

Every run is a fresh drop folder against one sandbox (latency 100 ms by default, no rate limit
anywhere), `workers` 8; the files are dropped round-robin over the patients, oldest first. For
each run it prints files/s, the most SENDs the sandbox had in flight at once, and whether each
patient's files were first accepted in drop order (unordered runs usually were not).

    python scripts/bench_ordering.py [--files 1000] [--latency-ms 100] [--workers 8] [--keys 1 10 1000]
                                     [--error-rate 0]   (a share of SENDs answered 503, retried)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from ordering_checks import max_in_flight, patient_message  # noqa: E402
from pipeline_env import PipelineEnv  # noqa: E402
from sandbox_control import SandboxProcess  # noqa: E402


def run_case(sandbox, files: int, keys: int, ordered: bool, workers: int) -> dict:
    sandbox.reset()
    env = PipelineEnv(Path(tempfile.mkdtemp(prefix="bench-order-")), sandbox.url, workers=workers,
                      source={"rescan_seconds": 10}, ordering={"by": "patient" if ordered else "none"},
                      retry={"max_attempts": 30, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 1})
    expected: dict[str, list[str]] = defaultdict(list)
    for k in range(files):
        patient, seq = f"p{k % keys:04}", k // keys
        env.drop(f"f{seq:05}-{patient}.json", patient_message(patient, seq), age=10_000 - k * 0.001)
        expected[patient].append(f"{patient}-{seq}")
    start = time.perf_counter()
    result = env.run("run", "--once", timeout=24 * 3600)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"run --once failed ({result.returncode}): {result.stderr[-800:]}")
    records = sandbox.records()
    return {"files_per_second": files / wall, "seconds": wall, "in_flight": max_in_flight(records),
            "in_order": _in_order(records, expected)}


def _in_order(records: dict, expected: dict[str, list[str]]) -> bool:
    first: dict[str, float] = {}
    for send in records["sends"]:
        if send["status"] == 200:
            first.setdefault(send["marker"], send["at"])
    return all([first[m] for m in markers] == sorted(first[m] for m in markers)
               for markers in expected.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 10, 1000])
    parser.add_argument("--error-rate", type=float, default=0.0)
    args = parser.parse_args()
    print(f"{args.files} files, sandbox latency {args.latency_ms:g} ms, {args.workers} workers, "
          f"no rate limit, {args.error_rate:.0%} of SENDs answered 503")
    print(f"{'patients':>8}  {'mode':<9} {'files/s':>8} {'seconds':>8} {'max in flight':>13}  in drop order")
    with SandboxProcess("--latency-ms", str(args.latency_ms), "--error-rate", str(args.error_rate),
                        "--error-status", "503") as sandbox:
        for keys in args.keys:
            for ordered in (False, True):
                case = run_case(sandbox, args.files, keys, ordered, args.workers)
                print(f"{keys:>8}  {'ordered' if ordered else 'unordered':<9} "
                      f"{case['files_per_second']:>8.1f} {case['seconds']:>8.1f} {case['in_flight']:>13}  "
                      f"{'yes' if case['in_order'] else 'no'}", flush=True)


if __name__ == "__main__":
    main()
