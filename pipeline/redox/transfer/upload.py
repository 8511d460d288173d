"""transfer: Redox's Transferring Files path for one claimed file.

A file over ``redox.send_limit_bytes`` is sent as a small message whose embedded documents were
uploaded first and replaced by the URIs Redox returned. :meth:`Transfer.prepare`:

1. plans (documents.plan): whatever would stop the file is refused before anything is uploaded;
2. uploads each document not yet uploaded *for this file*: it is decoded again into an unnamed
   temporary file (``tempfile.TemporaryFile``: mode 0600 and, on Linux, never linked into a
   folder, so even a killed process leaves no decoded patient data behind), streamed to Redox,
   and its URI saved in the journal the moment the upload returns. The journal's ``uploads``
   (keyed by field and decoded sha256) are what a retry, or a restart after a crash, reuses: a
   document is never uploaded twice for the same record (journal.begin continues it);
3. builds the small message (Meta.Destinations from config), checked against the send limit.

Memory stays at a few chunks whatever the file size: the message is never parsed whole, a
document is never held whole, and the upload body is streamed from the temporary file.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from typing import Callable, ContextManager, Iterable, Optional

from pipeline import failpoints, message
from pipeline.errors import AuthError, DeliveryError, PermanentDelivery, StorageError
from pipeline.journal import Journal, Record
from pipeline.redox.transfer import decoding, documents
from pipeline.values import Claim, Message, Upload

log = logging.getLogger("pipeline.transfer")


class Transfer:
    """The upload path, wired to the shared store, journal and Redox client.

    ``tmp_dir``: where decoded documents are staged (None: the system's, i.e. ``$TMPDIR``).
    """

    def __init__(self, store, journal: Journal, client, destinations: Iterable[dict],
                 send_limit: int, upload_limit: int, tmp_dir: Optional[str] = None,
                 observe: Callable[..., None] = lambda *a, **k: None):
        self.store, self.journal, self.client = store, journal, client
        self.destinations = [dict(d) for d in destinations]
        self.send_limit, self.upload_limit = send_limit, upload_limit
        self.tmp_dir, self.observe = tmp_dir, observe

    def prepare(self, claim: Claim, record: Record,
                destinations: Optional[message.Destinations] = None) -> Message:
        """Upload what is missing and return the small message to SEND. ``destinations``: the
        file's own chooser (its route, with the schema check in front, so the message is
        checked and routed before anything is measured or uploaded), else the configured ones.

        Raises RejectedFile (the file cannot travel; nothing more is uploaded), or from an
        upload TransientDelivery / PermanentDelivery (the attempt is already in the journal,
        the error texts name the field) or AuthError (the attempt is voided).
        """
        with self.store.open(claim) as opened, self._seekable(opened) as handle:
            plan = documents.plan(handle, claim.size, self.send_limit, self.upload_limit,
                                  self.destinations if destinations is None else destinations)
            saved = {(u["field"], u["sha256"]): u for u in record.uploads}
            uris = []
            for document in plan.documents:
                entry = saved.get((document.field, document.sha256))
                if entry is None:
                    entry = self._upload(handle, claim, record.claim_id, document)
                    saved[(document.field, document.sha256)] = entry
                    self._save(record.claim_id, plan, saved)
                    failpoints.reached("after_upload")
                uris.append(entry["URI"])
            body = documents.body(plan, uris)
        return Message(sha256=record.sha256 or "", size=claim.size, data_model=plan.data_model,
                       event_type=plan.event_type, body=body, destinations=plan.destinations)

    def _seekable(self, handle) -> ContextManager:
        """The file as a seekable handle: the scan reads its spans again. A stream that cannot
        seek (an S3 body) is first copied, chunk by chunk, into an unnamed temporary file."""
        if handle.seekable():
            return contextlib.nullcontext(handle)
        spool = tempfile.TemporaryFile(dir=self.tmp_dir)
        shutil.copyfileobj(handle, spool, 1 << 20)
        spool.seek(0)
        return spool

    def failures(self, claim_id: str) -> int:
        """Upload attempts of this file that failed in a way worth retrying (or were cut off
        by a crash): what the retry policy counts for the upload path."""
        return sum(1 for a in self.journal.attempts_of(claim_id)
                   if a["kind"] == "upload" and a["result"] in ("transient", "interrupted"))

    def _upload(self, handle, claim: Claim, claim_id: str, document: documents.Document) -> dict:
        """One upload attempt for ``document``, journaled; returns its ``uploads`` entry."""
        n = 1 + sum(1 for a in self.journal.attempts_of(claim_id) if a["kind"] == "upload")
        with tempfile.TemporaryFile(dir=self.tmp_dir) as staged:
            size, sha256 = decoding.decode(handle, document.span, document.field,
                                            self.upload_limit, staged.write)
            if (size, sha256) != (document.size, document.sha256):
                raise StorageError("the claimed file changed while it was being transferred",
                                   claim.location)
            staged.flush()
            self.journal.attempt_started(claim_id, "upload", n)
            try:
                uri, status = self.client.upload(staged, document.filename)
            except AuthError:
                self.journal.void_attempt(claim_id, "upload", n)
                raise
            except DeliveryError as exc:
                self._failed(claim_id, n, document, exc)
        self.journal.attempt_ended(claim_id, "upload", n, result="accepted", status=status,
                                   maybe_seen=False)
        self.observe("upload", status=status, elapsed=None)
        log.info("uploaded", extra={"file": claim.name, "field": document.field,
                                    "size": document.size, "attempt": n})
        return Upload(uri, document.field, document.size, document.sha256).as_json()

    def _failed(self, claim_id: str, n: int, document: documents.Document,
                exc: DeliveryError) -> None:
        """Journal a failed upload and raise it again, its texts naming the field."""
        permanent = isinstance(exc, PermanentDelivery)
        self.journal.attempt_ended(claim_id, "upload", n,
                                   result="permanent" if permanent else "transient",
                                   status=exc.status, maybe_seen=exc.maybe_seen,
                                   error="; ".join(exc.errors))
        self.observe("upload", status=exc.status, elapsed=None)
        what = "refused" if permanent else "failed"
        status = f" (HTTP {exc.status})" if exc.status else ""
        exc.errors = [f"upload of {document.field} {what}{status}", *exc.errors]
        raise exc

    def _save(self, claim_id: str, plan: documents.Plan, saved: dict) -> None:
        """The URIs so far, in field-replacement order (the sidecar's ``uploads``)."""
        ordered = [saved[(d.field, d.sha256)] for d in plan.documents
                   if (d.field, d.sha256) in saved]
        self.journal.save_uploads(claim_id, ordered)
