#!/usr/bin/env python3
"""validation: CPU cost of validating Redox messages against JSON Schemas, per library and per
message.

    python scripts/bench/validation.py [--iterations N] [--quick] [--repo DIR ...]

Read-only: it generates a Redox-shaped draft-04 schema (a NewPatient-like event
with Meta, Patient {Identifiers, Demographics, Contacts, Insurances, Guarantor, PCP, ...} and
Visit {Location, providers, Insurances, ...}: a few hundred properties, nullable leaves as Redox
writes them, date patterns, enums) and typical messages, then prints figures. It asserts
nothing. The measuring runs in a child process with the measured checkout on PYTHONPATH
(``--child``), like every part.

Figures are CPU time (time.process_time) per call, averaged over N calls, so another process on
the machine does not inflate them as wall time would.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATE = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
NULLABLE = ["string", "null"]
MANY = 10           # schemas in the start-up figure (what a folder of several feeds costs)


# -- a Redox-shaped schema -------------------------------------------------------------------

def s(pattern: str | None = None, enum: list | None = None) -> dict:
    """A nullable string leaf, as Redox's schemas write most fields."""
    leaf: dict[str, Any] = {"type": NULLABLE}
    if pattern:
        leaf["pattern"] = pattern
    if enum:
        leaf["enum"] = enum + [None]
    return leaf


def obj(props: dict, required: list[str] | None = None) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def arr(items: dict) -> dict:
    return {"type": "array", "items": items}


def address() -> dict:
    return obj({k: s() for k in ("StreetAddress", "City", "State", "ZIP", "County", "Country")})


def phone() -> dict:
    return obj({k: s() for k in ("Home", "Office", "Mobile")})


def code() -> dict:
    return obj({"Code": s(), "Codeset": s(), "Name": s()})


def location() -> dict:
    return obj({"Type": s(), "Facility": s(), "FacilityIdentifiers": arr(obj({"ID": s(), "IDType": s()})),
                "Department": s(), "DepartmentIdentifiers": arr(obj({"ID": s(), "IDType": s()})),
                "Room": s(), "Bed": s(), "Address": address()})


def provider() -> dict:
    return obj({"ID": s(), "IDType": s(), "FirstName": s(), "LastName": s(),
                "Credentials": arr({"type": NULLABLE}), "Address": address(),
                "EmailAddresses": arr({"type": NULLABLE}), "PhoneNumber": obj({"Office": s()}),
                "Location": obj({"Type": s(), "Facility": s(), "Department": s(), "Room": s()})})


def person(extra: dict | None = None) -> dict:
    props = {"FirstName": s(), "MiddleName": s(), "LastName": s(), "DOB": s(DATE),
             "SSN": s(r"^\d{3}-?\d{2}-?\d{4}$"), "Sex": s(enum=["Female", "Male", "Unknown", "Other"]),
             "Address": address(), "PhoneNumber": phone(), "EmailAddresses": arr({"type": NULLABLE})}
    props.update(extra or {})
    return obj(props)


def insurance() -> dict:
    return obj({
        "Plan": obj({"ID": s(), "IDType": s(), "Name": s(), "Type": s()}),
        "MemberNumber": s(),
        "Company": obj({"ID": s(), "IDType": s(), "Name": s(), "Address": address(), "PhoneNumber": s()}),
        "GroupNumber": s(), "GroupName": s(), "EffectiveDate": s(DATE), "ExpirationDate": s(DATE),
        "PolicyNumber": s(), "Priority": s(), "AgreementType": s(), "CoverageType": s(),
        "Insured": person({"Identifiers": arr(obj({"ID": s(), "IDType": s()})), "Relationship": s()}),
    })


def guarantor() -> dict:
    return person({"Number": s(), "Type": s(), "RelationToPatient": s(),
                   "Spouse": obj({"FirstName": s(), "LastName": s()}),
                   "Employer": obj({"Name": s(), "Address": address(), "PhoneNumber": s()})})


