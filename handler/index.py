"""SCF entry point (``index.main_handler``). Thin: all logic lives in the cijobs package.

The app (settings, pooled session, CI client, sink, pending registry) is built
once per container, on the first invocation; credentials are read per
invocation (SCF role credentials rotate).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

_here = os.path.dirname(os.path.abspath(__file__))
_lib = os.path.join(os.path.dirname(_here), "lib")
if os.path.isdir(os.path.join(_lib, "cijobs")) and _lib not in sys.path:  # running from a checkout
    sys.path.insert(0, _lib)

from cijobs.app import load_app  # noqa: E402
from cijobs.gc_tuning import tune_gc  # noqa: E402

tune_gc()  # this module owns the process: fewer young collections (see cijobs.gc_tuning)

_app: Optional[Callable[[Any, Any], Any]] = None


def main_handler(event: Any, context: Any) -> Any:
    global _app  # noqa: PLW0603 - one app per container is the point
    if _app is None:
        _app = load_app(os.environ)
    return _app(event, context)


def reset() -> None:
    """Forget the app: the next invocation builds it again from the environment (tests change it between runs)."""
    global _app  # noqa: PLW0603
    _app = None
