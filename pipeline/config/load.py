"""config.yaml → frozen, validated settings (the only module that imports yaml).

Contract: ``load(path)`` returns a :class:`Settings` or raises :class:`ConfigError` whose
``problems`` name every key path that is wrong (``redox.auth.client_id: missing``). Values of the
form ``${NAME}`` come from the environment at load time; relative paths are relative to the
config file's folder. Unknown keys are errors. Loading touches no file but the config itself.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from pydantic import ValidationError

from pipeline.config.checks import semantic_problems
from pipeline.config.models import UUID_PATTERN, AuthSettings, FolderSettings, Settings
from pipeline.errors import ConfigError

log = logging.getLogger("pipeline.config")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def default_path(explicit: str | None) -> Path:
    """The config path: ``--config``, else ``$PIPELINE_CONFIG``, else ``./config.yaml``."""
    return Path(explicit or os.environ.get("PIPELINE_CONFIG") or "config.yaml")


def load(path: str | os.PathLike, environ: dict[str, str] | None = None, *,
         tolerate: Optional[Callable[[str], bool]] = None) -> Settings:
    """Read, expand and validate ``path``. Raises ConfigError listing every problem.

    ``tolerate``: problems it returns True for are not errors (``check`` needs no credentials)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    for warning in literal_secrets(raw):
        log.warning(warning)
    unset: list[str] = []
    expanded = _expand(raw, os.environ if environ is None else environ, "", unset)
    expanded["config_path"] = str(path.resolve())
    # Every problem at once (a missing variable does not hide an unknown key elsewhere); a key
    # whose variable is unset is reported once, for the variable.
    try:
        settings = Settings.model_validate(expanded)
        problems = semantic_problems(settings)
    except ValidationError as exc:
        settings, problems = None, [_describe(err) for err in exc.errors()]
    unset_keys = {problem.split(":", 1)[0] for problem in unset}
    problems = unset + [p for p in problems if p.split(":", 1)[0] not in unset_keys]
    if tolerate is not None:
        problems = [p for p in problems if not tolerate(p)]
    if problems or settings is None:
        raise ConfigError(problems or [f"{path}: not a valid config"])
    return _resolve_paths(settings, path.resolve().parent)


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


def _describe(err: dict) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "missing":
        return f"{path}: missing"
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == UUID_PATTERN:
        return f"{path}: must be a UUID (like af394f14-b34a-464f-8d24-895f370af4c9)"
    return f"{path}: {err['msg']}"




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
