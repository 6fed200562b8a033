"""Fixtures every test gets; shared fakes and helpers live in the ``fakes`` package (tests/ is on the path)."""

import pytest


@pytest.fixture(autouse=True)
def _reset_logging():
    """Each test starts with logging to the current stdout and no bound context."""
    from cijobs import log

    log.configure("debug")
    log.bind_invocation()
    yield
    log.configure("debug")
    log.bind_invocation()


@pytest.fixture
def log_stream():
    """The test's structured log, as JSON lines in a private buffer (read it with ``.getvalue()``)."""
    import io

    from cijobs import log

    stream = io.StringIO()
    log.configure("debug", stream)
    yield stream


@pytest.fixture
def emu():
    """The in-process emulator (127.0.0.1, credentials ``fakes.EMU_SECRET_ID``/``EMU_SECRET_KEY``, seed 1);
    a test file that needs another one defines its own ``emu``."""
    from cijobs_tools.emulator import Emulator
    from fakes import EMU_SECRET_ID, EMU_SECRET_KEY

    with Emulator(secret_id=EMU_SECRET_ID, secret_key=EMU_SECRET_KEY, seed=1) as e:
        yield e


@pytest.fixture
def session():
    """A ``requests.Session`` closed after the test."""
    import requests

    with requests.Session() as s:
        yield s
