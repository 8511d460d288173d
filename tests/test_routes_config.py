"""Routes and ordering in config.yaml: path globs, first match wins, what `validate` reports
(errors with their key paths, warnings for routes that can never be used)."""

from __future__ import annotations

import logging

import pytest

from pipeline import config
from pipeline.config.routing import compile_glob, glob_problem
from pipeline.errors import ConfigError
from pipeline.flow.routes import Router

BASE = """
source: {inbox: drop/inbox}
redox:
  auth: {method: oauth, client_id: c, key_id: k, private_key_file: key.pem}
"""
EMR = "{ID: af394f14-b34a-464f-8d24-895f370af4c9, Name: Redox EMR}"
LAB = "{ID: 6c0e2d55-8d1e-4b51-9d0e-2b8a3e1f7d42, Name: Lab Vendor}"


def load_text(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(BASE + text)
    return config.load(path, environ={})


@pytest.mark.parametrize("pattern, path, matches", [
    ("lab/*", "lab/a.json", True),
    ("lab/*", "lab/x/a.json", False),          # * stays within one folder level
    ("*.json", "a.json", True),
    ("*.json", "x/a.json", False),
    ("**/*.json", "a.json", True),             # ** is any number of levels, none included
    ("**/*.json", "a/b/c.json", True),
    ("lab/**", "lab/a/b.json", True),
    ("lab/**", "labs/a.json", False),
    ("a/**/b.json", "a/b.json", True),
    ("a/**/b.json", "a/x/y/b.json", True),
    ("x/[0-9]?.json", "x/12.json", True),
    ("[!a]*.json", "a.json", False),
    ("[!a]*.json", "b.json", True),
    ("a?c", "a/c", False),                     # no wildcard matches /
    ("**", "any/thing.json", True),
])
def test_path_globs(pattern, path, matches):
    assert compile_glob(pattern)(path) is matches


@pytest.mark.parametrize("pattern", ["", "/lab/*", "lab/", "a//b", "lab**", "a/b**/c", "[abc", "[z-a]"])
def test_malformed_globs_are_named(pattern):
    assert glob_problem(pattern)


def test_the_first_route_whose_every_key_holds_wins_else_the_default(tmp_path):
    settings = load_text(tmp_path, f"""
destinations: [{EMR}]
routes:
  - name: lab results
    match: {{data_model: Results, path: "lab/**"}}
    destinations: [{LAB}]
  - match: {{data_model: [Results, Orders], event_type: New}}
    destinations: [{LAB}, {EMR}]
""")
    router = Router.from_settings(settings)
    assert router.pick("Results", "New", "lab/a/b.json").name == "lab results"
    both = router.pick("Results", "New", "other/b.json")
    assert both.name == "route 2" and [d["Name"] for d in both.destinations] == ["Lab Vendor", "Redox EMR"]
    assert router.pick("Orders", "Update", "x.json").name == "default"
    assert router.pick("PatientAdmin", "NewPatient", "x.json").destinations[0]["Name"] == "Redox EMR"


def test_no_default_destinations_is_allowed_with_routes_and_unmatched_files_are_unrouted(tmp_path):
    settings = load_text(tmp_path, f"""
routes:
  - match: {{event_type: New}}
    destinations: [{LAB}]
""")
    router = Router.from_settings(settings)
    assert router.pick("Results", "New", "a.json").name == "route 1"
    assert router.pick("Results", "Update", "a.json") is None


def test_neither_destinations_nor_routes_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "")
    assert any(p.startswith("destinations: missing") for p in caught.value.problems)


def test_every_route_problem_is_reported_with_its_key_path(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f"""
destinations: [{EMR}]
routes:
  - match: {{path: ["lab/*", "bad["]}}
    destinations: []
  - name: default
    match: {{data_model: []}}
    destinations: [{LAB}]
  - name: same
    match: {{path: "/abs"}}
    destinations: [{LAB}]
  - name: same
    match: {{event_type: New}}
    destinations: [{LAB}]
""")
    problems = caught.value.problems
    assert "routes.0.destinations: empty (a route must name at least one destination)" in problems
    assert "routes.0.match.path.1: a [ is never closed" in problems
    assert "routes.1.match.data_model: an empty list matches no file" in problems
    assert any(p.startswith("routes.1.name: 'default' is reserved") for p in problems)
    assert "routes.2.match.path: a path below the inbox never starts with /" in problems
    assert "routes.3.name: the same name as routes.2" in problems


def test_a_route_an_earlier_one_shadows_is_a_warning_not_an_error(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="pipeline.config")
    settings = load_text(tmp_path, f"""
destinations: [{EMR}]
routes:
  - match: {{data_model: [Results, Orders], path: "lab/**"}}
    destinations: [{LAB}]
  - match: {{data_model: Results, path: lab/x/a.json}}
    destinations: [{EMR}]
  - match: {{data_model: Results}}
    destinations: [{EMR}]
  - match: {{data_model: Results, event_type: New}}
    destinations: [{EMR}]
""")
    assert len(settings.routes) == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert any(w.startswith("routes.1: never used: routes.0") for w in warnings)
    assert not any(w.startswith("routes.2") for w in warnings)      # route 1 needs lab/**
    assert any(w.startswith("routes.3: never used: routes.2") for w in warnings)


def test_validate_prints_the_warning_and_exits_0(tmp_path):
    from pipeline_env import PipelineEnv
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9", routes=[
        {"match": {"data_model": "Results"}, "destinations": [{"ID": "6c0e2d55-8d1e-4b51-9d0e-2b8a3e1f7d42",
                                                               "Name": "Lab"}]},
        {"match": {"data_model": "Results", "event_type": "New"},
         "destinations": [{"ID": "6c0e2d55-8d1e-4b51-9d0e-2b8a3e1f7d42", "Name": "Lab"}]}])
    result = env.run("validate")
    assert result.returncode == 0, result.stderr
    assert "routes.1: never used" in result.stderr and "config OK" in result.stdout


def test_ordering_settings(tmp_path):
    settings = load_text(tmp_path, f"destinations: [{EMR}]\nordering: {{by: patient, on_failure: hold}}\n")
    assert (settings.ordering.by, settings.ordering.on_failure) == ("patient", "hold")
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f"destinations: [{EMR}]\nordering: {{by: mrn}}\n")
    assert any(p.startswith("ordering.by:") for p in caught.value.problems)
