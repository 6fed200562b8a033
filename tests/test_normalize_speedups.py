"""The normalizer's shortcuts give exactly what the general path gives.

* documents without any ``=`` are walked without testing elements for attributes;
* typed leaves go through per-kind converters that answer the common cases inline.
"""

import glob
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cijobs.normalize import normalize_document
from cijobs.normalize.parse import parse_xml
from cijobs.normalize.scalars import FLOAT, INT, TIMESTAMP, convert, converter, parse_timestamp
from cijobs.normalize.walk import xml_document_value
from fakes import FIXTURES


def _attribute_free_job_documents() -> list[str]:
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.xml"), recursive=True)):
        if os.path.basename(path).startswith(("seed-", "VideoTag.xml")):
            continue  # the malformed doc samples (covered by the repair tests)
        raw = open(path, "rb").read()
        if b"=" not in raw and parse_xml(raw).tag == "Response":
            out.append(path)
    return out


ATTRIBUTE_FREE = _attribute_free_job_documents()


def test_most_fixtures_take_the_attribute_free_walk():
    assert len(ATTRIBUTE_FREE) >= 20


@pytest.mark.parametrize("path", ATTRIBUTE_FREE, ids=os.path.basename)
def test_attribute_free_walk_equals_the_general_walk(path):
    root = parse_xml(open(path, "rb").read())
    assert xml_document_value(root, 64, attributes=False) == xml_document_value(root, 64, attributes=True)


def test_documents_with_attributes_keep_them():
    doc = normalize_document(
        b'<Response><JobsDetail kind="x"><JobId lang="en">j1</JobId><Operation><Output a="1">'
        b'<Object>o</Object></Output></Operation></JobsDetail></Response>')
    job = doc["JobsDetail"][0]
    assert job["@kind"] == "x"
    assert job["JobId"] == {"@lang": "en", "#text": "j1"}
    assert job["Operation"]["Output"]["@a"] == "1"


def test_an_attribute_free_document_with_text_in_a_container_keeps_the_text():
    doc = normalize_document(b"<Response><JobsDetail>stray<JobId>j1</JobId></JobsDetail></Response>")
    assert doc["JobsDetail"][0] == {"#text": "stray", "JobId": "j1"}


_numberish = st.one_of(
    st.from_regex(r"[+-]?[0-9]{0,30}(\.[0-9]{0,10})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.text(alphabet="0123456789.٣-e", max_size=12),
    st.sampled_from(["", "-", "nan", "inf", "1" * 5000, "9" * 400 + ".0", "٣", "1_0", " 1"]),
)
_timestampish = st.one_of(
    st.sampled_from(["-", "", "2022-06-27T15:23:12+0800", "2022-08-09 14:54:17+08:00", "2022-13-45T99:00:00Z"]),
    st.from_regex(r"20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
                  r"([+-][01][0-9]:?[0-5][0-9]|Z)", fullmatch=True),
)


@settings(max_examples=400, deadline=None)
@given(text=_numberish, kind=st.sampled_from([INT, FLOAT]))
def test_number_converters_agree_with_convert(text, kind):
    fast_reports: list[tuple[str, str, object]] = []
    general_reports: list[tuple[str, str, object]] = []
    fast = converter(kind)(text, "P", lambda *a: fast_reports.append(a))
    general = convert(kind, text, "P", lambda *a: general_reports.append(a))
    assert fast == general and type(fast) is type(general)
    assert fast_reports == general_reports


@settings(max_examples=200, deadline=None)
@given(text=_timestampish)
def test_timestamp_converter_agrees_with_convert(text):
    first = convert(TIMESTAMP, text, "P")  # also fills the cache the converter reads
    reports: list[tuple[str, str, object]] = []
    assert converter(TIMESTAMP)(text, "P", lambda *a: reports.append(a)) == first
    assert converter(TIMESTAMP)(text, "P", lambda *a: reports.append(a)) == convert(TIMESTAMP, text, "P")
    invalid = text not in ("", "-") and parse_timestamp(text) is None
    assert len(reports) == (2 if invalid else 0)
