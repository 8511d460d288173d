"""Test helpers for hostile conditions that need the real operating system.

- ``small_filesystem(path, size)``: a real tmpfs of ``size`` mounted at ``path`` (ENOSPC for
  real). Needs root and mount rights; ``pytest.skip`` when the machine does not allow it.
- ``Unprivileged``: run the real command as the ``nobody`` user (``setpriv``), because tests run
  as root and root ignores file permissions. ``pytest.skip`` when that is impossible here.
- ``Rig``: the per-file stages wired to a real LocalStore and Journal in a folder, with a fake
  Redox client (``fakes.FakeClient``, the one seam): for failures that cannot be timed from
  outside a process.
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
from fakes import FakeClient
from pipeline_env import DESTINATION, REPO, PipelineEnv

from pipeline.flow.retry import CircuitBreaker, RetryPolicy
from pipeline.flow.work import FileWork, Job
from pipeline.journal import Journal
from pipeline.sources.local.store import LocalStore

# -- a real small filesystem ----------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """Mount a tmpfs of ``size`` at ``path`` for the duration; yields False (and mounts
    nothing) where the machine does not allow it."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                                  str(path)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "256k"):
    """A real tmpfs of ``size`` at ``path`` (ENOSPC for real); skip if mounting is not allowed."""
    with tmpfs(path, size) as mounted:
        if not mounted:
            pytest.skip("cannot mount a small filesystem here (needs root and mount rights)")
        yield path


def fill(folder: Path) -> Path:
    """Fill the filesystem holding ``folder`` to the last byte; returns the filler file."""
    filler = folder / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


class Lines:
    """Collects a running process's stderr lines (read in a thread, so the pipe never fills)."""

    def __init__(self, stream):
        import threading
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(stream), daemon=True).start()

    def __contains__(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


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
        for folder, _dirs, files in os.walk(path):
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
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


# -- the stages in-process, with a fake Redox ---------------------------------------------------------


class Rig:
    """inbox/processing/done/failed under ``root``, a real store and journal, a fake client."""

    def __init__(self, root: Path, store_class=LocalStore):
        self.root = Path(root)
        self.inbox = self.root / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)     # the store never creates the inbox
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


# -- a TLS front for the sandbox, with a self-signed certificate ---------------------------------------


class TlsFront:
    """A TLS terminator on 127.0.0.1 in front of ``target_port`` (the plain-HTTP sandbox),
    presenting a freshly made self-signed certificate that no client trusts."""

    def __init__(self, target_port: int, folder: Path):
        import socket
        import ssl
        import threading
        self.target_port = target_port
        cert, key = _self_signed(folder)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self._socket, self._ssl = socket, ssl
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw) -> None:
        import threading
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (OSError, self._ssl.SSLError):
            raw.close()                        # the client refused our certificate: good
            return
        upstream = self._socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)

    def close(self) -> None:
        self.listener.close()


def _pipe(src, dst) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.close()
            except OSError:
                pass


def _self_signed(folder: Path) -> tuple[str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls-cert.pem", folder / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)
