"""The README's settings table is generated from cijobs.settings.SETTINGS and is current."""

from __future__ import annotations

import os

import pytest

from cijobs.settings import SETTINGS
from cijobs_tools.deploy.readme import BEGIN, END, settings_table, update_readme
from fakes import ROOT


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def test_readme_table_is_current() -> None:
    text = readme()
    assert update_readme(text) == text, "run: python -m cijobs_tools.deploy.readme"
    settings_part = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert BEGIN in settings_part and END in settings_part


def test_table_has_one_row_per_setting_in_order() -> None:
    rows = [line for line in settings_table().splitlines()[2:]]
    assert [r.split("`")[1] for r in rows] == [s.env for s in SETTINGS]
    by_name = {r.split("`")[1]: r for r in rows}
    assert "`16`" in by_name["CI_CONCURRENCY"] and "_unset_" in by_name["CI_BUCKET"]
    assert "`false`" in by_name["ALLOW_UNAUTHENTICATED"]
    assert "**Secret**" in by_name["API_TOKEN"] and "**Secret**" not in by_name["LOG_LEVEL"]


def test_update_replaces_a_stale_table_and_keeps_the_rest() -> None:
    stale = f"# x\n\n## Settings\n\nintro\n\n{BEGIN}\n| old |\n{END}\n\n## Logs\n\nlogs\n"
    new = update_readme(stale)
    assert "| old |" not in new and settings_table() in new
    assert new.startswith("# x\n\n## Settings\n\nintro\n\n") and new.endswith(f"{END}\n\n## Logs\n\nlogs\n")
    assert update_readme(new) == new
    fresh = update_readme("## Settings\n\nintro\n\n## Logs\n")
    assert fresh.index("intro") < fresh.index(BEGIN) < fresh.index("## Logs")
    with pytest.raises(ValueError, match="Settings"):
        update_readme("# no such section\n")
