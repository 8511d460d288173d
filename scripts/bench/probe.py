"""Measurements that need the pipeline's objects rather than its command, in a child process.

Run by the parts (never imported by them), with PYTHONPATH pointing at the checkout being
measured, so the objects come from that checkout and the parent stays free of its code:

    probe.py client --config CFG --sends N     CPU per SEND of make_client(settings)'s client
    probe.py bare --url URL --sends N [--threads T]   the same loop with a bare requests.Session
    probe.py scan --config CFG                 one full scan of the configured store
    probe.py s3claim --config CFG [--race-config CFG2 --threads T]   S3 list, claim, race

Each prints one JSON object on stdout. Objects are built the way the service builds them
(``pipeline.app.make_client`` / ``make_store`` from settings loaded with
``pipeline.config.load``), the entry points least likely to move when modules do.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

DESTINATION = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}
WARM_UP = 20     # SENDs before the clock starts: the token, the connection, first-call caches


def body(i: int) -> bytes:
    """A small SEND body with its destination set (what the pipeline's check produces)."""
    return json.dumps({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient",
                                "Test": True, "Destinations": [DESTINATION]},
                       "Patient": {"Identifiers": [{"ID": f"p{i:07d}", "IDType": "MR"}]},
                       "_test_marker": f"p{i:07d}"}).encode()


def settings_from(path: str) -> Any:
    from pipeline.config import load  # a function in every layout so far
    return load(path)


def first_attr(candidates: list[tuple[str, str]]) -> Any:
    """The first ``module.attribute`` of ``candidates`` that imports: the package is being
    reorganised, and the same benchmark has to measure checkouts from before and after."""
    problems = []
    for module, attr in candidates:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{module}.{attr}: {exc}")
    raise SystemExit("cannot find " + "; ".join(problems))


def make_client(settings: Any) -> Any:
    """The SEND client as the service builds it (app.make_client); failing that, assembled
    from RedoxClient and Transport wherever they live under pipeline.redox."""
    try:
        from pipeline.app import make_client as build
        return build(settings)
    except ImportError:
        pass
    where = ["pipeline.redox.client", "pipeline.redox"]
    client_cls = first_attr([(m, "RedoxClient") for m in where])
    transport_cls = first_attr([(m, "Transport") for m in where])
    make_tokens = first_attr([("pipeline.redox.auth", "make_tokens"), ("pipeline.auth", "make_tokens")])
    limiter_cls = first_attr([("pipeline.redox.ratelimit", "RateLimiter"), ("pipeline.ratelimit", "RateLimiter")])
    redox = settings.redox
    transport = transport_cls(redox.connect_timeout_seconds, redox.timeout_seconds)
    return client_cls(redox.base_url, redox.upload_url, transport,
                      make_tokens(redox.auth, redox.token_url, redox.base_url, transport),
                      limiter_cls(redox.max_requests_per_second))


def timed_loop(send: Callable[[int], None], count: int, threads: int) -> dict:
    """Process CPU (every thread) and wall time of ``count`` calls of ``send``."""
    for i in range(WARM_UP):
        send(-1 - i)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if threads == 1:
        for i in range(count):
            send(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, range(count)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"sends": count, "threads": threads, "cpu_s": cpu, "wall_s": wall,
            "cpu_ms_per_send": 1000 * cpu / count, "wall_ms_per_send": 1000 * wall / count}


def cmd_client(args: argparse.Namespace) -> dict:
    client = make_client(settings_from(args.config))
    bodies: dict[int, bytes] = {}

    def send(i: int) -> None:
        client.send(bodies.pop(i, None) or body(i))

    for i in range(args.sends):     # built before the clock starts, as for the bare loop
        bodies[i] = body(i)
    result = timed_loop(send, args.sends, args.threads)
    result["client"] = f"{type(client).__module__}.{type(client).__qualname__}"
    return result


def cmd_bare(args: argparse.Namespace) -> dict:
    """A plain requests.Session loop: the least any Python client can spend on a SEND."""
    import requests
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=max(10, args.threads)))
    reply = session.post(f"{args.url}/auth/authenticate", timeout=30,
                         json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
    reply.raise_for_status()
    headers = {"Authorization": f"Bearer {reply.json()['accessToken']}",
               "Content-Type": "application/json"}
    url = f"{args.url}/endpoint"
    bodies = {i: body(i) for i in range(args.sends)}

    def send(i: int) -> None:
        session.post(url, data=bodies.pop(i, None) or body(i), headers=headers,
                     timeout=30).raise_for_status()

    return timed_loop(send, args.sends, args.threads)


def make_store(settings: Any, owner: str) -> Any:
    """The checkout's source for ``settings``: ``app.make_source`` (``make_store`` before the
    Source interface existed)."""
    from pipeline import app
    build = getattr(app, "make_source", None) or app.make_store
    return build(settings, owner)


def cmd_scan(args: argparse.Namespace) -> dict:
    store = make_store(settings_from(args.config), "bench-scan")
    start = time.perf_counter()
    listed = sum(1 for _ in store.scan())
    return {"listed": listed, "seconds": time.perf_counter() - start}


def claim_all(store: Any, drops: list) -> int:
    """stat + claim each drop in order, as one runner loop does; the number won."""
    from pipeline.errors import ClaimLost
    won = 0
    for drop in drops:
        try:
            current = store.stat(drop.name)
            if current is not None:
                store.claim(current)
                won += 1
        except ClaimLost:
            pass
    return won


def cmd_s3claim(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {}
    store = make_store(settings_from(args.config), "bench-serial")
    start = time.perf_counter()
    drops = list(store.scan())
    out["listed"], out["list_s"] = len(drops), time.perf_counter() - start
    start = time.perf_counter()
    out["claimed"] = claim_all(store, drops)
    out["claim_s"] = time.perf_counter() - start
    if args.race_config:
        # Separate stores (separate owners), as separate workers on one bucket, walking the
        # same objects in the same order: every object must be won exactly once.
        settings = settings_from(args.race_config)
        stores = [make_store(settings, f"racer-{i}") for i in range(args.threads)]
        race = list(stores[0].scan())
        barrier = threading.Barrier(args.threads)

        def racer(s: Any) -> int:
            barrier.wait()
            return claim_all(s, race)

        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            wins = list(pool.map(racer, stores))
        out.update(race_objects=len(race), race_s=time.perf_counter() - start, race_wins=wins)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    client = sub.add_parser("client")
    client.add_argument("--config", required=True)
    client.add_argument("--sends", type=int, default=2000)
    client.add_argument("--threads", type=int, default=1)
    bare = sub.add_parser("bare")
    bare.add_argument("--url", required=True)
    bare.add_argument("--sends", type=int, default=2000)
    bare.add_argument("--threads", type=int, default=1)
    scan = sub.add_parser("scan")
    scan.add_argument("--config", required=True)
    s3claim = sub.add_parser("s3claim")
    s3claim.add_argument("--config", required=True)
    s3claim.add_argument("--race-config")
    s3claim.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    os.umask(0o077)
    result = {"client": cmd_client, "bare": cmd_bare, "scan": cmd_scan,
              "s3claim": cmd_s3claim}[args.command](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
