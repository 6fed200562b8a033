"""Create or update the SCF function, its code, configuration and triggers.

Pure planning functions build each API call's parameters; :func:`deploy`
runs them against an injected ``api(action, params)`` (the SDK in
production, a fake in tests), polling ``GetFunction`` until the function is
``Active`` between steps, with the clock and sleep injected. Triggers are
idempotent: the existing ones are listed first and only missing or changed
ones are created or updated.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from cijobs.settings import SETTINGS

from .api import ApiCall, DeployError, ScfApiError
from .template import FunctionSpec

# The zip goes base64-encoded (4/3 larger) inside the JSON body of CreateFunction/UpdateFunctionCode.
# Cloud API 3.0 caps a POST body at 1 MB for HmacSHA1/HmacSHA256 and at about 10 MB for
# TC3-HMAC-SHA256 (the SDK's default, set explicitly in api.py), so the 50 MB of Code.ZipFile's
# docstring cannot be reached inline; larger packages must be uploaded to COS.
REQUEST_BODY_LIMIT = 10 * 1000 * 1000  # "10 MB", read conservatively
REQUEST_HEADROOM = 64 * 1024  # the other parameters (environment ≤ 4 KB, description ≤ 1000) and JSON framing
ZIP_LIMIT = (REQUEST_BODY_LIMIT - REQUEST_HEADROOM) // 4 * 3  # 7,450,848 bytes
# "Function and Layer Status Description": after a failed update or publish the previous code keeps
# serving and the function can be updated again; a function that failed to be created or is being
# (or failed to be) deleted cannot, it has to be deleted and created again.
READY_FOR_UPDATE = ("Active", "UpdateFailed", "PublishFailed")
UNRECOVERABLE = frozenset({"CreateFailed", "Deleting", "DeleteFailed"})
REDACTED = "[redacted]"
SECRET_NAMES = frozenset(s.env for s in SETTINGS if s.secret)
_SECRET_NAME_RE = re.compile(r"(SECRET_KEY|SECRETKEY|TOKEN|PASSWORD)", re.IGNORECASE)
_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+\.tencentscf\.com[^\s\"'\\,}]*")
LIST_LIMIT = 100


@dataclass(frozen=True)
class CodePackage:
    """The zip to upload; checked before any call is made."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def names(self) -> set[str]:
        with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
            return set(zf.namelist())

    def describe(self) -> str:
        return f"<zip {self.size} bytes sha256={self.sha256}>"

    @classmethod
    def from_file(cls, path: str) -> CodePackage:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise DeployError(f"cannot read the code package {path}: {exc.strerror} (build it with `make package`)") \
                from None
        return cls(data)

    def check(self, spec: FunctionSpec, env_vars: Mapping[str, str]) -> None:
        if self.size > ZIP_LIMIT:
            raise DeployError(
                f"the code package is {self.size} bytes; sent inline (Code.ZipFile, base64 in a Cloud API "
                f"request body of at most {REQUEST_BODY_LIMIT} bytes) it may be at most {ZIP_LIMIT} bytes: "
                "upload larger packages to COS and point the function at the object "
                "(Code.CosBucketName/CosObjectName/CosBucketRegion), or make the package smaller"
            )
        try:
            names = self.names()
        except zipfile.BadZipFile:
            raise DeployError("the code package is not a zip file (build it with `make package`)") from None
        if spec.handler_file not in names:
            raise DeployError(f"the code package has no {spec.handler_file} at its root (Handler {spec.handler})")
        if "cijobs/__init__.py" not in names:
            raise DeployError("the code package does not contain the cijobs package")
        if (env_vars.get("CMQ_MODE") or "").lower() == "api" and "tencentcloud/tdmq/__init__.py" not in names:
            raise DeployError("CMQ_MODE=api needs the TDMQ SDK in the zip: rebuild with `CMQ_MODE=api make package`")


@dataclass(frozen=True)
class Call:
    action: str
    params: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class TriggerWant:
    type: str  # "timer" | "http" (function URL)
    name: str
    desc: str
    qualifier: str
    enable: bool
    custom_argument: Optional[str] = None


@dataclass
class DeployResult:
    created: bool
    actions: list[str] = field(default_factory=list)
    function_url: Optional[str] = None


# ---------------------------------------------------------------- planning (pure)

def _environment(env_vars: Mapping[str, str]) -> dict[str, Any]:
    return {"Variables": [{"Key": k, "Value": v} for k, v in env_vars.items()]}


