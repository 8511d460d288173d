"""The pipeline's own cost next to Redox's (issue 6). Prints figures; asserts nothing.

1. overhead: files/s through `run --once` vs a bare requests.Session loop (same concurrency,
   same bodies, same sandbox), at 0 ms and 50 ms sandbox latency, as a ratio
2. CPU per file: user+system seconds of the pipeline process / files (and the part of it that
   is the process's start-up, measured by the same run with an empty inbox)
3. backlog: 50,000 files waiting: seconds until the first SEND, and the scan cost
4. rate: max_requests_per_second 20 over 1,000 files: achieved rate, busiest 1-second window
5. latency: drop-to-done for one file in service mode
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]
from pipeline_env import PipelineEnv, message   # noqa: E402
from sandbox_control import SandboxProcess      # noqa: E402

WORKERS = 4


def fresh_env(sandbox, **overrides) -> PipelineEnv:
    """A drop folder configured as an operator would run it: the default rescan interval (the
    test helper's 0.5 s rescans would bill the pipeline for listing 2,000 files 20 times)."""
    source = dict({"rescan_seconds": 10}, **overrides.pop("source", {}))
    return PipelineEnv(Path(tempfile.mkdtemp(prefix="bench-")), sandbox.url, workers=WORKERS,
                       source=source, **overrides)


def drop_many(env: PipelineEnv, count: int) -> list[bytes]:
    bodies = [message(f"b{i:06}") for i in range(count)]
    old = time.time() - 60
    for i, body in enumerate(bodies):
        path = env.inbox / f"b{i:06}.json"
        path.write_bytes(body)
        os.utime(path, (old, old))
    return bodies


def timed_once(env: PipelineEnv) -> tuple[float, float]:
    """Wall seconds and user+system CPU seconds of one `run --once` subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = env.run("run", "--once", timeout=3600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"run --once failed ({result.returncode}): {result.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bare_loop(sandbox, bodies: list[bytes]) -> float:
    """Seconds for a plain requests.Session loop with WORKERS threads to SEND every body."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=WORKERS)
    session.mount("http://", adapter)
    token = get_token(sandbox.url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = sandbox.url + "/endpoint"

    def send(body: bytes) -> None:
        import json
        doc = json.loads(body)
        doc["Meta"]["Destinations"] = [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}]
        session.post(url, data=json.dumps(doc), headers=headers, timeout=30).raise_for_status()

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, bodies))
    return time.perf_counter() - start


def get_token(base: str) -> str:
    from pipeline.redox.auth import OAuthTokens
    from pipeline.config import AuthSettings
    from pipeline.redox.client import Transport
    auth = AuthSettings(method="oauth", client_id="sandbox-client", key_id="sandbox-key",
                        private_key_file=str(REPO / "examples" / "sandbox-client-key.pem"))
    return OAuthTokens(auth, base + "/v2/auth/token", Transport(5, 30)).token()


def overhead(count: int) -> None:
    print(f"== 1+2. overhead and CPU per file: {count} small messages, {WORKERS} workers, "
          f"max_requests_per_second 0, {os.cpu_count()} cores")
    for latency in (0, 50):
        with SandboxProcess("--latency-ms", str(latency)) as sandbox:
            env = fresh_env(sandbox, redox={"max_requests_per_second": 0})
            bodies = drop_many(env, count)
            wall, cpu = timed_once(env)
            sends = sorted(s["at"] for s in sandbox.records()["sends"])
            steady = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else 0
            bare = bare_loop(sandbox, bodies)
            _, idle_cpu = timed_once(env)        # the same run with nothing to send: start-up
        pipe_rate, bare_rate = count / wall, count / bare
        print(f"  latency {latency:>2} ms: pipeline {pipe_rate:7.1f} files/s (whole run incl. start-up, "
              f"{wall:.2f} s; steady {steady:.1f}/s), bare loop {bare_rate:7.1f}/s, "
              f"ratio {pipe_rate / bare_rate:.2f} (steady {steady / bare_rate:.2f}); "
              f"CPU {1000 * cpu / count:.2f} ms/file ({idle_cpu:.2f} s of it start-up, "
              f"{1000 * (cpu - idle_cpu) / count:.2f} ms/file beyond it)")


def backlog(count: int) -> None:
    print(f"== 3. backlog: {count} files already in the inbox")
    with SandboxProcess() as sandbox:
        env = fresh_env(sandbox, redox={"max_requests_per_second": 0})
        drop_many(env, count)
        start = time.time()
        proc = env.start()
        while not sandbox.records()["counts"].get("sends"):
            time.sleep(0.01)
            if time.time() - start > 120:
                break
        first = time.time() - start
        proc.terminate()
        proc.wait(timeout=120)
        scan = scan_cost(env)
    print(f"  first SEND {first:.2f} s after start (process start-up included); "
          f"one full scan of the inbox {scan * 1000:.0f} ms")


def scan_cost(env: PipelineEnv) -> float:
    from pipeline.sources.local.store import LocalStore
    store = LocalStore(str(env.inbox), str(env.folder("processing")), str(env.folder("done")),
                       str(env.folder("failed")), "*.json", "bench")
    start = time.perf_counter()
    n = sum(1 for _ in store.scan())
    took = time.perf_counter() - start
    print(f"  ({n} files listed)")
    return took


def rate(count: int, limit: int = 20) -> None:
    print(f"== 4. rate: max_requests_per_second {limit}, {count} files")
    with SandboxProcess() as sandbox:
        env = fresh_env(sandbox, redox={"max_requests_per_second": limit})
        drop_many(env, count)
        timed_once(env)
        times = sorted(s["received_at"] for s in sandbox.records()["sends"])
    achieved = (len(times) - 1) / (times[-1] - times[0])
    busiest, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        busiest = max(busiest, i - j + 1)
    print(f"  achieved {achieved:.2f} requests/s ({100 * achieved / limit:.1f}% of the limit); "
          f"busiest one-second window {busiest} requests")


def latency(samples: int = 5, settle: float = 0.5) -> None:
    print(f"== 5. latency: drop-to-done for one file in service mode (settle_seconds {settle})")
    with SandboxProcess() as sandbox:
        env = fresh_env(sandbox, source={"settle_seconds": settle})
        proc = env.start()
        env.wait_for(lambda: any(p.is_dir() for p in env.folder("processing").iterdir()))
        figures = []
        for i in range(samples):
            name = f"l{i}.json"
            start = time.time()
            env.drop(name, message(f"l{i}"))
            env.wait_for(lambda: (env.folder("done") / name).exists(), interval=0.005)
            figures.append(time.time() - start)
            time.sleep(0.3)
        proc.terminate()
        proc.wait(timeout=60)
    print("  drop-to-done: " + ", ".join(f"{f:.3f}" for f in figures) +
          f" s (target < settle + 0.5 = {settle + 0.5:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parts", nargs="*", default=["overhead", "backlog", "rate", "latency"])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    q = args.quick
    for part in args.parts:
        {"overhead": lambda: overhead(400 if q else 2000),
         "backlog": lambda: backlog(5000 if q else 50000),
         "rate": lambda: rate(100 if q else 1000),
         "latency": lambda: latency()}[part]()


if __name__ == "__main__":
    main()
