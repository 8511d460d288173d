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
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from pipeline.errors import ConfigError

log = logging.getLogger("pipeline.config")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Model):
    kind: Literal["local", "s3"] = "local"
    inbox: Optional[str] = None
    pattern: str = "*.json"
    settle_seconds: float = Field(2.0, ge=0)
    rescan_seconds: float = Field(10.0, gt=0)   # the periodic safety-net scan (design.md: discover)
    bucket: Optional[str] = None
    prefix: str = ""
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    queue_url: Optional[str] = None
    # S3 only (docs/s3.md): a claim's lease lasts this long unless renewed (renewed every third
    # of it while the object is in flight; an abandoned claim is recovered after it runs out)
    lease_seconds: float = Field(300.0, ge=1)
    page_size: int = Field(1000, ge=1, le=1000)     # keys per listing request
    # SQS mode: long-poll wait, and how long a received message stays hidden between extensions
    queue_wait_seconds: int = Field(10, ge=1, le=20)
    queue_visibility_seconds: int = Field(300, ge=1, le=43200)


class FolderSettings(_Model):
    processing: str = "drop/processing"
    done: str = "drop/done"
    failed: str = "drop/failed"


class AuthSettings(_Model):
    method: Literal["oauth", "legacy"] = "oauth"
    client_id: Optional[str] = None
    key_id: Optional[str] = None
    private_key_file: Optional[str] = None
    token_url: Optional[str] = None
    api_key: Optional[SecretStr] = None
    secret: Optional[SecretStr] = None


