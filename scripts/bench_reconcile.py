#!/usr/bin/env python3
"""Benchmark delivery confirmation: how long reconcile passes take over a done folder.

    scripts/bench_reconcile.py [--files N] [--per-second R]

Starts the sandbox in a subprocess, SENDs N messages to it and lays them in done/ with
sidecars (as finish would), then times, in this process:
  1. a first pass (every Log ID looked up, every sidecar rewritten),
  2. a second pass (everything settled: the done folder is listed, nothing is read),
  3. a pass over N files whose deliveries stay pending (every Log ID looked up again).
Prints figures; asserts nothing. ``--per-second`` sets redox.max_requests_per_second (0 = off).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pipeline import app, config  # noqa: E402
from pipeline import message as message_stage  # noqa: E402
from pipeline.flow.finish import iso  # noqa: E402
from pipeline.journal import Journal  # noqa: E402

DESTINATION = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}


def start_sandbox() -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("sandbox listening on "):
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.split()[-1]


def faults(url: str, **updates) -> None:
    request = urllib.request.Request(f"{url}/_sandbox/faults", data=json.dumps(updates).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def write_config(root: Path, url: str, per_second: float) -> Path:
    key = root / "key.pem"
    key.write_bytes((REPO / "examples" / "sandbox-client-key.pem").read_bytes())
    os.chmod(key, 0o600)
    doc = {"source": {"kind": "local", "inbox": "drop/inbox"},
           "folders": {"processing": "drop/processing", "done": "drop/done", "failed": "drop/failed"},
           "redox": {"base_url": url, "upload_url": f"{url}/upload", "max_requests_per_second": per_second,
                     "auth": {"method": "oauth", "client_id": "sandbox-client",
                              "key_id": "sandbox-key", "private_key_file": str(key)}},
           "destinations": [DESTINATION], "state": {"path": "drop/state.db"},
           "delivery_check": {"organization_id": "bench", "platform_url": f"{url}/platform"}}
    path = root / "config.yaml"
    path.write_text(json.dumps(doc))     # JSON is YAML
    return path


def fill_done(settings, count: int, marker: str) -> None:
    """SEND ``count`` messages and lay each in done/<day>/ with a finish-like sidecar."""
    client = app.make_client(settings)
    done = Path(settings.folders.done)
    for i in range(count):
        raw = json.dumps({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"},
                          "_test_marker": marker, "n": i}).encode()
        sent = client.send(message_stage.check(raw, [DESTINATION]).body)
        folder = done / f"day-{i % 30:02}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{marker}-{i:06}.json"
        (folder / name).write_bytes(raw)
        now = iso(time.time())
        sidecar = {"status": "done", "logs": list(sent.logs), "name": name, "claim_id": uuid.uuid4().hex,
                   "attempts": 1, "http_status": 200, "finished_at": now,
                   "attempt_history": [{"kind": "send", "n": 1, "at": now, "result": "accepted"}]}
        (folder / f"{name}.redox.json").write_text(json.dumps(sidecar, indent=2))


def timed_pass(settings, journal, label: str) -> None:
    reconciler = app.make_reconciler(settings, journal)
    started = time.perf_counter()
    result = reconciler.run_pass()
    took = time.perf_counter() - started
    rate = result.looked_up / took if took else 0.0
    print(f"{label:<34} {took:8.2f} s   {result.looked_up:6} look-ups   {rate:8.1f} look-ups/s   "
          f"{result.counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--per-second", type=float, default=0.0)
    args = parser.parse_args()
    proc, url = start_sandbox()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = config.load(write_config(Path(tmp), url, args.per_second))
            started = time.perf_counter()
            fill_done(settings, args.files, "ok")
            print(f"sent and laid out {args.files} files in {time.perf_counter() - started:.1f} s")
            journal = Journal(settings.state.path)
            timed_pass(settings, journal, "first pass (all looked up)")
            timed_pass(settings, journal, "second pass (all settled)")
            faults(url, delivery_pending_marker=["slow"])
            fill_done(settings, args.files, "slow")
            timed_pass(settings, journal, "pass with N pending (first look)")
            timed_pass(settings, journal, "pass with N pending (again)")
            journal.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
