"""s3: time to list and claim N objects under one S3 prefix, and a claim race.

    python scripts/bench/s3claim.py [--objects N] [--page-size 1000] [--race N] [--threads 4]
                                    [--quick] [--repo DIR ...]

moto's S3 (s3server.py) on 127.0.0.1, no added latency. A bucket is filled with N objects
(10,000; --quick 2,000), then probe.py builds the real S3 store from settings (as the service
does) and measures:
  list   one full scan of the prefix (pages of --page-size keys)
  claim  stat + claim of every object from one thread (what one runner loop does)
  race   --threads claimers (separate stores, as separate workers) walking the same --race
         objects in the same order: every object must be claimed exactly once
A claim is a lease PUT (If-None-Match), a HEAD, a server-side COPY and a conditional DELETE;
these are moto's figures on this machine, not AWS's (S3 answers in 10-30 ms per request:
the drain and s3backlog parts put moto 30 ms away).
"""

from __future__ import annotations

import argparse
import json

import common
from common import Figure


def measure(ck: common.Checkout, args: argparse.Namespace, objects: int, race: int) -> list[Figure]:
    with common.S3Server() as s3, common.Workspace("bench-s3-") as ws:
        common.note(f"{ck.label}: putting {objects:,} + {race:,} objects into moto")
        filled = s3.fill("bench", objects)
        s3.fill("bench-race", race)
        source = {"source": {"page_size": args.page_size}}
        main_cfg = ws.root / "s3.yaml"
        race_cfg = ws.root / "race.yaml"
        main_cfg.write_text(json.dumps(common.s3_config(ws, "http://127.0.0.1:9", s3.url, "bench", source)))
        race_cfg.write_text(json.dumps(common.s3_config(ws, "http://127.0.0.1:9", s3.url, "bench-race", source)))
        out = common.run_probe(ck, "s3claim", "--config", str(main_cfg), "--race-config",
                               str(race_cfg), "--threads", str(args.threads))
    wins = out["race_wins"]
    return [
        Figure("setup: objects put (32 threads, straight to moto)", f"{objects:,} in {filled:.1f} s"),
        Figure("list", f"{out['listed']:,} objects in {out['list_s']:.2f} s "
                       f"({out['listed'] / out['list_s']:.0f} keys/s, page size {args.page_size})"),
        Figure("claim, one thread", f"{out['claimed']:,} in {out['claim_s']:.2f} s "
                                    f"({out['claimed'] / out['claim_s']:.1f} claims/s)"),
        Figure("list + claim", f"{out['list_s'] + out['claim_s']:.2f} s"),
        Figure(f"race, {args.threads} claimers", f"{sum(wins):,} in {out['race_s']:.2f} s "
                                                 f"({sum(wins) / out['race_s']:.1f} claims/s; wins {wins})"),
        Figure("race: each object claimed exactly once", str(sum(wins) == out["race_objects"]), "True"),
    ]


def run(checkouts: list[common.Checkout], args: argparse.Namespace) -> None:
    objects = common.pick(args.objects, args.quick, 10000, 2000)
    race = common.pick(args.race, args.quick, 1000, 300)
    print(f"== s3: list and claim {objects:,} objects, race {race:,} objects with {args.threads} "
          "claimers (moto on loopback, no added latency)", flush=True)
    common.print_table("s3", {ck.label: measure(ck, args, objects, race) for ck in checkouts})


if __name__ == "__main__":
    common.part_main(run, __doc__)
