"""Routes end to end: the real command against the sandbox, with local folders and S3 (moto).

Each SEND's Meta.Destinations comes from the first route that matches the file (DataModel,
EventType, path below the inbox or prefix), else from `destinations`; a file nothing matches,
with no default, fails as `unrouted` and is never sent (not even its documents uploaded)."""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest
from pipeline_env import DESTINATION, PipelineEnv, message

LAB = {"ID": "6c0e2d55-8d1e-4b51-9d0e-2b8a3e1f7d42", "Name": "Lab Vendor"}
BILLING = {"ID": "0f8fad5b-d9cb-469f-a165-70867728950e", "Name": "Billing"}
EMR_ID, LAB_ID, BILLING_ID = DESTINATION["ID"], LAB["ID"], BILLING["ID"]

ROUTES = [
    {"name": "lab results", "match": {"data_model": "Results", "path": ["lab/**", "*-lab.json"]},
     "destinations": [LAB]},
    {"name": "new results", "match": {"data_model": ["Results", "Orders"], "event_type": "New"},
     "destinations": [LAB, DESTINATION]},
    {"name": "billing", "match": {"path": "billing/*.json"}, "destinations": [BILLING]},
]


def sent_to(sandbox) -> dict:
    """marker → the destination IDs of its accepted SEND (each marker sent once)."""
    sends = [s for s in sandbox.records()["sends"] if s["status"] == 200]
    assert Counter(s["marker"] for s in sends).most_common(1)[0][1] == 1
    return {s["marker"]: s["destinations"] for s in sends}


@pytest.fixture
def env(tmp_path, sandbox):
    return PipelineEnv(tmp_path, sandbox.url, routes=ROUTES, source={"recursive": True})


def drop_all(drop):
    drop("lab/a/r1.json", message("r1", "Results", "New"))             # route 1 (path), not 2
    drop("r2-lab.json", message("r2", "Results", "Update"))            # route 1 (second glob)
    drop("r3.json", message("r3", "Results", "New"))                   # route 2
    drop("o1.json", message("o1", "Orders", "New"))                    # route 2 (list)
    drop("billing/b1.json", message("b1", "Financial", "Transaction"))  # route 3 (path only)
    drop("billing/deep/b2.json", message("b2", "Financial", "Transaction"))  # * is one level
    drop("p1.json", message("p1"))                                     # default


EXPECTED = {"r1": [LAB_ID], "r2": [LAB_ID], "r3": [LAB_ID, EMR_ID], "o1": [LAB_ID, EMR_ID],
            "b1": [BILLING_ID], "b2": [EMR_ID], "p1": [EMR_ID]}
ROUTE_OF = {"r1": "lab results", "r2": "lab results", "r3": "new results", "o1": "new results",
            "b1": "billing", "b2": "default", "p1": "default"}


def local_drop(env):
    def drop(name, data):
        (env.inbox / name).parent.mkdir(parents=True, exist_ok=True)
        env.drop(name, data)
    return drop


def test_local_files_go_where_the_first_matching_route_says(env, sandbox):
    drop_all(local_drop(env))
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert sent_to(sandbox) == EXPECTED
    for name in env.files("done"):
        car = env.sidecar("done", name)
        marker = name.rsplit("/", 1)[-1].split(".")[0].replace("-lab", "")
        assert car["route"] == ROUTE_OF[marker], name
        assert [d["ID"] for d in car["destinations"]] == EXPECTED[marker]
        assert car["name"] == name
    report = json.loads(env.run("report", "--json").stdout)
    assert {r["route"]: r["done"] for r in report["routes"]} == dict(Counter(ROUTE_OF.values()))
    status = json.loads(env.run("status", "--json", "--no-auth-check").stdout)
    assert {r["route"]: r["done"] for r in status["routes"]} == dict(Counter(ROUTE_OF.values()))


