"""config.yaml → frozen, validated settings (the only module that imports yaml).

Contract: ``load(path)`` returns a :class:`Settings` or raises :class:`ConfigError` whose
``problems`` name every key path that is wrong (``redox.auth.client_id: missing``). Values of the
form ``${NAME}`` come from the environment at load time; relative paths are relative to the
config file's folder. Unknown keys are errors (with the closest known key, when one is close: "did
you mean client_id?"); so is a key given twice in one mapping, which YAML would otherwise settle
silently with the last value. Loading reads no file but the config itself (it resolves the
folders' symlinks to tell whether one lies inside another).

No problem hides another: when the model itself cannot be built, the offending keys are left
out and the checks that span keys still run on the rest (:func:`examine`), so one run of
``validate`` lists everything that is wrong.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from pydantic import ValidationError

from pipeline.config.checks import folder_problems, semantic_problems
from pipeline.config.describe import describe, overlaps, without_offenders
from pipeline.config.models import AuthSettings, FolderSettings, Settings
from pipeline.errors import ConfigError
from pipeline.terminal import visible

log = logging.getLogger("pipeline.config")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def default_path(explicit: str | None) -> Path:
    """The config path: ``--config``, else ``$PIPELINE_CONFIG``, else ``./config.yaml``."""
    return Path(explicit or os.environ.get("PIPELINE_CONFIG") or "config.yaml")


def load(path: str | os.PathLike, environ: dict[str, str] | None = None, *,
         tolerate: Optional[Callable[[str], bool]] = None) -> Settings:
    """Read, expand and validate ``path``. Raises ConfigError listing every problem.

    ``tolerate``: problems it returns True for are not errors (``check`` needs no credentials)."""
    settings, problems = examine(path, environ)
    if tolerate is not None:
        problems = [p for p in problems if not tolerate(p)]
    if problems or settings is None:
        raise ConfigError(problems or [f"{path}: not a valid config"])
    return settings


def examine(path: str | os.PathLike,
            environ: dict[str, str] | None = None) -> tuple[Optional[Settings], list[str]]:
    """Every problem of the config at ``path`` (``key.path: what is wrong``), and the settings
    as far as they could be built, paths resolved: complete when there is no problem; with
    the offending keys left out when the model could not take them (``validate`` still checks
    the key files and folders of the rest); None when the file cannot be read as a mapping."""
    path = Path(path)
    try:
        raw, twice = _parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, [f"{path}: no such config file"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read ({exc.__class__.__name__})"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        return None, [f"{path}: not valid YAML{where}"]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [f"{path}: the top level must be a mapping of keys"]
    for warning in literal_secrets(raw):
        log.warning(warning)
    unset: list[str] = []
    expanded = _expand(raw, os.environ if environ is None else environ, "", unset)
    expanded["config_path"] = str(path.resolve())
    # Every problem at once (a missing variable does not hide an unknown key elsewhere, an
    # unknown key does not hide a missing destination); a key whose variable is unset is
    # reported once, for the variable.
    try:
        settings: Optional[Settings] = Settings.model_validate(expanded)
        found: list[str] = []
    except ValidationError as exc:
        found = [describe(err) for err in exc.errors()]
        settings = without_offenders(expanded, exc)
    if settings is not None:
        settings = _resolve_paths(settings, path.resolve().parent)
        more = semantic_problems(settings) + folder_problems(settings)
        reported = [p.split(":", 1)[0] for p in found]
        found += [p for p in more if not overlaps(p.split(":", 1)[0], reported)]
    unset_keys = {problem.split(":", 1)[0] for problem in unset}
    problems = unset + twice + [p for p in found if p.split(":", 1)[0] not in unset_keys]
    return settings, [visible(p) for p in problems]


def load_for_command(path: str | os.PathLike) -> Settings:
    """``load``, then the configured umask applied to this process at once: every file and
    folder a command creates after this (sidecars, folders, the journal) gets it."""
    settings = load(path)
    os.umask(settings.umask_value)
    return settings


def _expand(value: Any, environ, where: str, problems: list[str]) -> Any:
    """Replace ``${NAME}`` in every string; a missing variable is a problem naming it."""
    if isinstance(value, dict):
        return {k: _expand(v, environ, f"{where}.{k}" if where else str(k), problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, f"{where}.{i}", problems) for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in environ:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return environ[name]
        return _ENV_REF.sub(sub, value)
    return value


SECRET_KEYS = ("api_key", "secret")


def literal_secrets(raw: dict) -> list[str]:
    """Credentials belong in the environment (or, for OAuth, a key file named in config): a
    config file gets copied, committed and shown around. A credential written into the file
    still works (refusing it would break existing configs), but every load
    warns. Warnings never quote the value."""
    problems = []
    for where in ("redox.auth", "delivery_check.auth"):
        section, key = where.split(".")
        auth = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        if not isinstance(auth, dict):
            continue
        for name in SECRET_KEYS:
            value = auth.get(name)
            if value is not None and not (isinstance(value, str) and _ENV_REF.fullmatch(value.strip())):
                problems.append(f"{where}.{name}: a credential written into the config file; "
                                f"use an environment reference such as ${{REDOX_{name.upper()}}}")
    return problems


def _parse_yaml(text: str) -> tuple[Any, list[str]]:
    """The document (as yaml.safe_load reads it) and a problem for every key given twice in
    one mapping (YAML keeps the last silently: a second ``redox:`` block would replace the
    first without a word)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        return loader.construct_document(node), _given_twice(node)
    finally:
        loader.dispose()


def _given_twice(node: yaml.Node, where: str = "", seen: Optional[set] = None) -> list[str]:
    seen = set() if seen is None else seen
    if id(node) in seen:            # an alias of a node already walked
        return []
    seen.add(id(node))
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            inner = where
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = key_node.value
                inner = f"{where}.{key}" if where else key
                line = key_node.start_mark.line + 1
                if key in lines:
                    found.append(f"{inner}: given twice (lines {lines[key]} and {line}); "
                                 "YAML would silently keep the last one")
                else:
                    lines[key] = line
            found += _given_twice(value_node, inner, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _given_twice(item, f"{where}.{i}" if where else str(i), seen)
    return found


def _resolve_paths(s: Settings, base: Path) -> Settings:
    """Make every local path absolute, relative to the config file's folder."""
    def absolute(p: str | None) -> str | None:
        return None if p is None else str((base / os.path.expanduser(p)).resolve())

    def auth_paths(a: AuthSettings | None) -> AuthSettings | None:
        if a is None or not a.private_key_file:
            return a
        return a.model_copy(update={"private_key_file": absolute(a.private_key_file)})

    updates: dict[str, Any] = {
        "state": s.state.model_copy(update={"path": absolute(s.state.path)}),
        "redox": s.redox.model_copy(update={"auth": auth_paths(s.redox.auth)}),
        "delivery_check": s.delivery_check.model_copy(update={"auth": auth_paths(s.delivery_check.auth)}),
        "validation": s.validation.model_copy(update={"schemas": absolute(s.validation.schemas)}),
    }
    if s.source.kind == "local":
        updates["source"] = s.source.model_copy(update={"inbox": absolute(s.source.inbox)})
        updates["folders"] = FolderSettings(**{k: absolute(getattr(s.folders, k))
                                               for k in ("processing", "done", "failed")})
    return s.model_copy(update=updates)
