"""CPU per SEND of the HTTP layer: the pipeline's Redox client next to a bare requests loop.

Starts the sandbox (``python -m pipeline sandbox --port 0``), then measures, each in its own
subprocess so every figure comes from a fresh interpreter:

- ``client``: ``pipeline.app.make_client(settings).send(body)`` from one thread, N times;
- ``bare``: ``requests.Session().post(...)`` with the same body and token, N times;
- with ``--before PATH``: ``client`` again with the package found at PATH (e.g. a git worktree
  of an older commit), so the old and the new code are measured in the same run.

Prints ``time.process_time()`` per SEND (user + system CPU of the whole process, every thread
included) in milliseconds, the median of ``--rounds`` rounds. Asserts nothing.

    python scripts/bench_http_cpu.py [-n 2000] [--rounds 3] [--before /tmp/http-before]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DESTINATION = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}
READY = "sandbox listening on "


def small_message(i: int) -> bytes:
    """A small SEND body as the pipeline sends it (Meta.Destinations already set)."""
    doc = {"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True,
                    "Destinations": [DESTINATION]},
           "Patient": {"Identifiers": [{"ID": f"bench-{i:06}", "IDType": "MR"}]}}
    return json.dumps(doc, separators=(",", ":")).encode()


def write_config(folder: Path, url: str) -> Path:
    """A config for the sandbox: its OAuth dev key, no rate limit."""
    import yaml  # the package's own dependency, present wherever it is installed
    key = folder / "client-key.pem"
    key.write_bytes((REPO / "examples" / "sandbox-client-key.pem").read_bytes())
    os.chmod(key, 0o600)
    config = {
        "source": {"kind": "local", "inbox": str(folder / "inbox")},
        "folders": {name: str(folder / name) for name in ("processing", "done", "failed")},
        "redox": {"base_url": url, "upload_url": f"{url}/upload", "timeout_seconds": 30,
                  "max_requests_per_second": 0,
                  "auth": {"method": "oauth", "client_id": "sandbox-client",
                           "key_id": "sandbox-key", "private_key_file": str(key)}},
        "destinations": [DESTINATION],
        "state": {"path": str(folder / "state.db")},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def child(mode: str, config: str, count: int) -> None:
    """Runs in a subprocess: warm up, then print the CPU milliseconds per SEND as JSON."""
    from pipeline import app
    from pipeline import config as cfg
    settings = cfg.load(config)
    client = app.make_client(settings)
    bodies = [small_message(i) for i in range(count)]
    if mode == "client":
        send = client.send
    else:
        import requests
        session = requests.Session()
        url = settings.redox.base_url.rstrip("/") + "/endpoint"
        headers = {"Authorization": f"Bearer {client.tokens.token()}",
                   "Content-Type": "application/json"}

        def send(body: bytes) -> None:
            session.post(url, data=body, headers=headers, timeout=30).raise_for_status()
    for body in bodies[:50]:          # token, connection, imports, caches
        send(body)
    started = time.process_time()
    for body in bodies:
        send(body)
    print(json.dumps({"ms": 1000 * (time.process_time() - started) / count}))


def measure(mode: str, config: Path, count: int, pythonpath: str) -> float:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--config", str(config),
                          "-n", str(count)], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def start_sandbox() -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith(READY):
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, line[len(READY):].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="SENDs per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per variant (median)")
    parser.add_argument("--before", help="a checkout whose package is measured as 'before'")
    parser.add_argument("--child", choices=("client", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.config, args.n)
    variants = [("bare requests.Session().post", "bare", str(REPO)),
                ("this checkout's client", "client", str(REPO))]
    if args.before:
        variants.insert(1, (f"client at {args.before}", "client", args.before))
    proc, url = start_sandbox()
    try:
        config = write_config(Path(tempfile.mkdtemp(prefix="bench-http-")), url)
        print(f"CPU per SEND, {args.n} small SENDs from one thread, median of {args.rounds} "
              f"rounds (rounds interleaved), {os.cpu_count()} cores")
        results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for _ in range(args.rounds):
            for name, mode, path in variants:
                results[name].append(measure(mode, config, args.n, path))
        for name, figures in results.items():
            shown = ", ".join(f"{f:.3f}" for f in figures)
            print(f"  {name:<40} {statistics.median(figures):.3f} ms  ({shown})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
