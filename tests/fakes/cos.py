"""COS for tests: the in-process emulator (``cijobs_tools.emulator``) and a :class:`CosClient` pointed at it.

Faults are the emulator's: ``emu.faults.inject_next("cos", "slowdown")`` gives the next COS request a 503
``SlowDown``; ``"fail"`` a 500/503, ``"reset"`` a dropped connection. A client with ``WRONG_TOKEN_CREDS``
against ``emulated_cos(token=TOKEN)`` gets 403 ``AccessDenied`` on every request.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

from cijobs.cos import CosClient
from cijobs.credentials import Credentials
from cijobs.settings import Settings
from cijobs_tools.emulator import Emulator
from cijobs_tools.emulator.cos import StoredObject

from . import Sleeps

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
TOKEN = "test-session-token"
CREDS = Credentials("AKIDtest", "test-secret-key", TOKEN)
WRONG_TOKEN_CREDS = Credentials("AKIDtest", "test-secret-key", "not-the-session-token")


@contextlib.contextmanager
def emulated_cos(seed: int = 7) -> Iterator[Emulator]:
    """An emulator that knows ``CREDS`` (with its session token)."""
    with Emulator(secret_id=CREDS.secret_id, secret_key=CREDS.secret_key, token=TOKEN, seed=seed) as emu:
        yield emu


def cos_client(emu: Emulator, max_attempts: int = 4, credentials: Credentials = CREDS,
               **settings: Any) -> tuple[CosClient, Sleeps]:
    """A client for the emulator's COS; its retries sleep into the returned :class:`Sleeps`."""
    sleeps = Sleeps()
    client = CosClient(Settings(cos_endpoint=emu.url, ci_max_attempts=max_attempts, **settings), lambda: credentials,
                       sleep=sleeps, rng=random.Random(7))
    return client, sleeps


def cos_objects(emu: Emulator, bucket: str = BUCKET) -> dict[str, StoredObject]:
    """Key -> stored object, for one bucket."""
    return {k: o for (b, k), o in list(emu.cos.objects.items()) if b == bucket}


def cos_methods(emu: Emulator) -> list[str]:
    """The HTTP methods of the COS requests the emulator answered, in order (faulted ones are not logged)."""
    return [r.method for r in list(emu.cos.requests)]
