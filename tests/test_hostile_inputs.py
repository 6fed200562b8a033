"""Hostile and bad input (``bench/hostile.py``'s cases): each is refused or handled with bounded time and memory
and a specific error, and no CI request carries an unvalidated value."""

from __future__ import annotations

from typing import Any

import pytest

from fakes import load_module

hostile = load_module("cijobs_bench_hostile", "bench", "hostile.py")

EXPECTED = {
    "billion laughs": "ForbiddenXMLError", "quadratic blowup": "ForbiddenXMLError",
    "external entity (file)": "ForbiddenXMLError", "external entity (network)": "ForbiddenXMLError",
    "DTD retrieval": "ForbiddenXMLError", "50,000 nested elements": "DocumentTooDeepError",
    "7 MB text node": "ok: 1 jobs", "invalid UTF-8": "MalformedDocumentError",
    "100,000 JobsDetail elements": "DocumentTooLargeError",
    "track: body not JSON": "400 BadRequest", "track: body a JSON list": "400 BadRequest",
    "track: JobIds a number": "400 BadRequest", "track: JobIds missing": "400 BadRequest",
    "track: invalid base64": "400 BadRequest", "track: 2 MB body": "413 PayloadTooLarge",
    "track: 10,000 IDs": "400 BadRequest", "GET 10,000 IDs": "400 BadRequest",
    "GET id with ../": "404 NotFound", "GET id with %2F": "400 BadRequest", "GET ids with ,,": "200",
    "GET id with a space": "400 BadRequest", "GET unicode id": "400 BadRequest",
    "GET id with CR/LF": "400 BadRequest", "track: id with CR/LF": "400 BadRequest",
    "token with CR/LF": "401 Unauthorized", "no token": "401 Unauthorized", "wrong token": "401 Unauthorized",
    "bucket/region/endpoint in body": "200", "direct: JobIds a dict": "raises EventError",
    "direct: 10,000 IDs": "raises EventError", "direct: bucket in event": "summary written=1",
    "direct: 10 IDs, one 8 MiB job": "summary written=9, failed=1",
    "timer: Message with ../": "summary written=1", "COS event (not ours)": "raises UnknownEventError",
    "event a list": "raises UnknownEventError", "CMQ record garbage": "summary",
}
SENDS_TO_CI = {"GET ids with ,,", "direct: bucket in event", "timer: Message with ../",
               "direct: 10 IDs, one 8 MiB job"}


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, Any], bool]:
    rows, clean = hostile.run_all()
    return {r.case: r for r in rows}, clean


def test_every_case_has_its_expected_result(results: tuple[dict[str, Any], bool]) -> None:
    rows, _clean = results
    assert {name: r.result for name, r in rows.items()} == EXPECTED


def test_bounded_time_and_memory(results: tuple[dict[str, Any], bool]) -> None:
    rows, _clean = results
    for name, r in rows.items():
        assert r.ms < 3000, f"{name}: {r.ms:.0f} ms"
        assert r.peak_mb < 64, f"{name}: {r.peak_mb:.1f} MB"
    for name, _payload in hostile.XML_CASES[:5]:  # bombs and entities are refused before any expansion
        assert rows[name].ms < 200 and rows[name].peak_mb < 2, name


def test_only_validated_ids_reach_ci(results: tuple[dict[str, Any], bool]) -> None:
    rows, clean = results
    assert clean
    assert {name for name, r in rows.items() if r.ci_requests} == SENDS_TO_CI
