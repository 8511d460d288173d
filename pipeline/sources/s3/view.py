"""The operator's read view of an S3 source (status, report): the folders.py seam over keys.

The inbox is ``source.prefix`` (keys the pipeline would take, as the S3 store decides: its
``is_ours`` rule, nothing under the folder prefixes); processing/, done/ and failed/ are the
``folders`` prefixes in the same bucket. Listing is paginated like the store's; nothing is
written, except by retry-failed's moves back into the inbox.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Optional

from pipeline.errors import ClaimLost
from pipeline.jsondoc import parse_object
from pipeline.sidecar import SUFFIX as SIDECAR_SUFFIX
from pipeline.sources.local.view import SIDECAR_LIMIT, Entry
from pipeline.sources.s3.api import Bucket, epoch
from pipeline.sources.s3.store import folder_prefix, is_ours


class S3Folders:
    """The inbox and output prefixes of ``settings`` (source.kind s3), read-only."""

    kind = "s3"

    def __init__(self, settings, bucket: Optional[Bucket] = None):
        src, folders = settings.source, settings.folders
        self.bucket = bucket or Bucket(src.bucket, endpoint_url=src.endpoint_url, region=src.region)
        self.pattern, self.page_size = src.pattern, src.page_size
        self.prefixes = {"inbox": folder_prefix(src.prefix),
                         "processing": folder_prefix(folders.processing),
                         "done": folder_prefix(folders.done), "failed": folder_prefix(folders.failed)}

    def where(self, folder: str, path: str = "") -> str:
        return self.bucket.uri(self.prefixes[folder] + path)

    def entries(self, folder: str) -> Iterator[Entry]:
        """Every message file in ``folder`` (keys below its prefix; no sidecars, nothing under
        a hidden folder such as processing/.leases/)."""
        for rel, obj in self._objects(folder):
            if folder == "inbox":
                if is_ours(rel, self.pattern):
                    yield _entry(folder, rel, obj)
            elif not rel.endswith(SIDECAR_SUFFIX) and _visible(rel):
                yield _entry(folder, rel, obj)

    def sidecars(self, folder: str) -> Iterator[Entry]:
        for rel, obj in self._objects(folder):
            if rel.endswith(SIDECAR_SUFFIX) and _visible(rel):
                yield _entry(folder, rel, obj)

    def read_sidecar(self, folder: str, path: str) -> Optional[dict]:
        """The sidecar of the file at ``path`` (or the sidecar at ``path``), or None."""
        if not path.endswith(SIDECAR_SUFFIX):
            path += SIDECAR_SUFFIX
        found = self.bucket.get_with_etag(self.prefixes[folder] + path, SIDECAR_LIMIT)
        return parse_object(found[0]) if found else None

    # -- the few writes retry-failed needs ----------------------------------------------------
    def sha256(self, entry: Entry) -> str:
        """The sha256 of the object's bytes, streamed (never the whole object in memory)."""
        with self.bucket.open(self.prefixes[entry.folder] + entry.path) as handle:   # streamed, never whole in memory
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def inbox_name(self, entry: Entry) -> str:
        """The key below the prefix is kept all the way (``failed/a/b.json`` → ``incoming/a/b.json``)."""
        return entry.path

    def inbox_has(self, name: str) -> bool:
        return self.bucket.head(self.prefixes["inbox"] + name) is not None

    def move_to_inbox(self, entry: Entry, name: str) -> str:
        """Copy the object back under the inbox prefix (a new object: to the pipeline it is a
        fresh drop), then delete it from failed/. FileExistsError when the name is taken
        (checked just before the copy: S3 offers no create-only copy to close that gap)."""
        src, dst = self.prefixes[entry.folder] + entry.path, self.prefixes["inbox"] + name
        if self.bucket.head(dst) is not None:
            raise FileExistsError(self.bucket.uri(dst))
        head = self.bucket.head(src)
        if head is None:
            raise ClaimLost("the object vanished", self.bucket.uri(src))
        self.bucket.copy(src, dst, int(head.get("ContentLength") or 0), src_etag=head.get("ETag"))
        self.bucket.delete(src)
        return self.bucket.uri(dst)

    def remove_sidecar(self, entry: Entry) -> None:
        self.bucket.delete(self.prefixes[entry.folder] + entry.path + SIDECAR_SUFFIX)

    def _objects(self, folder: str) -> Iterator[tuple[str, dict]]:
        """(key below the folder's prefix, listing item), page by page; for the inbox, keys
        under any folder prefix (when those lie inside source.prefix) are not its own."""
        prefix = self.prefixes[folder]
        others = [p for f, p in self.prefixes.items() if f != folder and p.startswith(prefix)]
        for page in self.bucket.pages(prefix, self.page_size):
            for obj in page:
                key = obj["Key"]
                if not any(key.startswith(p) for p in others if p):
                    yield key[len(prefix):], obj


def _visible(rel: str) -> bool:
    return bool(rel) and not any(part.startswith(".") for part in rel.split("/"))


def _entry(folder: str, rel: str, obj: dict) -> Entry:
    return Entry(folder, rel, int(obj.get("Size") or 0), epoch(obj.get("LastModified")))


class S3DoneFolder:
    """``folders.done`` in the bucket, as delivery confirmation sees it (donefolder.py's seam).

    A ref is the key below the done prefix; only files with their sidecar beside them count
    (finish writes the sidecar first, so a lone sidecar is a finish in progress).
    """

    def __init__(self, view: S3Folders):
        self.view = view

    def refs(self) -> Iterator[str]:
        files, cars = set(), set()
        for rel, _ in self.view._objects("done"):
            if _visible(rel):
                (cars if rel.endswith(SIDECAR_SUFFIX) else files).add(rel)
        yield from sorted(f for f in files if f + SIDECAR_SUFFIX in cars)

    def where(self, ref: str) -> str:
        return self.view.where("done", ref)

    def read_sidecar(self, ref: str) -> Optional[dict]:
        return self.view.read_sidecar("done", ref)

    def write_sidecar(self, ref: str, data: bytes) -> bool:
        """Replace the sidecar (an S3 put replaces an object whole); False when the file it
        describes is no longer there."""
        key = self.view.prefixes["done"] + ref
        if self.view.bucket.head(key) is None:
            return False
        self.view.bucket.put(key + SIDECAR_SUFFIX, data)
        return True
