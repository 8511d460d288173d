"""documents: a large message's embedded documents, and whether the message can travel.

Redox's Transferring Files path knows three places a Redox message carries a file:
``Media.FileContents``, ``Note.FileContents`` (with ``Note.ContentType: "Base64 Encoded"``) and
``Orders[].Results[].Value`` (with ``ValueType: "Encapsulated Data"``). :func:`plan` scans a
file over the send limit (jsonscan: those strings are set aside, never held whole), checks the
rest as strictly as message.check does, and measures and hashes every document by decoding it
once without keeping it. Everything that would stop the file is found here, before anything is
uploaded: no embedded document, a document over the upload limit, base64 that does not decode,
a message still over the send limit once its documents are URIs. decoding.decode streams one
document's bytes to a sink; :func:`body` puts the URIs in and builds the small message.

The small message is the file's own text (jsonsplice), with only the documents replaced by
their URIs, a referenced Note's ContentType and ``Meta.Destinations`` changed: numbers, string
escapes and key order reach Redox as they were dropped (whitespace between tokens is reduced
to line breaks by the scan).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import BinaryIO, Iterator

from pipeline import jsonsplice, message
from pipeline.errors import RejectedFile
from pipeline.redox.transfer import jsonscan
from pipeline.redox.transfer.decoding import decode
from pipeline.redox.transfer.jsonscan import Span

WHERE = ('Media.FileContents, Note.FileContents with ContentType "Base64 Encoded", or '
         'Orders[].Results[].Value with ValueType "Encapsulated Data"')
# What Note.ContentType says for a referenced URI: "Plain Text", as public clients set it (not
# confirmed by Redox). One constant, so it is one line to change.
URI_CONTENT_TYPE = "Plain Text"
# Room allowed for each URI when checking the size before uploading (Redox's are ~60 bytes);
# the exact size is checked again once the URIs are known.
URI_ALLOWANCE = 512


@dataclass(frozen=True)
class Document:
    """One embedded document: where it is, and its decoded size and sha256."""
    span: Span
    field: str            # e.g. "Media.FileContents" or "Orders[0].Results[1].Value"
    filename: str         # FileName beside it, for the upload's part header ("" when none)
    size: int
    sha256: str


@dataclass
class Plan:
    """A message that can travel once its documents are uploaded. ``text`` is the scan's
    skeleton (a placeholder where each set-aside string was); ``edits`` what every body built
    from it changes besides the documents: Meta.Destinations, a referenced Note's ContentType,
    and the set-aside strings that are not documents, put back as the file wrote them."""
    text: str
    data_model: str
    event_type: str
    documents: list[Document]
    send_limit: int
    edits: list[jsonsplice.Edit]
    destinations: int = 0       # how many Meta.Destinations the body names (0: not known)


def is_candidate(path: tuple) -> bool:
    """A string at one of the three places a document can be (its companions decide later)."""
    if path in (("Media", "FileContents"), ("Note", "FileContents")):
        return True
    return (len(path) == 5 and path[0] == "Orders" and isinstance(path[1], int)
            and path[2] == "Results" and isinstance(path[3], int) and path[4] == "Value")


def field_name(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                   for i, p in enumerate(path))


def plan(handle: BinaryIO, size: int, send_limit: int, upload_limit: int,
         destinations: message.Destinations) -> Plan:
    """Check the file in ``handle`` (``size`` bytes) for the Transferring Files path: the
    caller found it, or its message with Meta.Destinations set, over ``send_limit``. Raises
    RejectedFile with the reason when it cannot travel.

    A chooser (``destinations`` callable) is called once with the parsed message as dropped,
    before anything is measured or uploaded: the strings that are not documents in place, each
    document a placeholder string, or its text when the chooser's ``wants_text(data_model,
    event_type, path)`` says so (flow/check.py's Screen checks the message against its schema
    there: a placeholder is a string like the text, enough for every rule but a few)."""
    skeleton = jsonscan.scan(handle, is_candidate, send_limit)
    if skeleton.text is None:
        if not skeleton.spans:
            raise _no_document(size, send_limit)
        raise _still_over(skeleton.size, send_limit)
    text = message.decode(skeleton.text)
    doc = message.parse_text(text)
    data_model, event_type = message.describe(doc)
    found = [(span, _container(doc, span)) for span in skeleton.spans]
    chosen = [_is_document(handle, span, container) for span, container in found]
    documents = [pair for pair, is_doc in zip(found, chosen) if is_doc]
    if not documents:
        raise _no_document(size, send_limit)
    others = [pair for pair, is_doc in zip(found, chosen) if not is_doc]
    edits, values = _restore(handle, text, [span for span, _ in others], skeleton.size, send_limit)
    # routed (and checked) before anything is measured or uploaded, on the message as dropped
    with _in_place(handle, data_model, event_type, destinations, documents, others, values):
        chosen_destinations = list(message.chosen(doc, destinations))
    edits.append(message.destinations_edit(text, doc, chosen_destinations))
    if any(span.path == ("Note", "FileContents") for span, _ in documents):
        edits.append(jsonsplice.replace_member(text, ("Note",), "ContentType",
                                               encode_basestring(URI_CONTENT_TYPE)))
    _check_estimate(text, edits, [span for span, _ in documents], send_limit)
    measured = [_measure(handle, span, container, upload_limit) for span, container in documents]
    return Plan(text, data_model, event_type, measured, send_limit, edits,
                max(1, len(chosen_destinations)))


def body(plan: Plan, uris: list[str]) -> bytes:
    """The small message: each document's placeholder replaced by its URI (same order), and
    the plan's edits made. Raises RejectedFile when it is still too large."""
    data = _build(plan.text, plan.edits, [d.span for d in plan.documents], uris)
    if len(data) > plan.send_limit:
        raise _still_over(len(data), plan.send_limit)
    return data


