#!/usr/bin/env python3
"""How long `status` and `report` take over big output folders (prints figures; no targets).

    python scripts/bench_ops.py [N]      # N finished files (default 20000), 10% failed,
                                         # spread over 30 days in date subfolders

Runs the real commands in subprocesses against a throwaway folder (no Redox contact:
status gets --no-auth-check).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def populate(root: Path, n: int) -> None:
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    for i in range(n):
        status = "failed" if i % 10 == 0 else "done"
        finished = start + timedelta(seconds=i * 30 * 86400 / n)
        folder = root / "drop" / status / finished.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i}.json").write_bytes(b"{}")
        car = {"status": status, "claim_id": f"c{i}", "name": f"m{i}.json", "data_model": "PatientAdmin",
               "errors": ["gave up after 10 attempts"] if status == "failed" else [],
               "reason_kind": "gave_up" if status == "failed" else None,
               "dropped_at": (finished - timedelta(seconds=3)).isoformat(),
               "finished_at": finished.isoformat()}
        sidecar = folder / f"m{i}.json.redox.json"
        sidecar.write_text(json.dumps(car))
        os.utime(sidecar, (finished.timestamp(),) * 2)     # written when the file finished
    (root / "config.yaml").write_text(
        "source: {kind: local, inbox: drop/inbox}\n"
        "destinations: [{ID: af394f14-b34a-464f-8d24-895f370af4c9, Name: x}]\n"
        "redox: {auth: {method: legacy, api_key: a, secret: b}}\n")


def timed(root: Path, *args: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", *args, "--config", str(root / "config.yaml")],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        populate(root, n)
        print(f"{n} finished files with sidecars, 30 days")
        print(f"status --json --no-auth-check: {timed(root, 'status', '--json', '--no-auth-check'):.2f} s")
        print(f"report --json:                 {timed(root, 'report', '--json'):.2f} s")
        print(f"report --since (3 days):        {timed(root, 'report', '--since', '2024-05-28', '--json'):.2f} s")
        print(f"report --html:                 {timed(root, 'report', '--html', str(root / 'r.html')):.2f} s")


if __name__ == "__main__":
    main()
