"""Test helper: a throwaway drop folder, a config pointing at a sandbox, and the real command.

`PipelineEnv(tmp_path, sandbox_url, **overrides)` writes `config.yaml` (sandbox OAuth dev key,
settle 0, fast retries) and offers `drop()`, `run(*args)` (a real `redox-pipeline` subprocess),
`start(*args)` (a background service), `sidecar()` and folder listings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEV_KEY = REPO / "examples" / "sandbox-client-key.pem"
DESTINATION = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}


def message(marker: str = "m", data_model: str = "PatientAdmin", event_type: str = "NewPatient",
            **extra) -> bytes:
    """A small valid Redox message; ``marker`` lands in `_test_marker` for the sandbox's records."""
    doc = {"Meta": {"DataModel": data_model, "EventType": event_type, "Test": True},
           "Patient": {"Identifiers": [{"ID": marker, "IDType": "MR"}]}, "_test_marker": marker}
    doc.update(extra)
    return json.dumps(doc).encode()


def deep_merge(base: dict, updates: dict) -> dict:
    out = dict(base)
    for key, value in updates.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class PipelineEnv:
    def __init__(self, root: Path, sandbox_url: str, **overrides):
        self.root = Path(root)
        self.key = self.root / "client-key.pem"
        self.key.write_bytes(DEV_KEY.read_bytes())
        os.chmod(self.key, 0o600)
        base = {
            "source": {"kind": "local", "inbox": "drop/inbox", "settle_seconds": 0, "rescan_seconds": 0.5},
            "folders": {"processing": "drop/processing", "done": "drop/done", "failed": "drop/failed"},
            "redox": {"base_url": sandbox_url, "upload_url": f"{sandbox_url}/upload",
                      "timeout_seconds": 10, "max_requests_per_second": 0,
                      "auth": {"method": "oauth", "client_id": "sandbox-client", "key_id": "sandbox-key",
                               "private_key_file": str(self.key)}},
            "destinations": [DESTINATION],
            "retry": {"max_attempts": 5, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05},
            "workers": 4,
            "state": {"path": "drop/state.db"},
            "shutdown_grace_seconds": 10,
        }
        self.config_data = deep_merge(base, overrides)
        self.config = self.root / "config.yaml"
        self.write_config()
        for sub in ("inbox", "processing", "done", "failed"):
            (self.root / "drop" / sub).mkdir(parents=True, exist_ok=True)

    def write_config(self) -> None:
        self.config.write_text(yaml.safe_dump(self.config_data, sort_keys=False))

    # -- folders --------------------------------------------------------------------------
    @property
    def inbox(self) -> Path:
        return self.root / "drop" / "inbox"

    def folder(self, name: str) -> Path:
        return self.root / "drop" / name

    def drop(self, name: str, data: bytes, age: float = 0.0) -> Path:
        """Write a file into the inbox atomically (temp name, rename), optionally back-dated.
        ``name`` may have folders (``lab/a.json``): they are made."""
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.part"
        tmp.write_bytes(data)
        if age:
            then = time.time() - age
            os.utime(tmp, (then, then))
        os.rename(tmp, path)
        return path

    def files(self, folder: str) -> list[str]:
        """Names of message files (no sidecars, no dotfiles) in a folder, recursively."""
        base = self.folder(folder)
        return sorted(str(p.relative_to(base)) for p in base.rglob("*")
                      if p.is_file() and not p.name.endswith(".redox.json")
                      and not any(part.startswith(".") for part in p.relative_to(base).parts))

    def sidecar(self, folder: str, name: str) -> dict:
        return json.loads((self.folder(folder) / f"{name}.redox.json").read_text())

    # -- the command ----------------------------------------------------------------------
    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pipeline", *args]

    def run(self, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        """`redox-pipeline <args> --config <this config>` to completion."""
        argv = list(args)
        if argv and argv[0] != "sandbox" and "--config" not in argv:
            argv += ["--config", str(self.config)]
        return subprocess.run(self.command(*argv), capture_output=True, text=True, timeout=timeout,
                              env=self._env(env), cwd=self.root)

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """`redox-pipeline run --config <this config> <args>` in the background (a service)."""
        argv = ["run", "--config", str(self.config), *args]
        return subprocess.Popen(self.command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self._env(env), cwd=self.root)

    def _env(self, extra: dict | None) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env.update(extra or {})
        return env

    def wait_for(self, predicate, timeout: float = 30.0, interval: float = 0.05):
        """Poll until ``predicate()`` is truthy (a condition, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err
