"""StrictResponse reads response heads strictly, and like http.client wherever http.client is right."""

import http.client
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cijobs.response_head import MAX_FIELDS, BadResponseHead, Fields, StrictResponse


def respond(raw: bytes, method: str = "GET", cls: type = StrictResponse) -> http.client.HTTPResponse:
    """The response class reading ``raw`` from a socket whose peer then closes."""
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    resp = cls(ours, method=method)
    ours.close()  # the response's reader keeps the socket open
    resp.begin()
    return resp


def test_a_plain_response():
    r = respond(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 5\r\n\r\nhello")
    assert (r.status, r.reason, r.version, r.length, r.chunked, r.will_close) == (200, "OK", 11, 5, False, False)
    assert r.read() == b"hello"
    assert r.getheader("content-type") == "application/xml"


@pytest.mark.parametrize("line", [b"HTTP/1.1 200\r\n", b"HTTP/1.1 200 \r\n", b"HTTP/1.1 200 Very  OK\r\n"])
def test_the_reason_phrase_is_optional(line):
    r = respond(line + b"Content-Length: 0\r\n\r\n")
    assert r.status == 200 and r.reason in ("", "Very  OK")


@pytest.mark.parametrize("line", [b"HTTP/2 200 OK\r\n", b"ICY 200 OK\r\n", b"HTTP/1.1 2000 OK\r\n",
                                  b"HTTP/1.1 20a OK\r\n", b"HTTP/1.1\r\n", b"hello\r\n",
                                  b"HTTP/1.1 \xd9\xa3\xd9\xa3\xd9\xa3 X\r\n"])
def test_a_bad_status_line_is_refused(line):
    with pytest.raises(http.client.BadStatusLine):
        respond(line + b"Content-Length: 0\r\n\r\n")


def test_no_response_at_all_is_remote_disconnected():
    with pytest.raises(http.client.RemoteDisconnected):
        respond(b"")


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 O",                                         # inside the status line
    b"HTTP/1.1 200 OK\r\nContent-Le",                          # inside a field
    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n",          # before the empty line
])
def test_a_head_cut_off_by_the_close_is_refused(raw):
    with pytest.raises(BadResponseHead):
        respond(raw)


@pytest.mark.parametrize("field", [b"NoColonHere", b"Bad Name: x", b"Bad\tName: x", b" : x", b": x", b"Name : x"])
def test_a_malformed_field_line_is_refused(field):
    with pytest.raises(BadResponseHead):
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + field + b"\r\n\r\n")


def test_folded_lines_join_the_field_before_them():
    r = respond(b"HTTP/1.1 200 OK\r\nX-Long: one\r\n  two\r\n\tthree\r\nContent-Length: 0\r\n\r\n")
    assert r.getheader("X-Long") == "one two three"
    with pytest.raises(BadResponseHead):
        respond(b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n")


def test_limits_on_field_count_and_line_length():
    many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_FIELDS + 1))
    with pytest.raises(http.client.HTTPException):
        respond(b"HTTP/1.1 200 OK\r\n" + many + b"\r\n")
    with pytest.raises(http.client.LineTooLong):
        respond(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n")


def test_interim_responses_are_skipped_whatever_their_number():
    r = respond(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert (r.status, r.read()) == (200, b"ok")
    assert r.getheader("Link") is None  # the interim response's fields are not the final one's


@pytest.mark.parametrize(("lengths", "ok"), [(["3", "3"], True), (["3", "4"], False), (["-1"], False),
                                             (["abc"], False), (["1e3"], False), ([" 3 "], True)])
def test_content_length_must_be_digits_and_agree(lengths, ok):
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"Content-Length: %s\r\n" % v.encode() for v in lengths) + b"\r\nabc"
    if ok:
        assert respond(head).read() == b"abc"
    else:
        with pytest.raises(BadResponseHead):
            respond(head)


def test_chunked_wins_over_content_length():
    r = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n")
    assert r.chunked and r.read() == b"abc" and not r.will_close


def test_a_final_coding_other_than_chunked_reads_to_the_close():
    r = respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbody until close")
    assert not r.chunked and r.will_close and r.read() == b"body until close"


@pytest.mark.parametrize(("head", "closes"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive, close\r\n", True),
    (b"HTTP/1.1 200 OK\r\n", True),                                            # body ends at the close
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n", True),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n", False),
    (b"HTTP/1.1 204 No Content\r\n", False),
    (b"HTTP/1.1 304 Not Modified\r\n", False),
])
def test_when_the_connection_closes(head, closes):
    assert respond(head + b"\r\n").will_close is closes


def test_head_responses_have_no_body_whatever_their_length():
    r = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", method="HEAD")
    assert r.length == 0 and r.read() == b"" and not r.will_close


def test_fields_keep_order_and_merge_repeats():
    f = Fields([("Set-X", "1"), ("set-x", "2"), ("Other", "o")])
    assert f.get_all("SET-X") == ["1", "2"] and f.get("set-x") == "1, 2" and f.get("missing", "d") == "d"
    assert list(f) == ["Set-X", "set-x", "Other"] and len(f) == 3
    merged = f.merged()
    assert {k.lower(): v for k, v in merged.items()} == {"set-x": "1, 2", "other": "o"}
    assert merged["SET-X"] == "1, 2"


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
    lambda n: n.lower() not in ("content-length", "transfer-encoding", "connection"))
_values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=20)


@settings(max_examples=200, deadline=None)
@given(status=st.integers(200, 599).filter(lambda s: s not in (204, 304)), reason=st.sampled_from(["OK", "Nope", ""]),
       fields=st.lists(st.tuples(_names, _values), max_size=8), body=st.binary(max_size=50),
       framing=st.sampled_from(["length", "chunked", "close"]), http10=st.booleans())
def test_well_formed_responses_read_as_http_client_reads_them(status, reason, fields, body, framing, http10):
    head = f"HTTP/1.{0 if http10 else 1} {status} {reason}\r\n".encode()
    head += b"".join(f"{n}: {v}\r\n".encode() for n, v in fields)
    if framing == "length":
        raw = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n" + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") \
            + b"0\r\n\r\n"
    else:
        raw = head + b"\r\n" + body
    ours, stock = respond(raw), respond(raw, cls=http.client.HTTPResponse)
    assert (ours.status, ours.reason, ours.version, ours.chunked, ours.will_close) == \
        (stock.status, stock.reason, stock.version, stock.chunked, stock.will_close)
    assert ours.getheaders() == stock.getheaders()
    assert ours.read() == stock.read() == body
