"""What every benchmark part shares: checkouts, throwaway drop folders, child processes
(the sandbox, the latency proxy, moto's S3, the pipeline itself) and the figures table.

Not run on its own. A part run as ``python scripts/bench/<part>.py`` has this folder first on
sys.path, so ``import common`` finds this file without touching sys.path.

Nothing here imports the pipeline: the code under test only ever runs in child processes
(``python -m pipeline ...`` or probe.py) with PYTHONPATH pointing at the checkout being
measured, so one run can measure several checkouts side by side (``--repo``). The sandbox
always comes from this checkout, so every checkout is measured against the same server.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Self, Sequence

BENCH_DIR = Path(__file__).resolve().parent
THIS_REPO = BENCH_DIR.parents[1]
# The private half of the key the sandbox trusts by default (kid sandbox-key, sandbox-client).
DEV_KEY = THIS_REPO / "examples" / "sandbox-client-key.pem"
DESTINATION = {"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}
# Credentials the sandbox accepts out of the box; the bare baselines use them for a token.
LEGACY_API_KEY, LEGACY_SECRET = "sandbox-api-key", "sandbox-secret"
REGION = "us-east-1"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
MB = 1024 * 1024


def note(text: str) -> None:
    """Progress for the person watching (stderr, so stdout stays the figures)."""
    print(f"  . {text}", file=sys.stderr, flush=True)


# -- checkouts ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Checkout:
    """One checkout to measure: ``root`` is the folder holding the ``pipeline`` package."""

    repo: Path
    root: Path
    label: str


def package_root(repo: Path) -> Path:
    """``<repo>/src`` while the package lives there, else ``<repo>`` (after the move to
    ``pipeline/`` at the top). The package's ``__init__.py`` decides, not the bare folder: a
    checkout switched across the move can keep an untracked ``src/`` of caches behind."""
    if (repo / "src" / "pipeline" / "__init__.py").is_file():
        return repo / "src"
    if (repo / "pipeline" / "__init__.py").is_file():
        return repo
    raise SystemExit(f"{repo}: no pipeline package in src/pipeline/ or pipeline/")


def describe(repo: Path) -> str:
    """A short label for table columns: folder name and commit (``+`` when uncommitted)."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty=+"],
                              capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        head = ""
    return f"{repo.name}@{head}" if head else repo.name


_prepared: dict[Path, Checkout] = {}


def checkout(repo: Path | str) -> Checkout:
    """The checkout at ``repo``, byte-compiled and checked to import from where we think.

    Compiled first so that no pipeline process is billed for compiling the project's own
    modules (an editable checkout is not compiled ahead, and PYTHONDONTWRITEBYTECODE keeps a
    run from leaving its .pyc files behind). The import check guards against an installed
    copy of the package shadowing the checkout named on PYTHONPATH.
    """
    repo = Path(repo).resolve()
    if repo in _prepared:
        return _prepared[repo]
    root = package_root(repo)
    ck = Checkout(repo, root, describe(repo))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "pipeline")],
                   check=True, stdout=subprocess.DEVNULL)
    found = subprocess.run([sys.executable, "-c", "import pipeline; print(pipeline.__file__)"],
                           env=child_env(ck), capture_output=True, text=True, check=False,
                           cwd=tempfile.gettempdir())
    where = Path(found.stdout.strip() or "?").resolve()
    if found.returncode != 0 or root.resolve() not in where.parents:
        raise SystemExit(f"{repo}: `import pipeline` found {where}, not the checkout's package "
                         f"({found.stderr.strip()[-300:]})")
    _prepared[repo] = ck
    return ck


def this_checkout() -> Checkout:
    """This checkout: where the sandbox comes from, whatever is being measured."""
    return checkout(THIS_REPO)


