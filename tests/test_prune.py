"""Retention: `redox-pipeline prune [--dry-run]` on real folders and a real journal, the
service's own passes, and the same pass through the S3 folder view (moto)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from datetime import datetime, timezone

import pytest
from moto_server import REGION
from pipeline_env import PipelineEnv, message
from service_lines import Lines

from pipeline.config import Settings
from pipeline.journal import Journal
from pipeline.journal import retention as journal_retention
from pipeline.journal.ledger import DeliveryLedger
from pipeline.retention import prune
from pipeline.sources.s3.api import Bucket as S3Bucket
from pipeline.sources.s3.view import S3View

NOW = time.time()
OLD = NOW - 100 * 86400          # finished 100 days ago
RECENT = NOW - 2 * 86400


def finished(env, folder: str, path: str, when: float | None, *, sidecar: bytes | None = None) -> None:
    """A file in done/ or failed/ as the pipeline leaves it: sidecar (finished at ``when``;
    None: no sidecar at all), both last written then."""
    target = env.folder(folder) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"{}")
    stamp = when if when is not None else OLD
    if when is not None or sidecar is not None:
        car = target.with_name(target.name + ".redox.json")
        car.write_bytes(sidecar if sidecar is not None else json.dumps({
            "status": folder, "name": target.name,
            "finished_at": datetime.fromtimestamp(when, timezone.utc).isoformat()}).encode())
        os.utime(car, (stamp, stamp))
    os.utime(target, (stamp, stamp))


def lone_sidecar(env, folder: str, path: str, when: float) -> None:
    finished(env, folder, path, when)
    (env.folder(folder) / path).unlink()


def snapshot(root) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and "state.db" not in p.name}


@pytest.fixture
def env(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9",
                      retention={"done_days": 30, "failed_days": 60, "journal_days": 90})
    finished(env, "done", "old.json", OLD)
    finished(env, "done", "2024-01-01/nested-old.json", OLD)
    finished(env, "done", "recent.json", RECENT)
    finished(env, "done", "no-sidecar.json", None)
    finished(env, "done", "garbled.json", OLD, sidecar=b"{not json")
    lone_sidecar(env, "done", "lone.json", OLD)
    finished(env, "failed", "old-failure.json", OLD)
    finished(env, "failed", "month-old-failure.json", NOW - 40 * 86400)   # failed_days is 60
    return env


def test_dry_run_lists_what_would_go_and_touches_nothing(env):
    before = snapshot(env.root)
    result = env.run("prune", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "would remove done/old.json (with its sidecar, finished " in out
    assert "would remove done/2024-01-01/nested-old.json" in out
    assert "would remove done/lone.json (a sidecar left without its file" in out
    assert "would remove failed/old-failure.json" in out
    assert "kept done/no-sidecar.json: its sidecar is missing" in out
    assert "kept done/garbled.json: its sidecar is unreadable" in out
    for young in ("recent.json", "month-old-failure.json"):
        assert young not in out
    assert out.splitlines()[-1].startswith("prune: done/: 3 to remove, 2 old kept; failed/: 1 to remove")
    assert snapshot(env.root) == before
    assert not env.folder("state.db").exists()           # a journal is never created by prune


def test_prune_removes_old_files_with_their_sidecars_and_keeps_the_rest(env):
    result = env.run("prune", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(d["path"] for d in lines if d["event"].startswith("removed")) == [
        "2024-01-01/nested-old.json", "lone.json", "old-failure.json", "old.json"]
    assert lines[-1]["done"] == {"removed": 3, "kept": 2, "errors": 0}
    left = sorted(str(p.relative_to(env.folder("done"))) for p in env.folder("done").rglob("*") if p.is_file())
    assert left == ["garbled.json", "garbled.json.redox.json", "no-sidecar.json", "recent.json",
                    "recent.json.redox.json"]
    assert sorted(os.listdir(env.folder("failed"))) == ["month-old-failure.json",
                                                       "month-old-failure.json.redox.json"]


def test_retention_is_off_for_done_and_failed_by_default(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    finished(env, "done", "ancient.json", NOW - 3650 * 86400)
    result = env.run("prune")
    assert result.returncode == 0 and "done/" not in result.stdout
    assert env.files("done") == ["ancient.json"]
    assert Settings().retention.journal_days == 90


def test_bad_usage_and_config_exit_2(env):
    assert env.run("prune", "--no-such-flag").returncode == 2
    env.config_data["retention"]["done_days"] = -1
    env.write_config()
    result = env.run("prune")
    assert result.returncode == 2 and "retention.done_days" in result.stderr


def age_journal(env, days: float) -> None:
    """Make every finished claim in the journal look ``days`` older."""
    with sqlite3.connect(env.folder("state.db")) as db:
        db.execute("UPDATE claims SET finished_at = finished_at - ? WHERE finished_at IS NOT NULL",
                   (days * 86400,))


def claims(env) -> list[tuple]:
    with sqlite3.connect(env.folder("state.db")) as db:
        return db.execute("SELECT name, state FROM claims ORDER BY name").fetchall()


def test_old_journal_rows_go_but_dedupe_still_knows_the_delivered_bytes(tmp_path, sandbox):
    # a Retry-After of 30 s (capped at 60) keeps a 429'd file waiting past a --once run
    env = PipelineEnv(tmp_path, sandbox.url, retry={"backoff_max_seconds": 60, "once_wait_seconds": 0})
    env.drop("a.json", message("a"))
    env.drop("bad.json", b"[]")
    assert env.run("run", "--once").returncode == 1
    sandbox.faults(fail_next=[429], retry_after=30)
    env.drop("waiting.json", message("waiting"))
    assert env.run("run", "--once").returncode == 0                # released, not due yet
    age_journal(env, 100)

    dry = env.run("prune", "--dry-run")
    assert dry.returncode == 0 and "journal: 2 rows of finished files to remove" in dry.stdout
    assert len(claims(env)) == 3
    result = env.run("prune")
    assert result.returncode == 0, result.stderr
    assert "journal: 2 rows of finished files removed" in result.stdout
    assert "1 delivered hashes kept for dedupe" in result.stdout
    assert claims(env) == [("waiting.json", "released")]           # pending work is kept

    env.drop("a-again.json", message("a"))                         # the same bytes, dropped again
    assert env.run("run", "--once").returncode == 0
    assert env.sidecar("done", "a-again.json")["duplicate_of"] == str(env.folder("done") / "a.json")
    assert [s["marker"] for s in sandbox.records()["sends"]].count("a") == 1


def test_the_service_prunes_at_start(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, retention={"done_days": 30})
    finished(env, "done", "old.json", OLD)
    finished(env, "done", "recent.json", RECENT)
    proc = env.start("--log-format", "json")
    lines = Lines(proc.stderr)
    summary = lines.wait_json(lambda d: d["event"].startswith("prune: "))
    assert summary["event"].startswith("prune: done/: 1 removed")
    assert env.files("done") == ["recent.json"]
    proc.send_signal(signal.SIGTERM)         # (not stop(): Lines already reads stderr)
    assert proc.wait(timeout=60) == 0


def test_the_same_pass_works_through_the_s3_folder_view(moto_server, bucket):
    sidecar = {"status": "done", "finished_at": datetime.fromtimestamp(NOW, timezone.utc).isoformat()}
    bucket.put("done/a/old.json", b"{}")
    bucket.put("done/a/old.json.redox.json", json.dumps(sidecar).encode())
    bucket.put("done/no-sidecar.json", b"{}")
    bucket.put("failed/kept.json", b"{}")
    bucket.put("failed/kept.json.redox.json", json.dumps(sidecar).encode())
    settings = Settings(source={"kind": "s3", "bucket": bucket.name, "prefix": "incoming/"},
                        folders={"processing": "processing", "done": "done", "failed": "failed"},
                        retention={"done_days": 30, "journal_days": None})
    view = S3View(S3Bucket(bucket.name, endpoint_url=moto_server.url, region=REGION),
                  {"inbox": "incoming/", "processing": "processing", "done": "done", "failed": "failed"})
    lines: list[str] = []
    later = NOW + 31 * 86400                 # S3 keeps its own LastModified: look from later on
    dry = prune(settings, view, lambda: None, dry_run=True, emit=lambda m, **f: lines.append(m), now=later)
    assert [f.removed for f in dry.folders] == [["a/old.json"]]
    assert bucket.keys("done/", sidecars=True) == ["a/old.json", "a/old.json.redox.json", "no-sidecar.json"]
    prune(settings, view, lambda: None, dry_run=False, emit=lambda m, **f: lines.append(m), now=later)
    assert bucket.keys("done/", sidecars=True) == ["no-sidecar.json"]
    assert bucket.keys("failed/", sidecars=True) == ["kept.json", "kept.json.redox.json"]   # failed_days off
    assert "kept done/no-sidecar.json: its sidecar is missing" in lines
    assert any(line.startswith("removed done/a/old.json (with its sidecar") for line in lines)


def test_the_ledger_forgets_every_file_removed_from_done(tmp_path):
    journal = Journal(str(tmp_path / "state.db"))
    DeliveryLedger(journal)                                   # its tables
    refs = [f"sub/{i}.json" for i in range(1203)]             # more than one statement's worth
    for ref in refs + ["kept.json"]:
        journal.query("INSERT INTO delivery_files (ref, settled_at) VALUES (?, 0)", (ref,))
    counts = journal_retention.prune(journal, 0.0, None, gone=iter(refs))
    assert counts.delivery_files == 1203
    assert [r["ref"] for r in journal.query("SELECT ref FROM delivery_files")] == ["kept.json"]
    journal.close()
