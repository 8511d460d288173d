"""Failure reasons in our own words (pipeline/reasons.py): Redox's error texts, which may quote
the message, stay in the sidecar's ``errors`` and the journal; log lines, ``status``,
``report`` and ``retry-failed`` carry a reason built only from what we know ourselves.

The hostile-Redox end-to-end tests (test_e2e_hostile_redox.py) hold SEND refusals, 503s and
the Platform API to it; these add the paths they do not take (giving up, a refused upload, a
sidecar written before ``reason`` existed, the journal's rows, delivery problems) and pin the
words themselves.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline_env import PipelineEnv, message

from pipeline import reasons
from pipeline.errors import PermanentDelivery, TransientDelivery
from pipeline.values import Outcome

PATIENT, DOB = "Zebulon Quaxley", "1931-07-04"
PHI = f"Patient {PATIENT}, DOB {DOB}, not accepted"


def leaked(text: str) -> bool:
    return PATIENT in text or DOB in text


# -- the words ------------------------------------------------------------------------------------


def test_a_refusal_names_status_and_how_many_texts_the_sidecar_holds():
    exc = PermanentDelivery("Redox refused the message (HTTP 400)", status=400, errors=[PHI, PHI])
    assert reasons.refused(exc) == "Redox refused the message (HTTP 400, 2 error texts in the sidecar)"
    exc = PermanentDelivery("Redox refused the message (HTTP 404)", status=404, errors=[PHI])
    assert reasons.refused(exc) == ("Redox refused the message (HTTP 404, check the destinations in "
                                    "config.yaml and the source's subscriptions, 1 error text in the "
                                    "sidecar)")
    exc = PermanentDelivery("Redox refused the message (HTTP 403)", status=403, errors=[PHI])
    assert reasons.refused(exc, upload=True).startswith("Redox refused a document upload (HTTP 403, "
                                                        "free development accounts")


def test_an_attempt_is_our_sentence_and_a_count():
    exc = TransientDelivery("Redox answered HTTP 503", status=503, errors=[PHI])
    assert reasons.attempt(exc) == "Redox answered HTTP 503; 1 error text kept with the file"
    alone = TransientDelivery("could not connect to Redox (timed out)")
    assert reasons.attempt(alone) == "could not connect to Redox (timed out)"   # no text but ours
    assert reasons.gave_up(5, "attempts", reasons.attempt(exc)) == (
        "gave up after 5 attempts; the last: Redox answered HTTP 503; 1 error text kept with the file")


@given(texts=st.lists(st.text(min_size=1), min_size=1, max_size=4),
       status=st.one_of(st.none(), st.integers(100, 599)))
def test_no_reason_ever_quotes_what_redox_said(texts, status):
    marked = [f"\x00PHI{t}" for t in texts]            # no sentence of ours has a NUL
    permanent = PermanentDelivery(f"Redox refused the message (HTTP {status})", status=status,
                                  errors=marked)
    transient = TransientDelivery("Redox answered HTTP 503", status=status, errors=marked)
    said = [reasons.refused(permanent), reasons.refused(permanent, upload=True),
            reasons.attempt(transient), reasons.attempt(permanent),
            reasons.fallback("permanent", status, len(marked)),
            reasons.of_outcome(Outcome("failed", errors=tuple(marked), reason_kind="permanent",
                                       http_status=status)),
            reasons.of_sidecar({"status": "failed", "errors": marked, "reason_kind": "gave_up",
                                "http_status": status})]
    assert not any("\x00PHI" in text for text in said if text)


def test_a_failure_recorded_without_a_reason_is_told_by_kind_and_status_only():
    old = {"status": "failed", "errors": [PHI], "reason_kind": "permanent", "http_status": 400}
    assert reasons.of_sidecar(old) == "Redox refused it (HTTP 400, 1 error text in the sidecar)"
    assert reasons.of_sidecar({**old, "reason_kind": "gave_up", "http_status": None}) == (
        "gave up on Redox (1 error text in the sidecar)")
    assert reasons.of_sidecar({"status": "failed", "reason_kind": "invalid", "errors": []}) == (
        "not a valid Redox message")
    assert reasons.of_sidecar({"status": "failed"}) == "failed"
    assert reasons.of_sidecar({**old, "reason": "ours"}) == "ours"
    assert reasons.of_sidecar({"status": "done"}) is None


def test_a_journal_attempt_row_is_told_by_its_status():
    rows = [{"kind": "send", "n": 1, "status": 503, "result": "transient", "maybe_seen": 0},
            {"kind": "send", "n": 2, "status": None, "result": "transient", "maybe_seen": 1,
             "error": PHI}]
    assert reasons.last_attempt(rows) == "no answer from Redox (SEND 2; it may have arrived)"
    assert reasons.last_attempt(rows[:1]) == "HTTP 503 from Redox (SEND 1)"
    assert reasons.last_attempt([{"kind": "upload", "n": 1, "status": 429, "result": "transient"}]) == (
        "HTTP 429 from Redox (upload 1)")
    assert reasons.last_attempt([]) is None


# -- through the real command ---------------------------------------------------------------------


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url, retry={"max_attempts": 2})


def test_giving_up_keeps_the_texts_in_the_sidecar_and_says_why_in_our_words(env, sandbox):
    env.drop("a.json", message("a"))
    sandbox.faults(error_text=PHI, fail_next=[503, 503])
    result = env.run("run", "--once", "--log-format", "json")
    assert result.returncode == 1, result.stderr
    assert not leaked(result.stdout + result.stderr)
    car = env.sidecar("failed", "a.json")
    assert PATIENT in json.dumps(car["errors"]) and PATIENT in json.dumps(car["attempt_history"])
    assert car["reason"] == ("gave up after 2 attempts; the last: Redox answered HTTP 503; "
                             "1 error text kept with the file")
    failed = [json.loads(line) for line in result.stderr.splitlines()
              if json.loads(line)["event"] == "failed"]
    assert [line["error"] for line in failed] == [car["reason"]]


def test_a_refused_upload_is_a_reason_not_a_quote(tmp_path, sandbox):
    sandbox.faults(send_limit_bytes=4096 + 512, upload_limit_bytes=64 * 1024)
    env = PipelineEnv(tmp_path, sandbox.url, redox={"send_limit_bytes": 4096},
                      retry={"max_attempts": 2})
    document = base64.b64encode(os.urandom(8000)).decode()
    env.drop("big.json", json.dumps({"Meta": {"DataModel": "Media", "EventType": "New"},
                                     "Media": {"FileType": "PDF", "FileContents": document}}).encode())
    sandbox.faults(error_text=PHI, upload_fail_next=[400])
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    assert not leaked(result.stdout + result.stderr)
    car = env.sidecar("failed", "big.json")
    assert PATIENT in json.dumps(car["errors"])
    assert car["reason"].startswith("Redox refused a document upload (HTTP 400")


def test_status_report_and_retry_failed_never_quote_an_older_sidecars_errors(env):
    """A sidecar written before ``reason`` existed is shown by its kind and status."""
    (env.folder("failed") / "old.json").write_bytes(b"{}")
    (env.folder("failed") / "old.json.redox.json").write_text(json.dumps({
        "status": "failed", "errors": [PHI], "reason_kind": "permanent", "http_status": 400,
        "claim_id": "c1", "finished_at": "2024-05-01T10:00:00+00:00", "data_model": "PatientAdmin",
        "history": [{"status": "failed", "errors": [PHI], "reason_kind": "gave_up",
                     "claim_id": "c0", "finished_at": "2024-04-30T10:00:00+00:00"}]}))
    outputs = []
    for argv in (["status", "--no-auth-check"], ["status", "--json", "--no-auth-check"], ["report"],
                 ["report", "--json"], ["report", "--html", str(env.root / "r.html")],
                 ["retry-failed", "--dry-run"], ["retry-failed", "--dry-run", "--log-format", "json"]):
        result = env.run(*argv)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    outputs.append((env.root / "r.html").read_text())
    assert not any(leaked(text) for text in outputs)
    assert "old.json  permanent: Redox refused it (HTTP 400, 1 error text in the sidecar)" in outputs[0]
    [last] = json.loads(outputs[1])["last_errors"]
    assert last["reason"] == "Redox refused it (HTTP 400, 1 error text in the sidecar)"
    assert last["error_texts"] == 1 and last["sidecar"].endswith("old.json.redox.json")
    reasons_ranked = json.loads(outputs[3])["reasons"]
    assert {(r["reason_kind"], r["reason"]) for r in reasons_ranked} == {
        ("permanent", "Redox refused it (HTTP 400, 1 error text in the sidecar)"),
        ("gave_up", "gave up on Redox (1 error text in the sidecar)")}
    assert "refused failed/old.json: Redox refused the message itself (HTTP 400: 1 error text in " \
           "the sidecar)" in outputs[5]
    # --reason still finds it by what Redox said, without printing it
    found = env.run("retry-failed", "--dry-run", "--reason", PATIENT)
    assert "refused failed/old.json" in found.stdout and not leaked(found.stdout + found.stderr)


def test_a_journal_row_of_a_file_moved_on_is_reported_by_kind(env):
    from pipeline.journal import Journal
    journal = Journal(str(env.folder("state.db")))
    record = journal.begin("gone.json", "ab" * 32, 2, "inbox/gone.json", "proc/gone.json", "me", 1.0)
    journal.finishing(record.claim_id, "failed", [PHI], "permanent")
    journal.finished(record.claim_id, "/elsewhere/gone.json", "failed")
    journal.close()
    result = env.run("report", "--json")
    assert result.returncode == 0, result.stderr
    assert not leaked(result.stdout)
    assert [r["reason"] for r in json.loads(result.stdout)["reasons"]] == [
        "Redox refused it (1 error text in the sidecar)"]


def test_status_shows_a_failed_delivery_without_the_platform_apis_text(env):
    from pipeline.journal import Journal
    from pipeline.journal.ledger import Delivery, DeliveryLedger
    env.config_data["delivery_check"] = {"enabled": True, "organization_id": "org-1"}
    env.write_config()
    journal = Journal(str(env.folder("state.db")))
    DeliveryLedger(journal).save([Delivery(log_id="L1", ref="a.json", name="a.json", sent_at=1.0,
                                           status="pending", gave_up=True, error=PHI, checks=3)])
    journal.close()
    for argv in (["status", "--json", "--no-auth-check"], ["status", "--no-auth-check"]):
        result = env.run(*argv)
        assert result.returncode == 0, result.stderr
        assert not leaked(result.stdout + result.stderr)
    problems = json.loads(env.run("status", "--json", "--no-auth-check").stdout)[
        "sections"]["delivery"]["problems"]
    assert [(p["log_id"], "error" in p, p["reason"]) for p in problems] == [
        ("L1", False, "the last look-up gave no status (why: the sidecar's delivery entry)")]