def child_env(ck: Checkout, **extra: str) -> dict[str, str]:
    """The environment of a child that runs ``ck``'s code: its package first on PYTHONPATH,
    moto's dummy AWS credentials, and loopback exempt from any proxy set for the shell."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ck.root), env.get("PYTHONPATH")) if p)
    env.update(AWS_ENV)
    env["NO_PROXY"] = ",".join(p for p in ("127.0.0.1,localhost", env.get("NO_PROXY")) if p)
    env.update(extra)
    return env


def pipeline_argv(*args: str) -> list[str]:
    """The command under test, as an operator runs it (``redox-pipeline`` is this module)."""
    return [sys.executable, "-m", "pipeline", *args]


# -- drop folders and configs --------------------------------------------------------------------
def deep_merge(base: dict, updates: dict) -> dict:
    """``base`` with ``updates`` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in updates.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if both else value
    return out


# What the old benchmarks ran with (settle 0, quick retries, 4 workers, no rate limit): the
# ported parts keep it so that their figures stay comparable with the ones already published.
TEST_LIKE = {
    "source": {"settle_seconds": 0, "rescan_seconds": 10},
    "redox": {"timeout_seconds": 10, "max_requests_per_second": 0},
    "retry": {"max_attempts": 5, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05},
    "workers": 4,
    "shutdown_grace_seconds": 10,
}


class Workspace:
    """A throwaway folder: ``drop/{inbox,processing,done,failed}``, a copy of the sandbox's
    development key (mode 600, as the pipeline insists) and ``config.yaml``."""

    def __init__(self, prefix: str = "bench-") -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        for sub in ("inbox", "processing", "done", "failed"):
            self.folder(sub).mkdir(parents=True)
        self.key = self.root / "client-key.pem"
        shutil.copyfile(DEV_KEY, self.key)
        os.chmod(self.key, 0o600)
        self.config = self.root / "config.yaml"

    @property
    def inbox(self) -> Path:
        return self.folder("inbox")

    def folder(self, name: str) -> Path:
        return self.root / "drop" / name

    def write_config(self, doc: dict) -> Path:
        self.config.write_text(json.dumps(doc, indent=1))      # JSON is YAML
        return self.config

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def redox_block(ws: Workspace, url: str, **extra: Any) -> dict:
    """``redox:`` for the sandbox (or a proxy in front of it) at ``url``, OAuth with the dev key."""
    return dict({"base_url": url, "upload_url": f"{url}/upload",
                 "auth": {"method": "oauth", "client_id": "sandbox-client",
                          "key_id": "sandbox-key", "private_key_file": str(ws.key)}}, **extra)


def local_config(ws: Workspace, redox_url: str, overrides: Optional[dict] = None) -> dict:
    """A local-folder config that leaves every other key at the pipeline's default (settle,
    rescan, workers, retries, timeouts): what an operator who copied the example runs."""
    doc = {"source": {"kind": "local", "inbox": "drop/inbox"},
           "folders": {"processing": "drop/processing", "done": "drop/done", "failed": "drop/failed"},
           "redox": redox_block(ws, redox_url),
           "destinations": [DESTINATION],
           "state": {"path": "drop/state.db"}}
    return deep_merge(doc, overrides or {})


def s3_config(ws: Workspace, redox_url: str, endpoint: str, bucket: str,
              overrides: Optional[dict] = None) -> dict:
    """As local_config, with the inbox an S3 prefix (``incoming/``) at ``endpoint``."""
    doc = local_config(ws, redox_url, overrides)
    doc["source"] = deep_merge({"kind": "s3", "bucket": bucket, "prefix": "incoming/",
                                "endpoint_url": endpoint, "region": REGION},
                               (overrides or {}).get("source", {}))
    doc["folders"] = {"processing": "processing/", "done": "done/", "failed": "failed/"}
    return doc


# A small valid Redox message. Each file's patient ID differs, so no two bodies are the same
# bytes (the pipeline would rightly not send a duplicate twice); ``_test_marker`` is what the
# sandbox keys its delivery faults on.
MESSAGE = ('{"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": true}, '
           '"Patient": {"Identifiers": [{"ID": "%s", "IDType": "MR"}]}, "_test_marker": "%s"}')


