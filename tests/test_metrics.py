"""The Prometheus endpoint: scraped over HTTP while a real service runs, counters checked
against what the sandbox saw; and the Metrics hooks on their own."""

from __future__ import annotations

import base64
import os
import re
from collections import Counter

import requests
from pipeline_env import PipelineEnv, message
from service_lines import Lines

from pipeline.service.metrics import Metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def scrape(url: str) -> dict[str, float]:
    """``name{labels}`` → value, from the Prometheus text format."""
    text = requests.get(url, timeout=5).text
    samples = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_counters_and_gauges_match_what_happened_during_a_service_run(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, metrics={"port": 0}, workers=1,
                      retry={"backoff_initial_seconds": 0.01, "backoff_max_seconds": 60},
                      redox={"send_limit_bytes": 4096})
    for i in range(3):
        env.drop(f"g{i}.json", message(f"g{i}"))
    env.drop("bad.json", b"not json at all")
    # over the send limit: its document is uploaded, then the small message is sent
    document = base64.b64encode(os.urandom(6000)).decode()
    env.drop("big.json", message("big", data_model="Media", Media={
        "FileType": "PDF", "FileName": "scan.pdf", "FileContents": document}))
    sandbox.faults(fail_next=[503, 400], send_limit_bytes=4096 + 512)
    proc = env.start("--log-format", "json")
    lines = Lines(proc.stderr)
    try:
        url = lines.wait_json(lambda d: d.get("event") == "metrics served")["url"]
        assert url.startswith("http://127.0.0.1:")
        # phase 1: everything present at start reaches an outcome
        env.wait_for(lambda: scrape(url).get("redox_pipeline_files_done_total") == 3
                     and sum(v for k, v in scrape(url).items()
                             if k.startswith("redox_pipeline_files_failed_total")) == 2)
        got = scrape(url)
        records = sandbox.records()
        statuses = Counter(str(s["status"]) for s in records["sends"])
        assert statuses == {"200": 3, "503": 1, "400": 1}
        uploads = Counter(str(u["status"]) for u in records["uploads"])
        assert sum(uploads.values()) == 1
        for status, n in uploads.items():
            assert got[f'redox_pipeline_uploads_total{{status="{status}"}}'] == n
        assert got["redox_pipeline_files_claimed_total"] == 5
        assert got['redox_pipeline_files_failed_total{reason="invalid"}'] == 1
        assert got['redox_pipeline_files_failed_total{reason="permanent"}'] == 1
        for status, n in statuses.items():
            assert got[f'redox_pipeline_sends_total{{status="{status}"}}'] == n
        assert got["redox_pipeline_retries_total"] == 1
        assert got["redox_pipeline_send_seconds_count"] == 5
        assert got['redox_pipeline_send_seconds_bucket{le="+Inf"}'] == 5
        assert got["redox_pipeline_files_in_flight"] == 0

        # phase 2: a file dropped long ago gets a 429 with Retry-After 30 s and waits
        sandbox.faults(fail_next=[429], retry_after=30)
        env.drop("late.json", message("late"), age=1000)
        env.wait_for(lambda: scrape(url).get("redox_pipeline_files_waiting_retry") == 1)
        got = scrape(url)
        assert got['redox_pipeline_sends_total{status="429"}'] == 1
        assert got["redox_pipeline_retries_total"] == 2
        assert got["redox_pipeline_files_claimed_total"] == 6
        assert got["redox_pipeline_oldest_waiting_seconds"] >= 1000
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0
    assert env.files("inbox") == ["late.json"]          # released on SIGTERM, not lost


def test_metrics_are_off_by_default_and_never_in_once_mode(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url, metrics={"port": 0})
    env.drop("a.json", message("a"))
    result = env.run("run", "--once")
    assert result.returncode == 0
    assert "metrics served" not in result.stderr


def test_a_port_in_use_is_a_config_error(tmp_path, sandbox):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = PipelineEnv(tmp_path, sandbox.url, metrics={"port": busy.getsockname()[1]})
        proc = env.start()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "metrics.port: cannot listen on 127.0.0.1" in err


def test_hooks_count_uploads_and_unanswered_requests():
    metrics = Metrics(clock=lambda: 1000.0)
    metrics.observe("upload", status=201, elapsed=0.2)
    metrics.observe("upload", status=None)
    metrics.observe("send", status=None, elapsed=None)
    metrics.finished("failed", None)
    metrics.gauges(in_flight=3, waiting_retry=1, oldest_mtime=900.0)
    value = metrics.registry.get_sample_value
    assert value("redox_pipeline_uploads_total", {"status": "201"}) == 1
    assert value("redox_pipeline_uploads_total", {"status": "none"}) == 1
    assert value("redox_pipeline_sends_total", {"status": "none"}) == 1
    assert value("redox_pipeline_send_seconds_count") == 0       # no answer, no latency
    assert value("redox_pipeline_files_failed_total", {"reason": "unknown"}) == 1
    assert value("redox_pipeline_files_in_flight") == 3
    assert value("redox_pipeline_oldest_waiting_seconds") == 100.0
    metrics.gauges(in_flight=0, waiting_retry=0, oldest_mtime=None)
    assert value("redox_pipeline_oldest_waiting_seconds") == 0.0
