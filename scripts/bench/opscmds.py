"""ops: how long ``status`` and ``report`` take over big output folders.

    python scripts/bench/opscmds.py [--ops-files N] [--quick] [--repo DIR ...]

Lays out N finished files with sidecars (20,000; --quick 2,000), 10% of them failed, spread
over 30 days in date subfolders, then times the real commands in subprocesses (wall time and
peak RSS). No Redox contact: status gets --no-auth-check. No targets.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timedelta, timezone

import common
from common import Figure

CONFIG = {"source": {"kind": "local", "inbox": "drop/inbox"},
          "destinations": [common.DESTINATION],
          "redox": {"auth": {"method": "legacy", "api_key": "${BENCH_API_KEY}",
                             "secret": "${BENCH_SECRET}"}}}
COMMANDS = [("status --json --no-auth-check", ["status", "--json", "--no-auth-check"]),
            ("report --json", ["report", "--json"]),
            ("report --since (last 3 days) --json", ["report", "--since", "2024-05-28", "--json"]),
            ("report --html", ["report", "--html", "r.html"])]


def populate(ws: common.Workspace, n: int) -> None:
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    for i in range(n):
        status = "failed" if i % 10 == 0 else "done"
        finished = start + timedelta(seconds=i * 30 * 86400 / n)
        folder = ws.folder(status) / finished.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i}.json").write_bytes(b"{}")
        car = {"status": status, "claim_id": f"c{i}", "name": f"m{i}.json",
               "data_model": "PatientAdmin",
               "errors": ["gave up after 10 attempts"] if status == "failed" else [],
               "reason_kind": "gave_up" if status == "failed" else None,
               "dropped_at": (finished - timedelta(seconds=3)).isoformat(),
               "finished_at": finished.isoformat()}
        sidecar = folder / f"m{i}.json.redox.json"
        sidecar.write_text(json.dumps(car))
        os.utime(sidecar, (finished.timestamp(),) * 2)     # written when the file finished
    ws.write_config(CONFIG)


def measure(ck: common.Checkout, n: int) -> list[Figure]:
    with common.Workspace("bench-ops-") as ws:
        populate(ws, n)
        figures = []
        for label, argv in COMMANDS:
            proc = common.Process(common.pipeline_argv(*argv, "--config", str(ws.config)),
                                  env=common.child_env(ck, BENCH_API_KEY="a", BENCH_SECRET="b"),
                                  cwd=ws.root, log=ws.log("ops"))
            usage = proc.wait(600)
            if usage.exit != 0:
                raise SystemExit(f"{ck.label}: {label} exited {usage.exit}:\n{proc.tail()}")
            figures.append(Figure(label, f"{usage.wall:.2f} s ({usage.maxrss_mb:.0f} MB peak)"))
    return figures


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    n = common.pick(args.ops_files, args.quick, 20000, 2000)
    print(f"== ops: status and report over {n:,} finished files with sidecars, 30 days", flush=True)
    common.print_table("ops", {ck.label: measure(ck, n) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
