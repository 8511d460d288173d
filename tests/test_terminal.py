"""Nothing the commands print drives a terminal (pipeline/terminal.py): a file name with an ESC
sequence, a newline or a bidi override, and whatever a sidecar says, reach ``status``,
``report``, ``retry-failed``, ``prune`` and the text log lines escaped (``\\x1b``, ``\\u202e``);
JSON output stays valid JSON and reads back to the same names; the HTML report escapes them too.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline_env import PipelineEnv

from pipeline.service.logs import JsonFormatter, TextFormatter
from pipeline.terminal import dumps, visible

HOSTILE = ["esc\x1b[31mred.json", "new\nline.json", "bidi\u202egnp.json", "bell\x07.json",
           "csi\x9b2J.json", "del\x7f.json"]
# what a terminal takes as a command, a line break or a direction change
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def test_visible_escapes_what_is_not_printable_and_keeps_the_rest():
    assert visible("esc\x1b[31m.json") == "esc\\x1b[31m.json"
    assert visible("new\nline\r\t.json") == "new\\nline\\r\\t.json"
    assert visible("bidi\u202e.json") == "bidi\\u202e.json"
    assert visible("café ✓.json") == "café ✓.json"
    assert visible("lone\udcff.json") == "lone\\udcff.json"


@given(st.text())
def test_visible_and_dumps_never_let_a_control_character_through(text):
    assert not RAW.search(visible(text))
    out = dumps({"file": text, text: [text]})
    assert not RAW.search(out) and "\n" not in out
    assert json.loads(out) == {"file": text, text: [text]}


def test_text_log_lines_escape_the_message_too():
    record = logging.LogRecord("pipeline", logging.ERROR, __file__, 1,
                               "stopped: \x1b]0;owned\x07 gone", None, None)
    record.file = "a\u202e.json"
    line = TextFormatter().format(record)
    assert not RAW.search(line) and "\\x1b]0;owned\\x07" in line
    line = JsonFormatter().format(record)
    assert not RAW.search(line) and json.loads(line)["file"] == "a\u202e.json"


@pytest.fixture
def hostile_folders(tmp_path):
    """Failed and done files whose names (and reasons) carry control and bidi characters."""
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    for i, name in enumerate(HOSTILE):
        folder = "failed" if i < 4 else "done"
        (env.folder(folder) / name).write_bytes(b"{}")
        car = {"status": folder, "name": name, "claim_id": f"c{i}", "errors": ["\x1b[2Jwiped"],
               "finished_at": "2024-05-01T10:00:00+00:00", "dropped_at": "2024-05-01T09:59:00+00:00",
               "data_model": f"Model\x1b[{i}m"}
        if folder == "failed":
            car.update(reason_kind="permanent", reason=f"refused \x1b]0;title\x07 {name}")
        (env.folder(folder) / f"{name}.redox.json").write_text(json.dumps(car))
    return env


@pytest.mark.parametrize("argv", [
    ["status", "--no-auth-check"], ["report"], ["retry-failed", "--dry-run"],
    ["retry-failed", "--dry-run", "--force"], ["prune", "--dry-run"],
    ["status", "--no-auth-check", "--json"], ["report", "--json"],
    ["retry-failed", "--dry-run", "--force", "--log-format", "json"],
], ids=" ".join)
def test_no_command_prints_a_raw_control_or_bidi_character(hostile_folders, argv):
    env = hostile_folders
    result = env.run(*argv)
    assert result.returncode == 0, result.stderr
    assert not RAW.search(result.stdout + result.stderr), (result.stdout + result.stderr)[:2000]
    if "--json" in argv or "json" in argv:
        docs = [json.loads(line) for line in result.stdout.splitlines()]
        assert any("esc\x1b[31mred.json" in text for text in strings(docs))   # read back as given
    elif argv[0] in ("status", "report"):
        assert "esc\\x1b[31mred.json" in result.stdout or "red.json" not in result.stdout


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def test_each_name_stays_on_its_own_line(hostile_folders):
    out = hostile_folders.run("status", "--no-auth-check").stdout
    [line] = [row for row in out.splitlines() if "new" in row and "line.json" in row]
    assert "new\\nline.json" in line


def test_the_html_report_escapes_control_and_bidi_characters(hostile_folders):
    page = hostile_folders.root / "r.html"
    result = hostile_folders.run("report", "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert not RAW.search(html.replace("\n", " "))
    assert "bidi\\u202egnp.json" in html or "bidi" not in html
    assert "refused \\x1b]0;title\\x07" in html
