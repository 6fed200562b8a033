"""`cijobs invoke` (not built yet)."""

from __future__ import annotations

import argparse

from . import fail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return fail("invoke is not built yet")
