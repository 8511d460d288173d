"""Logging: one line per event, ``--log-format json|text``; never message content or secrets.

Events log a short message plus fields passed as ``extra`` (file name, sha256 prefix, attempt,
status, Log IDs, duration, error reason). With ``json`` every line on stdout and stderr is one
JSON object (interface.md).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

# the fields a log call may add through ``extra``; anything else is not printed
FIELDS = ("file", "status", "dest", "sha256", "attempt", "log_ids", "error", "delay", "path",
          "in_flight", "done", "failed", "count", "elapsed", "holder", "url", "key", "reason",
          "uploads", "field", "size", "worker", "config", "problems", "message_id",
          "receive_count")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        for key in FIELDS:
            if key in record.__dict__:
                doc[key] = record.__dict__[key]
        if record.exc_info:
            doc["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [datetime.fromtimestamp(record.created).strftime("%H:%M:%S"),
                 record.levelname.lower(), record.getMessage()]
        parts += [f"{k}={_text(record.__dict__[k])}" for k in FIELDS if k in record.__dict__
                  and record.__dict__[k] not in (None, [], "")]
        line = " ".join(parts)
        if record.exc_info and record.exc_info[0]:
            line += f" exception={record.exc_info[0].__name__}"
        return line


def _text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ' "=\n') else text


def setup(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route all logging to stderr in the chosen format (stdout stays for command output)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "botocore", "boto3", "s3transfer", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def emit(fmt: str, message: str, **fields) -> None:
    """A command's own output line on stdout: plain text, or one JSON object."""
    if fmt == "json":
        print(json.dumps(dict(fields, event=message), ensure_ascii=False, default=str), flush=True)
    else:
        print(message, flush=True)
