"""Every document over 150 lines has a "Contents" section whose links reach its headings (GitHub anchors),
and lists every second-level heading; every in-page link of every document resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LONG = 150

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"\]\(#([^)\s]+)\)")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every Markdown heading outside code fences."""
    out: list[tuple[int, str]] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (letters, digits, '-', '_' and spaces
    kept), spaces to hyphens."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def contents_section(text: str) -> str:
    m = re.search(r"^## Contents\s*$(.*?)^## ", text, re.M | re.S)
    return m.group(1) if m else ""


def test_the_slug_rules_match_githubs_for_the_shapes_used_here() -> None:
    assert slug("1. Before deploying: what `cijobs deploy` checks") == "1-before-deploying-what-cijobs-deploy-checks"
    assert slug("Listing (`GET /jobs?…`)") == "listing-get-jobs"
    assert slug("Cold start (`bench/coldstart.py --runs 7`, checkout)") == \
        "cold-start-benchcoldstartpy---runs-7-checkout"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_in_page_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    missing = sorted(set(_LINK.findall(text)) - anchors(text))
    assert not missing, f"{path.name}: links to no heading: {missing}"


@pytest.mark.parametrize("path", [p for p in DOCS if len(p.read_text(encoding="utf-8").splitlines()) > LONG],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_long_documents_have_contents_listing_every_section(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    toc = contents_section(text)
    assert toc, f"{path.name} is over {LONG} lines and has no '## Contents' section"
    listed = set(_LINK.findall(toc))
    sections = {slug(title) for level, title in headings(text) if level == 2 and title != "Contents"}
    assert sections <= listed, f"{path.name}: sections missing from Contents: {sorted(sections - listed)}"