def _build(text: str, edits: list[jsonsplice.Edit], spans: list[Span], uris: list[str]) -> bytes:
    """``text`` with ``edits`` made and each span's placeholder replaced by its URI."""
    uri_edits = [_placeholder(text, span, encode_basestring(uri))
                 for span, uri in zip(spans, uris, strict=True)]
    return jsonsplice.apply(text, edits + uri_edits).encode("utf-8")


# -- plan's steps -------------------------------------------------------------------------------
def _container(doc: dict, span: Span):
    """The object holding the span's placeholder (checked, so scanner and parser agree)."""
    node = doc
    for step in span.path[:-1]:
        node = node[step] if isinstance(node, (dict, list)) else None
    if not isinstance(node, dict) or node.get(span.path[-1]) != span.placeholder:
        raise RejectedFile(f"could not locate {field_name(span.path)} in the message", "invalid")
    return node


def _is_document(handle: BinaryIO, span: Span, container: dict) -> bool:
    """Does this string hold a file to upload? Its companion field says so;
    an empty string, or a value that is already a URI, is left as it is."""
    if span.path == ("Note", "FileContents") and container.get("ContentType") != "Base64 Encoded":
        return False
    if span.path[0] == "Orders" and container.get("ValueType") != "Encapsulated Data":
        return False
    handle.seek(span.start)
    head = handle.read(min(span.length, 8))
    return bool(head) and not head.lower().startswith((b"http:", b"https:"))


def _placeholder(text: str, span: Span, replacement: str) -> jsonsplice.Edit:
    """The edit replacing ``span``'s placeholder (a string value of the skeleton)."""
    quoted = json.dumps(span.placeholder)
    at = text.find(quoted)
    if at < 0:
        raise RejectedFile(f"could not locate {field_name(span.path)} in the message", "invalid")
    return jsonsplice.Edit(at, at + len(quoted), replacement)