def redox_schema() -> dict:
    """A PatientAdmin/NewPatient-like draft-04 schema of a few hundred properties."""
    meta = obj({
        "DataModel": {"type": "string", "enum": ["PatientAdmin"]},
        "EventType": {"type": "string", "enum": ["NewPatient"]},
        "EventDateTime": s(DATETIME), "Test": {"type": ["boolean", "null"]},
        "Source": obj({"ID": s(), "Name": s()}),
        "Destinations": arr(obj({"ID": s(), "Name": s()})),
        "Message": obj({"ID": {"type": ["number", "null"]}}),
        "Transmission": obj({"ID": {"type": ["number", "null"]}}),
        "FacilityCode": s(),
    }, required=["DataModel", "EventType"])
    demographics = person({
        "Race": s(), "IsHispanic": {"type": ["boolean", "null"]}, "Religion": s(),
        "MaritalStatus": s(enum=["Married", "Single", "Divorced", "Widowed", "Unknown"]),
        "IsDeceased": {"type": ["boolean", "null"]}, "DeathDateTime": s(DATETIME),
        "Language": s(), "Citizenship": arr({"type": NULLABLE}),
    })
    demographics["required"] = ["FirstName", "LastName"]
    patient = obj({
        "Identifiers": arr(obj({"ID": {"type": "string"}, "IDType": {"type": "string"}},
                               required=["ID", "IDType"])),
        "Demographics": demographics,
        "Notes": arr({"type": NULLABLE}),
        "Contacts": arr(person({"RelationToPatient": s(), "Roles": arr({"type": NULLABLE})})),
        "Diagnoses": arr(obj({"Code": s(), "Codeset": s(), "Name": s(), "Type": s(),
                              "DocumentedDateTime": s(DATETIME)})),
        "Allergies": arr(obj({"Code": s(), "Codeset": s(), "Name": s(), "Type": code(),
                              "OnsetDateTime": s(DATETIME), "Reaction": arr(code()),
                              "Severity": code(), "Status": s()})),
        "PCP": provider(),
        "Insurances": arr(insurance()),
        "Guarantor": guarantor(),
    }, required=["Identifiers"])
    visit = obj({
        "VisitNumber": s(), "AccountNumber": s(), "PatientClass": s(),
        "VisitDateTime": s(DATETIME), "Duration": {"type": ["number", "null"]}, "Reason": s(),
        "Instructions": arr({"type": NULLABLE}), "Balance": {"type": ["number", "null"]},
        "AttendingProvider": provider(), "ConsultingProvider": provider(),
        "ReferringProvider": provider(), "AdmittingProvider": provider(),
        "AdditionalStaff": arr(provider()), "Location": location(),
        "Guarantor": guarantor(), "Insurances": arr(insurance()),
    })
    return {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
            "properties": {"Meta": meta, "Patient": patient, "Visit": visit},
            "required": ["Meta", "Patient"]}


def count_properties(schema: Any) -> int:
    if isinstance(schema, dict):
        own = len(schema.get("properties", {})) if isinstance(schema.get("properties"), dict) else 0
        return own + sum(count_properties(v) for v in schema.values())
    if isinstance(schema, list):
        return sum(count_properties(v) for v in schema)
    return 0


# -- typical messages ------------------------------------------------------------------------

def addr() -> dict:
    return {"StreetAddress": "4762 Hickory Street", "City": "Monroe", "State": "WI", "ZIP": "53566",
            "County": "Green", "Country": "US"}


def prov() -> dict:
    return {"ID": "4356789876", "IDType": "NPI", "FirstName": "Pat", "LastName": "Granite",
            "Credentials": ["MD"], "Address": addr(), "EmailAddresses": [],
            "PhoneNumber": {"Office": "+16085551234"},
            "Location": {"Type": None, "Facility": None, "Department": None, "Room": None}}


