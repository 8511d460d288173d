"""`redox-pipeline report`: the audit summary from the folders and the journal, as tables,
JSON and an HTML page (its structure always; a headless Chromium screenshot when installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from pipeline_env import PipelineEnv, message
from png_pixels import read_png

from pipeline.journal import Journal
from pipeline.ops.report_html import DONE_COLOUR, FAILED_COLOUR

DAY1 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
EVIL = "<script>alert('x')</script> & more"
REDOX_TEXT = "Patient Zebulon Quaxley, born 1931-07-04, not accepted"   # what Redox may echo


def write_outcome(env, folder, name, *, finished, waited, model=None, kind=None, errors=(),
                  claim_id=None, history=None, subfolder="", reason=None, http_status=None):
    """A file and its sidecar as the pipeline writes them (only the fields a report reads)."""
    base = env.folder(folder) / subfolder
    base.mkdir(parents=True, exist_ok=True)
    (base / name).write_bytes(b"{}")
    car = {"status": folder, "errors": list(errors), "reason_kind": kind, "name": name,
           "claim_id": claim_id or f"{folder}-{name}-{finished.timestamp()}",
           "dropped_at": (finished - timedelta(seconds=waited)).isoformat(),
           "finished_at": finished.isoformat()}
    if model:
        car["data_model"] = model
    if reason is not None:
        car["reason"] = reason
    if http_status is not None:
        car["http_status"] = http_status
    if history:
        car["history"] = history
    (base / f"{name}.redox.json").write_text(json.dumps(car))
    return car


@pytest.fixture
def env(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    d2, d4 = DAY1 + timedelta(days=1), DAY1 + timedelta(days=3)
    write_outcome(env, "done", "a.json", finished=DAY1, waited=2, model="PatientAdmin")
    write_outcome(env, "done", "b.json", finished=DAY1 + timedelta(hours=1), waited=4, model="Results")
    write_outcome(env, "failed", "c.json", finished=DAY1, waited=1, kind="invalid",
                  errors=["not valid JSON (line 1, column 1: Expecting value)"], subfolder="2024-05-01",
                  reason="not valid JSON (line 1, column 1: Expecting value)")
    earlier = {"status": "failed", "claim_id": "first-try", "name": "d.json", "reason_kind": "gave_up",
               "errors": ["gave up after 10 attempts"], "data_model": "Results",
               "finished_at": (d2 - timedelta(hours=2)).isoformat(), "replayed_from": "d.json"}
    write_outcome(env, "done", "d.json", finished=d2, waited=30, model="Results", history=[earlier])
    write_outcome(env, "failed", "e.json", finished=d4, waited=1, model="PatientAdmin",
                  kind="permanent", errors=[REDOX_TEXT], reason=EVIL, http_status=400)
    write_outcome(env, "failed", "f.json", finished=d4, waited=1, kind="invalid",
                  errors=["not valid JSON (line 1, column 1: Expecting value)"],
                  reason="not valid JSON (line 1, column 1: Expecting value)")
    # an outcome whose file has since been moved on downstream: only the journal knows it
    journal = Journal(str(env.folder("state.db")), clock=lambda: d2.timestamp())
    record = journal.begin("g.json", "ab" * 32, 2, "inbox/g.json", "proc/g.json", "me",
                           d2.timestamp() - 600)
    journal.attempt_started(record.claim_id, "send", 1, described=("Scheduling", "New"))
    journal.finishing(record.claim_id, "done", [], None)
    journal.finished(record.claim_id, "/elsewhere/g.json", "done")
    journal.close()
    return env


def report(env, *args):
    result = env.run("report", *args)
    assert result.returncode == 0, result.stderr
    return result


def test_json_counts_each_outcome_once_from_folders_history_and_journal(env):
    doc = json.loads(report(env, "--json").stdout)
    assert doc["totals"] == {"done": 4, "failed": 4}
    assert doc["days"] == [
        {"day": "2024-05-01", "done": 2, "failed": 1},
        {"day": "2024-05-02", "done": 2, "failed": 1},      # d.json, g.json; d's first try
        {"day": "2024-05-03", "done": 0, "failed": 0},      # a gap is shown, not skipped
        {"day": "2024-05-04", "done": 0, "failed": 2},
    ]
    models = {m["data_model"]: (m["done"], m["failed"]) for m in doc["data_models"]}
    assert models == {"Results": (2, 1), "PatientAdmin": (1, 1), "(not read)": (0, 2),
                      "Scheduling": (1, 0)}
    lat = doc["drop_to_done"]
    assert lat["count"] == 4 and lat["median_seconds"] == 17.0       # 2, 4, 30, 600
    assert lat["worst_seconds"] == 600.0 and lat["worst_file"] == "g.json"
    assert doc["reasons"][0] == {"count": 2, "reason_kind": "invalid",
                                 "reason": "not valid JSON (line 1, column 1: Expecting value)"}
    assert {r["reason_kind"] for r in doc["reasons"][1:]} == {"gave_up", "permanent"}
    assert doc["sources"] == {"sidecar": 6, "history": 1, "journal": 1}


def test_since_keeps_later_outcomes_only(env):
    doc = json.loads(report(env, "--json", "--since", "2024-05-02").stdout)
    assert [d["day"] for d in doc["days"]] == ["2024-05-02", "2024-05-03", "2024-05-04"]
    assert doc["totals"] == {"done": 2, "failed": 3}
    assert doc["since"] == "2024-05-02T00:00:00.000Z"   # the one time format: UTC, milliseconds


def test_terminal_tables(env):
    out = report(env).stdout
    lines = out.splitlines()
    assert "2024-05-01     2       1" in lines
    assert any(line.split() == ["Results", "2", "1"] for line in lines)
    assert "median 17.0s, worst 10m 00s (g.json)" in out
    assert any(line.split()[:2] == ["2", "invalid"] for line in lines)


class Page(HTMLParser):
    """Collects tags, SVG texts and table cells."""

    def __init__(self):
        super().__init__()
        self.tags, self.svg_text, self.cells, self._in = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if not self._in:
            return
        if self._in[-1] == "text":
            self.svg_text.append(data)
        elif self._in[-1] == "td":
            self.cells.append(data)


def test_html_page_has_a_labelled_chart_and_escapes_every_text(env, tmp_path):
    out = tmp_path / "report.html"
    result = report(env, "--html", str(out))
    assert f"HTML report written to {out}" in result.stdout
    html = out.read_text()
    page = Page()
    page.feed(html)
    tags = [t for t, _ in page.tags]
    assert tags.count("svg") == 1 and "script" not in tags and "link" not in tags
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")   # nothing fetched
    bars = [a for t, a in page.tags if t == "rect" and a.get("height") != "14"]
    assert len(bars) == 8                                    # 4 days x (done, failed)
    assert {b["fill"] for b in bars} == {DONE_COLOUR, FAILED_COLOUR}
    for label in ("done", "failed", "Files", "Day (UTC)", "2024-05-01", "2024-05-04"):
        assert label in page.svg_text
    assert EVIL in page.cells                                # shown as text ...
    assert "<script>" not in html                            # ... never as markup


def test_many_days_stack_the_bars(env, tmp_path):
    start = DAY1 + timedelta(days=10)
    for i in range(80):
        write_outcome(env, "done", f"n{i}.json", finished=start + timedelta(days=i), waited=1)
    out = tmp_path / "many.html"
    report(env, "--html", str(out))
    page = Page()
    page.feed(out.read_text())
    assert "failed (stacked)" in page.svg_text
    labels = [t for t in page.svg_text if t.startswith("2024-")]
    assert 10 <= len(labels) <= 30                           # thinned out, never one per day


def test_empty_folders_give_an_empty_but_valid_report(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    doc = json.loads(report(env, "--json", "--html", str(tmp_path / "r.html")).stdout)
    assert doc["totals"] == {"done": 0, "failed": 0} and doc["days"] == []
    assert "No file finished in this period." in (tmp_path / "r.html").read_text()


def test_a_real_run_is_reported(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    env.drop("a.json", message("a", data_model="Scheduling"))
    env.drop("b.json", b"[]")
    env.run("run", "--once")
    doc = json.loads(report(env, "--json").stdout)
    assert doc["totals"] == {"done": 1, "failed": 1}
    assert {m["data_model"] for m in doc["data_models"]} == {"Scheduling", "(not read)"}
    assert doc["sources"] == {"sidecar": 2}


# $CHROMIUM names the browser; else the first of these on PATH (Debian's package: chromium)
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)


def test_the_html_report_renders_in_headless_chromium(env, tmp_path):
    """Rendered for real. Skipped on a machine without Chromium, but never in CI (CI is set):
    .ci/run installs it. $REPORT_SCREENSHOT: keep a copy of the screenshot there."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("headless Chromium is not installed")
    out = tmp_path / "report.html"
    report(env, "--html", str(out))
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                  "--disable-background-networking", "--disable-component-update",
                                  "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                                  "--window-size=1000,700", f"--screenshot={shot}", out.as_uri()],
                                 capture_output=True, text=True, timeout=120, check=False)
    assert shot.exists(), f"Chromium wrote no screenshot (exit {browser.returncode}): {browser.stderr[-2000:]}"
    if os.environ.get("REPORT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["REPORT_SCREENSHOT"])
    width, height, pixels = read_png(shot)
    assert (width, height) == (1000, 700)
    done, failed = _rgb(DONE_COLOUR), _rgb(FAILED_COLOUR)
    assert sum(1 for p in pixels if _near(p, done)) > 2000         # the bars are drawn ...
    assert sum(1 for p in pixels if _near(p, failed)) > 500        # ... in both colours


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _near(p, q) -> bool:
    return all(abs(a - b) <= 8 for a, b in zip(p, q))
