"""Files are sent as they were dropped: the SEND body is the file's own text with only
``Meta.Destinations`` changed. No number is rounded or rewritten (``0.12345678901234567890123``,
``1e-400``, ``-0``, ``1E+2``, 64-digit integers), no string is re-escaped, no key moves.

The property: for any valid message (numbers, escapes, key order, whitespace, where Meta and its
Destinations are all generated), the body is byte for byte the text expected, equal to the
original parsed with Decimal once Destinations is set, and has the same number texts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_env import DESTINATION, PipelineEnv

from pipeline import message
from pipeline.errors import RejectedFile
from pipeline.redox.transfer import documents

DEST = [DESTINATION]
DEST_TEXT = json.dumps(DEST, separators=(",", ":"), ensure_ascii=False)
settings.register_profile("fidelity", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])

# a JSON number token, or a string token (escapes and all)
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?')


def numbers_in(text: str) -> list[str]:
    return [t for t in TOKEN.findall(text) if not t.startswith('"')]


def decimal_tree(text: str | bytes):
    """Parsed with every number exact, every object as its ordered list of members."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=list)


def with_destinations(tree: list) -> list:
    """The expected tree: Meta's Destinations replaced where it is, else added last."""
    out = []
    for key, value in tree:
        if key == "Meta":
            members = [(k, v) for k, v in value]
            dest = decimal_tree(DEST_TEXT)
            if any(k == "Destinations" for k, _ in members):
                members = [(k, dest if k == "Destinations" else v) for k, v in members]
            else:
                members.append(("Destinations", dest))
            value = members
        out.append((key, value))
    return out


# -- generated messages, as text -------------------------------------------------------------------

SPACE = st.sampled_from(["", " ", "\n", "\n    ", "\t", " \r\n "])
NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,3})?",
                       fullmatch=True).filter(lambda t: len(t) <= 64 and math.isfinite(float(t)))
PLAIN = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def string_text(draw, value=None) -> str:
    """A JSON string token for ``value`` (drawn when None), escaped in one of several ways."""
    value = draw(PLAIN) if value is None else value
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace("/", "\\/")
    if draw(st.booleans()) and value[:1].isascii() and value[:1].isalpha():
        text = '"\\u%04x' % ord(value[0]) + text[2:]      # the first letter as a \u escape
    return text


def values(depth: int = 2):
    scalars = NUMBER | string_text() | st.sampled_from(["true", "false", "null"])
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return scalars | st.lists(inner, max_size=4).flatmap(
        lambda items: SPACE.map(lambda s: "[" + s + ("," + s).join(items) + s + "]")
    ) | objects(inner)


def objects(inner):
    @st.composite
    def build(draw):
        keys = draw(st.lists(PLAIN, unique=True, max_size=4))
        members = [draw(string_text(k)) + draw(SPACE) + ":" + draw(SPACE) + draw(inner) for k in keys]
        s = draw(SPACE)
        return "{" + s + ("," + s).join(members) + s + "}"
    return build()


@st.composite
def messages(draw) -> tuple[bytes, str]:
    """(a valid Redox message as dropped, the body it must be sent as)."""
    names = st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,20}", fullmatch=True)
    meta = [("DataModel", draw(string_text(draw(names)))), ("EventType", draw(string_text(draw(names))))]
    extra = draw(st.lists(PLAIN.filter(lambda k: k not in ("DataModel", "EventType", "Destinations")),
                          unique=True, max_size=3))
    meta += [(k, draw(values(1))) for k in extra]
    has_dest = draw(st.booleans())
    if has_dest:      # any old value, no number in it (so number texts compare one to one)
        meta.append(("Destinations", draw(st.sampled_from(['[]', 'null', '"x"', '[{"ID": "old"}]']))))
    meta = draw(st.permutations(meta))
    sp, inner = draw(SPACE), draw(SPACE)

    def meta_text(replace: bool) -> str:
        members = [draw_key(k) + ":" + inner + (DEST_TEXT if replace and k == "Destinations" else v)
                   for k, v in meta]
        joined = ("," + sp).join(members)
        if not has_dest and replace:
            joined += ',"Destinations":' + DEST_TEXT       # added after Meta's last member
        return "{" + sp + joined + sp + "}"

    key_texts = {k: draw(string_text(k)) for k, _ in meta}
    draw_key = key_texts.__getitem__
    others = draw(st.lists(PLAIN.filter(lambda k: k != "Meta"), unique=True, max_size=4))
    top = [(draw(string_text(k)), draw(values())) for k in others]
    at = draw(st.integers(0, len(top)))
    meta_key = draw(string_text("Meta"))

    def whole(replace: bool) -> str:
        members = [k + ":" + v for k, v in top]
        members.insert(at, meta_key + sp + ":" + meta_text(replace))
        return sp + "{" + sp + ("," + sp).join(members) + sp + "}" + sp

    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + whole(False).encode("utf-8"), whole(True)