class RedoxSettings(_Model):
    base_url: str = "https://api.redoxengine.com"
    upload_url: str = "https://blob.redoxengine.com/upload"
    # redox-api.md: Redox gives up on a request at 120 s, so wait a little longer than that.
    timeout_seconds: float = Field(130.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    # redox-api.md: 7,500 requests per 5 minutes per IP (25/s); stay under it by default.
    max_requests_per_second: float = Field(20.0, ge=0)
    send_limit_bytes: int = Field(10 * 1024 * 1024, gt=0)
    upload_limit_bytes: int = Field(30 * 1024 * 1024, gt=0)
    # TLS verification is always on, except for a sandbox on loopback (and then loudly logged).
    insecure_skip_tls_verify: bool = False
    auth: AuthSettings = AuthSettings()

    @property
    def token_url(self) -> str:
        """Where tokens come from: ``auth.token_url``, else the path for the auth method."""
        if self.auth.token_url:
            return self.auth.token_url
        path = "/v2/auth/token" if self.auth.method == "oauth" else "/auth/authenticate"
        return self.base_url.rstrip("/") + path


class Destination(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    ID: str = Field(pattern=_UUID)
    Name: str


class RetrySettings(_Model):
    max_attempts: int = Field(10, ge=1)
    backoff_initial_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(300.0, ge=0)
    # --once waits inside the run for retries due within this many seconds; later ones are
    # left in the inbox with their schedule in the journal for the next run.
    once_wait_seconds: float = Field(60.0, ge=0)
    # the circuit breaker opens after this many transient failures in a row, across files
    breaker_threshold: int = Field(5, ge=1)


class StateSettings(_Model):
    path: str = "drop/state.db"


class MetricsSettings(_Model):
    port: Optional[int] = Field(None, ge=0, le=65535)     # 0 = any free port (it is logged)
    # loopback by default (interface.md); a container publishing the port needs 0.0.0.0
    address: str = "127.0.0.1"


class DeliveryCheckSettings(_Model):
    # ``enabled`` turns on the service's background passes; ``redox-pipeline reconcile`` runs a
    # pass whenever it is asked, as long as the organization and an OAuth key are configured.
    enabled: bool = False
    organization_id: Optional[str] = None
    platform_url: str = "https://api.redoxengine.com/platform"
    # the Platform API key (redox-api.md: Delivery status, OAuth only); None = reuse redox.auth
    auth: Optional[AuthSettings] = None
    give_up_after_hours: float = Field(24.0, gt=0)   # counted from the accepted SEND
    interval_seconds: float = Field(300.0, gt=0)


class Settings(_Model):
    source: SourceSettings = SourceSettings()
    folders: FolderSettings = FolderSettings()
    redox: RedoxSettings = RedoxSettings()
    destinations: tuple[Destination, ...] = ()
    retry: RetrySettings = RetrySettings()
    workers: int = Field(4, ge=1, le=256)
    state: StateSettings = StateSettings()
    dedupe: bool = True
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    metrics: MetricsSettings = MetricsSettings()
    delivery_check: DeliveryCheckSettings = DeliveryCheckSettings()
    # octal string; output files hold patient data, so the default lets only the owner read them
    umask: str = Field("077", pattern=r"^0?[0-7]{3}$")
    config_path: str = ""   # set by load(); where the settings came from

    @property
    def umask_value(self) -> int:
        return int(self.umask, 8)

    @property
    def platform_token_url(self) -> str:
        """Where Platform API tokens come from: ``delivery_check.auth.token_url``, else the
        OAuth token URL of ``redox.base_url`` (one signed-JWT flow for both keys)."""
        auth = self.delivery_check.auth
        if auth is None:
            return self.redox.token_url
        return auth.token_url or self.redox.base_url.rstrip("/") + "/v2/auth/token"


def default_path(explicit: str | None) -> Path:
    """The config path: ``--config``, else ``$PIPELINE_CONFIG``, else ``./config.yaml``."""
    return Path(explicit or os.environ.get("PIPELINE_CONFIG") or "config.yaml")


def load(path: str | os.PathLike, environ: dict[str, str] | None = None) -> Settings:
    """Read, expand and validate ``path``. Raises ConfigError listing every problem."""
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
    if problems:
        raise ConfigError(problems)
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
    still works (refusing it would break configs that follow interface.md), but every load
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
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == _UUID:
        return f"{path}: must be a UUID (like af394f14-b34a-464f-8d24-895f370af4c9)"
    return f"{path}: {err['msg']}"


def semantic_problems(s: Settings) -> list[str]:
    """Checks that span keys: what each source kind and auth method requires."""
    problems: list[str] = []
    if s.source.kind == "local" and not s.source.inbox:
        problems.append("source.inbox: missing (required for source.kind local)")
    if s.source.kind == "s3":
        problems += s3_problems(s)
    elif s.source.queue_url:
        problems.append("source.queue_url: only for source.kind s3")
    if not s.destinations:
        problems.append("destinations: missing (at least one Redox destination is required)")
    problems += auth_problems(s.redox.auth, "redox.auth")
    if s.retry.backoff_max_seconds < s.retry.backoff_initial_seconds:
        problems.append("retry.backoff_max_seconds: must be at least backoff_initial_seconds")
    for key in ("base_url", "upload_url"):
        url = getattr(s.redox, key)
        if not re.match(r"^https?://[^/\s]+", url):
            problems.append(f"redox.{key}: not an http(s) URL")
    problems += delivery_problems(s, required=s.delivery_check.enabled)
    return problems


def delivery_problems(s: Settings, required: bool) -> list[str]:
    """What delivery confirmation needs; ``required`` when enabled or when ``reconcile`` runs.

    redox-api.md (Delivery status): the Platform API takes only OAuth tokens, so a legacy
    ``redox.auth`` cannot be reused for it.
    """
    dc, problems = s.delivery_check, []
    why = "required when enabled" if s.delivery_check.enabled else "required for reconcile"
    if dc.auth is not None:
        problems += auth_problems(dc.auth, "delivery_check.auth")
        if dc.auth.method != "oauth":
            problems.append("delivery_check.auth.method: must be oauth (the Platform API "
                            "accepts only OAuth API keys)")
    if not re.match(r"^https?://[^/\s]+", dc.platform_url):
        problems.append("delivery_check.platform_url: not an http(s) URL")
    if not required:
        return problems
    if not dc.organization_id:
        problems.append(f"delivery_check.organization_id: missing ({why})")
    if dc.auth is None and s.redox.auth.method != "oauth":
        problems.append(f"delivery_check.auth: missing ({why}: the Platform API needs an OAuth "
                        "key and redox.auth is a legacy key)")
    return problems


def s3_problems(s: Settings) -> list[str]:
    """With S3 the folders are key prefixes in the bucket: distinct, and apart from the inbox."""
    problems = [] if s.source.bucket else ["source.bucket: missing (required for source.kind s3)"]
    inbox = s.source.prefix.strip("/")
    seen: dict[str, str] = {}
    for key in ("processing", "done", "failed"):
        value = getattr(s.folders, key).strip("/")
        if not value:
            problems.append(f"folders.{key}: must be a key prefix (not empty) with source.kind s3")
        elif value in seen:
            problems.append(f"folders.{key}: the same prefix as folders.{seen[value]}")
        elif value == inbox or (inbox and (inbox + "/").startswith(value + "/")):
            problems.append(f"folders.{key}: must not contain source.prefix")
        seen.setdefault(value, key)
    if s.source.queue_url and not re.match(r"^https?://[^/\s]+/", s.source.queue_url):
        problems.append("source.queue_url: not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)")
    return problems


def auth_problems(auth: AuthSettings, where: str) -> list[str]:
    """The keys each auth method needs (redox-api.md: Authentication)."""
    needed = (("client_id", "key_id", "private_key_file") if auth.method == "oauth"
              else ("api_key", "secret"))
    problems = [f"{where}.{key}: missing (required for method {auth.method})"
                for key in needed if not getattr(auth, key)]
    return problems


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
    }
    if s.source.kind == "local":
        updates["source"] = s.source.model_copy(update={"inbox": absolute(s.source.inbox)})
        updates["folders"] = FolderSettings(**{k: absolute(getattr(s.folders, k))
                                               for k in ("processing", "done", "failed")})
    return s.model_copy(update=updates)
