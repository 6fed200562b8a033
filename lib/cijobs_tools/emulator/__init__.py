"""Local emulator: one threaded HTTP server on 127.0.0.1 speaking CI (``GET /jobs/...``), COS objects and the
TDMQ CMQ data-flow API, routed by ``Host`` header and path, with signature checks and seeded fault injection.

    from cijobs_tools.emulator import Emulator
    with Emulator(secret_id="AKIDtest", secret_key="test-secret-key", seed=1) as emu:
        emu.ci.add_job("j" + "0" * 32, tag="Transcode", state="Running")
        ...  # point CI_ENDPOINT / COS_ENDPOINT / CMQ_ENDPOINT at emu.url
"""

from __future__ import annotations

from .ci import CIRequest, CIStore, JobRecord
from .cmq import CmqMessage, CmqStore
from .cos import CosStore, StoredObject
from .faults import Faults, SideFaults
from .instance import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Emulator

__all__ = [
    "DEFAULT_SECRET_ID", "DEFAULT_SECRET_KEY", "CIRequest", "CIStore", "CmqMessage", "CmqStore", "CosStore",
    "Emulator", "Faults", "JobRecord", "SideFaults", "StoredObject",
]
