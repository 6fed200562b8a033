"""The DTD-free fast parse path must build exactly the tree defusedxml builds (and
fail with the same error), and must never be taken for a document that could
declare an entity."""

import glob
import os
from xml.etree.ElementTree import tostring

import defusedxml.ElementTree as safe_et
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cijobs.normalize import ForbiddenXMLError, MalformedDocumentError, normalize_document
from cijobs.normalize.parse import _dtd_free, _parse_defused, _parse_fast
from fakes import FIXTURES

WELL_FORMED = [
    p for p in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.xml"), recursive=True))
    if not os.path.basename(p).startswith(("seed-", "VideoTag.xml"))
]


def _defused(raw: bytes):
    return safe_et.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)


@pytest.mark.parametrize("path", WELL_FORMED, ids=os.path.basename)
def test_fast_path_builds_the_same_tree_as_defusedxml(path):
    raw = open(path, "rb").read()
    assert _dtd_free(raw)
    assert tostring(_parse_fast(raw, 64, 100_000)) == tostring(_defused(raw))
    assert tostring(_parse_defused(raw, 64, 100_000)) == tostring(_defused(raw))


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><Response>&a;</Response>',
        b'<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/x.dtd"><Response/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "x">]><Response>&a;</Response>'.encode(
            "utf-16"),
        b'<?xml version="1.0" encoding="latin-1"?><Response>\xe9</Response>',
    ],
)
def test_fast_path_is_not_taken_for_dtds_entities_or_other_encodings(body):
    assert not _dtd_free(body)


def test_undefined_entity_fails_on_the_fast_path_like_defusedxml():
    body = b"<Response>&undefined;</Response>"
    assert _dtd_free(body)  # no DTD: no entity can be defined, so this is just malformed
    with pytest.raises(MalformedDocumentError) as fast:
        _parse_fast(body, 64, 100_000)
    with pytest.raises(MalformedDocumentError) as defused:
        _parse_defused(body, 64, 100_000)
    assert str(fast.value) == str(defused.value) and "undefined entity" in str(fast.value)


def test_entity_documents_are_still_refused_by_defusedxml():
    with pytest.raises(ForbiddenXMLError):
        normalize_document(b'<!DOCTYPE r [<!ENTITY a "x">]><Response><JobsDetail>&a;</JobsDetail></Response>')


_names = st.sampled_from(["Response", "JobsDetail", "JobId", "State", "Operation", "X"])
_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<&\x00"), max_size=8)


@st.composite
def _docs(draw, depth=0):
    name = draw(_names)
    if depth > 3 or draw(st.booleans()):
        return f"<{name}>{draw(_texts)}</{name}>"
    children = draw(st.lists(_docs(depth=depth + 1), max_size=4))
    return f"<{name}>{''.join(children)}</{name}>"


@settings(max_examples=200, deadline=None)
@given(_docs())
def test_fast_and_defused_agree_on_generated_documents(doc):
    raw = doc.encode("utf-8")
    assert _dtd_free(raw)
    try:
        expected = tostring(_defused(raw))
    except Exception as exc:
        with pytest.raises(MalformedDocumentError) as info:
            _parse_fast(raw, 64, 100_000)
        assert (info.value.line, info.value.column - 1) == exc.position
        return
    assert tostring(_parse_fast(raw, 64, 100_000)) == expected
