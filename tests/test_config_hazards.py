"""Configs that load but would go wrong later: a key given twice, http:// to a Redox that is not
on this machine, output folders inside the inbox (or each other), an inbox on another
filesystem than processing/; and ``validate`` reporting every problem at once, with a
suggestion for a misspelt key."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from pipeline_env import PipelineEnv

from pipeline import config
from pipeline.errors import ConfigError

UUID = "af394f14-b34a-464f-8d24-895f370af4c9"
GOOD = f"""
source: {{inbox: drop/inbox}}
redox:
  base_url: https://api.redoxengine.com
  auth: {{method: oauth, client_id: c, key_id: k, private_key_file: key.pem}}
destinations: [{{ID: {UUID}, Name: Redox EMR}}]
"""


def problems_of(tmp_path, text: str, **kw) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={}, **kw)
    return caught.value.problems


def loads(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return config.load(path, environ={})


# -- a key given twice --------------------------------------------------------------------------


def test_a_key_given_twice_is_an_error_naming_its_path(tmp_path):
    text = GOOD + f"""
redox:
  timeout_seconds: 5
routes:
  - match: {{data_model: Results, data_model: Media}}
    destinations: [{{ID: {UUID}, Name: a}}]
workers: 2
workers: 3
"""
    problems = problems_of(tmp_path, text)
    assert "redox: given twice (lines 3 and 8); YAML would silently keep the last one" in problems
    assert "routes.0.match.data_model: given twice (lines 11 and 11); YAML would silently keep " \
           "the last one" in problems
    assert any(p.startswith("workers: given twice (lines 13 and 14)") for p in problems)


def test_equal_keys_in_different_mappings_are_fine(tmp_path):
    text = GOOD + f"""
routes:
  - {{name: a, match: {{data_model: Results}}, destinations: [{{ID: {UUID}, Name: a}}]}}
  - {{name: b, match: {{data_model: Media}}, destinations: [{{ID: {UUID}, Name: a}}]}}
"""
    assert [r.name for r in loads(tmp_path, text).routes] == ["a", "b"]


# -- clear text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [
    ("redox.base_url", "http://redox.example.com"),
    ("redox.upload_url", "http://blob.example.com/upload"),
    ("redox.auth.token_url", "http://auth.example.com/token"),
    ("delivery_check.platform_url", "http://10.0.0.7/platform"),
    ("delivery_check.auth.token_url", "http://auth.example.com/token"),
])
def test_http_to_a_remote_redox_is_refused(tmp_path, key, value):
    data = yaml.safe_load(GOOD)
    if key.startswith("delivery_check.auth"):
        data["delivery_check"] = {"auth": {"method": "oauth", "client_id": "c", "key_id": "k",
                                           "private_key_file": "key.pem", "token_url": value}}
    else:
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    problems = problems_of(tmp_path, yaml.safe_dump(data))
    assert [p for p in problems if p.startswith(f"{key}: http:// to ")] == [
        f"{key}: http:// to {value.split('/')[2]} would send tokens and patient data in clear text; "
        "use https:// (http:// is allowed only to this machine, or with redox.allow_insecure_http: "
        "true)"]


@pytest.mark.parametrize("host", ["127.0.0.1:8787", "127.0.0.2", "localhost:80", "[::1]:8787",
                                  "sandbox.localhost"])
def test_http_to_this_machine_is_fine(tmp_path, host):
    settings = loads(tmp_path, GOOD.replace("https://api.redoxengine.com", f"http://{host}"))
    assert settings.redox.base_url == f"http://{host}"


def test_the_opt_in_lets_it_through_with_a_warning_at_every_start(tmp_path, caplog):
    text = GOOD.replace("base_url: https://api.redoxengine.com",
                        "base_url: http://redox.internal\n  allow_insecure_http: true")
    for _ in range(2):
        caplog.clear()
        with caplog.at_level("WARNING"):
            loads(tmp_path, text)
        assert [r.getMessage() for r in caplog.records] == [
            "INSECURE HTTP: redox.base_url sends tokens and patient data to redox.internal in clear "
            "text (redox.allow_insecure_http is true)"]


def test_validate_refuses_it_with_exit_2_naming_the_key(tmp_path):
    env = PipelineEnv(tmp_path, "http://redox.example.com")
    result = env.run("validate")
    assert result.returncode == 2
    assert "config error: redox.base_url: http:// to redox.example.com" in result.stderr
    assert "config error: redox.upload_url: http:// to redox.example.com" in result.stderr


# -- folders inside each other --------------------------------------------------------------------


def folder_problems(tmp_path, recursive: bool = False, **folders) -> list[str]:
    data = yaml.safe_load(GOOD)
    data["source"]["recursive"] = recursive
    data["folders"] = {"processing": "drop/processing", "done": "drop/done", "failed": "drop/failed",
                       **folders}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        config.load(path, environ={})
    except ConfigError as exc:
        return [p for p in exc.problems if p.startswith(("folders.", "source.inbox"))]
    return []


@pytest.mark.parametrize("recursive", [False, True])
def test_an_output_folder_in_or_equal_to_the_inbox_is_refused(tmp_path, recursive):
    inbox = tmp_path / "drop" / "inbox"
    [problem] = folder_problems(tmp_path, recursive, done="drop/inbox/done")
    assert problem.startswith(f"folders.done: {inbox}/done is inside source.inbox ({inbox}); ")
    assert ("again and again" in problem) is recursive
    [problem] = folder_problems(tmp_path, recursive, failed="drop/inbox")
    assert problem.startswith(f"folders.failed: the same folder as source.inbox ({inbox})")
    [problem] = folder_problems(tmp_path, recursive, processing="drop/x/../inbox/.claims")
    assert problem.startswith("folders.processing: ")


def test_symlinks_are_resolved(tmp_path):
    (tmp_path / "drop" / "inbox").mkdir(parents=True)
    os.symlink(tmp_path / "drop" / "inbox", tmp_path / "linked")
    [problem] = folder_problems(tmp_path, done="linked/done")
    assert problem.startswith(f"folders.done: {tmp_path}/drop/inbox/done is inside source.inbox")


def test_the_inbox_inside_an_output_folder_and_nested_outputs_are_refused(tmp_path):
    data = yaml.safe_load(GOOD)
    data["source"]["inbox"] = "drop/done/inbox"
    data["folders"] = {"done": "drop/done", "failed": "drop/done/failed"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path / "config.yaml", environ={})
    found = [p.split(":")[0] for p in caught.value.problems]
    assert found == ["source.inbox", "folders.failed"]


def test_sibling_folders_are_fine(tmp_path):
    assert folder_problems(tmp_path, True) == []
    assert folder_problems(tmp_path, done="drop/inbox-done") == []       # a prefix, not a parent


# -- the inbox and processing/ on different filesystems -------------------------------------------


def other_filesystem(tmp_path):
    """A folder on another filesystem than ``tmp_path`` (a tmpfs like /dev/shm), or None."""
    for candidate in ("/dev/shm", "/run/user", "/run"):
        try:
            if os.stat(candidate).st_dev != os.stat(tmp_path).st_dev and os.access(candidate, os.W_OK):
                return candidate
        except OSError:
            continue
    return None


def test_an_inbox_on_another_filesystem_than_processing_is_refused(tmp_path):
    other = other_filesystem(tmp_path)
    if other is None:
        pytest.skip("no second writable filesystem here")
    import tempfile
    with tempfile.TemporaryDirectory(dir=other) as elsewhere:
        env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
        env.config_data["folders"]["processing"] = os.path.join(elsewhere, "processing")
        env.write_config()
        expected = (f"config error: folders.processing: {elsewhere}/processing is on another "
                    f"filesystem than source.inbox ({env.inbox})")
        result = env.run("validate")
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        env.drop("a.json", b"{}")
        result = env.run("run", "--once")
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert not os.path.exists(os.path.join(elsewhere, "processing"))     # nothing created
        assert env.files("inbox") == ["a.json"]


# -- validate: everything at once, suggestions ---------------------------------------------------


def test_unknown_keys_get_the_closest_known_key(tmp_path):
    text = GOOD.replace("client_id: c", "clinet_id: c, client_id: c") + """
