"""The settings, as frozen and validated models: what config.yaml may say, with defaults.

Every section is its own model, so each stage can be handed only its slice. Unknown keys are
errors (``extra="forbid"``); cross-key rules live in :mod:`pipeline.config.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, SecretStr
from pydantic_core import PydanticCustomError

# ``workers: auto`` keeps as many files in flight as the rate limit and Redox's latency call
# for (pipeline/flow/concurrency.py), at most this many; a number is a fixed cap
AUTO_WORKERS_CEILING = 64
MAX_WORKERS = 256
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _workers(value: Any) -> Union[Literal["auto"], int]:
    """``auto`` (any case) or a whole number from 1 to MAX_WORKERS (a YAML number or a string
    of digits); one message for anything else."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WORKERS:
        return value
    raise PydanticCustomError("workers", f"must be auto or a whole number from 1 to {MAX_WORKERS}")


Workers = Annotated[Union[Literal["auto"], int], PlainValidator(_workers)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Model):
    kind: Literal["local", "s3"] = "local"
    inbox: Optional[str] = None
    pattern: str = "*.json"
    # local: files in subfolders of the inbox count too (S3: keys below the prefix always do);
    # the path below the inbox is the file's name everywhere and is kept under done/ and failed/
    recursive: bool = False
    settle_seconds: float = Field(2.0, ge=0)
    rescan_seconds: float = Field(10.0, gt=0)   # the periodic safety-net scan
    bucket: Optional[str] = None
    prefix: str = ""
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    queue_url: Optional[str] = None
    # S3 only (docs/s3.md): a claim's lease lasts this long unless renewed (renewed every third
    # of it while the object is in flight; an abandoned claim is recovered after it runs out)
    lease_seconds: float = Field(300.0, ge=1)
    page_size: int = Field(1000, ge=1, le=1000)     # keys per listing request
    # SQS mode: long-poll wait; the visibility a received message gets, extended every third
    # of it while this worker lives (so a killed worker's messages come back after at most this)
    queue_wait_seconds: int = Field(10, ge=1, le=20)
    queue_visibility_seconds: int = Field(30, ge=1, le=43200)


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
    # Redox gives up on a request at 120 s, so wait a little longer than that.
    timeout_seconds: float = Field(130.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    # Redox allows 7,500 requests per 5 minutes per IP (25/s); stay under it by default.
    max_requests_per_second: float = Field(20.0, ge=0)
    send_limit_bytes: int = Field(10 * 1024 * 1024, gt=0)
    upload_limit_bytes: int = Field(30 * 1024 * 1024, gt=0)
    # TLS verification is always on, except for a sandbox on loopback (and then loudly logged).
    insecure_skip_tls_verify: bool = False
    # http:// to a Redox URL that is not on this machine is refused (tokens and patient data in
    # clear text) unless this is true; then every start warns
    allow_insecure_http: bool = False
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
    ID: str = Field(pattern=UUID_PATTERN)
    Name: str


class RouteMatch(_Model):
    """What a route matches; every key given must hold (each: one string or a list, any of
    them). No key at all matches every file."""
    data_model: Optional[Union[str, tuple[str, ...]]] = None   # Meta.DataModel, exact
    event_type: Optional[Union[str, tuple[str, ...]]] = None   # Meta.EventType, exact
    path: Optional[Union[str, tuple[str, ...]]] = None         # glob on the path below the inbox

    def values(self, key: str) -> Optional[tuple[str, ...]]:
        """The strings given for ``key`` as a tuple (None: the key is not constrained)."""
        value = getattr(self, key)
        return (value,) if isinstance(value, str) else value


class Route(_Model):
    """One entry of ``routes``: the first route whose match holds decides a file's destinations."""
    name: Optional[str] = None       # for reports; default "route N" (1-based)
    match: RouteMatch
    destinations: tuple[Destination, ...]


class OrderingSettings(_Model):
    # none | path (the folder below the inbox) | patient (first Patient.Identifiers entry):
    # files with the same key are sent one at a time, in drop order (docs/routing.md)
    by: Literal["none", "path", "patient"] = "none"
    # hold: a key's later files wait while an earlier one sits in failed/
    on_failure: Literal["continue", "hold"] = "continue"


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
    # loopback by default; a container publishing the port needs 0.0.0.0
    address: str = "127.0.0.1"


class DeliveryCheckSettings(_Model):
    # ``enabled`` turns on the service's background passes; ``redox-pipeline reconcile`` runs a
    # pass whenever it is asked, as long as the organization and an OAuth key are configured.
    enabled: bool = False
    organization_id: Optional[str] = None
    platform_url: str = "https://api.redoxengine.com/platform"
    # the Platform API key; None = reuse redox.auth
    auth: Optional[AuthSettings] = None
    give_up_after_hours: float = Field(24.0, gt=0)   # counted from the accepted SEND
    interval_seconds: float = Field(300.0, gt=0)


class RetentionSettings(_Model):
    """How long finished files and journal rows are kept (``redox-pipeline prune``, and the
    service at start and every ``interval_hours``). done/ and failed/ are the audit trail, so
    they are kept for ever unless a limit is set."""
    done_days: Optional[float] = Field(None, gt=0)      # files (+ sidecars) finished longer ago
    failed_days: Optional[float] = Field(None, gt=0)
    # journal rows of files finished longer ago; the sha256 of delivered bytes is kept apart
    # (dedupe) for ``dedupe_days`` (None: for ever), pending deliveries always
    journal_days: Optional[float] = Field(90.0, gt=0)
    dedupe_days: Optional[float] = Field(None, gt=0)
    interval_hours: float = Field(24.0, gt=0)           # the service prunes this often


class ValidationSettings(_Model):
    """Checking each message against Redox's JSON Schemas before it is sent (docs/validation.md)."""
    # a folder of draft-04 schemas, <DataModel>/<EventType>.json (Redox's download unpacked as
    # it is); relative to the config file. None: messages are not checked against a schema
    schemas: Optional[str] = None
    # a message whose DataModel/EventType has no schema in the folder: send it unchecked (one
    # warning per DataModel/EventType), or fail it (reason_kind no_schema)
    missing_schema: Literal["send", "fail"] = "send"


class HealthSettings(_Model):
    """When ``GET /healthz`` (on the metrics port) answers 503 instead of 200."""
    breaker_open_minutes: float = Field(5.0, gt=0)      # the circuit breaker open this long
    redox_silent_minutes: float = Field(10.0, gt=0)     # files waiting, no answer from Redox
    loop_stall_seconds: float = Field(60.0, gt=0)       # no loop turn for this long


class Settings(_Model):
    source: SourceSettings = SourceSettings()
    folders: FolderSettings = FolderSettings()
    redox: RedoxSettings = RedoxSettings()
    destinations: tuple[Destination, ...] = ()
    routes: tuple[Route, ...] = ()
    ordering: OrderingSettings = OrderingSettings()
    retry: RetrySettings = RetrySettings()
    workers: Workers = "auto"
    state: StateSettings = StateSettings()
    dedupe: bool = True
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    metrics: MetricsSettings = MetricsSettings()
    delivery_check: DeliveryCheckSettings = DeliveryCheckSettings()
    retention: RetentionSettings = RetentionSettings()
    health: HealthSettings = HealthSettings()
    validation: ValidationSettings = ValidationSettings()
    # octal string; output files hold patient data, so the default lets only the owner read them
    umask: str = Field("077", pattern=r"^0?[0-7]{3}$")
    config_path: str = ""   # set by load(); where the settings came from

    @property
    def worker_ceiling(self) -> int:
        """The most files in flight: ``workers``, or for ``auto`` its ceiling. Thread and
        connection pools are sized for this."""
        return AUTO_WORKERS_CEILING if self.workers == "auto" else self.workers

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

