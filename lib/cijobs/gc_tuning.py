"""Garbage-collector thresholds for a process that runs cijobs (the SCF handler, the CLI).

A 1,000-ID query turns 100 responses into ~600 parsed XML elements each and
~160 result dicts and lists per 10 jobs. With CPython's default thresholds
(700, 10, 10) the young generation is collected about once per response while
its element tree is still alive, so every tree is scanned and promoted, and
the results that pile up are scanned again by the older generations: about a
tenth of the query's client CPU (``bench/query.py`` prints the query with and
without this setting). The data has no reference cycles to speak of, so
collecting rarely costs no memory.

Called by the entry points that own the process (``handler/index.py`` and the
``cijobs`` command line), never by library code.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_gc(gen0: int = GEN0_THRESHOLD) -> tuple[int, int, int]:
    """Raise the young-generation threshold to ``gen0`` (never lower it); returns the thresholds now set."""
    current, gen1, gen2 = gc.get_threshold()
    if current != 0 and current < gen0:  # 0 = automatic collection disabled by the owner: leave it
        gc.set_threshold(gen0, gen1, gen2)
    threshold: tuple[int, int, int] = gc.get_threshold()
    return threshold
