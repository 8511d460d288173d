"""flow/check.py and validation/textpaths.py without processes: the Judge, the Screen, and how a
message over the send limit is checked with its documents in place.

A document of the Transferring Files path is a placeholder string while the message is checked,
unless the schema has a rule that reads its text (pattern, minLength, maxLength, enum): then
its text is put in place. Strings set aside that are not documents are always put back.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from pipeline.errors import RejectedFile
from pipeline.flow.check import Judge, Verdict, judge_file, rejection_errors
from pipeline.ops.check import Target, as_text_line, shown
from pipeline.redox.transfer import documents
from pipeline.validation import Gate, SchemaMismatch, load_schemas

D4 = "http://json-schema.org/draft-04/schema#"
DEST = [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "EMR"}]
STRING = {"type": "string"}


def media_schema(contents: dict, value: dict | None = None) -> dict:
    return {"$schema": D4, "type": "object", "required": ["Meta"],
            "definitions": {"Contents": contents},
            "properties": {
                "Meta": {"type": "object"},
                "Media": {"type": "object", "properties": {
                    "FileContents": {"allOf": [{"$ref": "#/definitions/Contents"}]}}},
                "Orders": {"type": "array", "items": {"type": "object", "properties": {
                    "Results": {"type": "array", "items": {"type": "object", "properties": {
                        "Value": value or STRING}}}}}}}}


def gate_for(tmp_path: Path, schema: dict, missing: str = "send") -> Gate:
    folder = tmp_path / "schemas"
    (folder / "Media").mkdir(parents=True)
    (folder / "Media" / "New.json").write_text(json.dumps(schema))
    return Gate(load_schemas(folder), missing)


def large(size: int = 3000, numeric: str = "5.4") -> bytes:
    return json.dumps({
        "Meta": {"DataModel": "Media", "EventType": "New"},
        "Media": {"FileType": "PDF", "FileName": "a.pdf",
                  "FileContents": base64.b64encode(os.urandom(size)).decode()},
        "Orders": [{"Results": [{"Code": "1", "Value": numeric, "ValueType": "Numeric"}]}],
    }).encode()


def plan(judge: Judge, raw: bytes) -> documents.Plan:
    return judge.plan(io.BytesIO(raw), len(raw), 1 << 20, judge.screen(DEST))


# -- textpaths: which rules read a string's text --------------------------------------------------

@pytest.mark.parametrize("contents, reads", [
    (STRING, False),
    ({"type": ["string", "null"]}, False),
    ({"type": "string", "pattern": "^[A-Za-z0-9+/=]*$"}, True),
    ({"maxLength": 10}, True),
    ({"minLength": 1}, True),
    ({"enum": ["a"]}, True),
    ({"anyOf": [STRING, {"type": "null"}]}, False),
    ({"not": {"pattern": "x"}}, True),
])
def test_reads_text_follows_refs_and_combinators(tmp_path, contents, reads):
    schemas = gate_for(tmp_path, media_schema(contents)).schemas
    assert schemas.reads_text("Media", "New", ("Media", "FileContents")) is reads
    assert schemas.reads_text("Media", "New", ("Orders", 0, "Results", 3, "Value")) is False
    assert schemas.reads_text("Results", "New", ("Media", "FileContents")) is False   # no schema


def test_reads_text_through_array_items_and_additional_properties(tmp_path):
    schema = media_schema(STRING, {"pattern": r"^\d"})
    schema["properties"]["Note"] = {"type": "object", "additionalProperties": {"maxLength": 4}}
    schemas = gate_for(tmp_path, schema).schemas
    assert schemas.reads_text("Media", "New", ("Orders", 0, "Results", 1, "Value")) is True
    assert schemas.reads_text("Media", "New", ("Note", "FileContents")) is True


# -- the Transferring Files path: checked before anything is measured or uploaded -----------------

def test_a_large_message_is_checked_with_the_strings_that_are_not_documents_in_place(tmp_path):
    # Orders[0].Results[0].Value is set aside by the scan (a candidate) but is not a document:
    # its pattern must see "5.4", not the placeholder
    judge = Judge(1000, True, gate_for(tmp_path, media_schema(STRING, {"pattern": r"^\d+(\.\d+)?$"})))
    done = plan(judge, large())
    assert [d.field for d in done.documents] == ["Media.FileContents"]
    with pytest.raises(SchemaMismatch) as caught:
        plan(judge, large(numeric="QX7-not-a-number"))
    assert caught.value.problems == (r"Orders[0].Results[0].Value: does not match the pattern ^\d+(\.\d+)?$",)
    assert "QX7" not in caught.value.reason


def test_a_rule_on_a_documents_text_reads_its_text(tmp_path):
    judge = Judge(1000, True, gate_for(tmp_path, media_schema({"type": "string", "pattern": "^[A-Za-z0-9+/=]*$"})))
    assert len(plan(judge, large()).documents) == 1         # real base64 matches; a placeholder would not
    short = Judge(1000, True, gate_for(tmp_path / "b", media_schema({"type": "string", "maxLength": 10})))
    with pytest.raises(SchemaMismatch) as caught:
        plan(short, large())
    assert caught.value.errors == ("does not match the schema Media/New.json",
                                   "Media.FileContents: too long (at most 10 characters)")


def test_a_type_rule_alone_is_checked_on_the_placeholder(tmp_path):
    judge = Judge(1000, True, gate_for(tmp_path, media_schema({"type": "integer"})))
    with pytest.raises(SchemaMismatch) as caught:
        plan(judge, large())
    assert caught.value.problems == ("Media.FileContents: wrong type (expected integer, got string)",)


def test_the_screen_remembers_what_it_learnt_and_checks_before_choosing(tmp_path):
    judge = Judge(1 << 20, True, gate_for(tmp_path, media_schema(STRING)))
    chosen = []

    def choose(doc):
        chosen.append(doc["Meta"]["DataModel"])
        return DEST
    screen = judge.screen(choose)
    message, decision = judge.message(large(), choose, screen)
    assert decision.action == "send" and chosen == ["Media"]
    assert (screen.data_model, screen.event_type, screen.schema) == ("Media", "New", "Media/New.json")
    assert json.loads(message.body)["Meta"]["Destinations"] == DEST
    bad = json.loads(large())
    del bad["Meta"]
    bad["Meta"] = {"DataModel": "Media", "EventType": "New"}
    bad["Media"]["FileContents"] = 12
    with pytest.raises(SchemaMismatch):
        judge.message(json.dumps(bad).encode(), choose)
    assert chosen == ["Media"]                               # refused before a route was chosen


# -- judge_file and the verdict -------------------------------------------------------------------

def opener(raw: bytes):
    return lambda: io.BytesIO(raw)


def test_judge_file_verdicts(tmp_path):
    gate = gate_for(tmp_path, media_schema({"type": "string", "maxLength": 10}), missing="fail")
    judge = Judge(1000, True, gate)
    raw = large()
    verdict = judge_file(judge, opener(raw), len(raw), DEST, 1 << 20, lambda: "default")
    assert verdict == Verdict("reject", "Media", "New", schema="Media/New.json", reason_kind="invalid",
                              route="default",
                              errors=("does not match the schema Media/New.json",
                                      "Media.FileContents: too long (at most 10 characters)"))
    other = raw.replace(b'"New"', b'"Update"')
    verdict = judge_file(judge, opener(other), len(other), DEST, 1 << 20)
    assert (verdict.ok, verdict.reason_kind) == (False, "no_schema")
    fine = Judge(1000, True, None)
    verdict = judge_file(fine, opener(raw), len(raw), DEST, 1 << 20, lambda: "default")
    assert verdict.action == "transfer" and [(d.field, d.size) for d in verdict.documents] == [
        ("Media.FileContents", 3000)]
    assert verdict.destinations == tuple(DEST)
    small = b'{"Meta": {"DataModel": "Media", "EventType": "New"}}'
    assert judge_file(fine, opener(small), len(small), DEST, 1 << 20).action == "send"
    cut = b'{"Meta": '
    verdict = judge_file(fine, opener(cut), len(cut), DEST, 1 << 20)
    assert verdict.reason_kind == "invalid" and verdict.errors[0].startswith("truncated JSON")


def test_rejection_errors_lists_schema_problems_one_per_line():
    assert rejection_errors(RejectedFile("empty file")) == ("empty file",)
    assert rejection_errors(SchemaMismatch("A/B.json", ["x: required", "y: required"])) == (
        "does not match the schema A/B.json", "x: required", "y: required")


def test_names_are_printed_with_control_characters_escaped():
    assert shown("a\x1b[31m\nb.json") == "a\\x1b[31m\\nb.json"
    assert shown("lab/é.json") == "lab/é.json"
    assert shown(os.fsdecode(b"bad\xff.json")) == "bad\\xff.json"
    line = as_text_line(Target("p", "p", "p"), Verdict("send", route="r\x07", destinations=({"Name": "EMR"},)))
    assert line == "p  OK  SEND  route r\\x07 -> EMR"
