"""reconcile: how long delivery-confirmation passes take over a done folder.

    python scripts/bench/reconcile.py [--reconcile-files N] [--quick] [--repo DIR ...]

Against the sandbox on loopback, with no rate limit: N files (2,000; --quick 300) are sent by
``run --once`` into done/ (real sidecars), then ``reconcile`` runs as a subprocess:
  1. a first pass (every Log ID looked up, every sidecar rewritten),
  2. a second pass (everything settled: the done folder is listed, nothing is read);
then N more files whose deliveries the sandbox keeps pending are sent, and
  3. a pass over them (every Log ID looked up), and 4. the same again.
Each pass's time is the command's wall time, process start-up included; the pass over an
empty done folder before anything is sent shows that start-up. Look-up counts come from the
command's own JSON summary. No targets.
"""

from __future__ import annotations

import argparse
import json

import common
from common import Figure


def reconcile_pass(ck: common.Checkout, ws: common.Workspace, name: str) -> tuple[common.Usage, dict]:
    proc = common.Process(common.pipeline_argv("reconcile", "--log-format", "json", "--config",
                                               str(ws.config)),
                          env=common.child_env(ck), cwd=ws.root, log=ws.log(name))
    usage = proc.wait(3600)
    summary = None
    for line in ws.log(name).read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "looked_up" in doc:
            summary = doc
    if usage.exit not in (0, 4) or summary is None:     # 4: none failed, some still pending
        raise SystemExit(f"{ck.label}: reconcile exited {usage.exit}:\n{proc.tail()}")
    return usage, summary


def figure(label: str, usage: common.Usage, summary: dict) -> Figure:
    looked = int(summary.get("looked_up") or 0)
    rate = f", {looked / usage.wall:.0f} look-ups/s" if looked else ""
    counts = ", ".join(f"{summary.get(k, 0)} {k}" for k in ("delivered", "pending", "failed"))
    return Figure(label, f"{usage.wall:.2f} s ({looked} look-ups{rate}; {counts}; "
                         f"{usage.maxrss_mb:.0f} MB peak)")


def measure(ck: common.Checkout, n: int) -> list[Figure]:
    with common.Sandbox() as sandbox, common.Workspace("bench-reconcile-") as ws:
        overrides = common.deep_merge(common.TEST_LIKE, {
            "delivery_check": {"organization_id": "bench", "platform_url": f"{sandbox.url}/platform"}})
        ws.write_config(common.local_config(ws, sandbox.url, overrides))
        figures = [figure("empty done folder (start-up)", *reconcile_pass(ck, ws, "empty"))]
        common.fill_inbox(ws.inbox, n, prefix="ok", marker="ok")
        sent = common.run_pipeline(ck, ws, "run", "--once")
        figures.append(Figure(f"run --once: {n} files into done/", f"{sent.wall:.1f} s"))
        figures.append(figure("first pass (all looked up)", *reconcile_pass(ck, ws, "first")))
        figures.append(figure("second pass (all settled)", *reconcile_pass(ck, ws, "second")))
        sandbox.faults(delivery_pending_marker=["slow"])
        common.fill_inbox(ws.inbox, n, prefix="slow", marker="slow")
        common.run_pipeline(ck, ws, "run", "--once", name="run-slow")
        figures.append(figure(f"pass with {n} pending (first look)", *reconcile_pass(ck, ws, "pending1")))
        figures.append(figure(f"pass with {n} pending (again)", *reconcile_pass(ck, ws, "pending2")))
    return figures


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    n = common.pick(args.reconcile_files, args.quick, 2000, 300)
    print(f"== reconcile: delivery-confirmation passes over {n:,} files in done/, sandbox on "
          "loopback, no rate limit", flush=True)
    common.print_table("reconcile", {ck.label: measure(ck, n) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
