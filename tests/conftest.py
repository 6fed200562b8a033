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


def load_module(name: str, *path: str):
    """Import a file that is not on sys.path (handler/index.py, a bench script) as module ``name``.

    Registered in sys.modules first: dataclasses in the loaded file look their module up there.
    """
    import importlib.util

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