def message(ident: str, marker: Optional[str] = None) -> bytes:
    """The body of one small message (about 170 bytes)."""
    return (MESSAGE % (ident, ident if marker is None else marker)).encode()


def fill_inbox(inbox: Path, count: int, *, prefix: str = "b", age: float = 60.0,
               marker: Optional[str] = None) -> None:
    """``count`` small messages named ``<prefix>NNNNNNN.json``, their mtime ``age`` seconds
    back (a backlog has been sitting: settle_seconds is met on first sight).

    Raw os.open/os.write/futimens on the open descriptor: a million files in about a minute,
    where pathlib plus os.utime by name takes several.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    then = time.time() - age
    base = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(count):
            name = f"{prefix}{i:07d}"
            fd = os.open(f"{name}.json", flags, 0o600, dir_fd=base)
            try:
                os.write(fd, message(name, marker))
                os.utime(fd, (then, then))
            finally:
                os.close(fd)
            if i and i % 200_000 == 0:
                note(f"{i:,} of {count:,} files written")
    finally:
        os.close(base)


def drop_file(inbox: Path, name: str, data: bytes, age: Optional[float] = None) -> None:
    """Drop one file as an upstream system should: write a dotfile, then rename it in; with
    ``age``, its mtime that many seconds back."""
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    if age is not None:
        then = time.time() - age
        os.utime(tmp, (then, then))
    os.rename(tmp, inbox / name)


def count_files(folder: Path, suffix: str = ".redox.json") -> int:
    """Files under ``folder`` (recursively) whose names end with ``suffix``."""
    total = 0
    for _, _, names in os.walk(folder):
        total += sum(1 for n in names if n.endswith(suffix))
    return total


# -- child processes -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Usage:
    """What os.wait4 says about one finished command (its threads included, nobody else)."""

    exit: int
    wall: float
    user: float
    system: float
    maxrss_mb: float

    @property
    def cpu(self) -> float:
        return self.user + self.system


class Process:
    """A pipeline process, started through launch.py, whose own CPU and peak RSS are known
    once it ends.

    launch.py spawns the command and reads its usage with os.wait4; spawned straight from
    here, the command would be billed for this process's memory (Linux carries the parent's
    peak RSS across exec into the child's ru_maxrss). ``started`` is the command's spawn time
    (epoch, for comparing with the sandbox's records), once launch.py has written its pid.
    Output goes to a log file, never a pipe: a chatty service would block on a full one.
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], cwd: Path,
                 log: Path) -> None:
        self.log = log
        self.result = Path(f"{log}.usage.json")
        for stale in (self.result, Path(f"{self.result}.pid")):
            stale.unlink(missing_ok=True)
        self.started = time.time()              # until the launcher says when it spawned
        with open(log, "ab") as out:
            # A session of its own: on a timeout the launcher and the command die together.
            self.popen = subprocess.Popen(
                [sys.executable, str(BENCH_DIR / "launch.py"), str(self.result), "--", *argv],
                env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.usage: Optional[Usage] = None

    @property
    def pid(self) -> Optional[int]:
        """The command's own pid (not the launcher's), once it has been spawned."""
        try:
            return int(Path(f"{self.result}.pid").read_text())
        except (OSError, ValueError):
            return None

    def _collect(self) -> Usage:
        try:
            doc = json.loads(self.result.read_text())
        except (OSError, ValueError):          # the launcher itself was killed or failed
            doc = {"spawned_at": self.started, "wall": time.time() - self.started, "user": 0.0,
                   "system": 0.0, "maxrss_kb": 0, "exit": self.popen.returncode}
        self.started = doc["spawned_at"]
        self.usage = Usage(doc["exit"], doc["wall"], doc["user"], doc["system"],
                           doc["maxrss_kb"] / 1024)
        return self.usage

    def poll(self) -> Optional[Usage]:
        """The usage if the command has ended, else None."""
        if self.usage is None and self.popen.poll() is not None:
            self._collect()
        return self.usage

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the launcher, which passes it on to the command."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> Usage:
        """Block until the command ends; SIGKILL both after ``timeout`` seconds."""
        if self.usage is not None:
            return self.usage
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except BaseException:
            # Interrupted (Ctrl-C): in a session of its own, the command would outlive us.
            self.kill()
            raise
        return self._collect()

    def kill(self) -> None:
        """SIGKILL the launcher and the command together."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 120) -> Usage:
        """SIGTERM (the service drains in-flight files and exits), then wait."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def tail(self, lines: int = 15) -> str:
        """The end of the command's log, for a failure message."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def run_pipeline(ck: Checkout, ws: Workspace, *args: str, name: str = "run",
                 timeout: float = 3600, check: bool = True) -> Usage:
    """``python -m pipeline <args> --config <ws>`` to completion, with its own CPU and peak RSS.
    Exit status 1 (some file failed) counts as a failure here: every bench file is valid."""
    proc = Process(pipeline_argv(*args, "--config", str(ws.config)), env=child_env(ck),
                   cwd=ws.root, log=ws.log(name))
    usage = proc.wait(timeout)
    if check and usage.exit != 0:
        raise SystemExit(f"{ck.label}: `{' '.join(args)}` exited {usage.exit}:\n{proc.tail()}")
    return usage


def start_pipeline(ck: Checkout, ws: Workspace, *args: str, name: str = "service") -> Process:
    """``python -m pipeline run --config <ws> <args>`` in the background (service mode)."""
    return Process(pipeline_argv("run", "--config", str(ws.config), *args), env=child_env(ck),
                   cwd=ws.root, log=ws.log(name))


class Server:
    """A helper server in a child process that prints ``<ready> <url>`` once it listens.

    Its output is read all along (into a short tail), so it can never block on a full pipe.
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], ready: str, what: str,
                 timeout: float = 60) -> None:
        self.what = what
        self.proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._tail: collections.deque[str] = collections.deque(maxlen=30)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        self.url = ""
        while not self.url:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line.startswith(ready):
                self.url = line[len(ready):].strip()
            elif not line:
                self.stop()
                raise SystemExit(f"{what} did not start:\n" + "\n".join(self._tail))

    def _pump(self, lines: queue.Queue[str]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._tail.append(line.rstrip())
            lines.put(line)
        lines.put("")

    @property
    def hostport(self) -> str:
        return self.url.split("://", 1)[-1].rstrip("/")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Sandbox(Server):
    """``python -m pipeline sandbox --port 0`` from this checkout, steered over its control API."""

    def __init__(self, *flags: str) -> None:
        super().__init__(pipeline_argv("sandbox", "--port", "0", *flags),
                         env=child_env(this_checkout()), ready="sandbox listening on ",
                         what="the sandbox")

    def _control(self, method: str, name: str, body: Optional[dict] = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_sandbox/{name}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def faults(self, **updates: Any) -> dict:
        """Merge fault settings (e.g. latency_ms, delivery_pending_marker)."""
        return self._control("POST", "faults", updates)

    def reset(self) -> None:
        """Faults back to start-up values, records cleared."""
        self._control("POST", "reset", {})

    def records(self) -> dict:
        """What the sandbox saw, without message bodies (never asked for: never printed)."""
        return self._control("GET", "records")

    def send_count(self) -> int:
        return int(self.records()["counts"].get("sends", 0))

    def send_times(self, key: str = "received_at") -> list[float]:
        """Epoch times of every SEND it answered 200, sorted. ``received_at`` is when the
        request line arrived (what a rate limiter at Redox counts); ``at`` when it was answered."""
        return sorted(s[key] for s in self.records()["sends"] if s.get("status") == 200)

    def wait_first_send(self, timeout: float, alive: Callable[[], bool] = lambda: True,
                        interval: float = 0.05) -> Optional[float]:
        """Epoch time the first SEND arrived, polling until one is recorded (None on timeout
        or when ``alive()`` turns false)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.send_count():
                return min(s["received_at"] for s in self.records()["sends"])
            time.sleep(interval)
        return None


class LatencyProxy(Server):
    """latencyproxy.py in front of ``target`` (host:port): ``rtt_ms`` added per round trip."""

    def __init__(self, target: str, rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms
        super().__init__([sys.executable, str(BENCH_DIR / "latencyproxy.py"), "--target", target,
                          "--rtt-ms", str(rtt_ms)], env=dict(os.environ),
                         ready="latencyproxy listening on ", what="the latency proxy")


class S3Server(Server):
    """moto's S3 (s3server.py) on 127.0.0.1, with boto3 helpers to arrange buckets."""

    def __init__(self) -> None:
        super().__init__([sys.executable, str(BENCH_DIR / "s3server.py")],
                         env=dict(os.environ, **AWS_ENV), ready="s3server listening on ",
                         what="moto's S3 server")

    def client(self, pool: int = 10) -> Any:
        import boto3  # only parts that use S3 pay for importing boto3
        from botocore.config import Config
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(max_pool_connections=pool, retries={"max_attempts": 10, "mode": "standard"}))

    def counts(self, reset: bool = False) -> dict:
        """The requests served so far by kind (s3server.py), then from zero if ``reset``."""
        import urllib.request
        request = urllib.request.Request(self.url + "/__counts", method="DELETE" if reset else "GET")
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def fill(self, bucket: str, count: int, *, prefix: str = "incoming/", threads: int = 32,
             marker: Optional[str] = None) -> float:
        """Create ``bucket`` and put ``count`` small messages under ``prefix``, straight to moto
        (no proxy) from ``threads`` threads. Returns the seconds it took."""
        from concurrent.futures import ThreadPoolExecutor
        s3 = self.client(pool=threads)
        s3.create_bucket(Bucket=bucket)
        done = [0]

        def put(i: int) -> None:
            name = f"o{i:07d}"
            s3.put_object(Bucket=bucket, Key=f"{prefix}{name}.json", Body=message(name, marker))
            done[0] += 1
            if done[0] % 20_000 == 0:
                note(f"{done[0]:,} of {count:,} objects put")

        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(put, i) for i in range(count)]:
                future.result()
        return time.perf_counter() - start


