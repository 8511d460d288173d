"""Unit tests for the transfer path's parts: the streaming scanner (jsonscan), the document plan
and base64 decoder (documents), and the streamed multipart body (multipart.MultipartBody)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os

import pytest
from fakes import NonSeekableStream
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import RejectedFile
from pipeline.redox.transfer import decoding, documents, jsonscan
from pipeline.redox.transfer.multipart import MultipartBody
from pipeline.sandbox.uploads import _Scanner as MultipartScanner

DEST = [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Redox EMR"}]


def media(doc: bytes, **extra) -> dict:
    message = {"Meta": {"DataModel": "Media", "EventType": "New"},
               "Media": {"FileType": "PDF", "FileName": "scan.pdf",
                         "FileContents": base64.b64encode(doc).decode()}}
    message.update(extra)
    return message


def plan_of(raw: bytes, send_limit=1000, upload_limit=10**6) -> documents.Plan:
    return documents.plan(io.BytesIO(raw), len(raw), send_limit, upload_limit, DEST)


# -- jsonscan ------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_scan_sets_aside_only_the_chosen_strings_whatever_the_chunk_size(chunk):
    doc = {"a": "x\\\"y", "Media": {"FileContents": "QUJD\\/", "FileName": "n"},
           "list": [1, 2.5e3, True, None, {"Media": "no"}], "k\u00e9y": "v\u00e9"}
    raw = json.dumps(doc, indent=1, ensure_ascii=False).encode()
    skeleton = jsonscan.scan(io.BytesIO(raw), lambda p: p == ("Media", "FileContents"), 10**6, chunk)
    assert [s.path for s in skeleton.spans] == [("Media", "FileContents")]
    span = skeleton.spans[0]
    assert raw[span.start:span.end] == json.dumps("QUJD\\/").encode()[1:-1]
    parsed = json.loads(skeleton.text)
    assert parsed["Media"]["FileContents"] == span.placeholder
    parsed["Media"]["FileContents"] = doc["Media"]["FileContents"]
    assert parsed == doc
    assert skeleton.size == len(skeleton.text)


def test_scan_tracks_array_indexes_for_results_values():
    doc = {"Orders": [{"Results": [{"Value": "1"}, {"Value": "2"}]},
                      {"Results": [{"Value": "3", "Other": ["x"]}]}]}
    skeleton = jsonscan.scan(io.BytesIO(json.dumps(doc).encode()), documents.is_candidate, 10**6)
    assert [s.path for s in skeleton.spans] == [("Orders", 0, "Results", 0, "Value"),
                                                ("Orders", 0, "Results", 1, "Value"),
                                                ("Orders", 1, "Results", 0, "Value")]
    assert documents.field_name(skeleton.spans[1].path) == "Orders[0].Results[1].Value"


def test_scan_stops_keeping_the_skeleton_over_the_cap_but_still_measures_it():
    raw = json.dumps({"big": "x" * 5000, "Media": {"FileContents": "QUJD"}}, separators=(",", ":")).encode()
    skeleton = jsonscan.scan(io.BytesIO(raw), documents.is_candidate, 1000, chunk=512)
    assert skeleton.text is None and len(skeleton.spans) == 1
    # the string and its quotes give way to the placeholder
    assert skeleton.size == len(raw) - len('"QUJD"') + len(json.dumps(skeleton.spans[0].placeholder))


def test_scan_refuses_a_file_ending_inside_a_string_and_absurd_nesting():
    with pytest.raises(RejectedFile, match="truncated JSON"):
        jsonscan.scan(io.BytesIO(b'{"Media": {"FileContents": "QUJD'), documents.is_candidate, 99)
    with pytest.raises(RejectedFile, match="nested deeper"):
        jsonscan.scan(io.BytesIO(b"[" * 10_000), documents.is_candidate, 99)


@given(payload=st.binary(max_size=300), chunk=st.integers(1, 40),
       slash=st.booleans(), wrap=st.integers(0, 20))
@settings(max_examples=200, deadline=None)
def test_read_span_and_decode_undo_escapes_across_any_chunk_boundary(payload, chunk, slash, wrap):
    text = base64.b64encode(payload).decode()
    if wrap:   # MIME-style line breaks, escaped as \r\n inside the JSON string
        text = "\r\n".join(text[i:i + wrap * 4] for i in range(0, len(text), wrap * 4))
    encoded = json.dumps(text)
    if slash:
        encoded = encoded.replace("/", "\\/")
    raw = ('{"Media": {"FileContents": ' + encoded + "}}").encode()
    span = jsonscan.scan(io.BytesIO(raw), documents.is_candidate, 10**6, chunk).spans[0]
    assert b"".join(jsonscan.read_span(io.BytesIO(raw), span, chunk)) == text.encode()
    out = bytearray()
    size, sha = decoding.decode(io.BytesIO(raw), span, "Media.FileContents", 10**6, out.extend)
    assert bytes(out) == payload and size == len(payload)
    assert sha == hashlib.sha256(payload).hexdigest()


# -- documents.plan ------------------------------------------------------------------------------
def test_plan_finds_each_kind_of_document_by_its_companion_field():
    pdf = os.urandom(3000)
    encoded = base64.b64encode(pdf).decode()
    message = media(pdf)
    message["Note"] = {"ContentType": "Base64 Encoded", "FileContents": encoded, "FileName": "n.pdf"}
    message["Orders"] = [{"Results": [{"Value": "7", "ValueType": "Numeric"},
                                      {"Value": encoded, "ValueType": "Encapsulated Data"},
                                      {"Value": encoded, "ValueType": "String"}]}]
    plan = plan_of(json.dumps(message).encode(), send_limit=6000)
    assert [d.field for d in plan.documents] == ["Media.FileContents", "Note.FileContents",
                                                 "Orders[0].Results[1].Value"]
    assert all(d.size == 3000 and d.sha256 == hashlib.sha256(pdf).hexdigest() for d in plan.documents)
    assert [d.filename for d in plan.documents] == ["scan.pdf", "n.pdf", ""]
    body = json.loads(documents.body(plan, ["u1", "u2", "u3"]))
    assert body["Media"] == {"FileType": "PDF", "FileName": "scan.pdf", "FileContents": "u1"}
    assert body["Note"] == {"ContentType": documents.URI_CONTENT_TYPE, "FileContents": "u2",
                            "FileName": "n.pdf"}
    results = body["Orders"][0]["Results"]
    assert results[1] == {"Value": "u3", "ValueType": "Encapsulated Data"}
    assert results[2]["Value"] == encoded        # not a document: travels as it was
    assert body["Meta"]["Destinations"] == DEST


def test_plan_leaves_a_value_that_is_already_a_uri_alone():
    message = media(b"x" * 3000)
    message["Orders"] = [{"Results": [{"Value": "https://blob.redoxengine.com/abc",
                                       "ValueType": "Encapsulated Data"}]}]
    plan = plan_of(json.dumps(message).encode())
    assert [d.field for d in plan.documents] == ["Media.FileContents"]


REFUSALS = {
    "no document": (json.dumps({"Meta": {"DataModel": "Media", "EventType": "New"},
                                "Patient": {"Notes": "x" * 3000}}), "no embedded document"),
    "plain text note": (json.dumps({"Meta": {"DataModel": "Notes", "EventType": "New"},
                                    "Note": {"ContentType": "Plain Text", "FileContents": "x" * 3000}}),
                        "no embedded document"),
    "over upload limit": (json.dumps(media(b"y" * 5000)), "over the upload limit of 4000 bytes"),
    "not base64": (json.dumps(media(b"z" * 3000)).replace('"FileContents": "', '"FileContents": "!'),
                   "Media.FileContents is not valid base64"),
    "data after padding": (json.dumps(media(b"z" * 3001)).replace('=="', '==QUJD"'),
                           "Media.FileContents is not valid base64 ("),
    "still over": (json.dumps(media(b"w" * 3000, Filler="f" * 1500)), "still be about"),
    "meta": (json.dumps(media(b"v" * 3000, Meta={"DataModel": "Media"})), "Meta.EventType"),
    "duplicate document": ('{"Meta": {"DataModel": "Media", "EventType": "New"}, "Media": '
                           '{"FileContents": "' + "QUJD" * 500 + '", "FileContents": "QUJD"}}',
                           "duplicate key"),
    "not json": ('{"Media": {"FileContents": "' + "QUJD" * 500 + '"}, oops}', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_plan_refuses_what_cannot_travel_with_a_precise_reason(case):
    raw, reason = REFUSALS[case]
    with pytest.raises(RejectedFile) as caught:
        plan_of(raw.encode(), send_limit=1000, upload_limit=4000)
    assert reason in caught.value.reason


def test_decode_tolerates_missing_padding_and_refuses_a_broken_length():
    for payload in (b"a", b"ab", b"abc", b"abcd"):
        text = base64.b64encode(payload).rstrip(b"=")
        raw = b'{"Media": {"FileContents": "' + text + b'"}}'
        span = jsonscan.scan(io.BytesIO(raw), documents.is_candidate, 999).spans[0]
        out = bytearray()
        decoding.decode(io.BytesIO(raw), span, "f", 99, out.extend)
        assert bytes(out) == payload
    raw = b'{"Media": {"FileContents": "QUJDR"}}'
    span = jsonscan.scan(io.BytesIO(raw), documents.is_candidate, 999).spans[0]
    with pytest.raises(RejectedFile, match="not valid base64"):
        decoding.decode(io.BytesIO(raw), span, "f", 99)


# -- multipart.MultipartBody -----------------------------------------------------------------------
@pytest.mark.parametrize("block", [1, 100, 1 << 16, -1])
def test_multipart_body_is_what_a_multipart_parser_reads_back(block):
    payload = os.urandom(200_000)
    document = io.BytesIO(payload)
    document.seek(123)                           # the body always starts from the beginning
    body = MultipartBody(document, 'we"ird\r\nname.pdf')
    data = bytearray()
    while chunk := body.read(block):
        data += chunk
        if block < 0:
            break
    assert len(data) == len(body)
    assert b'filename="weirdname.pdf"' in data
    scanner = MultipartScanner(body.content_type.split("boundary=")[1].encode(), 10**6)
    scanner.feed(bytes(data))
    part = scanner.finish()
    assert part.size == len(payload) and part.sha256 == hashlib.sha256(payload).hexdigest()


# -- transfer: a store whose files cannot seek (an S3 body) --------------------------------------
def test_transfer_spools_a_stream_that_cannot_seek_before_scanning_it():
    from pipeline.redox.transfer.upload import Transfer
    stream = NonSeekableStream(b"abc" * 1000)
    assert not stream.seekable()
    with Transfer(None, None, None, DEST, 1000, 1000)._seekable(stream) as handle:
        assert handle.seekable()
        handle.seek(2997)
        assert handle.read() == b"abc"
