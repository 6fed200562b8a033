import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.join(ROOT, "lib"))


import pytest  # noqa: E402


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