def ins() -> dict:
    return {"Plan": {"ID": "31572", "IDType": "Payor ID", "Name": "HMO Deductible Plan", "Type": None},
            "MemberNumber": None,
            "Company": {"ID": "60054", "IDType": None, "Name": "aetna", "Address": addr(),
                        "PhoneNumber": "+18089541123"},
            "GroupNumber": "847025-024-0009", "GroupName": "Accelerator Labs",
            "EffectiveDate": "2015-01-01", "ExpirationDate": "2020-12-31",
            "PolicyNumber": "9140860055", "Priority": None, "AgreementType": None,
            "CoverageType": None,
            "Insured": {"Identifiers": [], "LastName": None, "FirstName": None, "SSN": None,
                        "Relationship": None, "DOB": None, "Sex": None, "Address": addr()}}


def typical_message() -> dict:
    """A NewPatient message of about 6 KB with every section filled, like Redox's samples."""
    guar = {"Number": "10001910", "FirstName": "Kent", "LastName": "Bixby", "DOB": None,
            "Sex": None, "Spouse": {"FirstName": "Barbara", "LastName": "Bixby"},
            "Address": addr(), "PhoneNumber": {"Home": None, "Office": None, "Mobile": None},
            "EmailAddresses": [], "Type": None, "RelationToPatient": "Father",
            "Employer": {"Name": "Accelerator Labs", "Address": addr(), "PhoneNumber": "+18083451121"}}
    return {
        "Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient",
                 "EventDateTime": "2021-05-27T19:48:15.553Z", "Test": True,
                 "Source": {"ID": "7ce6f387-c33c-417d-8682-81e83628cbd9", "Name": "Redox Dev Tools"},
                 "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}],
                 "Message": {"ID": 5565}, "Transmission": {"ID": 12414}, "FacilityCode": None},
        "Patient": {
            "Identifiers": [{"ID": "0000000001", "IDType": "MR"},
                            {"ID": "e167267c-16c9-4fe3-96ae-9cff5703e90a", "IDType": "EHRID"},
                            {"ID": "a1d4ee8aba494ca", "IDType": "NIST"}],
            "Demographics": {"FirstName": "Timothy", "MiddleName": "Paul", "LastName": "Bixby",
                             "DOB": "2008-01-06", "SSN": "101-01-0001", "Sex": "Male",
                             "Race": "White", "IsHispanic": None, "MaritalStatus": "Married",
                             "IsDeceased": None, "DeathDateTime": None,
                             "PhoneNumber": {"Home": "+18088675301", "Office": None, "Mobile": None},
                             "EmailAddresses": [], "Language": "en", "Citizenship": [],
                             "Address": addr()},
            "Notes": [],
            "Contacts": [{"FirstName": "Barbara", "LastName": "Bixby", "Address": addr(),
                          "PhoneNumber": {"Home": "+18088675303", "Office": None, "Mobile": None},
                          "RelationToPatient": "Mother", "EmailAddresses": ["barb@test.net"],
                          "Roles": ["Emergency Contact"]}],
            "Diagnoses": [{"Code": "R07.0", "Codeset": "ICD-10", "Name": "Pain in throat",
                           "Type": None, "DocumentedDateTime": None}],
            "Allergies": [{"Code": "7982", "Codeset": "RxNorm", "Name": "Penicillin",
                           "Type": {"Code": None, "Codeset": None, "Name": None},
                           "OnsetDateTime": None,
                           "Reaction": [{"Code": "28926001", "Codeset": "SNOMED CT", "Name": "Rash"}],
                           "Severity": {"Code": None, "Codeset": None, "Name": None}, "Status": None}],
            "PCP": prov(), "Insurances": [ins()], "Guarantor": guar,
        },
        "Visit": {"VisitNumber": "1234", "AccountNumber": None, "PatientClass": "Inpatient",
                  "VisitDateTime": "2021-05-26T19:48:16.182Z", "Duration": None,
                  "Reason": "Acute post traumatic headache", "Instructions": [], "Balance": None,
                  "AttendingProvider": prov(), "ConsultingProvider": prov(),
                  "ReferringProvider": prov(), "AdmittingProvider": prov(), "AdditionalStaff": [],
                  "Location": {"Type": "Inpatient", "Facility": "RES General Hospital",
                               "Department": "3N", "Room": "136", "Bed": "B", "Address": addr()},
                  "Guarantor": guar, "Insurances": [ins(), ins()]},
    }


