"""Hostile content at the read-and-check stage: every case is sent correctly or rejected with a
precise reason that quotes nothing from the file."""

from __future__ import annotations

import hashlib
import json

import pytest
from pipeline_env import DESTINATION, PipelineEnv

from pipeline import message
from pipeline.errors import RejectedFile

DEST = [DESTINATION]
META = b'"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"}'


def doc(extra: bytes = b"") -> bytes:
    return b"{" + META + (b", " + extra if extra else b"") + b"}"


def reason(raw: bytes) -> str:
    with pytest.raises(RejectedFile) as caught:
        message.check(raw, DEST)
    assert caught.value.kind == "invalid" and caught.value.reason
    return caught.value.reason


def test_a_utf8_bom_is_accepted_and_not_sent():
    raw = b"\xef\xbb\xbf" + doc()
    checked = message.check(raw, DEST)
    assert checked.sha256 == hashlib.sha256(raw).hexdigest()      # of the bytes as dropped
    assert not checked.body.startswith(b"\xef\xbb\xbf")
    assert json.loads(checked.body)["Meta"]["Destinations"] == DEST


@pytest.mark.parametrize("raw, expected", [
    (b"", "empty file"),
    (b"\xef\xbb\xbf", "empty file"),
    (b" \n\t\r\n", "empty file"),
    (b"\xef\xbb\xbf\xef\xbb\xbf" + doc(), "not valid JSON"),          # a second BOM is not JSON
    (b"\xff\xfe{\x00}\x00", "not UTF-8"),                              # UTF-16
    (doc(b'"x": ' + b"[" * 64 + b"]" * 64), "nested deeper than 64"),
    (b"[" * 200000 + b"]" * 200000, "nested deeper than 64"),
    (b'{"a":' * 100000 + b"1" + b"}" * 100000, "nested deeper than 64"),
    (doc(b'"x": ' + b"9" * 65), "65 digits long"),
    (doc(b'"x": -' + b"9" * 65), "digits long"),
    (doc(b'"x": 1' + b"0" * 70 + b".5"), "characters long"),
    (doc(b'"x": 1e400'), "too large for a double"),
    (doc(b'"x": -1e400'), "too large for a double"),
    (doc(b'"x": NaN'), "NaN"),
    (doc(b'"x": Infinity'), "Infinity"),
    (doc(b'"x": [-Infinity]'), "-Infinity"),
    (doc(b'"x": "\\ud800"'), "unpaired UTF-16 surrogate"),
    (b'{"Meta": {"DataModel": "PatientAdmin", "EventType": "New\\nPatient"}}', "Meta.EventType is not"),
    (b'{"Meta": {"DataModel": "' + b"A" * 65 + b'", "EventType": "x"}}', "Meta.DataModel is not"),
    (b'{"Meta": {"DataModel": " PatientAdmin", "EventType": "x"}}', "Meta.DataModel is not"),
    (b"\x00" * 16, "not valid JSON"),
    (b"42", "JSON number, not an object"),              # top-level scalars once crashed the check
    (b"null", "JSON null"),
    (b'"PatientAdmin"', "JSON string"),
    (b"true", "JSON boolean"),
])
def test_each_hostile_shape_is_rejected_with_its_reason(raw, expected):
    assert expected in reason(raw)


def test_nesting_up_to_the_limit_and_long_but_sane_numbers_pass():
    checked = message.check(doc(b'"x": ' + b"[" * 62 + b"]" * 62 + b', "n": ' + b"9" * 64
                                + b', "f": 1e308, "t": 1e-400'), DEST)
    assert json.loads(checked.body)["n"] == int("9" * 64)


@pytest.mark.parametrize("raw", [
    b'{"Meta": {"DataModel": "a", "EventType": "b"}, "PATIENT-JOHN-DOE": 1, "PATIENT-JOHN-DOE": 2}',
    b'{"Meta": {"DataModel": "a", "EventType": "b", "Meta": {}}, "x": {"PATIENT-JOHN-DOE": 1, "PATIENT-JOHN-DOE": 1}}',
])
def test_duplicate_keys_are_rejected_without_quoting_the_key(raw):
    text = reason(raw)
    assert "duplicate key" in text and "JOHN" not in text


def test_reasons_never_quote_the_file(tmp_path):
    secret = "MRN-0012345-DOE"
    for raw in (f'{{"Meta": {{"DataModel": "{secret}\\u0000", "EventType": "x"}}}}'.encode(),
                f'{{"Meta": {{"DataModel": 1}}, "{secret}": 1}}'.encode(),
                f'["{secret}"'.encode(), f'{{"{secret}": NaN}}'.encode(),
                f'{{"a": "{secret}" "b"}}'.encode()):
        assert secret not in reason(raw)


BOM_AND_FRIENDS = {
    "bom.json": (b"\xef\xbb\xbf" + doc(b'"_test_marker": "bom"'), "done", None),
    "dupkeys.json": (doc(b'"a": 1, "a": 2'), "failed", "duplicate key"),
    "infinity.json": (doc(b'"a": -Infinity'), "failed", "-Infinity"),
    "zero.json": (b"", "failed", "empty file"),
    "deep-object.json": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "failed", "nested deeper"),
}


def test_end_to_end_bom_duplicates_infinity_zero_and_deep_objects(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    for name, (data, _, _) in BOM_AND_FRIENDS.items():
        env.drop(name, data)
    result = env.run("run", "--once")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name, (data, status, why) in BOM_AND_FRIENDS.items():
        car = env.sidecar(status, name)
        assert car["sha256"] == hashlib.sha256(data).hexdigest()
        assert (env.folder(status) / name).read_bytes() == data
        if why:
            assert car["reason_kind"] == "invalid" and any(why in e for e in car["errors"])
    sent = sandbox.records(bodies=True)["sends"]
    assert [s["marker"] for s in sent] == ["bom"]
