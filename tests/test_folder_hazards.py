"""What someone may leave in the folders: a FIFO (or a symlink to one, or a folder) where a
sidecar goes or among the failed files, and a ``*.redox.json`` dropped into the inbox. Nothing
that is not a regular file is ever opened for reading; nothing blocks; each is said once."""

from __future__ import annotations

import json
import logging
import os

import pytest
from pipeline_env import PipelineEnv, message

from pipeline.sources.local.store import LocalStore

HANG_GUARD = 60      # seconds: a run that takes this long is hanging (no assertion on time)


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url)


@pytest.mark.parametrize("kind", ["fifo", "symlink to a fifo", "folder"])
def test_something_else_where_a_sidecar_goes_is_not_ours_and_never_blocks(env, kind):
    car = env.folder("done") / "a.json.redox.json"
    if kind == "fifo":
        os.mkfifo(car)
    elif kind == "folder":
        car.mkdir()
    else:
        os.mkfifo(env.root / "elsewhere")
        car.symlink_to(env.root / "elsewhere")
    (env.folder("done") / "a.json").write_bytes(b"{}")       # the name is taken
    env.drop("a.json", message("a"))
    result = env.run("run", "--once", timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert env.sidecar("done", "a-1.json")["name"] == "a.json"
    assert os.path.lexists(car)                                  # left as it was


@pytest.mark.parametrize("kind", ["fifo", "symlink to a fifo"])
def test_a_fifo_where_the_free_names_sidecar_goes_is_skipped_too(env, kind):
    car = env.folder("done") / "a.json.redox.json"               # the file's name itself is free
    if kind == "fifo":
        os.mkfifo(car)
    else:
        os.mkfifo(env.root / "elsewhere")
        car.symlink_to(env.root / "elsewhere")
    env.drop("a.json", message("a"))
    result = env.run("run", "--once", timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert env.files("done") == ["a-1.json"]


def hostile_failed(env):
    """failed/ with a FIFO, a symlink to a FIFO, a folder named like a sidecar, a FIFO sidecar,
    beside one ordinary failure."""
    failed = env.folder("failed")
    os.mkfifo(failed / "fifo.json")
    os.mkfifo(env.root / "elsewhere")
    (failed / "link.json").symlink_to(env.root / "elsewhere")
    (failed / "dir.json").write_bytes(b"{}")
    (failed / "dir.json.redox.json").mkdir()
    (failed / "piped.json").write_bytes(b"{}")
    os.mkfifo(failed / "piped.json.redox.json")
    (failed / "ok.json").write_bytes(message("ok"))
    (failed / "ok.json.redox.json").write_text(json.dumps(
        {"status": "failed", "reason_kind": "gave_up", "errors": ["x"], "claim_id": "c1",
         "finished_at": "2024-05-01T10:00:00+00:00"}))


@pytest.mark.parametrize("argv", [["status", "--no-auth-check"], ["status", "--json", "--no-auth-check"],
                                  ["report"], ["report", "--json"], ["prune", "--dry-run"]],
                         ids=" ".join)
def test_operator_commands_get_past_what_is_not_a_file(env, argv):
    hostile_failed(env)
    result = env.run(*argv, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_retry_failed_skips_and_lists_what_is_not_a_regular_file(env):
    hostile_failed(env)
    result = env.run("retry-failed", "--force", timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    for name in ("fifo.json", "link.json"):
        assert f"skipped failed/{name}: not a regular file" in out
    assert "2 skipped (not regular files)" in out
    assert sorted(env.files("inbox")) == ["dir.json", "ok.json", "piped.json"]
    assert os.path.lexists(env.folder("failed") / "fifo.json")
    assert os.path.islink(env.folder("failed") / "link.json")


def test_a_sidecar_named_file_in_the_inbox_is_left_alone_with_one_warning(tmp_path, caplog):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.json.redox.json").write_text("{}")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "b.redox.json").write_text("{}")
    (inbox / "notes.txt.redox.json.part").write_text("{}")       # not a name that counts at all
    store = LocalStore(str(inbox), str(tmp_path / "p"), str(tmp_path / "d"), str(tmp_path / "f"),
                       "*.json", owner="me", recursive=True)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert list(store.scan()) == []
    warned = [(r.getMessage(), getattr(r, "file", None)) for r in caplog.records]
    why = ("left alone in the inbox: names ending in .redox.json are sidecars, never taken from the "
           "inbox")
    assert sorted(warned) == [(why, "a.json.redox.json"), (why, "sub/b.redox.json")]
    os.unlink(inbox / "a.json.redox.json")            # gone, then back: said again
    list(store.scan())
    (inbox / "a.json.redox.json").write_text("{}")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        list(store.scan())
    assert [getattr(r, "file", None) for r in caplog.records] == ["a.json.redox.json"]


def test_the_run_says_why_it_leaves_a_sidecar_named_file_alone(env):
    env.drop("x.redox.json", b"{}")
    env.drop("m.json", message("m"))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("names ending in .redox.json are sidecars") == 1
    assert env.files("inbox") == [] and env.files("done") == ["m.json"]
    assert (env.inbox / "x.redox.json").exists()
