"""Ordering end to end: the real command against the sandbox, local folders and S3 (moto).

With `ordering.by: patient` every patient's files are first accepted by Redox in drop order,
one at a time, while different patients go in parallel: under transient failures with eight
workers, through a SIGKILL and a restart, with two services on one folder, and with workers on
two machines sharing a bucket. `on_failure: hold` keeps a patient's later files back while an
earlier one sits in failed/. Checked on the sandbox's records, never on wall-clock time."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from ordering_checks import check_order, drop_patients, local_put, max_in_flight, patient_message, ran
from pipeline_env import PipelineEnv, stop

FAST_RETRIES = {"max_attempts": 30, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


def ordered_env(tmp_path, sandbox, **overrides) -> PipelineEnv:
    config = {"workers": 8, "ordering": {"by": "patient"}, "retry": FAST_RETRIES}
    config.update(overrides)
    return PipelineEnv(tmp_path, sandbox.url, **config)


def test_each_patient_in_drop_order_under_25_percent_5xx_with_8_workers(tmp_path, sandbox):
    sandbox.faults(error_rate=0.25, seed=11, latency_ms=20)
    env = ordered_env(tmp_path, sandbox)
    expected = drop_patients(local_put(env), patients=12, files=5)
    ran(env, "run", "--once")
    records = sandbox.records()
    assert any(s["status"] >= 500 for s in records["sends"])          # the faults did happen
    check_order(records, expected)
    assert len(env.files("done")) == 60 and env.files("processing") == []
    assert max_in_flight(records) > 1


def test_twelve_patients_at_200ms_are_sent_side_by_side(tmp_path, sandbox):
    sandbox.faults(latency_ms=200)
    env = ordered_env(tmp_path, sandbox)
    expected = drop_patients(local_put(env), patients=12, files=5)
    ran(env, "run", "--once")
    records = sandbox.records()
    check_order(records, expected)
    # a serial sender would never have two SENDs in flight; 8 workers over 12 patients should
    assert max_in_flight(records) >= 4, max_in_flight(records)


def test_a_killed_service_restarted_keeps_each_patients_order(tmp_path, sandbox):
    sandbox.faults(latency_ms=60, error_rate=0.1, seed=5)
    env = ordered_env(tmp_path, sandbox, shutdown_grace_seconds=5)
    expected = drop_patients(local_put(env), patients=12, files=5)
    proc = env.start()
    env.wait_for(lambda: len(env.files("done")) >= 15, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(env.files("done")) < 60
    ran(env, "run", "--once")
    records = sandbox.records()
    check_order(records, expected)
    assert len(env.files("done")) == 60
    accepted = Counter(s["marker"] for s in records["sends"] if s["status"] == 200)
    for marker in [m for m, n in accepted.items() if n > 1]:    # in flight at the kill
        patient, seq = marker.rsplit("-", 1)
        assert env.sidecar("done", f"f{int(seq):02}-{patient}.json")["possible_duplicate"] is True


def test_two_services_on_one_folder_keep_each_patients_order(tmp_path, sandbox):
    sandbox.faults(latency_ms=40, error_rate=0.1, seed=9)
    env = ordered_env(tmp_path, sandbox, workers=4)
    first = env.start()
    second = env.start()
    try:
        expected = drop_patients(local_put(env), patients=12, files=5)
        env.wait_for(lambda: len(env.files("done")) == 60, timeout=120)
    finally:
        results = [stop(p) for p in (first, second)]
        codes = [r[0] for r in results]
    assert codes == [0, 0], '\n=====\n'.join(r[2][-3000:] for r in results)
    check_order(sandbox.records(), expected)
    pids = Counter(env.sidecar("done", n)["pipeline"]["pid"] for n in env.files("done"))
    assert len(pids) == 2, pids                                    # both really took part


def test_by_path_orders_each_folder(tmp_path, sandbox):
    sandbox.faults(error_rate=0.25, seed=4, latency_ms=10)
    env = ordered_env(tmp_path, sandbox, ordering={"by": "path"}, source={"recursive": True})
    expected: dict = {}

    def put(name, data, k):
        folder = name.split("-")[1][:-5]                          # f03-p01.json → folder p01
        env.drop(f"{folder}/{name}", data, age=1000 - k * 0.01)
        expected.setdefault(folder, []).append(json.loads(data)["_test_marker"])
    drop_patients(put, patients=4, files=5)
    env.drop("top.json", patient_message("top", 0), age=2000)     # the inbox itself: key ""
    ran(env, "run", "--once")
    check_order(sandbox.records(), expected)
    assert len(env.files("done")) == 21


@pytest.mark.parametrize("release", ["retry-failed", "remove"])
def test_hold_keeps_later_files_back_while_an_earlier_one_is_in_failed(tmp_path, sandbox, release):
    env = ordered_env(tmp_path, sandbox, workers=1, ordering={"by": "patient", "on_failure": "hold"})
    expected = drop_patients(local_put(env), patients=2, files=3)   # p00-0 is the oldest
    sandbox.faults(fail_next=[404])                                  # its first SEND fails for good
    assert env.run("run", "--once").returncode == 1
    assert env.files("failed") == ["f00-p00.json"]
    sent = {s["marker"] for s in sandbox.records()["sends"]}
    assert sent == {"p00-0", "p01-0", "p01-1", "p01-2"}              # p00's later files held back
    assert sorted(env.files("inbox")) == ["f01-p00.json", "f02-p00.json"]
    status = json.loads(env.run("status", "--json", "--no-auth-check").stdout)
    [held] = status["held"]
    assert held["file"].endswith("failed/f00-p00.json") and held["reason_kind"] == "permanent"
    assert held["waiting"] == 2 and "p00" not in held["key"]
    if release == "retry-failed":
        assert "1 requeued" in env.run("retry-failed").stdout
    else:
        (env.folder("failed") / "f00-p00.json").unlink()
        (env.folder("failed") / "f00-p00.json.redox.json").unlink()
        expected["p00"] = expected["p00"][1:]
    ran(env, "run", "--once")
    check_order(sandbox.records(), expected)
    assert json.loads(env.run("status", "--json", "--no-auth-check").stdout)["held"] == []


def test_continue_lets_later_files_go_past_a_failure(tmp_path, sandbox):
    env = ordered_env(tmp_path, sandbox, workers=1)
    drop_patients(local_put(env), patients=1, files=3)
    sandbox.faults(fail_next=[404])
    assert env.run("run", "--once").returncode == 1
    assert env.files("failed") == ["f00-p00.json"]
    assert env.files("done") == ["f01-p00.json", "f02-p00.json"]


# -- S3 ------------------------------------------------------------------------------------


def s3_put(bucket):
    return lambda name, data, k: bucket.put(f"incoming/{name}", data)


def test_s3_each_patient_in_drop_order_under_5xx(tmp_path, sandbox, moto_server, bucket):
    from test_e2e_s3 import s3_env
    sandbox.faults(error_rate=0.25, seed=2, latency_ms=20)
    expected = drop_patients(s3_put(bucket), patients=6, files=4)
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    env.config_data.update(workers=8, ordering={"by": "patient"}, retry=FAST_RETRIES)
    env.write_config()
    ran(env, "run", "--once")
    check_order(sandbox.records(), expected)
    assert len(bucket.keys("done/")) == 24
    assert max_in_flight(sandbox.records()) > 1


def test_s3_workers_on_two_machines_keep_each_patients_order(tmp_path, sandbox, moto_server, bucket):
    from test_e2e_s3 import s3_env
    sandbox.faults(latency_ms=60, error_rate=0.1, seed=8)
    expected = drop_patients(s3_put(bucket), patients=6, files=4)
    machines = []
    for name in ("m1", "m2"):                     # each its own journal: only the bucket is shared
        env = s3_env(tmp_path, sandbox, moto_server, bucket, name=name)
        env.config_data.update(workers=4, ordering={"by": "patient"}, retry=FAST_RETRIES)
        env.write_config()
        machines.append(env)
    procs = [env.start() for env in machines]
    try:
        machines[0].wait_for(lambda: len(bucket.keys("done/")) == 24, timeout=180)
    finally:
        codes = [stop(p)[0] for p in procs]
    assert codes == [0, 0]
    check_order(sandbox.records(), expected)
    hosts = Counter(bucket.sidecar(f"done/{k}")["pipeline"]["pid"] for k in bucket.keys("done/"))
    assert len(hosts) == 2, hosts


# -- kills at exact steps (PIPELINE_FAILPOINT) -----------------------------------------------


def killed_at(env, point: str) -> None:
    result = env.run("run", "--once", env={"PIPELINE_FAILPOINT": point})
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-2000:])


def test_killed_right_after_redox_accepted_an_earlier_file(tmp_path, sandbox):
    env = ordered_env(tmp_path, sandbox, workers=1)
    expected = drop_patients(local_put(env), patients=1, files=3)
    killed_at(env, "after_accept")                     # p00-0 accepted, never finished
    ran(env, "run", "--once")
    records = sandbox.records()
    check_order(records, expected)
    assert Counter(s["marker"] for s in records["sends"]) == Counter({"p00-0": 1, "p00-1": 1, "p00-2": 1})
    assert env.files("done") == ["f00-p00.json", "f01-p00.json", "f02-p00.json"]


@pytest.mark.parametrize("point", ["after_sidecar", "after_move"])
def test_a_hold_survives_a_kill_while_the_failed_file_is_moved(tmp_path, sandbox, point):
    env = ordered_env(tmp_path, sandbox, workers=1, ordering={"by": "patient", "on_failure": "hold"})
    drop_patients(local_put(env), patients=1, files=2)
    sandbox.faults(fail_next=[404])
    killed_at(env, point)
    assert env.run("run", "--once").returncode in (0, 1)
    assert env.files("failed") == ["f00-p00.json"]
    assert {s["marker"] for s in sandbox.records()["sends"]} == {"p00-0"}   # p00-1 still held
    assert env.files("inbox") == ["f01-p00.json"]


def test_the_patient_identifier_never_appears_in_logs_or_on_the_board(tmp_path, sandbox):
    env = ordered_env(tmp_path, sandbox, workers=2, ordering={"by": "patient", "on_failure": "hold"})
    secret = {"Identifiers": [{"ID": "MRN-7731-SECRET", "IDType": "MR"}]}
    from pipeline_env import message
    env.drop("a.json", message("a", Patient=secret), age=20)
    env.drop("b.json", message("b", Patient=secret), age=10)
    sandbox.faults(fail_next=[404])
    result = env.run("run", "--once", "--log-format", "json")
    assert result.returncode == 1
    status = env.run("status", "--no-auth-check")
    assert "Held keys" in status.stdout
    board = sorted(str(p) for p in (env.folder("processing") / ".order").rglob("*"))
    text = result.stdout + result.stderr + status.stdout + "\n".join(board)
    assert "MRN-7731" not in text and "SECRET" not in text
    assert "waiting: an earlier file of its key is held" in result.stderr


def test_s3_hold_and_retry_failed_keep_the_drop_order(tmp_path, sandbox, moto_server, bucket):
    from test_e2e_s3 import s3_env
    expected = drop_patients(s3_put(bucket), patients=2, files=3)
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    env.config_data.update(workers=1, ordering={"by": "patient", "on_failure": "hold"}, retry=FAST_RETRIES)
    env.write_config()
    sandbox.faults(fail_next=[404])
    assert env.run("run", "--once").returncode == 1
    assert bucket.keys("failed/") == ["f00-p00.json"]
    assert {s["marker"] for s in sandbox.records()["sends"]} == {"p00-0", "p01-0", "p01-1", "p01-2"}
    [held] = json.loads(env.run("status", "--json", "--no-auth-check").stdout)["held"]
    assert held["file"] == f"s3://{bucket.name}/failed/f00-p00.json" and held["waiting"] == 2
    assert "1 requeued" in env.run("retry-failed").stdout
    ran(env, "run", "--once")
    check_order(sandbox.records(), expected)
    assert len(bucket.keys("done/")) == 6