def _restore(handle: BinaryIO, text: str, others: list[Span], skeleton_size: int,
             send_limit: int) -> tuple[list[jsonsplice.Edit], list[str]]:
    """The edits that put back the set-aside strings that are not documents (they travel in
    the message, as the file wrote them), and their values; refused first, unread, when they
    alone would take the message over the limit."""
    size = skeleton_size + sum(span.length for span in others)
    if size > send_limit:
        raise _still_over(size, send_limit)
    edits, values = [], []
    for span in others:
        content, value = _string_text(handle, span)
        edits.append(_placeholder(text, span, '"' + content + '"'))
        values.append(value)
    return edits, values


def _string_text(handle: BinaryIO, span: Span) -> tuple[str, str]:
    """A set-aside string's content as the file wrote it (escapes kept), once checked as
    strictly as message.parse checks strings, and its value."""
    handle.seek(span.start)
    raw = handle.read(span.length)
    try:
        content = raw.decode("utf-8")
        value = json.loads('"' + content + '"')
        value.encode("utf-8")                               # a lone surrogate is not text
    except (ValueError, UnicodeEncodeError):
        raise RejectedFile(f"not valid JSON (the string in {field_name(span.path)})",
                           "invalid") from None
    return content, value


@contextlib.contextmanager
def _in_place(handle: BinaryIO, data_model: str, event_type: str,
              destinations: message.Destinations, documents: list[tuple[Span, dict]],
              others: list[tuple[Span, dict]], values: list[str]) -> Iterator[None]:
    """The parsed skeleton as the message was dropped, while the chooser looks at it: the
    strings that are not documents put back, and the text of each document the chooser asks
    for (``wants_text``); the documents' placeholders come back afterwards (the text of a
    large document is not kept)."""
    for (span, container), value in zip(others, values):
        container[span.path[-1]] = value
    wants = getattr(destinations, "wants_text", None)
    read = [(span, container) for span, container in documents
            if wants is not None and wants(data_model, event_type, span.path)]
    try:
        for span, container in read:
            container[span.path[-1]] = _document_text(handle, span)
        yield
    finally:
        for span, container in read:
            container[span.path[-1]] = span.placeholder


def _document_text(handle: BinaryIO, span: Span) -> str:
    """A document's whole text (for a schema rule that reads it): memory for its size."""
    try:
        return b"".join(jsonscan.read_span(handle, span)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise RejectedFile(f"not valid JSON (the string in {field_name(span.path)})",
                           "invalid") from None


def _check_estimate(text: str, edits: list[jsonsplice.Edit], spans: list[Span],
                    send_limit: int) -> None:
    """Refuse before measuring or uploading anything when the message would be over the limit
    even with URIs of URI_ALLOWANCE bytes (Redox's are about 60); body() checks the exact size."""
    size = len(_build(text, edits, spans, [""] * len(spans))) + URI_ALLOWANCE * len(spans)
    if size > send_limit:
        raise _still_over(size, send_limit)


def _measure(handle: BinaryIO, span: Span, container: dict, upload_limit: int) -> Document:
    field = field_name(span.path)
    size, sha256 = decode(handle, span, field, upload_limit)
    filename = container.get("FileName")
    return Document(span, field, filename if isinstance(filename, str) else "", size, sha256)


def _no_document(size: int, send_limit: int) -> RejectedFile:
    if size > send_limit:
        what = f"file is {size} bytes, over the send limit of {send_limit} bytes,"
    else:
        what = (f"message is over the send limit of {send_limit} bytes once Meta.Destinations "
                f"is set (the file is {size} bytes),")
    return RejectedFile(f"{what} and has no embedded document to upload ({WHERE})", "too_large")


def _still_over(size: int, send_limit: int) -> RejectedFile:
    return RejectedFile(f"the message would still be about {size} bytes with its embedded "
                        f"documents replaced by URIs, over the send limit of {send_limit} bytes",
                        "too_large")
