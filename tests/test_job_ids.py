from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cijobs.job_ids import MAX_JOB_ID_LEN, dedupe, split_ids, validate_job_id

REAL = "j8d121820f5e411ec926ef19d53ba9c6f"


@pytest.mark.parametrize(
    "value",
    [
        REAL,
        "a" + "0" * 32,  # AI job
        "c" + "f" * 32,  # picture job
        "jabcsdssfeipplsdfwe",  # doc placeholder, non-hex, 19 chars
        "t1f1ae1dfsdc9ds41dsb31632d45710642a",  # 35 chars
        "j" + "a" * 16,  # shortest accepted (17)
        "j" + "a" * 64,  # longest accepted (65)
    ],
)
def test_valid_ids(value: str) -> None:
    assert validate_job_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "j",
        "j" + "a" * 15,  # too short
        "j" + "a" * 65,  # too long
        "J8D121820F5E411EC926EF19D53BA9C6F",  # upper case
        "18d121820f5e411ec926ef19d53ba9c6f",  # starts with a digit
        REAL + ",jx",
        REAL + "/../x",
        REAL + "?a=b",
        REAL + "%2F",
        " " + REAL,
        REAL + "\n",
        "j96ca39faebe411eda9b5*********",  # masked sample
        "jé" + "a" * 20,
        "j" + "٣" * 20,  # non-ASCII digits would match \d
        None,
        12345678901234567890,
    ],
)
def test_invalid_ids(value: object) -> None:
    assert not validate_job_id(value)


@given(st.text(max_size=80))
def test_valid_ids_are_safe_in_a_path(value: str) -> None:
    if validate_job_id(value):
        assert len(value) <= MAX_JOB_ID_LEN
        assert value.isascii() and value.isalnum() and value == value.lower()


def test_split_ids() -> None:
    assert split_ids("jA,jB  jC\njD,,\t,jE,") == ["jA", "jB", "jC", "jD", "jE"]
    assert split_ids("") == []
    assert split_ids(" , ") == []
    assert split_ids("jA,jA") == ["jA", "jA"]  # no dedupe here


def test_dedupe_keeps_first_occurrence_order() -> None:
    assert dedupe(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]
    assert dedupe([]) == []
    assert dedupe(iter(["x", "x"])) == ["x"]
