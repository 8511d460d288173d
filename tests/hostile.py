"""Test helpers for hostile conditions that need the real operating system.

- ``small_filesystem(path, size)``: a real tmpfs of ``size`` mounted at ``path`` (ENOSPC for
  real). Needs root and mount rights; ``pytest.skip`` when the machine does not allow it.
- ``Unprivileged``: run the real command as the ``nobody`` user (``setpriv``), because tests run
  as root and root ignores file permissions. ``pytest.skip`` when that is impossible here.
- ``Rig``: the per-file stages wired to a real LocalStore and Journal in a folder, with a fake
  Redox client (the one seam): for failures that cannot be timed from outside a process.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.journal import Journal
from pipeline.localstore import LocalStore
from pipeline.retry import CircuitBreaker, RetryPolicy
from pipeline.values import Sent
from pipeline.work import FileWork, Job
from pipeline_env import DESTINATION, REPO, PipelineEnv

# -- a real small filesystem ----------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "256k"):
    """Mount a tmpfs of ``size`` at ``path`` for the duration; skip if mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the filesystem holding ``folder`` to the last byte; returns the filler file."""
    filler = folder / ".filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        except OSError:
            pass
    return filler


# -- the command as an unprivileged user ------------------------------------------------------------

NOBODY = "nobody"


class Unprivileged:
    """A world-traversable scratch folder whose test tree belongs to ``nobody``, and a
    PipelineEnv there whose command runs as ``nobody`` (setpriv)."""

    def __init__(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            pytest.skip("needs root and setpriv to drop privileges")
        try:
            entry = pwd.getpwnam(NOBODY)
        except KeyError:
            pytest.skip("no 'nobody' user")
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.base = Path(tempfile.mkdtemp(prefix="redox-unpriv-"))
        os.chmod(self.base, 0o755)
        probe = subprocess.run(self.prefix() + [sys.executable, "-c", "import pipeline, yaml"],
                               capture_output=True, text=True, env=_env())
        if probe.returncode != 0:
            shutil.rmtree(self.base, ignore_errors=True)
            pytest.skip(f"the interpreter is not usable by {NOBODY}: {probe.stderr.strip()[-200:]}")

    def prefix(self) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--"]

    def env(self, sandbox_url: str, **overrides) -> PipelineEnv:
        root = self.base / "t"
        root.mkdir()
        env = UnprivilegedEnv(root, sandbox_url, **overrides)
        env.prefix = self.prefix()
        self.give(root)
        return env

    def give(self, path: Path) -> None:
        """Hand ``path`` (recursively) to the unprivileged user."""
        for folder, dirs, files in os.walk(path):
            os.chown(folder, self.uid, self.gid)
            for name in files:
                os.chown(os.path.join(folder, name), self.uid, self.gid, follow_symlinks=False)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class UnprivilegedEnv(PipelineEnv):
    prefix: list[str] = []

    def command(self, *args: str) -> list[str]:
        return self.prefix + super().command(*args)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


# -- the stages in-process, with a fake Redox ---------------------------------------------------------


class FakeTokens:
    def token(self) -> str:
        return "token"


class FakeClient:
    """Accepts every SEND and remembers the bodies."""

    def __init__(self):
        self.tokens = FakeTokens()
        self.bodies: list[bytes] = []

    def send(self, body: bytes) -> Sent:
        self.bodies.append(body)
        return Sent(200, ({"ID": f"log-{len(self.bodies)}", "AttemptID": "a"},), 0.001)


class Rig:
    """inbox/processing/done/failed under ``root``, a real store and journal, a fake client."""

    def __init__(self, root: Path, store_class=LocalStore):
        self.root = Path(root)
        self.inbox = self.root / "inbox"
        self.store = store_class(str(self.inbox), str(self.root / "processing"),
                                 str(self.root / "done"), str(self.root / "failed"), "*.json", "me")
        self.store.prepare()
        self.journal = Journal(str(self.root / "state.db"))
        self.client = FakeClient()
        from pipeline.config import Destination
        self.work = FileWork(store=self.store, journal=self.journal, client=self.client,
                             policy=RetryPolicy(3, 0.01, 0.01),
                             breaker=CircuitBreaker(5, 0.01, 0.01),
                             destinations=(Destination(**DESTINATION),), send_limit=10 << 20,
                             dedupe=True)

    def drop(self, name: str, data: bytes) -> Path:
        path = self.inbox / name
        path.write_bytes(data)
        return path

    def claim(self, name: str):
        drop = self.store.stat(name)
        assert drop is not None, name
        return self.store.claim(drop)

    def run(self, claim_or_job):
        job = claim_or_job if isinstance(claim_or_job, Job) else Job(claim_or_job)
        return job, self.work.run(job)

    def listing(self, folder: str) -> list[str]:
        return sorted(os.listdir(self.root / folder))

    def close(self) -> None:
        self.journal.close()
        self.store.close()
