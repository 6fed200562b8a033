"""CI job notifications (``TaskFinish`` / ``WorkflowFinish``) and queue message bodies.

A CI notification arrives as a callback POST body or as a queue message body,
XML or JSON; it is parsed with :func:`cijobs.normalize.normalize_document`.
A queue message may instead carry a plain job-ID list (comma list or
``{"JobIds": [...]}``). Either way the result is a :class:`JobRequest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

from ..models import Job
from .base import EventError, JobRequest, Limits, ids_from_text, ids_from_value

EVENT_NAMES = ("TaskFinish", "WorkflowFinish")


@dataclass(frozen=True)
class CINotification:
    """One CI notification: its event name, the job IDs it names, and (TaskFinish) the job bodies."""

    event_name: str
    job_ids: tuple[str, ...]
    jobs: tuple[Job, ...] = ()

    @classmethod
    def parse(cls, body: Union[bytes, str], limits: Limits, field: str = "body") -> CINotification:
        """Parse and normalize a notification body (EventError on anything that is not one)."""
        from ..normalize import NormalizeError, normalize_document

        size = len(body.encode("utf-8") if isinstance(body, str) else body)
        if size > limits.max_body_bytes:
            raise EventError(f"{field} is {size} bytes; the limit is {limits.max_body_bytes}", field)
        try:
            doc = normalize_document(body, on_drift=limits.on_drift)
        except NormalizeError as exc:
            raise EventError(f"{field} is not a CI notification: {exc}", field) from None
        return cls.from_document(doc, limits, field)

    @classmethod
    def from_document(cls, doc: dict[str, Any], limits: Limits, field: str = "body") -> CINotification:
        event_name = doc.get("EventName")
        if event_name not in EVENT_NAMES:
            raise EventError(f"{field}.EventName must be one of {', '.join(EVENT_NAMES)}, got {event_name!r}",
                             f"{field}.EventName")
        jobs: list[Job] = []
        ids: list[str] = []
        if event_name == "TaskFinish":
            for job in _as_list(doc.get("JobsDetail")):
                if isinstance(job, dict) and isinstance(job.get("JobId"), str) and job["JobId"]:
                    jobs.append(job)
                    ids.append(job["JobId"])
        else:
            for execution in _as_list(doc.get("WorkflowExecution")):
                if not isinstance(execution, dict):
                    continue
                for task in _as_list(execution.get("Tasks")):
                    if isinstance(task, dict) and isinstance(task.get("JobId"), str) and task["JobId"]:
                        ids.append(task["JobId"])
        if not ids:
            raise EventError(f"{field}: the {event_name} notification names no JobId", f"{field}.JobId")
        unique = ids_from_value(ids, f"{field}.JobId", limits)
        return cls(event_name, tuple(unique), tuple(jobs))

    def request(self) -> JobRequest:
        return JobRequest(self.job_ids, self.jobs)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _is_notification_json(text: str) -> bool:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply for json's decoder
        return True  # not JSON we understand: let the normalizer say what is wrong
    if not isinstance(doc, dict):
        return False
    if "JobIds" in doc:
        return False
    return "EventName" in doc or "Response" in doc


def parse_message(body: Union[bytes, str], limits: Limits, field: str = "msgBody") -> JobRequest:
    """A queue message body: a CI notification (XML/JSON) or a job-ID list."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > limits.max_body_bytes:
        raise EventError(f"{field} is {len(raw)} bytes; the limit is {limits.max_body_bytes}", field)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError(f"{field} is not UTF-8 text", field) from None
    head = text.lstrip()
    if head.startswith("<") or (head.startswith("{") and _is_notification_json(head)):
        return CINotification.parse(raw, limits, field).request()
    ids = ids_from_text(text, field, limits)
    if not ids:
        raise EventError(f"{field} holds no job IDs", field)
    from ..job_ids import validate_job_id

    if not any(validate_job_id(i) for i in ids):
        raise EventError(f"{field} is neither a CI notification nor a job-ID list", field)
    return JobRequest(tuple(ids))
