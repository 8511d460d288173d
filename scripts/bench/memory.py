"""memory: peak RSS of ``run --once`` for one file of each size (default 2K, 12M, 28M).

    python scripts/bench/memory.py [--sizes 2K,12M,28M] [--repo DIR ...]

For each size, one Media message in a fresh drop folder (the big ones carry a random PDF-sized
document, so they take the Transferring Files path at the default 10 MiB send limit), the real
command in a subprocess, and that child's peak RSS from os.wait4 (only that child: the sandbox
is another process). The target: the largest file's peak at most 60 MB over the smallest's.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path

import common
from common import Figure

UNITS = {"K": 1000, "M": 1000 * 1000}
OVER_TARGET_MB = 60


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * UNITS[text[-1]]) if text[-1] in UNITS else int(text)


def write_media(path: Path, size: int) -> None:
    """A Media message of about ``size`` bytes, its document written in pieces (this process's
    memory stays small; not that it is measured)."""
    head = json.dumps({"Meta": {"DataModel": "Media", "EventType": "New", "Test": True},
                       "Patient": {"Identifiers": [{"ID": "bench", "IDType": "MR"}]},
                       "Media": {"FileType": "PDF", "FileName": "scan.pdf", "FileContents": ""}})
    head = head[:head.rindex('""') + 1]          # ... "FileContents": "   (then the base64)
    decoded = max(0, (size - len(head) - 4) * 3 // 4 // 3 * 3)
    with open(path, "w", encoding="ascii") as out:
        out.write(head)
        left = decoded
        while left:
            piece = min(left, 3 * (1 << 18))
            out.write(base64.b64encode(os.urandom(piece)).decode())
            left -= piece
        out.write('"}}')


def measure_one(ck: common.Checkout, url: str, size: int) -> dict:
    with common.Workspace("bench-memory-") as ws:
        overrides = {"source": {"settle_seconds": 0}, "redox": {"max_requests_per_second": 0}}
        ws.write_config(common.local_config(ws, url, overrides))
        write_media(ws.inbox / "bench.json", size)
        actual = (ws.inbox / "bench.json").stat().st_size
        usage = common.run_pipeline(ck, ws, "run", "--once")
        car = json.loads((ws.folder("done") / "bench.json.redox.json").read_text())
    return {"size": actual, "peak": usage.maxrss_mb, "wall": usage.wall,
            "uploads": len(car.get("uploads") or [])}


def measure(ck: common.Checkout, sizes: list[int]) -> list[Figure]:
    with common.Sandbox() as sandbox:
        rows = [measure_one(ck, sandbox.url, size) for size in sizes]
    base = rows[0]
    figures = [Figure(f"peak RSS, {r['size']:,} byte file",
                      f"{r['peak']:.1f} MB (+{r['peak'] - base['peak']:.1f}; {r['uploads']} "
                      f"uploads, {r['wall']:.2f} s)") for r in rows]
    largest = rows[-1]
    figures.append(Figure("largest file's peak over the smallest's",
                          f"{largest['peak'] - base['peak']:.1f} MB", f"≤ {OVER_TARGET_MB} MB"))
    return figures


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print(f"== memory: peak RSS of run --once for one file of each size ({args.sizes})", flush=True)
    common.print_table("memory", {ck.label: measure(ck, sizes) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
