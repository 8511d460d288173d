"""pipeline.validation: loading a schemas folder, validating messages, rendering problems.

The contract that matters most: a problem line is ``<JSON path>: <rule>``, a missing property
is reported at its own path, and no line ever holds a value, or an unknown key, from the
message. Fixtures: tests/schemas/named (PatientAdmin/NewPatient.json, Scheduling/New.json with
a $ref to definitions.json) and tests/schemas/redox-download (Redox's schemas.zip names).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, RejectedFile
from pipeline.validation import (
    MAX_PROBLEMS,
    NO_SCHEMA,
    NO_SCHEMA_KIND,
    Gate,
    MissingSchema,
    load_schemas,
)

FIXTURES = Path(__file__).parent / "schemas"
NAMED = FIXTURES / "named"
DOWNLOAD = FIXTURES / "redox-download"
D4 = "http://json-schema.org/draft-04/schema#"
MARKER = "QX7-SECRET-PATIENT-DATA"      # placed in messages; must appear in no problem line
MARKER_NUMBER = 987654.125


def new_patient() -> dict:
    """A valid PatientAdmin/NewPatient message for the fixture schema."""
    return {
        "Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient",
                 "EventDateTime": "2024-05-27T19:48:15.553Z", "Test": True,
                 "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "EMR"}]},
        "Patient": {"Identifiers": [{"ID": "0000000001", "IDType": "MR"}],
                    "Demographics": {"FirstName": "Timothy", "LastName": "Bixby",
                                     "DOB": "2008-01-06", "Sex": "Male"}},
    }


def write_schemas(root: Path, files: dict[str, object]) -> Path:
    """Write ``{relative path: schema (or raw text)}`` under ``root``; returns ``root``."""
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content))
    return root


@pytest.fixture(scope="module")
def named():
    return load_schemas(NAMED)


# -- rendering: paths and rules ----------------------------------------------------------------

def test_a_valid_message_has_no_problem_and_is_not_modified(named):
    doc = new_patient()
    before = copy.deepcopy(doc)
    assert named.validate(doc, "PatientAdmin", "NewPatient") == []
    assert doc == before


def test_the_contract_examples(named):
    doc = new_patient()
    doc["Meta"]["EventType"] = "NewPatient"
    doc["Patient"]["Demographics"]["DOB"] = "1990-13-45"
    del doc["Patient"]["Demographics"]["LastName"]
    doc["Patient"]["Identifiers"][0]["ID"] = 12345
    problems = named.validate(doc, "PatientAdmin", "NewPatient")
    assert problems == [
        ("Patient.Demographics.DOB: does not match the pattern "
        r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"),
        "Patient.Demographics.LastName: required",
        "Patient.Identifiers[0].ID: wrong type (expected string, got integer)",
    ]
    assert "1990-13-45" not in "".join(problems) and "12345" not in "".join(problems)


def test_an_enum_names_the_allowed_values_from_the_schema_never_the_message_value(named):
    doc = new_patient()
    doc["Meta"]["DataModel"] = "PatientAdmin"
    doc["Patient"]["Demographics"]["Sex"] = MARKER
    assert named.validate(doc, "PatientAdmin", "NewPatient") == [
        "Patient.Demographics.Sex: not one of the allowed values (Female, Male, Unknown, Other, null)"]


def test_each_missing_property_is_reported_at_its_own_path(named):
    doc = {"Meta": {}, "Patient": {"Identifiers": [{}], "Demographics": {}}}
    assert named.validate(doc, "PatientAdmin", "NewPatient") == [
        "Meta.DataModel: required", "Meta.EventType: required",
        "Patient.Demographics.FirstName: required", "Patient.Demographics.LastName: required",
        "Patient.Identifiers[0].ID: required", "Patient.Identifiers[0].IDType: required",
    ]
    assert named.validate({}, "PatientAdmin", "NewPatient") == ["Meta: required", "Patient: required"]


def test_the_document_itself_is_dollar(named):
    assert named.validate([MARKER], "PatientAdmin", "NewPatient") == [
        "$: wrong type (expected object, got array)"]


# Every draft-04 keyword that can fail, each on its own property, with marker values and keys.
KEYWORDS = {
    "$schema": D4, "type": "object",
    "properties": {
        "Type": {"type": ["string", "null"]},
        "Pattern": {"type": "string", "pattern": "^[0-9]{4}$"},
        "Enum": {"enum": ["Female", "Male"]},
        "LongEnum": {"enum": [f"V{i}" for i in range(20)]},
        "MinLength": {"type": "string", "minLength": 64},
        "MaxLength": {"type": "string", "maxLength": 3},
        "Minimum": {"minimum": 10 ** 7},
        "ExclusiveMinimum": {"minimum": 10 ** 7, "exclusiveMinimum": True},
        "Maximum": {"maximum": 1},
        "ExclusiveMaximum": {"maximum": 1, "exclusiveMaximum": True},
        "MultipleOf": {"multipleOf": 7},
        "MinItems": {"type": "array", "minItems": 3},
        "MaxItems": {"type": "array", "maxItems": 1},
        "UniqueItems": {"type": "array", "uniqueItems": True},
        "MinProperties": {"type": "object", "minProperties": 3},
        "MaxProperties": {"type": "object", "maxProperties": 1},
        "Closed": {"type": "object", "properties": {"Known": {}}, "additionalProperties": False},
        "OpenTyped": {"type": "object", "additionalProperties": {"type": "string"}},
        "Patterned": {"type": "object", "patternProperties": {"^Q": {"type": "string"}}},
        "Tuple": {"type": "array", "items": [{"type": "string"}], "additionalItems": False},
        "Dependent": {"type": "object",
                      "dependencies": {"Card": ["Expiry"], "Plan": {"required": ["Group"]}}},
        "AnyOf": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        "OneOfNone": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
        "OneOfBoth": {"oneOf": [{"type": "string"}, {"minLength": 1}]},
        "AllOf": {"allOf": [{"type": "string"}, {"maxLength": 2}]},
        "Not": {"not": {"type": "string"}},
        "Format": {"type": "string", "format": "email"},
        "Required": {"type": "object", "required": ["LastName"]},
    },
}

KEYWORD_MESSAGE = {
    "Type": MARKER_NUMBER, "Pattern": MARKER, "Enum": MARKER, "LongEnum": MARKER,
    "MinLength": MARKER, "MaxLength": MARKER, "Minimum": MARKER_NUMBER,
    "ExclusiveMinimum": MARKER_NUMBER, "Maximum": MARKER_NUMBER, "ExclusiveMaximum": MARKER_NUMBER,
    "MultipleOf": MARKER_NUMBER, "MinItems": [MARKER], "MaxItems": [MARKER, MARKER + "2"],
    "UniqueItems": [MARKER, MARKER], "MinProperties": {MARKER: MARKER},
    "MaxProperties": {MARKER: 1, MARKER + "2": 2},
    "Closed": {"Known": 1, MARKER: MARKER, MARKER + "2": MARKER},
    "OpenTyped": {MARKER: MARKER_NUMBER}, "Patterned": {"Q" + MARKER: MARKER_NUMBER},
    "Tuple": [MARKER, MARKER], "Dependent": {"Card": MARKER, "Plan": MARKER},
    "AnyOf": MARKER, "OneOfNone": MARKER, "OneOfBoth": MARKER, "AllOf": MARKER, "Not": MARKER,
    "Format": MARKER, "Required": {MARKER: MARKER},
}

KEYWORD_PROBLEMS = [
    "Type: wrong type (expected string or null, got number)",
    "Pattern: does not match the pattern ^[0-9]{4}$",
    "Enum: not one of the allowed values (Female, Male)",
    "LongEnum: not one of the allowed values",
    "MinLength: too short (at least 64 characters)",
    "MaxLength: too long (at most 3 characters)",
    "Minimum: must be at least 10000000",
    "ExclusiveMinimum: must be greater than 10000000",
    "Maximum: must be at most 1",
    "ExclusiveMaximum: must be less than 1",
    "MultipleOf: must be a multiple of 7",
    "MinItems: too few items (at least 3)",
    "MaxItems: too many items (at most 1)",
    "UniqueItems: has duplicate items",
    "MinProperties: too few properties (at least 3)",
    "MaxProperties: too many properties (at most 1)",
    "Closed: has 2 properties the schema does not allow",
    "OpenTyped.*: wrong type (expected string, got number)",
    "Patterned.*: wrong type (expected string, got number)",
    "Tuple: has more items than the schema allows (at most 1)",
    "Dependent.Expiry: required when Card is present",
    "Dependent.Group: required",
    "AnyOf: does not match any of the allowed alternatives",
    "OneOfNone: does not match any of the allowed alternatives",
    "OneOfBoth: matches more than one of the alternatives (exactly one is allowed)",
    "AllOf: too long (at most 2 characters)",
    "Not: matches a schema it must not match",
    "Required.LastName: required",
]


@pytest.fixture(scope="module")
def keywords(tmp_path_factory):
    root = write_schemas(tmp_path_factory.mktemp("kw"), {"Test/Keywords.json": KEYWORDS})
    return load_schemas(root, max_problems=100)


def test_every_keyword_renders_its_rule(keywords):
    problems = keywords.validate(KEYWORD_MESSAGE, "Test", "Keywords")
    assert sorted(problems) == sorted(KEYWORD_PROBLEMS)


def test_problems_come_in_path_order_whatever_order_jsonschema_finds_them(keywords):
    doc = {"OpenTyped": {f"K{i}": i for i in range(12)}, "Closed": {"x": 1}, "Enum": "x"}
    problems = keywords.validate(doc, "Test", "Keywords")
    assert problems == ["Closed: has a property the schema does not allow",
                        "Enum: not one of the allowed values (Female, Male)"] + [
        "OpenTyped.*: wrong type (expected string, got integer)"]   # 12 keys, one line


def test_no_problem_line_holds_a_value_or_an_unknown_key_from_the_message(keywords):
    problems = keywords.validate(KEYWORD_MESSAGE, "Test", "Keywords")
    assert problems
    for line in problems:
        for secret in (MARKER, "QX7", "SECRET", "987654", "125"):
            assert secret not in line, line


def test_format_is_not_enforced(keywords):
    assert keywords.validate({"Format": "not an email address"}, "Test", "Keywords") == []


def test_a_known_name_under_additional_properties_is_shown_an_unknown_one_is_not(keywords):
    assert keywords.validate({"OpenTyped": {"Known": 1, "Type": 2}}, "Test", "Keywords") == [
        "OpenTyped.Known: wrong type (expected string, got integer)",
        "OpenTyped.Type: wrong type (expected string, got integer)"]
    assert keywords.validate({"Closed": {MARKER: 1}}, "Test", "Keywords") == [
        "Closed: has a property the schema does not allow"]


def test_a_schema_name_that_is_not_plain_is_quoted(tmp_path):
    schema = {"type": "object", "properties": {"Clinical Summary": {"type": "string"}}}
    schemas = load_schemas(write_schemas(tmp_path, {"A/B.json": schema}))
    assert schemas.validate({"Clinical Summary": 1}, "A", "B") == [
        '["Clinical Summary"]: wrong type (expected string, got integer)']


# -- the cap -------------------------------------------------------------------------------------

def test_the_list_is_capped_with_the_count_of_the_rest(named):
    doc = new_patient()
    doc["Patient"]["Identifiers"] = [{"ID": n, "IDType": n} for n in range(15)]
    problems = named.validate(doc, "PatientAdmin", "NewPatient")
    assert MAX_PROBLEMS == 20
    assert len(problems) == 21
    assert problems[:2] == ["Patient.Identifiers[0].ID: wrong type (expected string, got integer)",
                            "Patient.Identifiers[0].IDType: wrong type (expected string, got integer)"]
    assert problems[-1] == "... and 10 more"


def test_a_smaller_cap_and_no_tail_when_everything_fits():
    schemas = load_schemas(NAMED, max_problems=3)
    doc = {"Meta": {}, "Patient": {"Identifiers": [{}], "Demographics": {}}}
    assert schemas.validate(doc, "PatientAdmin", "NewPatient")[-1] == "... and 3 more"
    assert len(load_schemas(NAMED, max_problems=6).validate(doc, "PatientAdmin", "NewPatient")) == 6


# -- which schema: layouts, names, no schema -----------------------------------------------------

def test_no_schema_for_the_pair_is_the_marker(named):
    assert named.validate(new_patient(), "Results", "New") is NO_SCHEMA
    assert named.validate(new_patient(), "PatientAdmin", "Discharge") is NO_SCHEMA


def test_named_layout_finds_event_schemas_and_leaves_root_files_as_ref_targets(named):
    assert named.names() == ["PatientAdmin/NewPatient.json", "Scheduling/New.json"]
    assert len(named) == 2


def test_redox_download_layout_matches_names_case_and_punctuation_blind():
    schemas = load_schemas(DOWNLOAD)
    assert schemas.names() == ["patientadmin/newpatient.json", "sso/sign-on.json"]
    assert schemas.validate(new_patient(), "PatientAdmin", "NewPatient") == []
    doc = {"Meta": {"DataModel": "SSO", "EventType": "Sign-On"}, "User": {}}
    assert schemas.validate(doc, "SSO", "Sign-On") == ["User.ID: required"]
    assert schemas.find("Patient Admin", "newpatient") is schemas.find("PatientAdmin", "NewPatient")


def test_the_download_may_sit_under_a_version_folder(tmp_path):
    shutil.copytree(DOWNLOAD, tmp_path / "schemas-2024-05")
    schemas = load_schemas(tmp_path)
    assert schemas.names() == ["schemas-2024-05/patientadmin/newpatient.json",
                               "schemas-2024-05/sso/sign-on.json"]


def test_two_files_for_one_event_type_are_a_config_error(tmp_path):
    shutil.copytree(DOWNLOAD, tmp_path / "v1")
    shutil.copytree(NAMED, tmp_path / "v2")
    with pytest.raises(ConfigError) as caught:
        load_schemas(tmp_path)
    assert caught.value.problems == [
        ("validation.schemas: v2/PatientAdmin/NewPatient.json: the same DataModel/EventType as "
        "v1/patientadmin/newpatient.json (keep one of them, or point validation.schemas at one "
        "version's folder)")]


# -- $ref ------------------------------------------------------------------------------------

def test_a_ref_to_a_shared_file_resolves_and_errors_inside_it_have_message_paths(named):
    doc = {"Meta": {"DataModel": "Scheduling", "EventType": "New"},
           "Patient": {"Identifiers": [{"ID": "1", "IDType": "MR"}, {"ID": 2}]},
           "Visit": {"VisitDateTime": "2024-01-01T10:00:00Z", "Duration": -1}}
    assert named.validate(doc, "Scheduling", "New") == [
        "Patient.Identifiers[1].ID: wrong type (expected string, got integer)",
        "Patient.Identifiers[1].IDType: required",
        "Visit.Duration: must be at least 0"]


def test_a_ref_by_a_declared_id_resolves_in_the_folder_and_nothing_is_fetched(tmp_path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("a schema reached for the network")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    shared = {"id": "https://schemas.example/common.json",
              "definitions": {"Code": {"type": "string", "maxLength": 4}}}
    event = {"type": "object",
             "properties": {"Code": {"$ref": "https://schemas.example/common.json#/definitions/Code"}}}
    schemas = load_schemas(write_schemas(tmp_path, {"common.json": shared, "Order/New.json": event}))
    assert schemas.validate({"Code": MARKER}, "Order", "New") == ["Code: too long (at most 4 characters)"]


def test_a_root_that_is_a_bare_ref(tmp_path):
    files = {"shared.json": {"definitions": {"E": {"type": "object", "required": ["Meta"]}}},
             "Media/New.json": {"$ref": "../shared.json#/definitions/E"}}
    schemas = load_schemas(write_schemas(tmp_path, files))
    assert schemas.validate({}, "Media", "New") == ["Meta: required"]
    assert schemas.validate({"Meta": {}}, "Media", "New") == []


def test_properties_named_like_keywords_are_properties(tmp_path):
    schema = {"type": "object", "required": ["id"],
              "properties": {"id": {"type": "string"}, "$ref": {"type": "string"}}}
    schemas = load_schemas(write_schemas(tmp_path, {"A/B.json": schema}))
    assert schemas.validate({"id": "x", "$ref": "y"}, "A", "B") == []
    assert schemas.validate({"$ref": 1}, "A", "B") == [
        '["$ref"]: wrong type (expected string, got integer)', "id: required"]


# -- broken folders and files: ConfigError naming the file ----------------------------------------

def config_error(root: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_schemas(root)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


@pytest.mark.parametrize("content, what", [
    ("{not json", "not JSON (line 1, column 2: Expecting property name enclosed in double quotes)"),
    ('{"type": "string", "type": "object"}', 'not JSON (the key "type" appears twice in one object)'),
    ('{"maximum": NaN}', "not JSON (NaN is not a JSON value)"),
    ("[]", "not a JSON object (a draft-04 schema is an object)"),
    ('{"$schema": "http://json-schema.org/draft-07/schema#"}',
     'declares $schema "http://json-schema.org/draft-07/schema#"; only draft-04 schemas are supported'),
    ('{"type": "strnig"}', "not a valid draft-04 schema: at /type: "),
    ('{"required": []}', "not a valid draft-04 schema: at /required: "),
    ('{"properties": {"DOB": {"pattern": "(["}}}', "not a valid draft-04 schema: at /properties/DOB/pattern: "),
    ('{"properties": {"A": {"$ref": "#/definitions/Nowhere"}}}',
     ('$ref "#/definitions/Nowhere" at /properties/A cannot be resolved (no such file in the folder, '
     "or no such place in it)")),
    ('{"items": {"$ref": "missing.json"}}', '$ref "missing.json" at /items cannot be resolved'),
    ('{"not": {"$ref": "https://schemas.example/remote.json"}}',
     '$ref "https://schemas.example/remote.json" at /not cannot be resolved'),
    ('{"$ref": 5}', "$ref at the root is not a string"),
    (b"\xff\xfe{}", "not UTF-8 text (invalid byte at offset 0)"),
])
def test_a_broken_schema_file_is_a_config_error_naming_it(tmp_path, content, what):
    shutil.copytree(NAMED, tmp_path, dirs_exist_ok=True)
    target = tmp_path / "PatientAdmin" / "Broken.json"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    assert config_error(tmp_path).startswith(f"validation.schemas: PatientAdmin/Broken.json: {what}")


def test_a_broken_shared_file_is_named_too(tmp_path):
    shutil.copytree(NAMED, tmp_path, dirs_exist_ok=True)
    (tmp_path / "definitions.json").write_text('{"definitions": {"Patient": {"type": 5}}}')
    assert config_error(tmp_path).startswith("validation.schemas: definitions.json: not a valid "
                                             "draft-04 schema: at /definitions/Patient/type: ")


def test_an_unreadable_file_is_a_config_error(tmp_path, monkeypatch):
    shutil.copytree(NAMED, tmp_path, dirs_exist_ok=True)
    real = Path.read_text

    def refuse(self, *args, **kwargs):
        if self.name == "New.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "read_text", refuse)
    assert config_error(tmp_path) == ("validation.schemas: Scheduling/New.json: cannot be read "
                                      "(Permission denied)")


def test_a_missing_or_wrong_folder_is_a_config_error(tmp_path):
    assert config_error(tmp_path / "nope") == f"validation.schemas: {tmp_path / 'nope'}: no such folder"
    (tmp_path / "file.json").write_text("{}")
    assert config_error(tmp_path / "file.json") == f"validation.schemas: {tmp_path / 'file.json'}: not a folder"
    empty = tmp_path / "empty"
    write_schemas(empty, {"patientadmin-newpatient.json": {}, ".hidden/A/B.json": {}})
    assert config_error(empty) == (
        f"validation.schemas: {empty}: holds no <DataModel>/<EventType>.json schema (for example "
        "PatientAdmin/NewPatient.json; see docs/validation.md)")


def test_an_unreadable_folder_is_a_config_error(tmp_path, monkeypatch):
    write_schemas(tmp_path, {"A/B.json": {}})

    def refuse(path):
        raise PermissionError(13, "Permission denied", os.fspath(path))
    monkeypatch.setattr(os, "scandir", refuse)
    assert config_error(tmp_path) == f"validation.schemas: {tmp_path}: cannot be read (Permission denied)"


# -- the two validators ----------------------------------------------------------------------

def test_where_the_fast_check_refuses_and_jsonschema_finds_nothing_the_message_is_valid():
    schemas = load_schemas(NAMED)
    doc = new_patient()
    doc["Patient"]["Demographics"]["DOB"] = "2008-01-06\n"   # `$` before a final newline
    assert schemas.validate(doc, "PatientAdmin", "NewPatient") == []
    assert schemas.disagreements == 1


def test_a_quick_check_that_crashes_leaves_the_answer_to_jsonschema():
    schemas = load_schemas(NAMED)
    event = schemas.find("PatientAdmin", "NewPatient")

    def crash(doc):
        raise RuntimeError("compiled code failed")
    object.__setattr__(event, "quick", crash)
    doc = new_patient()
    assert schemas.validate(doc, "PatientAdmin", "NewPatient") == []
    del doc["Patient"]["Demographics"]["LastName"]
    assert schemas.validate(doc, "PatientAdmin", "NewPatient") == ["Patient.Demographics.LastName: required"]


def test_when_jsonschema_cannot_list_the_problems_the_message_still_fails():
    schemas = load_schemas(NAMED)
    event = schemas.find("PatientAdmin", "NewPatient")

    class Broken:
        def iter_errors(self, doc):
            raise RecursionError("deep")
    object.__setattr__(event, "full", Broken())
    doc = new_patient()
    assert schemas.validate(doc, "PatientAdmin", "NewPatient") == []     # the quick check passes it
    doc["Patient"]["Demographics"]["DOB"] = MARKER
    assert schemas.validate(doc, "PatientAdmin", "NewPatient") == [
        "$: does not match the schema (its problems could not be listed: RecursionError)"]


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError):
        load_schemas(NAMED, max_problems=0)


# -- the gate: missing-schema policy ---------------------------------------------------------------

def test_gate_passes_a_valid_message(named):
    assert Gate(named).check(new_patient(), "PatientAdmin", "NewPatient") is True


def test_gate_fails_an_invalid_message_with_its_problems_and_no_values(named):
    doc = new_patient()
    doc["Patient"]["Demographics"]["DOB"] = MARKER
    del doc["Patient"]["Demographics"]["FirstName"]
    with pytest.raises(RejectedFile) as caught:
        Gate(named).check(doc, "PatientAdmin", "NewPatient")
    assert caught.value.kind == "invalid"
    assert caught.value.reason == (
        "does not match the schema PatientAdmin/NewPatient.json: Patient.Demographics.DOB: does not "
        r"match the pattern ^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$; "
        "Patient.Demographics.FirstName: required")
    assert MARKER not in caught.value.reason


def test_gate_sends_a_message_without_schema_by_default_and_warns_once_per_model(named, caplog):
    gate = Gate(named)
    assert gate.missing_schema is MissingSchema.SEND
    with caplog.at_level(logging.WARNING, logger="pipeline.validation"):
        for _ in range(3):
            assert gate.check({"Meta": {}}, "Results", "New") is False
        assert gate.check({"Meta": {}}, "results", "new") is False
        assert gate.check({"Meta": {}}, "Order", "New") is False
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        ("no schema for Results/New in validation.schemas: such messages are sent unchecked "
        "(validation.missing_schema is send; this is said once)"),
        ("no schema for Order/New in validation.schemas: such messages are sent unchecked "
        "(validation.missing_schema is send; this is said once)")]


def test_gate_fails_a_message_without_schema_when_told(named):
    with pytest.raises(RejectedFile) as caught:
        Gate(named, "fail").check(new_patient(), "Results", "New")
    assert caught.value.kind == NO_SCHEMA_KIND == "no_schema"
    assert caught.value.reason == ("no schema for Results/New in validation.schemas "
                                   "(validation.missing_schema is fail)")


def test_missing_schema_setting_takes_only_its_two_values():
    assert [m.value for m in MissingSchema] == ["send", "fail"]
    with pytest.raises(ValueError):
        MissingSchema("skip")
