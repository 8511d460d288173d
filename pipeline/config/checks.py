"""Checks that span keys: what each source kind and auth method requires.

Each returns a list of ``key.path: what is wrong`` lines (empty when all is well), so that
``load`` can report every problem at once. Warnings (a route no file can reach) are logged, not
returned: the config still works as written.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Optional
from urllib.parse import urlparse

from pipeline.config.models import AuthSettings, Settings
from pipeline.config.routing import RESERVED, covers, glob_problem, route_names

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
    problems += clear_text_problems(s)
    return problems


def redox_urls(s: Settings) -> list[tuple[str, Optional[str]]]:
    """Every URL the pipeline sends a token, a credential or a message to, by key path."""
    dc = s.delivery_check
    return [("redox.base_url", s.redox.base_url), ("redox.upload_url", s.redox.upload_url),
            ("redox.auth.token_url", s.redox.auth.token_url),
            ("delivery_check.platform_url", dc.platform_url),
            ("delivery_check.auth.token_url", dc.auth.token_url if dc.auth else None)]


def is_loopback(host: Optional[str]) -> bool:
    """``localhost`` (or a name below it) or a loopback address: this machine."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clear_text_urls(s: Settings) -> list[tuple[str, str]]:
    """(key path, host) of each ``http://`` URL to a host that is not this machine."""
    found = []
    for key, url in redox_urls(s):
        if not url:
            continue
        try:
            parsed = urlparse(url)
            host = parsed.hostname
        except ValueError:
            continue
        if parsed.scheme.lower() == "http" and not is_loopback(host):
            found.append((key, host or "?"))
    return found


def clear_text_problems(s: Settings) -> list[str]:
    """``http://`` to Redox anywhere but this machine would send tokens, credentials and
    patient data in clear text: refused, unless ``redox.allow_insecure_http`` says otherwise
    (then a warning at every start)."""
    found = clear_text_urls(s)
    if s.redox.allow_insecure_http:
        for key, host in found:
            log.warning(f"INSECURE HTTP: {key} sends tokens and patient data to {host} in clear "
                        "text (redox.allow_insecure_http is true)")
        return []
    return [f"{key}: http:// to {host} would send tokens and patient data in clear text; use "
            "https:// (http:// is allowed only to this machine, or with "
            "redox.allow_insecure_http: true)" for key, host in found]


def folder_problems(s: Settings) -> list[str]:
    """Local folders (paths resolved): the inbox, processing, done and failed are four
    folders, none of them inside another, symlinks and ``..`` resolved.

    An output folder in the inbox (or the inbox itself) makes the service claim its own
    output again and again (with ``dedupe: false`` it re-sends it); that is so with
    ``source.recursive``, and a done/ inside a flat inbox is one switch away from it, lies
    where upstream systems write (the folder's looser permissions, the exporter able to
    rename it) and is refused as well. The inbox inside an output folder would be counted,
    reported and pruned as that folder's files; one output folder inside another likewise.
    """
    if s.source.kind != "local" or not s.source.inbox:
        return []
    named = [("source.inbox", s.source.inbox), ("folders.processing", s.folders.processing),
             ("folders.done", s.folders.done), ("folders.failed", s.folders.failed)]
    real = [(key, os.path.realpath(path)) for key, path in named]
    problems = []
    for i, (outer_key, outer) in enumerate(real):
        for inner_key, inner in real[i + 1:]:
            if inner == outer:
                problems.append(f"{inner_key}: the same folder as {outer_key} ({inner}); "
                                f"{_why(outer_key, s.source.recursive)}")
            elif _inside(inner, outer):
                problems.append(f"{inner_key}: {inner} is inside {outer_key} ({outer}); "
                                f"{_why(outer_key, s.source.recursive)}")
            elif _inside(outer, inner):
                problems.append(f"{outer_key}: {outer} is inside {inner_key} ({inner}); "
                                f"{_why(inner_key, s.source.recursive)}")
    return problems


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _why(outer_key: str, recursive: bool) -> str:
    if outer_key == "source.inbox":
        if recursive:
            return ("the pipeline would take its own files back from the inbox, again and again; "
                    "put the folders beside the inbox, not in it")
        return ("the inbox is where upstream systems write, and with source.recursive the "
                "pipeline would take its own files back; put the folders beside it, not in it")
    return "status, report, prune and recovery list each folder whole; give each its own folder"


def filesystem_problems(s: Settings) -> list[str]:
    """A claim is an atomic rename from the inbox into processing/, which cannot cross
    filesystems (EXDEV on every claim). Compares the devices of the two folders (processing/
    not made yet: the nearest folder above it that exists); creates nothing. Reads the
    filesystem, so ``validate`` and ``run`` call it, not ``load``."""
    if s.source.kind != "local" or not s.source.inbox:
        return []
    try:
        inbox = os.stat(s.source.inbox).st_dev
    except OSError:
        return []                    # a missing inbox is reported by run (and is not created)
    where, processing = _existing(s.folders.processing)
    if where is None or processing == inbox:
        return []
    return [f"folders.processing: {s.folders.processing} is on another filesystem than "
            f"source.inbox ({s.source.inbox}): claiming a file is an atomic rename from one to "
            "the other, which cannot cross filesystems; put them on one filesystem"]


def _existing(path: str) -> tuple[Optional[str], Optional[int]]:
    """The nearest existing folder at or above ``path``, and its device."""
    current = os.path.abspath(path)
    while True:
        try:
            return current, os.stat(current).st_dev
        except OSError:
            parent = os.path.dirname(current)
            if parent == current:
                return None, None
            current = parent


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

