"""``redox-pipeline prune [--dry-run]``: one retention pass (pipeline/retention.py) over the
folders and the journal, each file removed (or that would be) on its own line, then a summary.
"""

from __future__ import annotations

import os
from typing import Optional

from pipeline import app, retention
from pipeline import config as config_mod
from pipeline.errors import ConfigError, StorageError
from pipeline.journal import Journal
from pipeline.service import logs as logsetup


def cmd_prune(args) -> int:
    """Apply ``retention`` once; ``--dry-run`` lists and touches nothing. Exit 0, 1 when some
    file could not be removed, 2 for bad usage or config. A journal that does not exist yet is
    not created."""
    settings = config_mod.load_for_command(config_mod.default_path(args.config))
    view = app.make_view(settings)
    opened: list[Journal] = []

    def open_journal() -> Optional[Journal]:
        if not os.path.exists(settings.state.path):
            return None
        try:
            opened.append(Journal(settings.state.path))
        except StorageError as exc:
            raise ConfigError(f"state.path: {exc}") from None
        return opened[-1]

    def emit(message: str, **fields) -> None:
        logsetup.emit(args.log_format, message, **fields)
    try:
        result = retention.prune(settings, view, open_journal, dry_run=args.dry_run, emit=emit)
    finally:
        for journal in opened:
            journal.close()
    message, fields = retention.summary(result, args.dry_run)
    logsetup.emit(args.log_format, message, **fields)
    return 1 if result.failed else 0
