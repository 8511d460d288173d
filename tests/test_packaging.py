"""deploy/: the systemd unit, the cron line and the Dockerfile say what operations.md promises;
the cron line's command and the container's health check are run for real against the sandbox."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys

import pytest
from pipeline_env import REPO, PipelineEnv, message, stop

from pipeline.config import Settings

UNIT = REPO / "deploy" / "redox-pipeline.service"
CRON = REPO / "deploy" / "cron"
DOCKERFILE = REPO / "Dockerfile"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_an_unprivileged_hardened_service_that_stops_gracefully():
    service = unit()["Service"]
    assert service["User"] not in ("", "root") and service["Group"] not in ("", "root")
    assert service["ExecStart"].endswith("redox-pipeline run --log-format json")
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    grace = Settings.model_fields["shutdown_grace_seconds"].default
    assert float(service["TimeoutStopSec"]) > grace + 30
    assert service["UMask"] == "0077"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] and service["CapabilityBoundingSet"] == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    # the unit names the installed binary; verify the rest with one that exists here
    text = UNIT.read_text().replace("/opt/redox-pipeline/venv/bin/redox-pipeline", "/bin/true")
    copy = tmp_path / "redox-pipeline.service"
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def cron_entry() -> tuple[str, str]:
    """(user, command) of the one schedule line."""
    [line] = [text for text in CRON.read_text().splitlines()
              if text and not text.startswith("#") and "=" not in text.split()[0]]
    fields = line.split(None, 6)
    assert fields[:5] == ["*"] * 5
    return fields[5], fields[6]


def test_the_cron_line_runs_once_without_flock():
    user, command = cron_entry()
    assert user == "redox-pipeline"
    assert "run --once --log-format json" in command and "flock" not in command
    assert "umask 077" in command and ">> /var/log/redox-pipeline/once.log 2>&1" in command


def test_the_cron_command_works_as_written(tmp_path, sandbox):
    """Its command, with this machine's paths, sends the inbox and logs private JSON lines."""
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("a.json", message("a"))
    env_file = tmp_path / "env"
    env_file.write_text(f"PYTHONPATH={REPO}\n")
    _, command = cron_entry()
    log = tmp_path / "once.log"
    command = (command.replace("/etc/redox-pipeline/env", str(env_file))
               .replace("/opt/redox-pipeline/venv/bin/redox-pipeline", f"{sys.executable} -m pipeline")
               .replace("/var/log/redox-pipeline/once.log", str(log)))
    environ = {"PATH": "/usr/bin:/bin", "PIPELINE_CONFIG": str(env.config)}
    for _ in range(2):                                 # the second run finds nothing to do
        subprocess.run(["/bin/sh", "-c", command], env=environ, cwd=tmp_path, check=True, timeout=60)
    assert env.files("done") == ["a.json"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["event"] == "done" for line in lines)
    assert any(line["event"] == "nothing to do: the inbox is empty" for line in lines)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_the_dockerfile_runs_the_service_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    instructions = [line.split(None, 1) for line in text.splitlines()
                    if line and not line.startswith(("#", " "))]
    by_name = {}
    for name, *rest in instructions:
        by_name.setdefault(name, []).append(rest[0] if rest else "")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", by_name["FROM"][0])
    assert by_name["USER"][-1].split(":")[0] not in ("root", "0")
    assert json.loads(by_name["ENTRYPOINT"][-1]) == ["redox-pipeline", "run"]
    assert json.loads(by_name["VOLUME"][-1]) == ["/data"]
    assert by_name["STOPSIGNAL"] == ["SIGTERM"]
    assert "pip install ." in text


def test_the_unit_is_a_notify_service_with_a_watchdog():
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    watchdog = float(service["WatchdogSec"])
    loop_stall = Settings.model_fields["health"].default.loop_stall_seconds
    # the loop turns at least once a second; the watchdog leaves room for a long rescan and
    # kills only what /healthz already calls stalled
    assert watchdog >= loop_stall
    assert float(service["TimeoutStartSec"]) > Settings().redox.timeout_seconds
    assert "AF_UNIX" in service["RestrictAddressFamilies"]        # the notify socket


def dockerfile_instructions() -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    logical = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in logical.splitlines():
        if line and not line.startswith(("#", " ")):
            name, _, rest = line.partition(" ")
            by_name.setdefault(name, []).append(rest.strip())
    return by_name


def test_the_dockerfile_health_check_asks_the_service(tmp_path, sandbox):
    """The HEALTHCHECK's command, run as written (with this checkout instead of the installed
    command) against a running service: 0 while it is healthy, 1 once it is stopped."""
    [check] = dockerfile_instructions()["HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--retries=" in options
    argv = json.loads(command)
    assert argv == ["redox-pipeline", "health"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = PipelineEnv(tmp_path, sandbox.url, metrics={"port": port, "address": "0.0.0.0"})
    run_check = [sys.executable, "-m", "pipeline", *argv[1:]]
    environ = dict(os.environ, PIPELINE_CONFIG=str(env.config), PYTHONPATH=str(REPO))
    proc = env.start()
    try:
        env.wait_for(lambda: subprocess.run(run_check, env=environ, capture_output=True,
                                            timeout=60).returncode == 0)
        healthy = subprocess.run(run_check, env=environ, capture_output=True, text=True, timeout=60)
        assert json.loads(healthy.stdout)["status"] == "ok"
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert subprocess.run(run_check, env=environ, capture_output=True, timeout=60).returncode == 1