def invalid_message(base: dict) -> dict:
    """The typical message with the mistakes upstream systems make: three problems."""
    doc = copy.deepcopy(base)
    doc["Patient"]["Demographics"]["DOB"] = "1990-13-45"
    del doc["Patient"]["Demographics"]["LastName"]
    doc["Patient"]["Demographics"]["Sex"] = "M"
    return doc


def many_errors_message(base: dict) -> dict:
    """A badly broken message: every identifier and date wrong, 60 identifiers (60+ problems)."""
    doc = invalid_message(base)
    doc["Patient"]["Identifiers"] = [{"ID": n, "IDType": None} for n in range(60)]
    return doc


# -- measuring -------------------------------------------------------------------------------

def cpu_per_call(fn: Callable[[], object], iterations: int) -> float:
    """Mean CPU seconds per call of ``fn`` over ``iterations`` calls (after a warm-up)."""
    for _ in range(min(50, iterations)):
        fn()
    start = time.process_time()
    for _ in range(iterations):
        fn()
    return (time.process_time() - start) / iterations


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} µs"


def run(checkouts: list, args: argparse.Namespace) -> None:
    """The part, as main.py runs it: the measuring child once per checkout."""
    import subprocess

    import common
    n = args.iterations or (500 if args.quick else 2000)
    for ck in checkouts:
        print(f"== validation: {ck.label}, {n} iterations per figure", flush=True)
        subprocess.run([sys.executable, __file__, "--child", "--iterations", str(n)],
                       env=common.child_env(ck), check=True)


