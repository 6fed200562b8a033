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
