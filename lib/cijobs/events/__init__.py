"""SCF event shapes: one small read-only class per trigger, and :func:`detect`.

``detect(event)`` recognises the shape (it never talks to CI); the classes
then turn themselves into job IDs with the limits from the settings.
"""

from __future__ import annotations

from typing import Any, Union

from .apigw import APIGatewayEvent
from .base import (
    AsyncEvent,
    EventError,
    Headers,
    JobRequest,
    Limits,
    QueryParams,
    RecordResult,
    UnknownEventError,
    Work,
)
from .ckafka import CKafkaEvent, CKafkaRecord
from .cmq import CMQRecord, CMQTopicEvent
from .direct import DirectInvokeEvent
from .function_url import FunctionURLEvent
from .http import BodyTooLargeError, HttpEvent
from .notification import CINotification, parse_message
from .queues import record_key
from .timer import TimerEvent

Event = Union[TimerEvent, APIGatewayEvent, FunctionURLEvent, CMQTopicEvent, CKafkaEvent, DirectInvokeEvent]

# In test order: the first class whose ``matches`` is true parses the event.
EVENT_CLASSES: tuple[Any, ...] = (
    TimerEvent, APIGatewayEvent, FunctionURLEvent, CMQTopicEvent, CKafkaEvent, DirectInvokeEvent,
)

ACCEPTED_SHAPES = (
    'timer trigger {"Type": "Timer", "Message": ...}',
    "API Gateway request {requestContext, httpMethod, path, ...}",
    "function URL request {httpMethod, path, headers, ...}",
    "CMQ topic {Records: [{CMQ: {msgBody}}]}",
    "CKafka {Records: [{Ckafka: {msgBody}}]}",
    'direct invoke {"JobIds": [...]}',
)


def detect(event: Any) -> Event:
    """The typed event for ``event``; :class:`UnknownEventError` (listing the accepted shapes) otherwise."""
    if not isinstance(event, dict):
        raise UnknownEventError(
            f"event must be a JSON object, got {type(event).__name__}; expected one of: " + "; ".join(ACCEPTED_SHAPES))
    for cls in EVENT_CLASSES:
        if cls.matches(event):
            parsed: Event = cls.from_event(event)
            return parsed
    if record_key(event) == "cos":
        what = "a COS trigger event (not handled: trigger cijobs from CI notifications, a timer or HTTP)"
    else:
        keys = ", ".join(sorted(str(k) for k in event)[:8]) or "no keys"
        what = f"an object with {keys}"
    raise UnknownEventError(f"unrecognised event: got {what}; expected one of: " + "; ".join(ACCEPTED_SHAPES))


__all__ = [
    "ACCEPTED_SHAPES",
    "APIGatewayEvent",
    "AsyncEvent",
    "BodyTooLargeError",
    "CINotification",
    "CKafkaEvent",
    "CKafkaRecord",
    "CMQRecord",
    "CMQTopicEvent",
    "DirectInvokeEvent",
    "Event",
    "EventError",
    "FunctionURLEvent",
    "Headers",
    "HttpEvent",
    "JobRequest",
    "Limits",
    "QueryParams",
    "RecordResult",
    "TimerEvent",
    "UnknownEventError",
    "Work",
    "detect",
    "parse_message",
]
