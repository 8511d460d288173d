"""Checks that span keys: what each source kind and auth method requires.

Each returns a list of ``key.path: what is wrong`` lines (empty when all is well), so that
``load`` can report every problem at once. Warnings (a route no file can reach) are logged, not
returned: the config still works as written.
"""

from __future__ import annotations

import logging
import re

from pipeline.config.models import AuthSettings, Settings
from pipeline.flow.routes import RESERVED, covers, glob_problem, route_names

log = logging.getLogger("pipeline.config")


def semantic_problems(s: Settings) -> list[str]:
    """Checks that span keys: what each source kind and auth method requires."""
    problems: list[str] = []
    if s.source.kind == "local" and not s.source.inbox:
        problems.append("source.inbox: missing (required for source.kind local)")
    if s.source.kind == "s3":
        problems += s3_problems(s)
    elif s.source.queue_url:
        problems.append("source.queue_url: only for source.kind s3")
    if not s.destinations and not s.routes:
        problems.append("destinations: missing (at least one Redox destination is required, "
                        "unless routes are configured)")
    problems += route_problems(s)
    for warning in route_warnings(s):
        log.warning(warning)
    problems += auth_problems(s.redox.auth, "redox.auth")
    if s.retry.backoff_max_seconds < s.retry.backoff_initial_seconds:
        problems.append("retry.backoff_max_seconds: must be at least backoff_initial_seconds")
    for key in ("base_url", "upload_url"):
        url = getattr(s.redox, key)
        if not re.match(r"^https?://[^/\s]+", url):
            problems.append(f"redox.{key}: not an http(s) URL")
    problems += delivery_problems(s, required=s.delivery_check.enabled)
    return problems


def route_problems(s: Settings) -> list[str]:
    """Each route: destinations not empty, match values usable, path globs well formed, names
    unique and not reserved."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, (route, name) in enumerate(zip(s.routes, route_names(s.routes))):
        where = f"routes.{i}"
        if not route.destinations:
            problems.append(f"{where}.destinations: empty (a route must name at least one destination)")
        problems += _match_problems(route.match, f"{where}.match")
        if name in RESERVED:
            problems.append(f"{where}.name: {name!r} is reserved (reports use it for files no route matched)")
        elif name in seen:
            problems.append(f"{where}.name: the same name as routes.{seen[name]}")
        seen.setdefault(name, i)
    return problems


def _match_problems(match, where: str) -> list[str]:
    problems = []
    for key in ("data_model", "event_type", "path"):
        values = match.values(key)
        if values is None:
            continue
        if not values:
            problems.append(f"{where}.{key}: an empty list matches no file")
        single = isinstance(getattr(match, key), str)
        for j, value in enumerate(values):
            why = glob_problem(value) if key == "path" else (None if value else "empty: matches no file")
            if why:
                problems.append(f"{where}.{key}{'' if single else f'.{j}'}: {why}")
    return problems


def route_warnings(s: Settings) -> list[str]:
    """Routes an earlier route makes unreachable (it holds for every file they would take),
    and ordering by path over a flat inbox (every file then shares one key)."""
    warnings = []
    names = route_names(s.routes)
    for j, later in enumerate(s.routes):
        for i in range(j):
            if covers(s.routes[i].match, later.match):
                warnings.append(f"routes.{j}: never used: routes.{i} ({names[i]}) comes first and "
                                f"matches every file routes.{j} ({names[j]}) would")
                break
    if s.ordering.by == "path" and s.source.kind == "local" and not s.source.recursive:
        warnings.append("ordering.by: path with source.recursive false: every file is directly in "
                        "the inbox, so all of them form one sequence, sent one at a time")
    return warnings


def delivery_problems(s: Settings, required: bool) -> list[str]:
    """What delivery confirmation needs; ``required`` when enabled or when ``reconcile`` runs.

    The Platform API takes only OAuth tokens, so a legacy
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
    """The keys each auth method needs."""
    needed = (("client_id", "key_id", "private_key_file") if auth.method == "oauth"
              else ("api_key", "secret"))
    problems = [f"{where}.{key}: missing (required for method {auth.method})"
                for key in needed if not getattr(auth, key)]
    return problems