# -- figures ---------------------------------------------------------------------------------------
def steady_rate(times: Sequence[float]) -> Optional[float]:
    """Requests per second between the 10th and the 90th percentile of ``times``: start-up
    and the tail (the last workers finishing) left out."""
    times = sorted(times)
    if len(times) < 3:
        return None
    low, high = round(0.1 * (len(times) - 1)), round(0.9 * (len(times) - 1))
    span = times[high] - times[low]
    return (high - low) / span if span > 0 else None


def busiest_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most requests in any ``width``-second window (sliding, not aligned to seconds)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


@dataclasses.dataclass(frozen=True)
class Figure:
    """One row of a part's table: what, the value measured, and the target if there is one."""

    name: str
    value: str
    target: str = ""


def print_table(title: str, results: dict[str, list[Figure]]) -> None:
    """Rows are figures, columns the checkouts measured (in the order given), then targets."""
    labels = list(results)
    names: list[str] = []
    targets: dict[str, str] = {}
    values: dict[tuple[str, str], str] = {}
    for label, figures in results.items():
        for fig in figures:
            if fig.name not in names:
                names.append(fig.name)
            targets[fig.name] = targets.get(fig.name) or fig.target
            values[(label, fig.name)] = fig.value
    has_target = any(targets.values())
    header = ["figure", *labels] + (["target"] if has_target else [])
    rows = [[n, *(values.get((label, n), "-") for label in labels)]
            + ([targets[n]] if has_target else []) for n in names]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    sys.stdout.flush()


