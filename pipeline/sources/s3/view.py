"""The operator's view of an S3 source (the FolderView seam), over keys.

The inbox is ``source.prefix`` (keys the pipeline would take, as the store decides: nothing
under the folder prefixes); processing/, done/ and failed/ are the ``folders`` prefixes in the
same bucket. Listing is paginated like the store's; nothing is written except by the operator
commands' own moves and sidecar rewrites.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Optional

from pipeline import sidecar
from pipeline.errors import ClaimLost
from pipeline.sources.s3.api import Bucket, epoch
from pipeline.sources.s3.keys import folder_prefix, is_ours, visible
from pipeline.sources.s3.lease import LEASE_DIR, Leases
from pipeline.sources.s3.orderstore import S3OrderStore
from pipeline.sources.s3.progress import carry_progress
from pipeline.sources.view import Entry, FolderView


class S3View(FolderView):
    """The prefixes of ``bucket`` named in ``prefixes`` (inbox, processing, done, failed);
    inbox keys count when they match ``pattern``; listings ask for ``page_size`` keys a page."""

    kind = "s3"

    def __init__(self, bucket: Bucket, prefixes: dict[str, str], pattern: str = "*.json",
                 page_size: int = 1000, keep_drop_time: bool = False):
        """``keep_drop_time`` (ordering on): an object put back into the inbox carries its drop
        time in its metadata (a copy gets a new LastModified), keeping its place in order."""
        self.bucket, self.pattern, self.page_size = bucket, pattern, page_size
        self.keep_drop_time = keep_drop_time
        self.prefixes = {folder: folder_prefix(value) for folder, value in prefixes.items()}

    def where(self, folder: str, path: str = "") -> str:
        return self.bucket.uri(self.prefixes[folder] + path)

    def inbox_entries(self) -> Iterator[Entry]:
        for rel, obj in self._objects("inbox"):
            if is_ours(rel, self.pattern):
                yield _entry("inbox", rel, obj)

    def listing(self, folder: str) -> Iterator[Entry]:
        for rel, obj in self._objects(folder):
            if visible(rel):
                yield _entry(folder, rel, obj)

    def read_sidecar(self, folder: str, path: str) -> Optional[dict]:
        if not path.endswith(sidecar.SUFFIX):
            path += sidecar.SUFFIX
        found = self.bucket.get_with_etag(self.prefixes[folder] + path, sidecar.MAX_BYTES + 1)
        return sidecar.parse(found[0]) if found else None

    # -- the few writes the operator commands make -------------------------------------------
    def sha256(self, entry: Entry) -> str:
        with self.bucket.open(self.prefixes[entry.folder] + entry.path) as handle:   # streamed
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def inbox_name(self, entry: Entry) -> str:
        """The key below the prefix is kept all the way (``failed/a/b.json`` → ``incoming/a/b.json``)."""
        return entry.path

    def inbox_has(self, name: str) -> bool:
        return self.bucket.head(self.prefixes["inbox"] + name) is not None

    def order_store(self) -> Optional[S3OrderStore]:
        if not self.keep_drop_time:
            return None
        processing = self.prefixes["processing"]
        return S3OrderStore(self.bucket, prefix=self.prefixes["inbox"], processing=processing,
                            failed=self.prefixes["failed"],
                            leases=Leases(self.bucket, processing + LEASE_DIR, "", 1.0),
                            lease_seconds=1.0, page_size=self.page_size)

    def move_to_inbox(self, entry: Entry, name: str, dropped_at: Optional[float] = None) -> str:
        """Copy the object back under the inbox prefix (a new object: to the pipeline it is a
        fresh drop), then delete it from its folder. FileExistsError when the name is taken
        (checked just before the copy: S3 offers no create-only copy to close that gap)."""
        src, dst = self.prefixes[entry.folder] + entry.path, self.prefixes["inbox"] + name
        if self.bucket.head(dst) is not None:
            raise FileExistsError(self.bucket.uri(dst))
        head = self.bucket.head(src)
        if head is None:
            raise ClaimLost("the object vanished", self.bucket.uri(src))
        keep = carry_progress(None, dropped_at) if self.keep_drop_time and dropped_at else None
        self.bucket.copy(src, dst, int(head.get("ContentLength") or 0), src_etag=head.get("ETag"),
                         metadata=keep)
        self.bucket.delete(src)
        return self.bucket.uri(dst)

    def write_sidecar(self, folder: str, path: str, data: bytes) -> bool:
        """Replace the sidecar (an S3 put replaces an object whole)."""
        key = self.prefixes[folder] + path
        if self.bucket.head(key) is None:
            return False
        self.bucket.put(key + sidecar.SUFFIX, data)
        return True

    def remove(self, folder: str, path: str) -> None:
        self.bucket.delete(self.prefixes[folder] + path)

    def _objects(self, folder: str) -> Iterator[tuple[str, dict]]:
        """(key below the folder's prefix, listing item), page by page; keys under another
        folder's prefix (when those lie inside this one, e.g. the inbox) are not this folder's."""
        prefix = self.prefixes[folder]
        others = [p for f, p in self.prefixes.items() if f != folder and p.startswith(prefix) and p]
        for page in self.bucket.pages(prefix, self.page_size):
            for obj in page:
                key = obj["Key"]
                if not any(key.startswith(p) for p in others):
                    yield key[len(prefix):], obj


def _entry(folder: str, rel: str, obj: dict) -> Entry:
    return Entry(folder, rel, int(obj.get("Size") or 0), epoch(obj.get("LastModified")))
