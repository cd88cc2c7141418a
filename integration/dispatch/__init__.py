"""The dispatch platforms (local desk, Open311 GeoReport v2, a signed webhook), the
outbox that forwards every case once, and the status sync that brings changes back.
"""

from integration.dispatch.assembly import PLATFORMS, Dispatch, DispatchConfig, open_dispatch
from integration.dispatch.errors import DispatchError
from integration.dispatch.types import CaseTicket, DispatchPlatform, Receipt, StatusReport
from integration.dispatch.worker import DispatchWorker, WorkerTiming

__all__ = [
    "PLATFORMS",
    "CaseTicket",
    "Dispatch",
    "DispatchConfig",
    "DispatchError",
    "DispatchPlatform",
    "DispatchWorker",
    "Receipt",
    "StatusReport",
    "WorkerTiming",
    "open_dispatch",
]
