"""End to end: the real command against a sandbox that behaves like a hostile Redox (or whatever
stands in front of it), through every fault switch the sandbox has for it.

What each test holds the pipeline to, whatever Redox or the network does:

- a 200 that does not prove acceptance is never a delivery: the file is retried, and the sidecar
  of the acceptance that follows says ``possible_duplicate`` (the sandbox's records show Redox
  really got it twice); a file that never gets a proof ends in failed/, never done/ without Logs;
- trickled, cut, hanging and silent replies never hold a run: every ``--once`` ends (the
  subprocess timeouts here are hang guards only), and files end retried and flagged as their
  SENDs deserve;
- a Retry-After of any size never keeps ``--once`` running, and one file's 503 holds back no other;
- a 300 MB reply and a gzip bomb cost no memory (the child's peak RSS, from wait4);
- a token reply that cannot be used stops the run cleanly (exit 3, a sentence, no traceback),
  with every file where it was, and ``status`` says so;
- Redox's error texts, which may echo patient data, stay with the file (its sidecar) and out of
  what the commands print.

Tests are fast: small timeouts, tiny backoff, few attempts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_env import DESTINATION, PipelineEnv, message, stop
from sandbox_control import SandboxProcess

HANG_GUARD = 60          # seconds: a run that takes this long is hanging (no assertion on time)
SECOND = {"ID": "0f4bd0c1-9b8e-4a7a-8d0c-1f2e3d4c5b6a", "Name": "Second EMR"}
SEND_REPLY_MODES = ["html", "text", "empty", "not_object", "no_meta", "no_logs", "short_logs",
                    "bad_log_ids", "errors", "truncated_json"]
CUT_AND_HANG = ["hang", "short_body_hang", "cut_after_headers", "cut_mid_body", "no_reply"]
# what a hostile error reply echoes back: a patient's name, date of birth, record number, and
# terminal escapes (colour, and a window-title change)
PATIENT = "Zebulon Quaxley"
DOB = "1931-07-04"
MRN = "MRN-55501234"
PHI_TEXT = (f"Patient {PATIENT}, DOB {DOB} \u001b[31m{MRN}\u001b[0m "
            "\u001b]0;owned\u0007 not accepted")
PHI_MARKS = (PATIENT, DOB, MRN)


def make_env(tmp_path: Path, sandbox, **overrides) -> PipelineEnv:
    return PipelineEnv(tmp_path, sandbox.url, **overrides)


def run_once(env: PipelineEnv, *extra: str) -> subprocess.CompletedProcess:
    return env.run("run", "--once", *extra, timeout=HANG_GUARD)


def accepted(sandbox, marker: str) -> list[dict]:
    """The sandbox's SENDs of ``marker`` it accepted (status 200, Log IDs issued), whatever the
    pipeline heard: more than one is a message Redox got more than once."""
    return [s for s in sandbox.records()["sends"]
            if s["marker"] == marker and s["status"] == 200 and s["log_ids"]]


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def leaked(text: str) -> list[str]:
    return [mark for mark in PHI_MARKS if mark in text]


# -- a 200 that is not an acceptance -------------------------------------------------------------


@pytest.mark.parametrize("mode", SEND_REPLY_MODES)
def test_a_200_that_is_not_an_acceptance_is_retried_and_never_a_delivery(tmp_path, sandbox, mode):
    # two destinations: an acceptance needs a Log ID for each (short_logs gives one fewer)
    env = make_env(tmp_path, sandbox, destinations=[DESTINATION, SECOND],
                   retry={"max_attempts": 2})
    env.drop("never.json", message("never"))
    sandbox.faults(send_reply=mode)                  # every acceptance answered this way
    result = run_once(env)
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    assert env.files("done") == [] and env.files("failed") == ["never.json"]
    car = env.sidecar("failed", "never.json")
    assert car["logs"] == [] and car["reason_kind"] == "gave_up" and car["attempts"] == 2
    assert car["possible_duplicate"] is True
    assert all(a["result"] == "transient" and a["maybe_seen"] for a in car["attempt_history"])
    assert [s["reply"] for s in accepted(sandbox, "never")] == [mode, mode]   # Redox got it twice

    # the same reply once, then a real acceptance: done, flagged, Redox got it twice
    sandbox.faults(send_reply="normal", send_reply_next=[mode])
    env.drop("once.json", message("once"))
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert env.files("done") == ["once.json"]
    car = env.sidecar("done", "once.json")
    got = accepted(sandbox, "once")
    assert [s["reply"] for s in got] == [mode, "normal"]
    assert [entry["ID"] for entry in car["logs"]] == got[1]["log_ids"]     # the proven acceptance
    assert len(car["logs"]) == 2 and car["attempts"] == 2
    assert car["possible_duplicate"] is True
    assert [a["result"] for a in car["attempt_history"]] == ["transient", "accepted"]


# -- trickled, cut, hanging and silent replies ---------------------------------------------------


@pytest.mark.parametrize("mode", CUT_AND_HANG)
def test_a_send_reply_cut_or_hanging_is_retried_and_flagged(tmp_path, sandbox, mode):
    env = make_env(tmp_path, sandbox, redox={"timeout_seconds": 1})
    env.drop("a.json", message("a"))
    sandbox.faults(send_wire_next=[mode])
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert env.files("done") == ["a.json"] and env.files("inbox") == []
    car = env.sidecar("done", "a.json")
    assert car["possible_duplicate"] is True and car["attempts"] == 2
    first = car["attempt_history"][0]
    assert first["result"] == "transient" and first["maybe_seen"] is True
    assert [s["wire"] for s in accepted(sandbox, "a")] == [mode, "normal"]


def test_a_send_reply_trickled_past_the_deadline_ends_the_run_with_the_file_flagged(tmp_path, sandbox):
    # 2 bytes a second: each reply would take minutes; the deadline (1 s) cuts every one
    env = make_env(tmp_path, sandbox, redox={"timeout_seconds": 1}, retry={"max_attempts": 2})
    env.drop("slow.json", message("slow"))
    sandbox.faults(send_trickle_bps=2)
    result = run_once(env)
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    car = env.sidecar("failed", "slow.json")
    assert car["reason_kind"] == "gave_up" and car["possible_duplicate"] is True
    assert car["logs"] == []
    assert len(accepted(sandbox, "slow")) == 2      # Redox had it twice; the sidecar says maybe


@pytest.mark.parametrize("mode", [*CUT_AND_HANG, "trickle"])
def test_a_token_reply_cut_hanging_or_trickled_ends_the_run_and_touches_nothing(tmp_path, sandbox, mode):
    env = make_env(tmp_path, sandbox, redox={"timeout_seconds": 1})
    env.drop("a.json", message("a"))
    sandbox.faults(**({"token_trickle_bps": 2} if mode == "trickle" else {"token_wire_next": [mode]}))
    result = run_once(env)
    assert result.returncode == 3, result.stderr
    no_traceback(result)
    assert "could not be reached" in result.stderr
    assert env.files("inbox") == ["a.json"] and env.files("processing") == []
    assert sandbox.records()["sends"] == []

    sandbox.reset()                                  # the next run gets a token and sends it once
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    car = env.sidecar("done", "a.json")
    assert car["possible_duplicate"] is False and len(accepted(sandbox, "a")) == 1


def test_a_token_renewal_that_hangs_mid_run_flags_nothing(tmp_path, sandbox):
    # tokens live a second, so the run renews them while it sends; one renewal hangs
    env = make_env(tmp_path, sandbox, redox={"timeout_seconds": 1}, workers=2)
    for i in range(6):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(token_ttl_seconds=1, latency_ms=400, token_wire_next=["normal", "hang"])
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    assert env.files("done") == [f"m{i}.json" for i in range(6)]
    for i in range(6):
        car = env.sidecar("done", f"m{i}.json")
        # a SEND that never left (its token request hung) is no possible duplicate
        assert car["possible_duplicate"] is (len(accepted(sandbox, f"m{i}")) > 1), car


@pytest.fixture
def transfer_env(tmp_path, sandbox):
    """Files over a 4 KB send limit take the upload path (Transferring Files)."""
    sandbox.faults(send_limit_bytes=4096 + 512, upload_limit_bytes=64 * 1024)
    return make_env(tmp_path, sandbox, redox={"send_limit_bytes": 4096, "upload_limit_bytes": 64 * 1024,
                                              "timeout_seconds": 1},
                    retry={"max_attempts": 2})


def media_message(marker: str) -> bytes:
    import base64
    document = base64.b64encode(os.urandom(8000)).decode()
    return json.dumps({"Meta": {"DataModel": "Media", "EventType": "New", "Test": True},
                       "_test_marker": marker,
                       "Media": {"FileType": "PDF", "FileName": "scan.pdf", "DocumentType": "Lab",
                                 "FileContents": document}}).encode()


@pytest.mark.parametrize("mode", CUT_AND_HANG)
def test_an_upload_reply_cut_or_hanging_is_uploaded_again_and_the_message_sent_once(
        transfer_env, sandbox, mode):
    transfer_env.drop("big.json", media_message("big"))
    sandbox.faults(upload_wire_next=[mode])
    result = run_once(transfer_env)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    car = transfer_env.sidecar("done", "big.json")
    assert [u["wire"] for u in sandbox.records()["uploads"]] == [mode, "normal"]
    assert len(accepted(sandbox, "big")) == 1 and car["possible_duplicate"] is False
    assert len(car["uploads"]) == 1


def test_an_upload_reply_trickled_past_the_deadline_gives_up_without_sending(transfer_env, sandbox):
    transfer_env.drop("big.json", media_message("big"))
    sandbox.faults(upload_trickle_bps=2)
    result = run_once(transfer_env)
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    car = transfer_env.sidecar("failed", "big.json")
    assert car["reason_kind"] == "gave_up" and "upload attempts" in car["errors"][0]
    assert sandbox.records()["sends"] == [] and len(sandbox.records()["uploads"]) == 2


# -- Retry-After of any size ---------------------------------------------------------------------

FAR = ["inf", "Fri, 31 Dec 9999 23:59:59 GMT", "3600"]


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("value", FAR)
def test_a_far_retry_after_never_keeps_once_running(tmp_path, sandbox, value, status):
    env = make_env(tmp_path, sandbox, retry={"backoff_max_seconds": 1, "once_wait_seconds": 5})
    for i in range(3):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(fail_next=[status], retry_after=value, retry_after_statuses=[429, 503])
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert env.files("done") == ["m0.json", "m1.json", "m2.json"]
    assert all(len(accepted(sandbox, f"m{i}")) == 1 for i in range(3))


@pytest.mark.parametrize("value", FAR[1:])
def test_one_files_far_503_retry_after_holds_back_no_other(tmp_path, sandbox, value):
    # the default cap (backoff_max 300 s): the file's retry is beyond the run, the others go on
    env = make_env(tmp_path, sandbox, workers=1,
                   retry={"backoff_max_seconds": 300, "once_wait_seconds": 1})
    for i in range(4):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(fail_next=[503], retry_after=value, retry_after_statuses=[503])
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    (refused,) = [s["marker"] for s in sandbox.records()["sends"] if s["status"] == 503]
    assert env.files("inbox") == [f"{refused}.json"]
    assert env.files("done") == sorted(f"m{i}.json" for i in range(4) if f"m{i}" != refused)
    status = json.loads(env.run("status", "--json").stdout)
    (waiting,) = status["retries"]
    assert waiting["file"] == f"{refused}.json" and 0 < waiting["due_in_seconds"] <= 300


def test_a_far_429_retry_after_gives_files_back_instead_of_sleeping_through_it(tmp_path, sandbox):
    # a 429 pauses everyone, up to backoff_max (300 s): a --once run gives every file back with
    # its retry scheduled rather than sleeping the pause out in its workers
    env = make_env(tmp_path, sandbox, workers=1,
                   retry={"backoff_max_seconds": 300, "once_wait_seconds": 1})
    for i in range(4):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(fail_next=[429], retry_after="3600")
    result = run_once(env)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert env.files("inbox") == [f"m{i}.json" for i in range(4)]
    assert [s["status"] for s in sandbox.records()["sends"]] == [429]   # nothing else was sent
    status = json.loads(env.run("status", "--json").stdout)
    assert sorted(r["file"] for r in status["retries"]) == [f"m{i}.json" for i in range(4)]


def test_a_service_stopped_during_a_429_pause_leaves_nothing_in_flight(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox, workers=1, shutdown_grace_seconds=1,
                   retry={"backoff_max_seconds": 30})
    for i in range(4):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(fail_next=[429], retry_after="3600")
    proc = env.start()
    try:
        env.wait_for(lambda: len(json.loads(env.run("status", "--json").stdout)["retries"]) == 4)
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert "still in flight" not in err
    # released, not left claimed as if their SEND were in flight (which the next start would
    # flag possible_duplicate though Redox never saw them)
    assert env.files("processing") == [] and env.files("inbox") == [f"m{i}.json" for i in range(4)]
    assert [s["status"] for s in sandbox.records()["sends"]] == [429]


# -- huge replies and gzip bombs -----------------------------------------------------------------


# The command runs as the child of a small Python that reports its children's peak RSS: the
# peak of a child forked straight from pytest would count pytest's own pages (Linux keeps the
# high-water mark of the process image the child replaced).
MEASURE = ("import resource, subprocess, sys\n"
           "code = subprocess.call(sys.argv[2:])\n"
           "with open(sys.argv[1], 'w') as out:\n"
           "    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
           "sys.exit(code)\n")


def run_measured(env: PipelineEnv, *args: str) -> tuple[int, int, str]:
    """Run the command to completion; (exit status, its peak RSS in bytes, its output)."""
    peak_file = env.root / "peak-rss-kib"
    argv = [sys.executable, "-c", MEASURE, str(peak_file),
            *env.command(*args, "--config", str(env.config))]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env._env(None), cwd=env.root, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=HANG_GUARD)      # a hang guard, nothing more
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"the run hung: {output[-2000:]}") from None
    return proc.returncode, int(peak_file.read_text()) * 1024, output


PEAK_RSS_BOUND = 200 * 2**20


@pytest.mark.parametrize("faults, code", [
    ({"send_wire_next": ["huge", "huge"]}, 0),               # 300 MiB bodies, honest length
    ({"send_wire_next": ["gzip_bomb", "gzip_bomb"]}, 0),     # 1 GiB inflated
    ({"token_wire_next": ["huge"]}, 3),
    ({"token_wire_next": ["gzip_bomb"]}, 3),
], ids=["send-huge", "send-gzip-bomb", "token-huge", "token-gzip-bomb"])
def test_a_huge_reply_or_a_gzip_bomb_costs_no_memory(tmp_path, sandbox, faults, code):
    env = make_env(tmp_path, sandbox)
    env.drop("calm.json", message("calm"))
    status, calm, output = run_measured(env, "run", "--once")      # the same run, replies normal
    assert status == 0, output
    for i in range(4):
        env.drop(f"m{i}.json", message(f"m{i}"))
    sandbox.faults(**faults)
    status, peak, output = run_measured(env, "run", "--once")
    print(f"\npeak RSS with {faults}: {peak / 2**20:.1f} MiB "
          f"(normal replies: {calm / 2**20:.1f} MiB)", file=sys.stderr)
    assert status == code, output
    assert "Traceback" not in output
    assert peak < PEAK_RSS_BOUND
    if code == 0:
        assert env.files("done") == ["calm.json", *(f"m{i}.json" for i in range(4))]
        hit = [s["marker"] for s in sandbox.records()["sends"] if s["wire"] != "normal"]
        for marker in hit:      # the reply never read: retried, and flagged
            assert env.sidecar("done", f"{marker}.json")["possible_duplicate"] is True
    else:
        assert env.files("inbox") == [f"m{i}.json" for i in range(4)]


# -- token replies that cannot be used -----------------------------------------------------------

ODD_TOKEN_REPLIES = [
    {"oauth_expires_in": '"3600s"'}, {"oauth_expires_in": "[3600]"},
    {"oauth_expires_in": "1e309"}, {"oauth_expires_in": "null"},
    {"access_token_value": "tok\r\nX-Injected: yes"}, {"access_token_value": "t\u00f6k\u20acn-\u2713"},
    {"token_reply": "html"}, {"token_reply": "empty"}, {"token_reply": "no_access_token"},
]


@pytest.mark.parametrize("faults", ODD_TOKEN_REPLIES, ids=lambda f: "-".join(map(str, f.values())))
def test_an_unusable_token_reply_stops_the_run_cleanly_and_status_says_so(tmp_path, sandbox, faults):
    env = make_env(tmp_path, sandbox)
    env.drop("a.json", message("a"))
    sandbox.faults(**faults)
    result = run_once(env)
    assert result.returncode == 3, result.stderr
    no_traceback(result)
    assert "token reply is unusable" in result.stderr
    assert "X-Injected" not in result.stderr and "\u20ac" not in result.stderr
    assert env.files("inbox") == ["a.json"] and env.files("processing") == []
    assert env.files("done") == env.files("failed") == []
    assert sandbox.records()["sends"] == []
    status = env.run("status", timeout=HANG_GUARD)
    assert status.returncode == 0, status.stderr
    no_traceback(status)
    (line,) = [row for row in status.stdout.splitlines() if row.startswith("Redox auth:")]
    assert line.startswith("Redox auth: refused") and "unusable" in line


def test_an_unusable_token_reply_is_not_called_refused_credentials(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    env.drop("a.json", message("a"))
    sandbox.faults(token_reply="html")
    result = run_once(env)
    assert result.returncode == 3
    assert "token reply is unusable" in result.stderr
    assert "refused the credentials" not in result.stderr


# -- error texts that echo patient data ----------------------------------------------------------

@pytest.mark.parametrize("status, body, log_format", [
    (400, "json", "text"),
    (400, "json", "json"),
    (400, "text", "text"),
    (503, "json", "text"),
    (503, "json", "json"),
    (503, "text", "json"),
    (502, "json", "text"),
    (200, "json", "text"),        # a 200 with Meta.Errors
    (400, "html", "text"),
    (503, "html", "json"),
])
def test_redox_error_texts_stay_in_the_sidecar_and_out_of_the_run_logs(
        tmp_path, sandbox, status, body, log_format):
    env = make_env(tmp_path, sandbox, retry={"max_attempts": 2})
    env.drop("a.json", message("a"))
    faults = {"error_text": PHI_TEXT, "error_body": body}
    if status == 200:
        faults["send_reply"] = "errors"
    else:
        faults["fail_next"] = [status, status]
    sandbox.faults(**faults)
    result = run_once(env, "--log-format", log_format)
    assert result.returncode == 1, result.stderr
    no_traceback(result)
    car = env.sidecar("failed", "a.json")
    if body != "html":        # an HTML page's markup is not kept; Redox's own texts are
        assert PATIENT in json.dumps(car["errors"])
    assert leaked(result.stdout + result.stderr) == []


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_reply_never_puts_control_characters_into_the_run_logs(tmp_path, sandbox, log_format):
    env = make_env(tmp_path, sandbox, retry={"max_attempts": 2})
    env.drop("a.json", message("a"))
    sandbox.faults(error_text=PHI_TEXT, fail_next=[503, 503])
    result = run_once(env, "--log-format", log_format)
    assert result.returncode == 1, result.stderr
    assert "\u001b" not in result.stdout + result.stderr
    assert "\u0007" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def leaky_state(tmp_path_factory):
    """A folder where one file failed with Redox's PHI-laden 400 text and another waits for a
    retry after a 503 with the same text (its Retry-After puts it beyond the run)."""
    with SandboxProcess() as sandbox:
        env = PipelineEnv(tmp_path_factory.mktemp("leaky"), sandbox.url,
                          retry={"backoff_max_seconds": 300, "once_wait_seconds": 1})
        sandbox.faults(error_text=PHI_TEXT, fail_next=[400])
        env.drop("refused.json", message("refused"))
        assert run_once(env).returncode == 1
        sandbox.faults(fail_next=[503], retry_after="3600", retry_after_statuses=[503])
        env.drop("waiting.json", message("waiting"))
        # Redox answered this run nothing but a 503: an outage (exit 3), the file back in the
        # inbox with its retry scheduled
        assert run_once(env).returncode in (0, 3)
        assert env.files("failed") == ["refused.json"] and env.files("inbox") == ["waiting.json"]
        yield env


@pytest.mark.parametrize("command", [
    ["status"], ["status", "--json"], ["report"], ["report", "--json"],
    ["report", "--html", "{root}/report.html"], ["retry-failed", "--dry-run"],
], ids=" ".join)
def test_status_and_report_do_not_print_redox_error_texts(leaky_state, command):
    env = leaky_state
    argv = [arg.format(root=env.root) for arg in command]
    result = env.run(*argv, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    printed = result.stdout + result.stderr
    if "--html" in argv:
        printed += Path(argv[-1]).read_text()
    assert leaked(printed) == []


@pytest.mark.parametrize("command", [["status"], ["report"], ["retry-failed", "--dry-run"]],
                         ids=" ".join)
def test_status_and_report_never_write_control_characters_to_the_terminal(leaky_state, command):
    result = leaky_state.run(*command, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert "\u001b" not in result.stdout and "\u0007" not in result.stdout


@pytest.mark.parametrize("status", [400, 503])
def test_reconcile_keeps_platform_error_texts_out_of_its_logs(tmp_path, sandbox, status):
    env = make_env(tmp_path, sandbox, retry={"max_attempts": 2},
                   delivery_check={"organization_id": "org-1", "platform_url": f"{sandbox.url}/platform"})
    env.drop("a.json", message("a"))
    assert run_once(env).returncode == 0
    sandbox.faults(error_text=PHI_TEXT, platform_fail_next=[status] * 4)
    result = env.run("reconcile", timeout=HANG_GUARD)
    no_traceback(result)
    assert result.returncode in (3, 4), result.stderr
    assert leaked(result.stdout + result.stderr) == []


def test_a_service_keeps_running_through_hostile_replies(tmp_path, sandbox):
    """The service form: one of each kind of hostile reply in a row, and it goes on, stops
    cleanly on SIGTERM, and every file is done exactly as its SENDs deserve."""
    env = make_env(tmp_path, sandbox, redox={"timeout_seconds": 1}, workers=2)
    sandbox.faults(send_reply_next=["html", "truncated_json"],
                   send_wire_next=["cut_mid_body", "hang", "gzip_bomb", "huge"])
    proc = env.start()
    try:
        names = [f"s{i}.json" for i in range(6)]
        for name in names:
            env.drop(name, message(name[:-5]))
        env.wait_for(lambda: env.files("done") == names, timeout=HANG_GUARD)
    finally:
        code, _, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    for name in names:
        car = env.sidecar("done", name)
        assert car["logs"] and car["possible_duplicate"] is (len(accepted(sandbox, name[:-5])) > 1)