retyr: {max_attempts: 3}
source2: {}
ordering: {by: path, on_failur: hold}
"""
    problems = problems_of(tmp_path, text)
    assert "redox.auth.clinet_id: unknown key (did you mean client_id?)" in problems
    assert "retyr: unknown key (did you mean retry?)" in problems
    assert "ordering.on_failur: unknown key (did you mean on_failure?)" in problems
    assert "source2: unknown key (did you mean source?)" in problems


def test_a_refused_key_does_not_hide_the_checks_that_span_keys(tmp_path):
    text = GOOD.replace(f"destinations: [{{ID: {UUID}, Name: Redox EMR}}]", "") + "bogus: 1\n"
    problems = problems_of(tmp_path, text)
    assert "bogus: unknown key" in problems
    assert any(p.startswith("destinations: missing") for p in problems)


def test_validate_reports_a_missing_key_file_alongside_other_problems(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9", workers=0, retyr={"max_attempts": 1})
    env.config_data["redox"]["auth"]["private_key_file"] = str(tmp_path / "missing.pem")
    env.write_config()
    result = env.run("validate")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(line.startswith("config error: workers: ") for line in lines)
    assert "config error: retyr: unknown key (did you mean retry?)" in lines
    assert f"config error: redox.auth.private_key_file: cannot read {tmp_path}/missing.pem " \
           "(No such file or directory)" in lines


def test_a_bad_destination_is_reported_once(tmp_path):
    problems = problems_of(tmp_path, GOOD.replace(UUID, "not-a-uuid"))
    assert problems == ["destinations.0.ID: must be a UUID (like af394f14-b34a-464f-8d24-895f370af4c9)"]


def test_validate_names_a_key_file_that_is_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    env.config_data["redox"]["auth"]["private_key_file"] = str(fifo)
    env.write_config()
    result = env.run("validate", timeout=30)        # a hang guard only
    assert result.returncode == 2 and "redox.auth.private_key_file: cannot read" in result.stderr


def test_a_config_key_with_control_characters_is_printed_escaped(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9")
    env.config_data["bad\x1b[31mkey"] = 1
    env.write_config()
    result = env.run("validate")
    assert result.returncode == 2 and "\x1b" not in result.stderr
    assert "bad\\x1b[31mkey: unknown key" in result.stderr


def test_the_shipped_config_validates_quietly():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([os.sys.executable, "-m", "pipeline", "validate", "--config",
                             os.path.join(repo, "config.yaml")], capture_output=True, text=True,
                            cwd=repo, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
