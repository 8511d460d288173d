"""Building the local source and its view from settings (called only by the wiring in app.py)."""

from __future__ import annotations

from pipeline.sources.local.store import LocalStore
from pipeline.sources.local.view import LocalView


def open_source(settings, owner: str) -> LocalStore:
    """The local store for ``settings`` (source.kind local); ``owner`` names this process."""
    src, folders = settings.source, settings.folders
    return LocalStore(src.inbox, folders.processing, folders.done, folders.failed, src.pattern, owner,
                      recursive=src.recursive)


def open_view(settings) -> LocalView:
    """The operator's view of the local folders."""
    src, folders = settings.source, settings.folders
    return LocalView({"inbox": src.inbox, "processing": folders.processing, "done": folders.done,
                      "failed": folders.failed}, src.pattern, recursive=src.recursive,
                     keep_drop_time=settings.ordering.by != "none")