def _config(spec: FunctionSpec, env_vars: Mapping[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "FunctionName": spec.name,
        "Namespace": spec.namespace,
        "Description": spec.description,
        "MemorySize": spec.memory_mb,
        "Timeout": spec.timeout_s,
        "Environment": _environment(env_vars),
    }
    if spec.role:
        params["Role"] = spec.role
    if spec.dead_letter is not None:
        params["DeadLetterConfig"] = spec.dead_letter.params()
    return params


def create_function_call(spec: FunctionSpec, env_vars: Mapping[str, str], package: CodePackage) -> Call:
    params = _config(spec, env_vars)
    params.update({
        "Handler": spec.handler,
        "Runtime": spec.runtime,
        "Type": "Event",
        "CodeSource": "ZipFile",
        "Code": {"ZipFile": package.b64()},
    })
    return Call("CreateFunction", params)


def update_code_call(spec: FunctionSpec, package: CodePackage) -> Call:
    return Call("UpdateFunctionCode", {
        "FunctionName": spec.name,
        "Namespace": spec.namespace,
        "Handler": spec.handler,
        "CodeSource": "ZipFile",
        "Code": {"ZipFile": package.b64()},
    })


def update_config_call(spec: FunctionSpec, env_vars: Mapping[str, str]) -> Call:
    return Call("UpdateFunctionConfiguration", _config(spec, env_vars))


def event_invoke_config_call(spec: FunctionSpec) -> Optional[Call]:
    """UpdateFunctionEventInvokeConfig (async retry count and event retention), when the template sets it."""
    if spec.async_retry is None:
        return None
    return Call("UpdateFunctionEventInvokeConfig", {
        "FunctionName": spec.name,
        "Namespace": spec.namespace,
        "AsyncTriggerConfig": spec.async_retry.params(),
    })


def desired_triggers(spec: FunctionSpec) -> list[TriggerWant]:
    wants = [TriggerWant("timer", t.name, t.cron, t.qualifier, t.enable, t.message or None) for t in spec.timers]
    url = spec.function_url
    if url is not None:
        desc = json.dumps({
            "AuthType": url.auth_type,
            "NetConfig": {"EnableIntranet": url.enable_intranet, "EnableExtranet": url.enable_extranet},
        }, separators=(",", ":"))
        wants.append(TriggerWant("http", url.name, desc, url.qualifier, True))
    return wants


def _parse_desc(desc: Any) -> Any:
    if isinstance(desc, str):
        try:
            return json.loads(desc)
        except ValueError:
            return desc
    return desc


def _same_desc(want: TriggerWant, have: Any) -> bool:
    parsed = _parse_desc(have)
    if want.type == "timer":
        cron = parsed.get("cron") if isinstance(parsed, dict) else parsed
        return isinstance(cron, str) and cron.split() == want.desc.split()
    return _covers(parsed, json.loads(want.desc))


def _covers(have: Any, want: Any) -> bool:
    """``have`` has every key ``want`` sets (recursively, keys compared case-insensitively) with equal
    values; keys ``have`` adds (the URL, defaults ListTriggers fills in) do not count as a difference."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        lowered = {str(k).lower(): v for k, v in have.items()}
        return all(str(k).lower() in lowered and _covers(lowered[str(k).lower()], v) for k, v in want.items())
    return bool(have == want)


def _enabled(value: Any) -> bool:
    return value in (1, True, "1", "OPEN", "open", "TRUE", "true")


def find_existing(want: TriggerWant, existing: Iterable[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The trigger ``want`` corresponds to: same type and name; for the function URL, any http
    trigger on the same qualifier (one URL per version/alias)."""
    same_type = [t for t in existing if str(t.get("Type", "")).lower() == want.type]
    for t in same_type:
        if t.get("TriggerName") == want.name:
            return t
    if want.type == "http":
        for t in same_type:
            if _qualifier(t) == want.qualifier:
                return t
    return None


def _qualifier(trigger: Mapping[str, Any]) -> str:
    return str(trigger.get("Qualifier") or "$LATEST")


def delete_trigger_call(spec: FunctionSpec, have: Mapping[str, Any]) -> Call:
    """DeleteTrigger for an existing trigger: its own Type, TriggerName and Qualifier."""
    return Call("DeleteTrigger", {
        "FunctionName": spec.name,
        "Namespace": spec.namespace,
        "Type": str(have.get("Type", "")).lower(),
        "TriggerName": str(have.get("TriggerName", "")),
        "Qualifier": _qualifier(have),
    })


def trigger_calls(spec: FunctionSpec, want: TriggerWant, existing: Iterable[Mapping[str, Any]]) -> list[Call]:
    """The calls that make the trigger ``want`` exist as described, in order.

    ``[]`` when the existing trigger already matches; ``[CreateTrigger]`` when there is none;
    ``[UpdateTrigger]`` when it differs on the same qualifier. ``UpdateTrigger.Qualifier`` names the
    version/alias the trigger was created on and cannot move it (one function URL per version/alias),
    so a trigger on another qualifier is deleted and created again: ``[DeleteTrigger, CreateTrigger]``.
    """
    have = find_existing(want, existing)
    params: dict[str, Any] = {
        "FunctionName": spec.name,
        "Namespace": spec.namespace,
        "Type": want.type,
        "TriggerName": want.name,
        "TriggerDesc": want.desc,
        "Qualifier": want.qualifier,
        "Enable": "OPEN" if want.enable else "CLOSE",
    }
    if want.custom_argument is not None:
        params["CustomArgument"] = want.custom_argument
    if have is None:
        return [Call("CreateTrigger", params)]
    if _qualifier(have) != want.qualifier:
        return [delete_trigger_call(spec, have), Call("CreateTrigger", params)]
    if (
        _same_desc(want, have.get("TriggerDesc"))
        and _enabled(have.get("Enable")) == want.enable
        and (have.get("CustomArgument") or None) == want.custom_argument
    ):
        return []
    params["TriggerName"] = have.get("TriggerName", want.name)
    if want.type == "timer" and want.custom_argument is None:
        params["CustomArgument"] = ""  # omitted, UpdateTrigger may keep the old Message and differ forever
    return [Call("UpdateTrigger", params)]


def is_secret_name(name: str) -> bool:
    return name in SECRET_NAMES or bool(_SECRET_NAME_RE.search(name))


def redact_params(params: Mapping[str, Any], package: Optional[CodePackage] = None) -> dict[str, Any]:
    """A printable copy: secret environment values redacted, the zip shown as size + sha256."""
    out = copy.deepcopy(dict(params))
    block = out.get("Environment")
    if isinstance(block, dict):
        for var in block.get("Variables", []):
            if is_secret_name(str(var.get("Key", ""))):
                var["Value"] = REDACTED
    code = out.get("Code")
    if isinstance(code, dict) and "ZipFile" in code:
        code["ZipFile"] = package.describe() if package else f"<zip base64 {len(code['ZipFile'])} chars>"
    return out


def dry_run_plan(spec: FunctionSpec, env_vars: Mapping[str, str], package: CodePackage) -> list[Call]:
    """Every call a deploy may make, in order, with the condition under which it is made."""
    ident = {"FunctionName": spec.name, "Namespace": spec.namespace}
    calls = [
        Call("GetFunction", dict(ident), "find out whether the function exists"),
        Call(create_function_call(spec, env_vars, package).action,
             create_function_call(spec, env_vars, package).params, "if it does not exist"),
        Call(update_code_call(spec, package).action, update_code_call(spec, package).params, "if it exists"),
        Call(update_config_call(spec, env_vars).action, update_config_call(spec, env_vars).params, "if it exists"),
        Call("GetFunction", dict(ident), "repeated until Status is Active, after each change"),
    ]
    retry = event_invoke_config_call(spec)
    if retry is not None:
        calls.append(Call(retry.action, retry.params, "async retries and event retention"))
    calls += [
        Call("ListTriggers", {**ident, "Offset": 0, "Limit": LIST_LIMIT}, "existing triggers"),
    ]
    for want in desired_triggers(spec):
        (create,) = trigger_calls(spec, want, [])
        calls.append(Call("DeleteTrigger", delete_trigger_call(
            spec, {"Type": want.type, "TriggerName": want.name, "Qualifier": "<its current Qualifier>"}).params,
            f"if the {want.type} trigger {want.name!r} exists on another Qualifier than {want.qualifier} "
            "(UpdateTrigger cannot move it), then CreateTrigger below"))
        calls.append(Call("CreateTrigger", create.params,
                          f"if no {want.type} trigger {want.name!r} exists on {want.qualifier}; "
                          "UpdateTrigger if it differs"))
    return calls


def format_call(call: Call, package: Optional[CodePackage] = None) -> str:
    body = json.dumps(redact_params(call.params, package), ensure_ascii=False, sort_keys=True)
    note = f"  # {call.note}" if call.note else ""
    return f"{call.action} {body}{note}"


# ---------------------------------------------------------------- execution

def _find_url(value: Any) -> Optional[str]:
    match = _URL_RE.search(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return match.group(0) if match else None


@dataclass
class Deployer:
    spec: FunctionSpec
    env_vars: Mapping[str, str]
    package: CodePackage
    api: ApiCall
    out: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_interval_s: float = 2.0
    wait_timeout_s: float = 180.0
    result: DeployResult = field(default_factory=lambda: DeployResult(created=False))

    def _call(self, call: Call) -> dict[str, Any]:
        self.result.actions.append(call.action)
        response = self.api(call.action, call.params)
        return response

    def _ident(self) -> dict[str, Any]:
        return {"FunctionName": self.spec.name, "Namespace": self.spec.namespace}

    def get_function(self) -> Optional[dict[str, Any]]:
        try:
            return self._call(Call("GetFunction", self._ident()))
        except ScfApiError as exc:
            if exc.not_found:
                return None
            raise

    def wait_active(self, ready: tuple[str, ...] = ("Active",)) -> dict[str, Any]:
        """Poll GetFunction until its Status is one of ``ready``; raise on a failed or deleting state."""
        deadline = self.clock() + self.wait_timeout_s
        while True:
            fn = self.get_function()
            if fn is None:
                raise DeployError(f"function {self.spec.namespace}/{self.spec.name} disappeared while deploying")
            status = str(fn.get("Status") or "")
            if status in ready:
                return fn
            if status in UNRECOVERABLE or status.startswith("Delet"):
                raise DeployError(f"function {self.spec.name} is {status}{self._reasons(fn)}; it cannot be "
                                  "updated: delete the function (console or DeleteFunction) and run "
                                  "cijobs deploy again to recreate it")
            if status.endswith("Failed"):
                raise DeployError(f"function {self.spec.name} is {status}{self._reasons(fn)}")
            if self.clock() >= deadline:
                raise DeployError(f"function {self.spec.name} still {status or 'not Active'} "
                                  f"after {self.wait_timeout_s:.0f} s")
            self.sleep(self.poll_interval_s)

    @staticmethod
    def _reasons(fn: Mapping[str, Any]) -> str:
        reasons = fn.get("StatusReasons") or fn.get("StatusDesc") or ""
        return f": {json.dumps(reasons, ensure_ascii=False)}" if reasons else ""

    def list_triggers(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._call(Call("ListTriggers", {**self._ident(), "Offset": offset, "Limit": LIST_LIMIT}))
            triggers = page.get("Triggers") or []
            found.extend(triggers)
            offset += len(triggers)
            if not triggers or offset >= int(page.get("TotalCount") or 0):
                return found

    def run(self) -> DeployResult:
        self.package.check(self.spec, self.env_vars)
        where = f"{self.spec.namespace}/{self.spec.name}"
        existing = self.get_function()
        if existing is None:
            self.out(f"creating function {where} ({self.spec.runtime}, {self.package.describe()})")
            self._call(create_function_call(self.spec, self.env_vars, self.package))
            self.result.created = True
            self.wait_active()
        else:
            if existing.get("Runtime") and existing["Runtime"] != self.spec.runtime:
                raise DeployError(
                    f"function {where} runs {existing['Runtime']}, the template says {self.spec.runtime}; "
                    "SCF cannot change a runtime: delete the function or change Runtime"
                )
            if existing.get("Status") not in READY_FOR_UPDATE:
                self.wait_active(READY_FOR_UPDATE)
            self.out(f"updating code of {where} ({self.package.describe()})")
            self._call(update_code_call(self.spec, self.package))
            self.wait_active()
            self.out(f"updating configuration of {where} ({len(self.env_vars)} environment variables)")
            self._call(update_config_call(self.spec, self.env_vars))
            self.wait_active()
        retry = event_invoke_config_call(self.spec)
        if retry is not None:
            assert self.spec.async_retry is not None
            self.out(f"async retries of {where}: RetryNum {self.spec.async_retry.retry_num}, "
                     f"MsgTTL {self.spec.async_retry.msg_ttl_s} s")
            self._call(retry)
            self.wait_active()
        have = self.list_triggers()
        for want in desired_triggers(self.spec):
            calls = trigger_calls(self.spec, want, have)
            current = find_existing(want, have)
            if not calls:
                self.out(f"{want.type} trigger {want.name}: up to date")
                if want.type == "http" and current is not None:
                    self.result.function_url = self.result.function_url or _find_url(current)
                continue
            for call in calls:
                self.out(f"{want.type} trigger {call.params['TriggerName']} "
                         f"(Qualifier {call.params['Qualifier']}): {call.action}")
                response = self._call(call)
                if call.action == "DeleteTrigger":
                    current = None  # its URL is gone with it
                elif want.type == "http":
                    self.result.function_url = _find_url(response) or (_find_url(current) if current else None)
        return self.result


def deploy(
    spec: FunctionSpec,
    env_vars: Mapping[str, str],
    package: CodePackage,
    api: ApiCall,
    **options: Any,
) -> DeployResult:
    return Deployer(spec, env_vars, package, api, **options).run()
