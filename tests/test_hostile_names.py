"""Hostile names and special files in the inbox, through the real command against the sandbox.

Each one is sent correctly, or left alone in the inbox with one warning: never a traceback, a
stalled run, a file moved outside the configured folders, or a forged log line.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from pipeline_env import PipelineEnv, message

from pipeline.names import MAX_NAME_BYTES

ODD_BUT_FINE = [
    "with space.json", "ünïcödé-日本-🙂.json", "quote'\"s.json", "semi;colon&amp|pipe.json",
    "-leading-dash.json", "--help.json", "new\nline.json", "carriage\rreturn.json",
    "esc\x1b[31mred.json", "$(touch PWNED).json", "`touch PWNED2`.json", "back\\slash.json",
    "tab\there.json", "x" * (MAX_NAME_BYTES - 5) + ".json",        # exactly the longest allowed
    "é" * ((MAX_NAME_BYTES - 5) // 2) + ".json",                    # long in UTF-8 bytes too
]


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url)


def put(env: PipelineEnv, name: str, data: bytes, age: float = 60.0) -> None:
    """Write straight into the inbox (a temp name could itself be too long), already settled."""
    path = os.path.join(os.fsencode(env.inbox), os.fsencode(name))
    with open(path, "wb") as handle:
        handle.write(data)
    then = time.time() - age
    os.utime(path, (then, then))


def markers(sandbox) -> list[str]:
    return sorted(s["marker"] for s in sandbox.records()["sends"])


def log_lines(stderr: str) -> list[dict]:
    """Every stderr line must be one JSON object (no name may split or forge a line)."""
    return [json.loads(line) for line in stderr.splitlines()]


def test_odd_but_valid_names_are_sent_and_finished_under_their_own_names(env, sandbox):
    for i, name in enumerate(ODD_BUT_FINE):
        put(env, name, message(f"odd{i:02}"))
    result = env.run("run", "--once", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(env.folder("done"))) == sorted(
        ODD_BUT_FINE + [n + ".redox.json" for n in ODD_BUT_FINE])
    for name in ODD_BUT_FINE:
        car = env.sidecar("done", name)
        assert car["name"] == name and car["status"] == "done" and car["attempts"] == 1
        assert car["source"] == os.path.join(str(env.inbox), name)
    assert markers(sandbox) == [f"odd{i:02}" for i in range(len(ODD_BUT_FINE))]
    assert not (env.root / "PWNED").exists() and not (env.root / "PWNED2").exists()
    lines = log_lines(result.stderr)
    assert sorted(line["file"] for line in lines if line["event"] == "done") == sorted(ODD_BUT_FINE)
    assert os.listdir(env.inbox) == []


def test_text_logs_escape_control_characters_in_names(env, sandbox):
    names = ["new\nline.json", "carriage\rreturn.json", "esc\x1b[31mred.json"]
    for i, name in enumerate(names):
        put(env, name, message(f"t{i}"))
    result = env.run("run", "--once", "--log-format", "text")
    assert result.returncode == 0, result.stderr
    # every line is a log line of its own: nobody's name started a new one or moved the cursor
    assert all(re.match(r"^\d\d:\d\d:\d\d \w+ ", line) for line in result.stderr.splitlines())
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert r'file="new\nline.json"' in result.stderr and r"esc\u001b[31mred.json" in result.stderr


def test_names_that_cannot_be_finished_faithfully_are_left_alone_with_one_warning(env, sandbox):
    too_long = "y" * (MAX_NAME_BYTES - 4) + ".json"          # one byte over: no room for the sidecar
    longest = "z" * 250 + ".json"                           # the filesystem's own limit
    not_utf8 = os.fsdecode(b"caf\xe9-latin1.json")          # bytes no UTF-8 sidecar can hold
    for name in (too_long, longest, not_utf8):
        put(env, name, message("never"))
    env.drop("fine.json", message("fine"))
    for _ in range(2):                                      # and again on the next run
        result = env.run("run", "--once", "--log-format", "json")
        assert result.returncode == 0, result.stderr
        warnings = [line for line in log_lines(result.stderr) if "left alone" in line["event"]]
        assert len(warnings) == 3, warnings
        assert {w["file"] for w in warnings} == {too_long, longest, "caf\\xe9-latin1.json"}
        assert any("not valid UTF-8" in w["event"] for w in warnings)
        assert any(f"at most {MAX_NAME_BYTES}" in w["event"] for w in warnings)
    assert sorted(os.listdir(env.inbox)) == sorted([too_long, longest, not_utf8])
    assert env.files("done") == ["fine.json"] and env.files("failed") == []
    assert markers(sandbox) == ["fine"]


def test_a_taken_long_name_gets_a_suffix_that_still_fits_beside_its_sidecar(env, sandbox):
    name = "é" * ((MAX_NAME_BYTES - 5) // 2) + ".json"
    put(env, name, message("first"))
    assert env.run("run", "--once").returncode == 0
    put(env, name, message("second"))
    assert env.run("run", "--once").returncode == 0
    done = sorted(n for n in os.listdir(env.folder("done")) if not n.endswith(".redox.json"))
    assert len(done) == 2 and name in done
    other = next(n for n in done if n != name)
    assert other.endswith("-1.json") and len(other.encode()) <= MAX_NAME_BYTES
    assert env.sidecar("done", other)["name"] == name             # the sidecar keeps the real name
    assert b"second" in (env.folder("done") / other).read_bytes()
    assert markers(sandbox) == ["first", "second"]


def test_special_files_named_json_are_left_alone_and_never_block(env, sandbox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(message("outside"))
    os.mkfifo(env.inbox / "fifo.json")                      # nobody ever writes: opening would block
    (env.inbox / "dir.json").mkdir()
    os.symlink(outside / "secret.json", env.inbox / "link.json")
    os.symlink(outside, env.inbox / "dirlink.json")
    os.symlink(tmp_path / "missing", env.inbox / "dangling.json")
    env.drop("real.json", message("real"))
    result = env.run("run", "--once", "--log-format", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert env.files("done") == ["real.json"] and env.files("failed") == []
    assert markers(sandbox) == ["real"]
    left = {line["file"]: line["event"] for line in log_lines(result.stderr) if "left alone" in line["event"]}
    assert set(left) == {"fifo.json", "dir.json", "link.json", "dirlink.json", "dangling.json"}
    assert "a FIFO" in left["fifo.json"] and "a symbolic link" in left["link.json"]
    assert "a directory" in left["dir.json"]
    assert sorted(os.listdir(env.inbox)) == ["dangling.json", "dir.json", "dirlink.json", "fifo.json", "link.json"]
    assert os.readlink(env.inbox / "link.json") == str(outside / "secret.json")
    assert (outside / "secret.json").read_bytes() == message("outside")


def test_a_hard_link_is_sent_once_and_its_other_name_is_untouched(env, sandbox, tmp_path):
    archive = tmp_path / "archive.json"
    archive.write_bytes(message("linked"))
    os.link(archive, env.inbox / "linked.json")
    assert env.run("run", "--once").returncode == 0
    assert env.files("done") == ["linked.json"]
    assert archive.read_bytes() == message("linked") and os.stat(archive).st_nlink == 2
    assert os.path.samefile(archive, env.folder("done") / "linked.json")
    assert markers(sandbox) == ["linked"]


def test_the_service_never_claims_hidden_or_temporary_files_from_file_events(env, sandbox):
    proc = env.start("--log-format", "json")
    try:
        env.wait_for(lambda: any(p.is_dir() for p in env.folder("processing").iterdir()))
        # an exporter writing slowly under temporary names: each write is a file event
        for name in (".hidden.json", "b.json.part", "c.json.tmp"):
            with open(env.inbox / name, "wb") as handle:
                handle.write(message(name)[:10])
                handle.flush()
                time.sleep(0.2)
                handle.write(message(name)[10:])
        env.drop("real.json", message("real"))
        env.wait_for(lambda: env.files("done") == ["real.json"])
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert sorted(os.listdir(env.inbox)) == [".hidden.json", "b.json.part", "c.json.tmp"]
    assert markers(sandbox) == ["real"]
