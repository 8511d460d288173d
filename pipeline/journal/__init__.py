"""The journal: the SQLite record of every claim, attempt and answer, and the delivery ledger."""

from pipeline.journal.core import Journal, Record, SidecarView, read_existing

__all__ = ["Journal", "Record", "SidecarView", "read_existing"]