@settings(settings.get_profile("fidelity"))
@given(case=messages())
def test_any_message_is_sent_as_dropped_but_for_its_destinations(case):
    raw, expected = case
    body = message.check(raw, DEST).body
    assert body == expected.encode("utf-8")
    original = raw.removeprefix(b"\xef\xbb\xbf")
    assert decimal_tree(body) == with_destinations(decimal_tree(original))
    assert numbers_in(body.decode()) == numbers_in(original.decode())


# -- the cases that used to change --------------------------------------------------------------

META = '"Meta": {"DataModel": "Results", "EventType": "New"}'


@pytest.mark.parametrize("literal", [
    "0.12345678901234567890123", "1e-400", "-0", "-0.0", "1E+2", "1.0", "100e-2", "1.5E300",
    "9" * 64, "-" + "9" * 63, "123456789012345678901234567890.123456789012345678901234567890",
])
def test_numbers_keep_their_text(literal):
    raw = ('{' + META + ', "Value": ' + literal + '}').encode()
    body = message.check(raw, DEST).body.decode()
    assert numbers_in(body) == [literal]
    assert body == '{"Meta": {"DataModel": "Results", "EventType": "New","Destinations":' + \
        DEST_TEXT + '}, "Value": ' + literal + '}'


def test_escapes_unicode_order_and_an_old_destinations_value():
    raw = ('{"Z": "caf\\u00e9 \\/ \\ud83d\\ude00 \\t", "Meta": {"Destinations": [1, 2.50], '
           '"EventType": "New", "DataModel": "Results"}, "a": "é", "A": [1E2, -0]}').encode()
    body = message.check(raw, DEST).body
    assert body == raw.replace(b"[1, 2.50]", DEST_TEXT.encode())


def test_the_strict_checks_still_hold():
    for bad, reason in ((f'{{{META}, "x": 1e400}}', "too large for a double"),
                        (f'{{{META}, "x": {"9" * 65}}}', "65 digits long"),
                        (f'{{{META}, "x": NaN}}', "NaN"),
                        (f'{{{META}, "x": 1, "x": 2}}', "duplicate key"),
                        (f'{{{META}, "x": "\\ud800"}}', "unpaired UTF-16 surrogate"),
                        (f'{{{META}, "x": ' + "[" * 64 + "]" * 64 + "}", "nested deeper")):
        with pytest.raises(RejectedFile, match=reason):
            message.check(bad.encode(), DEST)


# -- the transfer path: the small message is the file's text too --------------------------------

def test_the_transferred_message_keeps_every_value_but_its_documents():
    document = base64.b64encode(os.urandom(3000)).decode()
    raw = ('{"Meta": {"DataModel": "Results", "EventType": "New"}, "Orders": [{"Results": ['
           '{"Value": 0.12345678901234567890123, "Units": "caf\\u00e9"}, '
           '{"Value": "' + document + '", "ValueType": "Encapsulated Data", "Ref": 1E+2}, '
           '{"Value": "plain \\/ text", "ValueType": "String"}]}], "Big": ' + "9" * 60 + '}').encode()
    plan = documents.plan(io.BytesIO(raw), len(raw), 1000, 10**6, DEST)
    body = documents.body(plan, ["https://blob.example/u1"]).decode()
    assert numbers_in(body) == ["0.12345678901234567890123", "1E+2", "9" * 60]
    assert '"caf\\u00e9"' in body and '"plain \\/ text"' in body
    expected = decimal_tree(raw.replace(document.encode(), b"https://blob.example/u1"))
    assert decimal_tree(body) == with_destinations(expected)


# -- end to end: a file that names the configured destinations already is its own body ----------

def test_the_sandbox_receives_the_file_byte_for_byte(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    raw = ('{"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Destinations": '
           + DEST_TEXT + '},\n  "_test_marker": "exact", "Weight": 70.12345678901234567890123,'
           ' "Note": "caf\\u00e9 \\/"}\n').encode()
    env.drop("exact.json", raw)
    result = env.run("run", "--once")
    assert result.returncode == 0, result.stderr
    [send] = sandbox.records()["sends"]
    assert send["status"] == 200 and send["body_sha256"] == hashlib.sha256(raw).hexdigest()