def measure(n: int) -> None:

    schema = redox_schema()
    valid = typical_message()
    invalid = invalid_message(valid)
    broken = many_errors_message(valid)
    print(f"schema: {count_properties(schema)} properties, "
          f"{len(json.dumps(schema)) // 1024} KB; typical message: {len(json.dumps(valid))} bytes; "
          f"{n} iterations per figure\n")

    rows: list[tuple[str, str, float]] = []

    import jsonschema
    t = time.process_time()
    jsonschema.Draft4Validator.check_schema(schema)
    v4 = jsonschema.Draft4Validator(schema)
    rows.append(("jsonschema " + jsonschema_version(), "check + build validator", time.process_time() - t))
    rows.append(("", "is_valid, valid message", cpu_per_call(lambda: v4.is_valid(valid), n)))
    rows.append(("", "is_valid, invalid (3 problems)", cpu_per_call(lambda: v4.is_valid(invalid), n)))
    rows.append(("", "iter_errors, valid message", cpu_per_call(lambda: list(v4.iter_errors(valid)), n)))
    rows.append(("", "iter_errors, invalid (3 problems)", cpu_per_call(lambda: list(v4.iter_errors(invalid)), n)))
    rows.append(("", "iter_errors, broken (60+ problems)", cpu_per_call(lambda: list(v4.iter_errors(broken)), n // 4)))

    try:
        import fastjsonschema
    except ImportError:
        print("fastjsonschema is not installed: its rows are left out\n")
    else:
        t = time.process_time()
        fastjsonschema.compile(schema, use_default=False, use_formats=False)
        rows.append((f"fastjsonschema {fastjsonschema.VERSION}", "compile (detailed exceptions)",
                     time.process_time() - t))
        t = time.process_time()
        fast = fastjsonschema.compile(schema, use_default=False, use_formats=False,
                                      detailed_exceptions=False)
        rows.append(("", "compile (yes/no, as the pipeline does)", time.process_time() - t))

        def fast_ok(doc: dict) -> bool:
            try:
                fast(doc)
            except fastjsonschema.JsonSchemaException:
                return False
            return True
        rows.append(("", "valid message", cpu_per_call(lambda: fast_ok(valid), n)))
        rows.append(("", "invalid (stops at the first problem)", cpu_per_call(lambda: fast_ok(invalid), n)))
        every = fastjsonschema.compile(schema, use_default=False, use_formats=False, fast_fail=False)

        def fast_all(doc: dict) -> None:
            try:
                every(doc)
            except fastjsonschema.JsonSchemaException:
                pass
        rows.append(("  fast_fail=False", "invalid (3 problems, all listed)",
                     cpu_per_call(lambda: fast_all(invalid), n)))

    ours = pipeline_rows(schema, valid, invalid, broken, n)
    rows.extend(ours)

    width = max(len(r[1]) for r in rows)
    for lib, what, secs in rows:
        print(f"{lib:<28} {what:<{width}} {fmt(secs)}")


def jsonschema_version() -> str:
    from importlib.metadata import version
    return version("jsonschema")


def pipeline_rows(schema: dict, valid: dict, invalid: dict, broken: dict,
                  n: int) -> list[tuple[str, str, float]]:
    """The figures for pipeline.validation itself (load from a folder, validate, render)."""
    try:
        from pipeline.validation import load_schemas
    except ImportError:
        return []
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "PatientAdmin" / "NewPatient.json"
        target.parent.mkdir()
        target.write_text(json.dumps(schema))
        t = time.process_time()
        schemas = load_schemas(Path(folder))
        loaded = time.process_time() - t
        for n_event in range(MANY - 1):     # as many event types of the same size
            (target.parent / f"Event{n_event}.json").write_text(json.dumps(schema))
        t = time.process_time()
        load_schemas(Path(folder))
        loaded_many = (time.process_time() - t) / MANY
    def check(doc: dict, data_model: str = "PatientAdmin", event_type: str = "NewPatient") -> object:
        return schemas.validate(doc, data_model, event_type)
    rows = [
        ("pipeline.validation", "load_schemas, first (1 file: read, check, compile)", loaded),
        ("", f"load_schemas, per file of {MANY}", loaded_many),
        ("", "validate, valid message", cpu_per_call(lambda: check(valid), n)),
        ("", "validate, invalid (3 problems)", cpu_per_call(lambda: check(invalid), n)),
        ("", "validate, broken (capped list)", cpu_per_call(lambda: check(broken), n // 4)),
        ("", "validate, no schema for the model", cpu_per_call(lambda: check(valid, "Results", "New"), n)),
    ]
    return rows + stage_rows(schemas, valid, invalid, n)


def stage_rows(schemas: Any, valid: dict, invalid: dict, n: int) -> list[tuple[str, str, float]]:
    """The whole decision run makes before sending a file that is read whole (flow/check.py's
    Judge.message: decode, strict parse, Meta, schema, destinations, body, size route), from
    the file's bytes, with and without a schema: the difference is what validation adds per
    file in the run path."""
    try:
        from pipeline.flow.check import Judge
        from pipeline.validation import Gate
    except ImportError:
        return []
    destinations = [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}]
    raw, bad = json.dumps(valid, indent=2).encode(), json.dumps(invalid, indent=2).encode()
    with_schema = Judge(10 << 20, True, Gate(schemas))
    without = Judge(10 << 20, True, None)

    def judged(judge: Any, data: bytes) -> None:
        try:
            judge.message(data, destinations)
        except Exception:       # noqa: BLE001 - the invalid message is refused: that is the figure
            pass
    plain = cpu_per_call(lambda: judged(without, raw), n)
    checked = cpu_per_call(lambda: judged(with_schema, raw), n)
    return [
        (f"check stage ({len(raw)} B file)", "Judge.message, no validation", plain),
        ("", "Judge.message, valid message, schema checked", checked),
        ("", "  of which validation (the difference)", checked - plain),
        ("", "Judge.message, invalid (3 problems), refused", cpu_per_call(lambda: judged(with_schema, bad), n)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    import common
    common.add_arguments(parser)
    args = parser.parse_args()
    if args.child:
        measure(args.iterations)
        return
    common.this_checkout()
    run(common.checkouts(args), args)


if __name__ == "__main__":
    main()
