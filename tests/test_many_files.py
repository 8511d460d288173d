"""10,000 files at once through ``run --once``: every one sent exactly once and finished, none
left behind, and the run ends by itself.

The drop folders sit on a tmpfs where the machine allows it: this tests what the pipeline does
with ten thousand files, not the disk's fsync rate (scripts/bench/ measures throughput). On a
plain disk it takes about a minute on two cores.
"""

from __future__ import annotations

import os
import time

import pytest
from hostile import tmpfs
from pipeline_env import PipelineEnv, message

COUNT = 10_000


@pytest.mark.slow
def test_ten_thousand_files_in_one_once_run(tmp_path, sandbox):
    with tmpfs(tmp_path / "drop", "512m"):
        env = PipelineEnv(tmp_path, sandbox.url, workers=16, source={"rescan_seconds": 5})
        then = time.time() - 60                          # all settled already
        for i in range(COUNT):
            path = env.inbox / f"m{i:05}.json"
            path.write_bytes(message(f"m{i:05}"))
            os.utime(path, (then, then))
        result = env.run("run", "--once", "--log-format", "json", timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        done = os.listdir(env.folder("done"))
        assert len(done) == 2 * COUNT
        assert sorted(n for n in done if not n.endswith(".redox.json")) == [f"m{i:05}.json" for i in range(COUNT)]
        assert os.listdir(env.inbox) == [] and env.files("processing") == []
        records = sandbox.records()
        assert records["counts"]["sends"] == COUNT
        assert {s["marker"] for s in records["sends"]} == {f"m{i:05}" for i in range(COUNT)}
        assert records["counts"]["token_requests"] == 1
        assert result.stderr.count('"event": "done"') == COUNT
