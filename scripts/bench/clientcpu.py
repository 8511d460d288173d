"""client: CPU per SEND of the pipeline's HTTP client alone, next to a bare requests loop.

    python scripts/bench/clientcpu.py [--sends N] [--quick] [--repo DIR ...]

For weighing a change of the HTTP layer (for instance to ``requests``). probe.py, in a child
process with the measured checkout on PYTHONPATH, builds the SEND client the way the service
does (``pipeline.app.make_client(settings)`` from a generated config, no rate limit; failing
that, RedoxClient and Transport from wherever they live under ``pipeline.redox``), and sends N
small messages (2,000; --quick 500) from one thread to the sandbox on loopback (no latency),
after 20 unmeasured SENDs (token, connection). The figure is the probe process's CPU time
(user + system, every thread) over the N SENDs, divided by N; the sandbox is another process.
The same loop with a plain ``requests.Session`` (probe.py bare) runs beside it for reference.
Three rounds, alternating, report the median and the range: both share two cores with the
sandbox.
"""

from __future__ import annotations

import argparse
import statistics

import common
from common import Figure

ROUNDS = 3


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ms ({min(values):.3f}-{max(values):.3f})"


def measure(ck: common.Checkout, sends: int) -> list[Figure]:
    client, bare, client_wall, bare_wall = [], [], [], []
    with common.Sandbox() as sandbox, common.Workspace("bench-client-") as ws:
        ws.write_config(common.local_config(ws, sandbox.url, {"redox": {"max_requests_per_second": 0}}))
        for _ in range(ROUNDS):
            out = common.run_probe(ck, "client", "--config", str(ws.config), "--sends", str(sends))
            client.append(out["cpu_ms_per_send"])
            client_wall.append(out["wall_ms_per_send"])
            ref = common.run_probe(ck, "bare", "--url", sandbox.url, "--sends", str(sends))
            bare.append(ref["cpu_ms_per_send"])
            bare_wall.append(ref["wall_ms_per_send"])
    return [
        Figure("pipeline client: CPU per SEND", spread(client)),
        Figure("bare requests.Session: CPU per SEND", spread(bare)),
        Figure("pipeline client / bare requests (CPU)",
               f"{statistics.median(client) / statistics.median(bare):.2f}"),
        Figure("pipeline client: wall per SEND", spread(client_wall)),
        Figure("bare requests.Session: wall per SEND", spread(bare_wall)),
        Figure("client measured", out["client"]),
    ]


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    sends = common.pick(args.sends, args.quick, 2000, 500)
    print(f"== client: CPU per SEND of the HTTP client alone, {sends:,} SENDs from one thread, "
          f"sandbox on loopback, median of {ROUNDS} rounds", flush=True)
    common.print_table("client", {ck.label: measure(ck, sends) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
