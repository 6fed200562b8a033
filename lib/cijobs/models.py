"""Plain result types shared across modules (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

TERMINAL_STATES = frozenset({"Success", "Failed", "Cancel"})

Job = dict[str, Any]  # one normalized JobsDetail


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str
    http_status: Optional[int] = None
    request_id: Optional[str] = None
    failure_class: Optional[str] = field(default=None, compare=False)  # transient|throttle|configuration|final

    def as_dict(self) -> dict[str, Any]:
        return {"Code": self.code, "Message": self.message, "HttpStatus": self.http_status,
                "RequestId": self.request_id}


class ServiceError(Exception):
    """A failed call to a service (CI, COS, CMQ, an object store): ``code``, ``message``, whether a later
    retry may help, the HTTP ``status`` (None for network errors) and the service's ``request_id``."""

    def __init__(self, code: str, message: str, *, retryable: bool = False, status: Optional[int] = None,
                 request_id: Optional[str] = None, text: Optional[str] = None) -> None:
        super().__init__(text if text is not None else f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
        self.request_id = request_id

    def to_error_info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message, self.status, self.request_id,
                         getattr(self, "failure_class", None))


@dataclass(frozen=True)
class JobFailure:
    job_id: str
    error: ErrorInfo
    retryable: bool

    def as_dict(self) -> dict[str, Any]:
        return {"JobId": self.job_id, "Error": self.error.as_dict(), "Retryable": self.retryable}


@dataclass
class QueryResult:
    """What one ``JobClient.query`` call learned: every requested ID is in exactly one list."""

    jobs: list[Job] = field(default_factory=list)
    nonexistent: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    failed: list[JobFailure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The shape ``cijobs query`` prints and ``GET /jobs/{ids}`` returns."""
        out: dict[str, Any] = {
            "JobsDetail": self.jobs,
            "NonExistJobIds": self.nonexistent,
            "Failed": [f.as_dict() for f in self.failed],
        }
        if self.invalid:
            out["Invalid"] = self.invalid
        return out


@dataclass(frozen=True)
class WriteResult:
    """The fate of one job in one write: ``ok`` (``already`` when it was there before) or ``error``."""

    job_id: str
    state: Optional[str]
    ok: bool
    already: bool = False
    error: Optional[ErrorInfo] = None
    retryable: bool = False

    @classmethod
    def written(cls, job_id: str, state: Optional[str], already: bool = False) -> WriteResult:
        return cls(job_id, state, True, already)

    @classmethod
    def failed(cls, job_id: str, state: Optional[str], code: str, message: str, retryable: bool,
               http_status: Optional[int] = None, request_id: Optional[str] = None) -> WriteResult:
        return cls(job_id, state, False, False, ErrorInfo(code, message, http_status, request_id), retryable)

    @classmethod
    def from_error(cls, job_id: str, state: Optional[str], error: ErrorInfo, retryable: bool) -> WriteResult:
        return cls(job_id, state, False, False, error, retryable)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"JobId": self.job_id, "State": self.state, "Ok": self.ok, "Already": self.already}
        if self.error is not None:
            out["Error"] = self.error.as_dict()
            out["Retryable"] = self.retryable
        return out


@dataclass(frozen=True)
class PendingEntry:
    """One job in the pending registry: when it was first registered, by which source, and whether CI has
    ever answered for it (an ``.answered`` marker exists); ``answered`` is None when that is not known."""

    job_id: str
    first_seen: float
    source: str = ""
    answered: Optional[bool] = None

    def as_dict(self) -> dict[str, Any]:
        return {"JobId": self.job_id, "FirstSeen": self.first_seen, "Source": self.source, "Answered": self.answered}


@dataclass(frozen=True)
class PendingListing:
    """What one tick read of the registry, oldest first. ``complete``: the whole registry was listed in
    this call (so ``entries`` is all of it); otherwise a later tick continues where this one stopped."""

    entries: list[PendingEntry] = field(default_factory=list)
    complete: bool = True

    @property
    def unanswered(self) -> int:
        return sum(1 for e in self.entries if e.answered is False)
