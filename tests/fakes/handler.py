"""The SCF handler (handler/index.py) against an in-process emulator, and readers for its summaries."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from cijobs_tools.emulator import Emulator

from . import load_module

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDreviewtest", "review-secret-key-value"
API_TOKEN = "review-token-01234"
# every setting the handler reads: cleared first, so the developer's environment cannot leak in
SETTING_PREFIXES = ("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_", "ALLOW_",
                    "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL")


def load_handler(name: str = "scf_index_review") -> Any:
    """A fresh import of handler/index.py as module ``name``."""
    return load_module(name, "handler", "index.py")


@contextlib.contextmanager
def handler_on_emulator(monkeypatch: pytest.MonkeyPatch, seed: int = 3) -> Iterator[tuple[Emulator, Any]]:
    """An emulator and the handler configured for it: COS results under results/, the registry under state/."""
    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=seed) as emu:
        env = emu.env(BUCKET, REGION) | {
            "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results", "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state",
            "API_TOKEN": API_TOKEN, "DEADLINE_MARGIN_S": "0.5", "HTTP_MAX_ATTEMPTS": "2",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        handler = load_handler()
        yield emu, handler
        handler.reset()


def outcomes(summary: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """JobId -> (Outcome, Reason) of an invocation summary."""
    return {o["JobId"]: (o["Outcome"], o.get("Reason")) for o in summary["Outcomes"]}


def pending_ids(emu: Emulator) -> set[str]:
    """The JobIds registered as pending in the emulator's COS (registry under state/)."""
    return {k.rsplit("/", 1)[1][:-5] for (_b, k) in list(emu.cos.objects) if k.startswith("state/.pending/")}
