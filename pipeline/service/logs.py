"""Logging: one line per event, ``--log-format json|text``; never message content or secrets.

Events log a short message plus fields passed as ``extra`` (file name, sha256 prefix, attempt,
status, Log IDs, duration, error reason). With ``json`` every line on stdout and stderr is one
JSON object.

No character of a line is a terminal command: in text lines every non-printable character of
the message and of each field is escaped (a file name can neither forge a line nor drive the
terminal), and JSON lines escape the ones json would leave raw (pipeline/terminal.py).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from datetime import datetime, timezone

from pipeline.terminal import dumps, visible

# the fields a log call may add through ``extra``; anything else is not printed
FIELDS = ("file", "status", "dest", "sha256", "attempt", "log_ids", "error", "delay", "path",
          "in_flight", "done", "failed", "count", "elapsed", "holder", "url", "key", "reason",
          "uploads", "field", "size", "worker", "config", "problems", "duration", "total",
          # delivery confirmation (reconcile)
          "log_id", "delivered", "filtered", "gave_up", "pending", "checked", "files",
          # S3 + SQS
          "message_id", "receive_count",
          # run summary, dedupe, stopping, prune
          "duplicates", "retried", "released", "duplicate_of", "removed", "kept",
          "would_remove", "journal_rows")
# fields only JSON lines carry (text lines already say it in their message)
JSON_ONLY = ("startup",)
# loggers whose warnings are about the configuration and the credentials: a run says each of
# them once, however many clients load the same key or check the same setting
ONCE_PER_RUN = ("pipeline.config", "pipeline.app", "pipeline.redox.auth")


class OncePerRun(logging.Filter):
    """Drops a configuration warning identical (message and fields) to one already written
    by this process: the SEND client and the Platform client each load the key and check TLS,
    and the operator should read each warning once. Warnings about files and requests (other
    loggers) are events and always pass."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(ONCE_PER_RUN):
            return True
        key = (record.name, record.levelno, record.getMessage(),
               tuple(repr(record.__dict__.get(k)) for k in FIELDS))
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        doc: dict[str, object] = {"ts": ts,
               "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        for key in FIELDS + JSON_ONLY:
            if key in record.__dict__:
                doc[key] = record.__dict__[key]
        if record.exc_info:
            doc["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return dumps(doc)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        parts = [time.strftime("%H:%M:%S", time.localtime(record.created)),
                 record.levelname.lower(), visible(record.getMessage())]
        for key in FIELDS:
            value = fields.get(key)
            if value is not None and value != [] and value != "":
                parts.append(f"{key}={_text(value)}")
        line = " ".join(parts)
        if record.exc_info and record.exc_info[0]:
            line += f" exception={record.exc_info[0].__name__}"
        return line


_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _text(value) -> str:
    """One ``key=value`` token: lists of plain strings as a,b,c; quoted when it has spaces,
    quotes or ``=``; control and other unprintable characters (a file name may hold CR, LF,
    ESC ...) always escaped, so a name can neither forge a log line nor drive a terminal."""
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if not text.isprintable():
        return json.dumps(text, ensure_ascii=True)
    return json.dumps(text, ensure_ascii=False) if _NEEDS_QUOTES.search(text) else text


def setup(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route all logging to stderr in the chosen format (stdout stays for command output)."""
    # what our formatters never print is not worth collecting for every record
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(OncePerRun())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "botocore", "boto3", "s3transfer", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)     # library warnings become log lines (JSON when asked)


def emit(fmt: str, message: str, **fields) -> None:
    """A command's own output line on stdout: plain text, or one JSON object. Either way no
    character of it is a terminal command (a file name in it is escaped: terminal.py)."""
    if fmt == "json":
        print(dumps(dict(fields, event=message)), flush=True)
    else:
        print(visible(message), flush=True)
