"""The process owners (handler, CLI) raise the young-generation GC threshold; nobody lowers it."""

import gc

import pytest

from cijobs.gc_tuning import GEN0_THRESHOLD, tune_gc
from fakes import load_module


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_tune_gc_raises_gen0_and_keeps_the_older_generations(thresholds):
    gc.set_threshold(700, 7, 9)
    assert tune_gc() == (GEN0_THRESHOLD, 7, 9) == gc.get_threshold()


def test_tune_gc_never_lowers_a_higher_threshold_or_reenables_collection(thresholds):
    gc.set_threshold(GEN0_THRESHOLD * 2, 10, 10)
    assert tune_gc()[0] == GEN0_THRESHOLD * 2
    gc.set_threshold(0, 10, 10)  # automatic collection off: the owner's choice stands
    assert tune_gc()[0] == 0


def test_the_handler_tunes_at_import(thresholds):
    load_module("scf_index_gc", "handler", "index.py")
    assert gc.get_threshold()[0] == GEN0_THRESHOLD


def test_the_command_line_tunes_before_running_a_verb(thresholds, capsys):
    from cijobs_tools.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