def share(value: Optional[float], limit: float) -> str:
    """``19.1/s (96% of 20)``, or ``none`` when nothing was measured."""
    if value is None:
        return "none"
    return f"{value:.2f}/s ({100 * value / limit:.0f}% of {limit:g})"


def seconds(value: Optional[float], none: str = "none") -> str:
    return none if value is None else f"{value:.2f} s"


# -- command line ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every part understands (each reads only those it needs)."""
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a first look")
    parser.add_argument("--repo", action="append", type=Path, metavar="DIR",
                        help="a checkout to measure (repeat to compare several, e.g. one made "
                             "with `git worktree add /tmp/old <commit>`); default: this one")
    parser.add_argument("--backlog", type=int, metavar="N",
                        help="backlog: files in the local inbox (default 1,000,000; --quick 100,000)")
    parser.add_argument("--s3-backlog", type=int, metavar="N",
                        help="s3backlog: objects under the prefix (default 100,000; --quick 10,000)")
    parser.add_argument("--files", type=int, metavar="N",
                        help="drain: files in the inbox for each figure (default 300; --quick 100)")
    parser.add_argument("--sends", type=int, metavar="N",
                        help="client: SENDs per loop (default 2,000; --quick 500)")
    parser.add_argument("--sizes", default="2K,12M,28M", help="memory: file sizes (K and M units)")
    parser.add_argument("--objects", type=int, metavar="N",
                        help="s3: objects to list and claim (default 10,000; --quick 2,000)")
    parser.add_argument("--race", type=int, metavar="N",
                        help="s3: objects in the claim race (default 1,000; --quick 300)")
    parser.add_argument("--threads", type=int, default=4, help="s3: claimers in the race")
    parser.add_argument("--page-size", type=int, default=1000, help="s3: keys per listing page")
    parser.add_argument("--ops-files", type=int, metavar="N",
                        help="ops: finished files with sidecars (default 20,000; --quick 2,000)")
    parser.add_argument("--reconcile-files", type=int, metavar="N",
                        help="reconcile: files in done/ (default 2,000; --quick 300)")
    parser.add_argument("--iterations", type=int, metavar="N",
                        help="validation: calls per figure (default 2,000; --quick 500)")
    parser.add_argument("--ordering-files", type=int, metavar="N",
                        help="ordering: files per run (default 1,000; --quick 200)")
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 10, 1000], metavar="K",
                        help="ordering: the patients the files are spread over, one pair of runs "
                             "each (default 1 10 1000)")
    parser.add_argument("--latency-ms", type=float, default=100, metavar="MS",
                        help="ordering: the sandbox's latency per SEND (default 100)")
    parser.add_argument("--workers", type=int, default=8, help="ordering: config workers (default 8)")
    parser.add_argument("--error-rate", type=float, default=0.0, metavar="P",
                        help="ordering: share of SENDs the sandbox answers 503 (default 0)")


def pick(value: Optional[int], quick: bool, full: int, small: int) -> int:
    """An explicit count, else the mode's default."""
    return value if value is not None else (small if quick else full)


def checkouts(args: argparse.Namespace) -> list[Checkout]:
    """The checkouts to measure, prepared (compiled, import checked), in the order given."""
    return [checkout(repo) for repo in (args.repo or [THIS_REPO])]


def part_main(run: Callable[[list[Checkout], argparse.Namespace], None], doc: Optional[str]) -> None:
    """``python scripts/bench/<part>.py [options]``: that part alone."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    this_checkout()
    run(checkouts(args), args)


def ordered_unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def run_probe(ck: Checkout, *args: str, timeout: float = 3600) -> dict:
    """probe.py with ``ck``'s code on PYTHONPATH; the JSON object it prints."""
    done = subprocess.run([sys.executable, str(BENCH_DIR / "probe.py"), *args], env=child_env(ck),
                          capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise SystemExit(f"{ck.label}: probe {args[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
