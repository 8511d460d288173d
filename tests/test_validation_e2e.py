"""Schema validation end to end: the real `run`, `validate` and `check` commands against the sandbox.

A message that does not match its schema fails before anything is sent or uploaded (the
sandbox's records prove it), with every problem named by path and none of its values quoted
(distinctive marker values are looked for in the sidecar, the logs and check's output);
`check` reaches the same verdicts as `run` and touches nothing (folder listings compared,
no journal); a broken schema file stops run, validate and check with exit 2 naming it.

Schemas: tests/schemas/named (PatientAdmin/NewPatient.json, Scheduling/New.json with a $ref)
plus a small Media/New.json written here, all shaped like Redox's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

from pipeline_env import DESTINATION, PipelineEnv

NAMED = Path(__file__).parent / "schemas" / "named"
SEND_LIMIT = 4096
# values that must never leave the message: not in a sidecar, a log line or check's output
MARKERS = ("QX7-DOB-MARKER", "QX7-SEX-MARKER", "QX7-ID-MARKER", "QX7-TYPE-MARKER")

MEDIA_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "Media.New (test fixture shaped like Redox's schema)",
    "type": "object",
    "required": ["Meta", "Patient", "Media"],
    "properties": {
        "Meta": {"type": "object", "required": ["DataModel", "EventType"],
                 "properties": {"DataModel": {"type": "string", "enum": ["Media"]},
                                "EventType": {"type": "string", "enum": ["New"]}}},
        "Patient": {"type": "object", "required": ["Identifiers"],
                    "properties": {"Identifiers": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["ID", "IDType"],
                        "properties": {"ID": {"type": "string"}, "IDType": {"type": "string"}}}}}},
        "Media": {"type": "object", "required": ["FileType", "FileName", "FileContents"],
                  "properties": {"FileType": {"type": "string", "enum": ["PDF", "JPG", "PNG"]},
                                 "FileName": {"type": "string"},
                                 "FileContents": {"type": "string"}}},
    },
}


def schemas_folder(root: Path, broken: str | None = None) -> Path:
    """tests/schemas/named plus Media/New.json, copied under ``root``; ``broken``: text that
    replaces PatientAdmin/NewPatient.json."""
    folder = root / "schemas"
    shutil.copytree(NAMED, folder)
    (folder / "Media").mkdir()
    (folder / "Media" / "New.json").write_text(json.dumps(MEDIA_SCHEMA, indent=2))
    if broken is not None:
        (folder / "PatientAdmin" / "NewPatient.json").write_text(broken)
    return folder


def patient(marker: str, **demographics) -> bytes:
    """A PatientAdmin/NewPatient message; ``demographics`` override (None: removed)."""
    demo = {"FirstName": "Timothy", "LastName": "Bixby", "DOB": "2008-01-06", "Sex": "Male"}
    demo.update(demographics)
    demo = {k: v for k, v in demo.items() if v is not None}
    return json.dumps({"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True},
                       "Patient": {"Identifiers": [{"ID": f"id-{marker}", "IDType": "MR"}],
                                   "Demographics": demo},
                       "_test_marker": marker}).encode()


def broken_patient(marker: str) -> bytes:
    """Breaks `required` (LastName), `pattern` (DOB) and `enum` (Sex), with marker values."""
    return patient(marker, LastName=None, DOB=MARKERS[0], Sex=MARKERS[1])


def media(marker: str, size: int = 6000, file_type: str = "PDF", identifiers: bool = True) -> bytes:
    """A Media/New message over SEND_LIMIT (its document takes the Transferring Files path)."""
    doc = {"Meta": {"DataModel": "Media", "EventType": "New", "Test": True}, "_test_marker": marker,
           "Media": {"FileType": file_type, "FileName": "scan.pdf",
                     "FileContents": base64.b64encode(os.urandom(size)).decode()}}
    if identifiers:
        doc["Patient"] = {"Identifiers": [{"ID": MARKERS[2], "IDType": "MR"}]}
    return json.dumps(doc).encode()


def make_env(tmp_path, sandbox, missing_schema: str = "send", broken: str | None = None,
             **overrides) -> PipelineEnv:
    sandbox.faults(send_limit_bytes=SEND_LIMIT)
    folder = schemas_folder(tmp_path, broken)
    return PipelineEnv(tmp_path, sandbox.url, redox={"send_limit_bytes": SEND_LIMIT},
                       validation={"schemas": os.path.relpath(folder, tmp_path),
                                   "missing_schema": missing_schema}, **overrides)


def listing(root: Path) -> list[tuple]:
    """Everything below ``root``: path, kind, size and mtime (a created-then-removed temp file
    still changes its folder's mtime)."""
    out = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out.append((str(path.relative_to(root)), path.is_dir(), info.st_size if path.is_file() else 0,
                    info.st_mtime_ns))
    return out


def check(env: PipelineEnv, *args: str, env_vars: dict | None = None):
    return env.run("check", *args, env=env_vars)


def verdicts(output: str) -> dict[str, dict]:
    return {doc["file"]: doc for doc in map(json.loads, output.splitlines())}


def no_markers(*texts: str) -> None:
    for text in texts:
        for marker in MARKERS:
            assert marker not in text


def sends(sandbox) -> dict[str, int]:
    return {s["marker"]: s["status"] for s in sandbox.records()["sends"]}


# -- run ------------------------------------------------------------------------------------------

def test_run_fails_a_message_breaking_its_schema_with_every_problem_named_and_never_sends_it(
        tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    env.drop("good.json", patient("good"))
    env.drop("bad.json", broken_patient("bad"))
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    assert env.files("done") == ["good.json"] and env.files("failed") == ["bad.json"]
    car = env.sidecar("failed", "bad.json")
    assert car["reason_kind"] == "invalid" and car["attempts"] == 0 and car["logs"] == []
    assert car["errors"] == [
        "does not match the schema PatientAdmin/NewPatient.json",
        r"Patient.Demographics.DOB: does not match the pattern ^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
        "Patient.Demographics.LastName: required",
        "Patient.Demographics.Sex: not one of the allowed values (Female, Male, Unknown, Other, null)",
    ]
    no_markers(json.dumps(car), result.stdout, result.stderr)
    assert sends(sandbox) == {"good": 200}                      # the invalid one never reached Redox


def test_a_large_file_breaking_its_schema_fails_before_any_upload(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    env.drop("big-bad.json", media("big-bad", file_type=MARKERS[3], identifiers=False))
    env.drop("big-good.json", media("big-good"))
    assert len((env.inbox / "big-bad.json").read_bytes()) > SEND_LIMIT
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    car = env.sidecar("failed", "big-bad.json")
    assert car["reason_kind"] == "invalid" and car["attempts"] == 0 and car["uploads"] == []
    assert car["errors"] == ["does not match the schema Media/New.json",
                             "Media.FileType: not one of the allowed values (PDF, JPG, PNG)",
                             "Patient: required"]
    no_markers(json.dumps(car), result.stdout, result.stderr)
    records = sandbox.records()
    assert len(records["uploads"]) == 1                         # big-good's document only
    assert sends(sandbox) == {"big-good": 200}
    assert env.sidecar("done", "big-good.json")["uploads"][0]["field"] == "Media.FileContents"


def test_missing_schema_send_delivers_unchecked_and_warns_once(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox, missing_schema="send")
    for n in range(3):
        env.drop(f"r{n}.json", patient(f"r{n}").replace(b'"PatientAdmin", "EventType": "NewPatient"',
                                                       b'"Results", "EventType": "New"'))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert env.files("done") == ["r0.json", "r1.json", "r2.json"]
    logs = result.stdout + result.stderr
    assert logs.count("no schema for Results/New in validation.schemas") == 1


def test_missing_schema_fail_fails_without_sending(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox, missing_schema="fail")
    env.drop("r.json", patient("r").replace(b'"PatientAdmin", "EventType": "NewPatient"',
                                            b'"Results", "EventType": "New"'))
    env.drop("p.json", patient("p"))
    verdict = verdicts(check(env, "--json", str(env.inbox / "r.json")).stdout)
    assert [(v["ok"], v["reason_kind"]) for v in verdict.values()] == [(False, "no_schema")]
    result = env.run("run", "--once")
    assert result.returncode == 1
    car = env.sidecar("failed", "r.json")
    assert car["reason_kind"] == "no_schema" and car["attempts"] == 0
    assert car["errors"] == ["no schema for Results/New in validation.schemas "
                             "(validation.missing_schema is fail)"]
    assert sends(sandbox) == {"p": 200}


# -- check ----------------------------------------------------------------------------------------

DROPS = {   # name: (bytes, ok, reason_kind)
    "good.json": (patient("good"), True, None),
    "bad.json": (broken_patient("bad"), False, "invalid"),
    "lab/nested.json": (patient("nested"), True, None),
    "results.json": (patient("results").replace(b'"PatientAdmin", "EventType": "NewPatient"',
                                                b'"Results", "EventType": "New"'), True, None),
    "not-json.json": (b'{"Meta": ', False, "invalid"),
    "big-good.json": (media("big-good"), True, None),
    "big-bad.json": (media("big-bad", file_type=MARKERS[3]), False, "invalid"),
    "big-plain.json": (media("big-plain").replace(b'"FileContents": "', b'"FileContents": "!'),
                       False, "invalid"),
}


def test_check_reaches_the_verdicts_run_reaches_and_touches_nothing(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox, source={"recursive": True})
    for name, (data, _, _) in DROPS.items():
        env.drop(name, data)
    before = listing(tmp_path)
    result = check(env, "--json", str(env.inbox))
    assert listing(tmp_path) == before                          # nothing written, moved or made
    assert not (tmp_path / "drop" / "state.db").exists()
    assert sandbox.records()["token_requests"] == [] and sandbox.records()["sends"] == []
    assert result.returncode == 1, result.stderr
    no_markers(result.stdout, result.stderr)
    found = verdicts(result.stdout)
    assert {name: (v["ok"], v["reason_kind"]) for name, v in found.items()} == {
        name: (ok, kind) for name, (_, ok, kind) in DROPS.items()}
    assert found["big-good.json"]["action"] == "transfer"
    assert found["big-good.json"]["documents"] == [{"field": "Media.FileContents", "size": 6000}]
    assert found["good.json"]["action"] == "send" and found["good.json"]["route"] == "default"
    assert found["good.json"]["destinations"] == [DESTINATION]
    assert found["good.json"]["schema"] == "PatientAdmin/NewPatient.json"
    assert found["results.json"]["schema"] is None              # no schema: sent unchecked

    run = env.run("run", "--once")
    assert run.returncode == 1, run.stderr
    for name, verdict in found.items():
        folder = "done" if verdict["ok"] else "failed"
        assert name in env.files(folder)
        car = env.sidecar(folder, name)
        assert car["reason_kind"] == verdict["reason_kind"]
        if not verdict["ok"]:
            assert car["errors"] == verdict["errors"]            # the same words, line for line
        else:
            assert car["destinations"] == verdict["destinations"] and car["route"] == verdict["route"]


def test_check_text_output_and_exit_statuses(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    good, bad = env.drop("good.json", patient("good")), env.drop("bad.json", broken_patient("bad"))
    ok = check(env, str(good))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"{good}  OK  SEND  route default -> Redox EMR"]
    both = check(env, str(env.inbox))
    assert both.returncode == 1
    assert both.stdout.splitlines()[0].startswith(
        "bad.json  FAIL  invalid: does not match the schema PatientAdmin/NewPatient.json: "
        "Patient.Demographics.DOB: does not match the pattern")
    no_markers(both.stdout, both.stderr)
    missing = check(env, str(bad), str(tmp_path / "nowhere.json"))
    assert missing.returncode == 2 and "nowhere.json: no such file or folder" in missing.stderr
    assert missing.stdout == ""


def test_check_needs_no_credentials(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    env.config_data["redox"]["auth"] = {"method": "oauth", "client_id": "${NO_SUCH_CLIENT_ID}",
                                        "key_id": "${NO_SUCH_KEY_ID}",
                                        "private_key_file": "no-such-key.pem"}
    env.write_config()
    good = env.drop("good.json", patient("good"))
    result = check(env, str(good))
    assert result.returncode == 0, result.stderr
    del env.config_data["redox"]["auth"]                       # no auth section at all
    env.write_config()
    assert check(env, str(good)).returncode == 0
    assert sandbox.records()["token_requests"] == []
    env.config_data["workers"] = 0                              # other problems still count
    env.write_config()
    assert check(env, str(good)).returncode == 2


def test_check_escapes_control_characters_in_names(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    env.drop("odd\x1b[31mname.json", patient("odd"))
    result = check(env, str(env.inbox))
    assert result.returncode == 0
    assert "\x1b" not in result.stdout and "odd\\x1b[31mname.json  OK" in result.stdout


# -- broken schema: a config error for every command -----------------------------------------------

def test_a_broken_schema_file_stops_run_validate_and_check_with_exit_2(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox, broken='{"type": "object", "properties": {')
    env.drop("good.json", patient("good"))
    before = listing(tmp_path)
    for args in (("run", "--once"), ("validate",), ("check", str(env.inbox))):
        result = env.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "validation.schemas: PatientAdmin/NewPatient.json: not JSON" in result.stderr
        assert listing(tmp_path) == before                      # nothing touched
    assert sandbox.records()["sends"] == [] and sandbox.records()["token_requests"] == []


def test_validate_reports_the_schemas(tmp_path, sandbox):
    env = make_env(tmp_path, sandbox)
    result = env.run("validate")
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout and "3 schemas" in result.stdout


def test_check_and_run_agree_on_routes_and_unrouted_files(tmp_path, sandbox):
    lab = {"ID": "6c0e2d55-8d1e-4b51-9d0e-2b8a3e1f7d42", "Name": "Lab Vendor"}
    env = make_env(tmp_path, sandbox, destinations=[],
                   routes=[{"name": "patients", "match": {"data_model": "PatientAdmin"},
                            "destinations": [lab]}])
    env.drop("p.json", patient("p"))
    env.drop("r.json", patient("r").replace(b'"PatientAdmin", "EventType": "NewPatient"',
                                            b'"Results", "EventType": "New"'))
    found = verdicts(check(env, "--json", str(env.inbox)).stdout)
    assert (found["p.json"]["route"], found["p.json"]["destinations"]) == ("patients", [lab])
    assert (found["r.json"]["ok"], found["r.json"]["reason_kind"]) == (False, "unrouted")
    assert env.run("run", "--once").returncode == 1
    assert env.sidecar("done", "p.json")["route"] == "patients"
    car = env.sidecar("failed", "r.json")
    assert (car["reason_kind"], car["errors"]) == ("unrouted", found["r.json"]["errors"])
    assert sends(sandbox) == {"p": 200}
