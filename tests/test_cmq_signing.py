"""Step-by-step vectors for the TDMQ CMQ data-flow (v2) signature.

The expected signatures were computed independently with
``printf '%s' "$PLAIN" | openssl dgst -sha256 -hmac secretKeyExample -binary | base64``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

from cijobs import cmq_signing as cs

HOST = "cmq-gz.public.tencenttdmq.com"
KEY = "secretKeyExample"
PARAMS = {
    "queueName": "q1",
    "msgBody": '{"a":"b c"}',
    "Action": "SendMessage",
    "Timestamp": "1700000000",
    "Nonce": "12345",
    "SecretId": "AKIDexample",
    "SignatureMethod": "HmacSHA256",
}
CANONICAL_256 = (
    'Action=SendMessage&Nonce=12345&SecretId=AKIDexample&SignatureMethod=HmacSHA256'
    '&Timestamp=1700000000&msgBody={"a":"b c"}&queueName=q1'
)
SIG_256 = "6Rbi4HtfID8Sl9itDjrYQqXEmRkzJwvK0a58f6bjmYU="
SIG_1 = "jOj1Lfza7K2Ki7pPm4lF48x/V0M="


def test_canonical_query_sorted_unencoded_without_signature() -> None:
    params = dict(PARAMS, Signature="ignored")
    assert cs.canonical_query(params) == CANONICAL_256


def test_canonical_query_replaces_underscore_in_keys_only() -> None:
    assert cs.canonical_query({"msgTag_0": "a_b", "b": "1"}) == "b=1&msgTag.0=a_b"


def test_canonical_query_sorts_batch_keys_as_strings() -> None:
    got = cs.canonical_query({"msgBody.10": "k", "msgBody.2": "c", "msgBody.1": "b"})
    assert got == "msgBody.1=b&msgBody.10=k&msgBody.2=c"


def test_plain_text() -> None:
    assert cs.plain_text(HOST, PARAMS) == f"POST{HOST}/v2/index.php?{CANONICAL_256}"
    assert cs.plain_text(HOST, PARAMS, method="get").startswith(f"GET{HOST}/v2/index.php?")


def test_signature_sha256_vector() -> None:
    assert cs.signature(KEY, cs.plain_text(HOST, PARAMS), "HmacSHA256") == SIG_256


def test_signature_sha1_vector() -> None:
    params = dict(PARAMS, SignatureMethod="HmacSHA1")
    assert cs.signature(KEY, cs.plain_text(HOST, params), "HmacSHA1") == SIG_1


def test_signature_unknown_method() -> None:
    with pytest.raises(cs.CmqSignatureError, match="HmacMD5"):
        cs.signature(KEY, "x", "HmacMD5")


def test_sign_params_adds_signature_and_keeps_values() -> None:
    signed = cs.sign_params(PARAMS, KEY, HOST)
    assert signed["Signature"] == SIG_256
    assert {k: v for k, v in signed.items() if k != "Signature"} == PARAMS
    # re-signing a signed dict ignores the old signature
    assert cs.sign_params(signed, KEY, HOST)["Signature"] == SIG_256


def test_sign_params_defaults_to_sha1_without_method() -> None:
    params = {k: v for k, v in PARAMS.items() if k != "SignatureMethod"}
    expected = cs.signature(KEY, cs.plain_text(HOST, params), "HmacSHA1")
    assert cs.sign_params(params, KEY, HOST)["Signature"] == expected


def test_common_params() -> None:
    p = cs.common_params("PublishMessage", "AKIDx", now=1700000000.9, nonce=7, token="tok", region="gz")
    assert p == {
        "Action": "PublishMessage", "Timestamp": "1700000000", "Nonce": "7", "SecretId": "AKIDx",
        "SignatureMethod": "HmacSHA256", "Token": "tok", "Region": "gz",
    }
    assert "Token" not in cs.common_params("SendMessage", "AKIDx", now=1, nonce=1)
    with pytest.raises(cs.CmqSignatureError):
        cs.common_params("SendMessage", "AKIDx", now=1, nonce=0)
    with pytest.raises(cs.CmqSignatureError):
        cs.common_params("SendMessage", "AKIDx", now=1, nonce=1, signature_method="md5")


def test_verify_roundtrip_through_form_encoding() -> None:
    signed = cs.sign_params(PARAMS, KEY, HOST)
    body = urlencode(signed)
    received = dict(parse_qsl(body, keep_blank_values=True))
    assert cs.verify(received, KEY, HOST)
    assert not cs.verify(received, "other-key", HOST)
    assert not cs.verify(received, KEY, "127.0.0.1:8123")
    tampered = dict(received, msgBody='{"a":"B c"}')
    assert not cs.verify(tampered, KEY, HOST)
    assert not cs.verify({k: v for k, v in received.items() if k != "Signature"}, KEY, HOST)
    assert not cs.verify(dict(received, SignatureMethod="HmacMD5"), KEY, HOST)


def test_host_of() -> None:
    assert cs.host_of("https://cmq-gz.public.tencenttdmq.com") == "cmq-gz.public.tencenttdmq.com"
    assert cs.host_of("http://127.0.0.1:8123/") == "127.0.0.1:8123"
    assert cs.host_of("gz.mqadapter.cmq.tencentyun.com") == "gz.mqadapter.cmq.tencentyun.com"
