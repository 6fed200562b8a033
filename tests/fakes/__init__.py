"""Shared test helpers and fakes: import them as ``from fakes import ...`` (pytest puts tests/ on the path)."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from .pipeline import JOB_A, JOB_B, JOB_C, JOB_D, FakeCI, FakeClock, FakePending, FakeSink, job_id

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the credentials of conftest's ``emu`` fixture (the in-process emulator)
EMU_SECRET_ID, EMU_SECRET_KEY = "AKIDtest", "test-secret-key"
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

__all__ = [
    "EMU_SECRET_ID", "EMU_SECRET_KEY", "FIXTURES", "JOB_A", "JOB_B", "JOB_C", "JOB_D", "ROOT", "FakeCI",
    "FakeClock", "FakePending", "FakeSink", "Sleeps", "job_id", "load_module",
]


def load_module(name: str, *path: str) -> Any:
    """Import a file that is not on sys.path (handler/index.py, a bench script) as module ``name``.

    Registered in sys.modules first: dataclasses in the loaded file look their module up there.
    """
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, *path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Sleeps(list):  # type: ignore[type-arg]
    """A fake ``sleep`` for clients under test: records each requested delay, never waits."""

    def __call__(self, s: float) -> None:
        self.append(s)
