"""Output files hold patient data: everything the command creates gets the configured umask
(default 077: folders 0700, files 0600); a moved file keeps its own mode inside those folders."""

from __future__ import annotations

import os
import stat

import pytest
from pipeline_env import PipelineEnv, message


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def created(env: PipelineEnv) -> dict[str, int]:
    """Modes of what the command created: folders, sidecars, journal files, locks."""
    out = {}
    for path in (env.root / "out").rglob("*"):
        rel = str(path.relative_to(env.root / "out"))
        if path.is_dir() or path.name.endswith(".redox.json") or "state.db" in path.name:
            out[rel] = mode(path)
    return out


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(None, 0o700, 0o600), ("027", 0o750, 0o640)])
def test_everything_created_gets_the_configured_umask(tmp_path, sandbox, umask, folder_mode, file_mode):
    extra = {"umask": umask} if umask else {}
    env = PipelineEnv(tmp_path, sandbox.url, folders={
        "processing": "out/processing", "done": "out/done/deep", "failed": "out/failed"},
        state={"path": "out/state/state.db"}, source={"inbox": "out/inbox"}, **extra)
    os.makedirs(env.root / "out" / "inbox")                     # upstream's folder: not ours
    os.chmod(env.root / "out", 0o700)
    for name, data in (("good.json", message("good")), ("bad.json", b"[]")):
        (env.root / "out" / "inbox" / name).write_bytes(data)
        os.chmod(env.root / "out" / "inbox" / name, 0o644)
    old = os.umask(0o022)                                       # a typical login shell's
    try:
        result = env.run("run", "--once")
    finally:
        os.umask(old)
    assert result.returncode == 1, result.stderr
    modes = created(env)
    assert modes.pop("inbox") == 0o755
    for folder in ("processing", "done", "done/deep", "failed", "state"):
        assert modes.pop(folder) == folder_mode, folder
    assert modes.pop("done/deep/good.json.redox.json") == file_mode
    assert modes.pop("failed/bad.json.redox.json") == file_mode
    assert modes.pop("state/state.db") == file_mode
    assert mode(env.root / "out" / "state" / "state.db.once.lock") == 0o600      # always
    assert all(m == file_mode for name, m in modes.items()
               if "state.db" in name and not name.endswith(".lock")), modes      # -wal, -shm
    # the messages themselves are moved, not created: their mode is upstream's, behind 0700/0750
    assert mode(env.root / "out" / "done" / "deep" / "good.json") == 0o644


def test_a_folder_open_to_everyone_gets_a_warning(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    for folder in ("inbox", "processing", "done", "failed"):
        os.chmod(env.folder(folder), 0o700)
    os.chmod(env.folder("done"), 0o755)
    env.drop("a.json", message("a"))
    result = env.run("run", "--once")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "open to all users" in line]
    assert len(warnings) == 1 and str(env.folder("done")) in warnings[0]