def test_s3_keys_go_where_the_first_matching_route_says(tmp_path, sandbox, moto_server, bucket):
    from test_e2e_s3 import s3_env
    drop_all(lambda name, data: bucket.put(f"incoming/{name}", data))
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    env.config_data["routes"] = ROUTES
    env.write_config()
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    assert sent_to(sandbox) == EXPECTED
    assert bucket.sidecar("done/lab/a/r1.json")["route"] == "lab results"
    assert [d["Name"] for d in bucket.sidecar("done/billing/b1.json")["destinations"]] == ["Billing"]


def test_an_unrouted_file_fails_without_being_sent_and_retry_failed_takes_it_back(env, sandbox):
    env.config_data["destinations"] = []
    env.write_config()
    env.drop("r3.json", message("r3", "Results", "New"))
    env.drop("adt.json", message("adt"))                 # PatientAdmin: no route, no default
    result = env.run("run", "--once")
    assert result.returncode == 1
    assert env.files("failed") == ["adt.json"] and env.files("done") == ["r3.json"]
    car = env.sidecar("failed", "adt.json")
    assert car["reason_kind"] == "unrouted" and car["attempts"] == 0 and car["http_status"] is None
    assert car["destinations"] == [] and car["route"] is None
    assert "no route matches" in car["errors"][0] and "PatientAdmin" in car["errors"][0]
    assert sent_to(sandbox) == {"r3": [LAB_ID, EMR_ID]}
    # not the file's own fault: once a route exists, retry-failed puts it back and it is sent
    env.config_data["routes"] = ROUTES + [{"match": {"data_model": "PatientAdmin"},
                                           "destinations": [DESTINATION]}]
    env.write_config()
    retry = env.run("retry-failed")
    assert retry.returncode == 0 and "1 requeued" in retry.stdout, retry.stdout
    assert env.run("run", "--once").returncode == 0
    assert env.sidecar("done", "adt.json")["route"] == "route 4"
    assert sent_to(sandbox)["adt"] == [EMR_ID]


def test_a_large_file_is_routed_before_its_documents_are_uploaded(tmp_path, sandbox):
    sandbox.faults(send_limit_bytes=4096 + 512, upload_limit_bytes=64 * 1024)
    env = PipelineEnv(tmp_path, sandbox.url, redox={"send_limit_bytes": 4096}, destinations=[],
                      routes=[{"match": {"data_model": "Media"}, "destinations": [LAB]}])

    def media(marker, data_model):
        return json.dumps({"Meta": {"DataModel": data_model, "EventType": "New"}, "_test_marker": marker,
                           "Media": {"FileType": "PDF", "FileName": "scan.pdf",
                                     "FileContents": base64.b64encode(b"%PDF" * 3000).decode()}}).encode()
    env.drop("scan.json", media("scan", "Media"))
    env.drop("other.json", media("other", "Notes"))
    assert env.run("run", "--once").returncode == 1
    assert sent_to(sandbox) == {"scan": [LAB_ID]}
    assert len(sandbox.records()["uploads"]) == 1           # the unrouted file uploaded nothing
    assert env.sidecar("done", "scan.json")["destinations"] == [LAB]
    assert env.sidecar("failed", "other.json")["reason_kind"] == "unrouted"


def test_s3_an_unrouted_key_fails_without_being_sent(tmp_path, sandbox, moto_server, bucket):
    from test_e2e_s3 import s3_env
    bucket.put("incoming/lab/r1.json", message("r1", "Results", "New"))
    bucket.put("incoming/adt/a1.json", message("a1"))
    env = s3_env(tmp_path, sandbox, moto_server, bucket)
    env.config_data.update(routes=ROUTES, destinations=[])
    env.write_config()
    assert env.run("run", "--once").returncode == 1
    assert bucket.keys("failed/") == ["adt/a1.json"] and bucket.keys("done/") == ["lab/r1.json"]
    car = bucket.sidecar("failed/adt/a1.json")
    assert (car["reason_kind"], car["attempts"], car["destinations"]) == ("unrouted", 0, [])
    assert sent_to(sandbox) == {"r1": [LAB_ID]}
