"""How a failed CI, COS or CMQ request is classified: one vocabulary, one table per service, kept as data.

Every failure gets *our* code and one of four classes:

* ``transient``: network errors, timeouts, 5xx other than throttling, malformed answers; retried with
  backoff under ``HTTP_MAX_ATTEMPTS`` (and the deadline);
* ``throttle``: 429, 503 ``SlowDown``, ``RequestLimitExceeded``; retried after the pace allows
  (``Retry-After`` honoured), bounded by the deadline, not counted as attempts;
* ``configuration``: credentials missing or rejected, ``AccessDenied``, ``SignatureDoesNotMatch``,
  ``InvalidAccessKeyId``, ``NoSuchBucket``, a configured host that does not resolve, a refused certificate;
  not retried now, the job is kept (parked) until the configuration is fixed;
* ``final``: everything else; not retried.

``retryable`` (on every error) keeps its meaning "a later attempt may help": true for transient, throttle and
configuration, false for final.

Failures without an HTTP answer have one vocabulary in every client: ``Timeout``, ``ConnectionError``,
``CertificateVerifyFailed``, ``MalformedResponse``, ``Redirect`` (plus ``DeadlineExceeded`` for a request that
was never sent because no time was left, and ``InvalidRequest`` for one the client refused to send).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .models import JobFailure

TRANSIENT = "transient"
THROTTLE = "throttle"
CONFIGURATION = "configuration"
FINAL = "final"
CLASSES = (TRANSIENT, THROTTLE, CONFIGURATION, FINAL)
RETRYABLE_CLASSES = frozenset({TRANSIENT, THROTTLE, CONFIGURATION})

TIMEOUT = "Timeout"
CONNECTION_ERROR = "ConnectionError"
CERTIFICATE_VERIFY_FAILED = "CertificateVerifyFailed"
MALFORMED_RESPONSE = "MalformedResponse"
REDIRECT = "Redirect"
DEADLINE_EXCEEDED = "DeadlineExceeded"
INVALID_REQUEST = "InvalidRequest"

# A request without an HTTP answer: cause kind (cijobs.http.NoAnswer.kind) -> (our code, class).
NO_ANSWER: dict[str, tuple[str, str]] = {
    "timeout": (TIMEOUT, TRANSIENT),
    "deadline": (DEADLINE_EXCEEDED, TRANSIENT),
    "network": (CONNECTION_ERROR, TRANSIENT),
    "nxdomain": (CONNECTION_ERROR, CONFIGURATION),
    "certificate": (CERTIFICATE_VERIFY_FAILED, CONFIGURATION),
    "malformed": (MALFORMED_RESPONSE, TRANSIENT),
    "too_large": (MALFORMED_RESPONSE, TRANSIENT),
    "invalid": (INVALID_REQUEST, FINAL),
    "invalid_header": ("InvalidHeader", FINAL),
}


@dataclass(frozen=True)
class Rule:
    """Matches an HTTP answer by status range and/or service error code (None = any); first match wins."""

    failure_class: str
    status: Optional[tuple[int, int]] = None  # inclusive
    codes: frozenset[str] = frozenset()
    code_prefixes: tuple[str, ...] = ()

    def matches(self, status: int, code: str) -> bool:
        if self.status is not None and not self.status[0] <= status <= self.status[1]:
            return False
        if self.codes or self.code_prefixes:
            return code in self.codes or (bool(self.code_prefixes) and code.startswith(self.code_prefixes))
        return True


THROTTLE_CODES = frozenset({"SlowDown", "RequestLimitExceeded", "TooManyRequests"})
CONFIGURATION_CODES = frozenset({
    "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket", "InvalidSecurityToken",
    "ExpiredToken", "MissingSecurityHeader", "InvalidCredentials", "AuthFailure", "UnauthorizedOperation",
})

CONFIGURATION_RULE = Rule(CONFIGURATION, codes=CONFIGURATION_CODES,
                          code_prefixes=("AuthFailure.", "UnauthorizedOperation."))

# Rules every service shares, in order; a service's table puts its own rules first.
COMMON: tuple[Rule, ...] = (
    Rule(THROTTLE, status=(429, 429)),
    Rule(THROTTLE, codes=THROTTLE_CODES, code_prefixes=("RequestLimitExceeded.",)),
    CONFIGURATION_RULE,
    Rule(CONFIGURATION, status=(401, 401)),
    Rule(CONFIGURATION, status=(403, 403)),
    Rule(TRANSIENT, codes=frozenset({MALFORMED_RESPONSE, "InternalError", "ServiceUnavailable", TIMEOUT})),
    Rule(TRANSIENT, status=(500, 599)),
    Rule(FINAL, codes=frozenset({REDIRECT})),
    Rule(FINAL),
)

CI: tuple[Rule, ...] = COMMON
# COS (S3 semantics): a 400 RequestTimeout is the server giving up on a slow upload: retry.
COS: tuple[Rule, ...] = (Rule(TRANSIENT, status=(400, 400), codes=frozenset({"RequestTimeout"})), *COMMON)
# CMQ data-flow API: HTTP 200 with a numeric ``code``: 4100-4104 are authentication/authorization
# (secretId, signature, permission), 6000 and up are the server's; other 4xxx/5xxx are the caller's.
CMQ: tuple[Rule, ...] = (
    Rule(CONFIGURATION, status=(200, 200), codes=frozenset({"4100", "4101", "4102", "4103", "4104"})),
    Rule(TRANSIENT, status=(200, 200), code_prefixes=("6", "7", "8", "9")),
    *COMMON,
)
TABLES: dict[str, tuple[Rule, ...]] = {"ci": CI, "cos": COS, "cmq": CMQ}


@dataclass(frozen=True)
class ClassifiedJobFailure(JobFailure):
    """A :class:`~cijobs.models.JobFailure` that also says its class (``as_dict`` unchanged)."""

    failure_class: str = TRANSIENT


def classify(table: tuple[Rule, ...], status: int, code: str) -> str:
    """The class of an HTTP answer ``status`` carrying service error ``code`` (first matching rule)."""
    for rule in table:
        if rule.matches(status, code):
            return rule.failure_class
    return FINAL


# Configuration failures reported without a classification: missing credentials (raised before any request)
# and a refused certificate, whichever client saw them.
CREDENTIALS_ERROR = "CredentialsError"
UNCLASSIFIED_CONFIGURATION = frozenset({CREDENTIALS_ERROR, CERTIFICATE_VERIFY_FAILED})


def is_configuration(code: str, failure_class: Optional[str] = None) -> bool:
    """A failure of the configuration class: by its class when it has one, else by its code (the codes of
    :data:`CONFIGURATION_RULE`, or :data:`UNCLASSIFIED_CONFIGURATION`)."""
    if failure_class is not None:
        return failure_class == CONFIGURATION
    return code in UNCLASSIFIED_CONFIGURATION or CONFIGURATION_RULE.matches(0, code)


def classify_no_answer(kind: str) -> tuple[str, str]:
    """(our code, class) for a request without an HTTP answer."""
    return NO_ANSWER.get(kind, (CONNECTION_ERROR, TRANSIENT))


def is_retryable(failure_class: str) -> bool:
    return failure_class in RETRYABLE_CLASSES
