"""``template.yaml`` (TCSAM shape) → a typed :class:`FunctionSpec`.

The file keeps the legacy SCF CLI layout (``Resources`` → namespace →
function, optional ``Globals.Function``) so that people who know TCSAM can
read it, but it is deployed by ``cijobs deploy`` (the TCSAM CLI is abandoned
and rejects runtimes newer than Python3.6). One extension: an event of
``Type: FunctionURL`` describes the function URL (SCF trigger type ``http``),
the replacement for the retiring API Gateway trigger.

Environment values may be ``${env:NAME}`` placeholders, resolved from the
deployer's environment at deploy time (so secrets such as ``API_TOKEN`` are
never committed; an unset ``NAME`` is an error), or ``${env:NAME:-}``, the
same but optional (an unset ``NAME`` gives an empty value); an empty value
means "not set, use cijobs' default".

Two more extensions map to SCF API parameters that TCSAM lacks:
``DeadLetterConfig`` (``Type`` ``CMQ-Q``/``CMQ-T``, ``Name``, optional
``FilterType``; CreateFunction/UpdateFunctionConfiguration) and
``AsyncTriggerConfig`` (``RetryNum``, ``MsgTTL`` seconds;
UpdateFunctionEventInvokeConfig). ``DeadLetterConfig.Name`` may be a
placeholder; when it resolves empty, no dead-letter queue is configured.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

SUPPORTED_RUNTIMES = ("Python3.10",)  # the runtime package and its pinned wheels need Python >= 3.10
RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
ENV_TOTAL_LIMIT = 4096  # bytes of keys + values per function [scf-platform §3.2]
# ${env:NAME} (required) or ${env:NAME:-} (optional: empty when NAME is unset)
PLACEHOLDER_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-)?\}")
ENV_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$")
TRIGGER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,59}$")
HANDLER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
NAMESPACE_TYPE = "TencentCloud::Serverless::Namespace"
FUNCTION_TYPE = "TencentCloud::Serverless::Function"
CRON_FIELDS = 7
URL_AUTH_TYPES = ("NONE",)
DEAD_LETTER_TYPES = ("CMQ-Q", "CMQ-T")  # TDMQ CMQ queue / topic [scf-platform §6]
DEAD_LETTER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")  # CMQ queue/topic names
RETRY_NUM_MAX = 2  # SCF async retries for execution errors: default 2 [scf-platform §6]
MSG_TTL_RANGE = (60, 21600)  # async event retention (s), default and maximum 6 h [scf-platform §6]
# CreateFunction/UpdateFunctionConfiguration Description: at most 1000 English letters, digits, spaces,
# commas and full stops, plus Chinese (CreateFunction also lists newlines, UpdateFunctionConfiguration
# does not; the same text goes to both, so newlines are refused).
DESCRIPTION_MAX = 1000
DESCRIPTION_RE = re.compile(r"^[A-Za-z0-9 ,.\u3400-\u4dbf\u4e00-\u9fff]*$")
DESCRIPTION_ALLOWED = "English letters, digits, spaces, commas, full stops and Chinese characters"


class TemplateError(ValueError):
    """The template is malformed or a placeholder cannot be resolved; the message says where."""


@dataclass(frozen=True)
class TimerSpec:
    name: str
    cron: str
    message: str = ""
    enable: bool = True
    qualifier: str = "$DEFAULT"


@dataclass(frozen=True)
class FunctionUrlSpec:
    name: str
    auth_type: str = "NONE"
    enable_extranet: bool = True
    enable_intranet: bool = False
    qualifier: str = "$DEFAULT"


@dataclass(frozen=True)
class DeadLetterSpec:
    """SCF ``DeadLetterConfig``: where an async event goes after its retries and retention are spent."""

    type: str  # CMQ-Q | CMQ-T
    name: str  # raw (may hold a placeholder) until resolve_dead_letter
    filter_type: Optional[str] = None

    def params(self) -> dict[str, str]:
        out = {"Type": self.type, "Name": self.name}
        if self.filter_type:
            out["FilterType"] = self.filter_type
        return out


@dataclass(frozen=True)
class AsyncRetrySpec:
    """SCF ``AsyncTriggerConfig``: retries of an async event after an execution error, and its retention."""

    retry_num: int
    msg_ttl_s: int

    def params(self) -> dict[str, Any]:
        return {"RetryConfig": [{"RetryNum": self.retry_num}], "MsgTTL": self.msg_ttl_s}


@dataclass(frozen=True)
class FunctionSpec:
    namespace: str
    name: str
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    code_uri: str
    description: str = ""
    role: Optional[str] = None
    environment: Mapping[str, str] = field(default_factory=dict)  # raw values, placeholders unresolved
    timers: tuple[TimerSpec, ...] = ()
    function_url: Optional[FunctionUrlSpec] = None
    dead_letter: Optional[DeadLetterSpec] = None
    async_retry: Optional[AsyncRetrySpec] = None

    @property
    def handler_file(self) -> str:
        """``index.main_handler`` → ``index.py`` (must sit at the zip root)."""
        return self.handler.split(".", 1)[0] + ".py"

    def placeholders(self, required_only: bool = False) -> list[str]:
        """Deployer environment variables the template refers to, in order (``required_only``: not ``:-``)."""
        values = list(self.environment.values())
        if self.dead_letter is not None:
            values.append(self.dead_letter.name)
        seen: list[str] = []
        for value in values:
            for name, optional in PLACEHOLDER_RE.findall(value):
                if name not in seen and not (required_only and optional):
                    seen.append(name)
        return seen


def load_template(path: str) -> dict[str, Any]:
    """Read and YAML-parse ``path`` (PyYAML, imported here: only deployers need it)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the installation
        raise TemplateError("reading template.yaml needs PyYAML: pip install 'cijobs[deploy]'") from None
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise TemplateError(f"{path}: the top level must be a mapping with Resources")
    return doc


def _req(props: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
    if key not in props:
        raise TemplateError(f"{where}: {key} is required")
    value = props[key]
    if kind is int and isinstance(value, bool):
        raise TemplateError(f"{where}.{key} must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise TemplateError(f"{where}.{key} must be a {kind.__name__}, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.upper() in ("OPEN", "TRUE", "CLOSE", "FALSE"):
        return value.upper() in ("OPEN", "TRUE")
    raise TemplateError(f"{where} must be true/false (or OPEN/CLOSE), got {value!r}")


def _environment(props: Mapping[str, Any], where: str) -> dict[str, str]:
    block = props.get("Environment")
    if block is None:
        return {}
    if not isinstance(block, dict) or not isinstance(block.get("Variables"), dict):
        raise TemplateError(f"{where}.Environment must be a mapping with Variables")
    out: dict[str, str] = {}
    for raw_key, raw_value in block["Variables"].items():
        key = str(raw_key)
        value: Any = raw_value
        if not ENV_KEY_RE.match(key):
            raise TemplateError(f"{where}.Environment: variable name {key!r} must start with a letter, [A-Za-z0-9_]")
        if key.startswith(RESERVED_PREFIXES):
            raise TemplateError(
                f"{where}.Environment: {key} uses a prefix SCF reserves ({', '.join(RESERVED_PREFIXES)}); "
                "SCF injects TENCENTCLOUD_* credentials itself from the execution role"
            )
        if value is None:
            value = ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise TemplateError(f"{where}.Environment.{key} must be a string, got {type(value).__name__}")
        out[key] = str(value)
    return out


def _cron(value: str, where: str) -> str:
    fields = value.split()
    if len(fields) != CRON_FIELDS:
        raise TemplateError(
            f"{where}.CronExpression must have 7 fields (second minute hour day month week year), got {value!r}"
        )
    return " ".join(fields)


def _events(props: Mapping[str, Any], where: str) -> tuple[tuple[TimerSpec, ...], Optional[FunctionUrlSpec]]:
    events = props.get("Events") or {}
    if not isinstance(events, dict):
        raise TemplateError(f"{where}.Events must be a mapping name → event")
    timers: list[TimerSpec] = []
    url: Optional[FunctionUrlSpec] = None
    for raw_name, event in events.items():
        name = str(raw_name)
        ew = f"{where}.Events.{name}"
        if not isinstance(event, dict):
            raise TemplateError(f"{ew} must be a mapping with Type and Properties")
        etype = event.get("Type")
        ep = event.get("Properties") or {}
        if not isinstance(ep, dict):
            raise TemplateError(f"{ew}.Properties must be a mapping")
        if not TRIGGER_NAME_RE.match(name):
            raise TemplateError(f"{ew}: trigger name must start with a letter, ≤ 60 chars of [A-Za-z0-9_-]")
        if etype == "Timer":
            message = ep.get("Message", "")
            if not isinstance(message, str) or len(message.encode("utf-8")) > 4096:
                raise TemplateError(f"{ew}.Properties.Message must be a string of at most 4 KB")
            timers.append(TimerSpec(
                name=name,
                cron=_cron(_req(ep, "CronExpression", f"{ew}.Properties", str), f"{ew}.Properties"),
                message=message,
                enable=_bool(ep.get("Enable", True), f"{ew}.Properties.Enable"),
                qualifier=str(ep.get("Qualifier", "$DEFAULT")),
            ))
        elif etype == "FunctionURL":
            if url is not None:
                raise TemplateError(f"{ew}: only one FunctionURL event per function (one URL per version/alias)")
            auth = str(ep.get("AuthType", "NONE"))
            if auth not in URL_AUTH_TYPES:
                raise TemplateError(
                    f"{ew}.Properties.AuthType must be NONE (cijobs checks API_TOKEN itself), got {auth!r}"
                )
            url = FunctionUrlSpec(
                name=name,
                auth_type=auth,
                enable_extranet=_bool(ep.get("EnableExtranet", True), f"{ew}.Properties.EnableExtranet"),
                enable_intranet=_bool(ep.get("EnableIntranet", False), f"{ew}.Properties.EnableIntranet"),
                qualifier=str(ep.get("Qualifier", "$DEFAULT")),
            )
            if not (url.enable_extranet or url.enable_intranet):
                raise TemplateError(f"{ew}: enable EnableExtranet and/or EnableIntranet")
        elif etype == "APIGW":
            raise TemplateError(f"{ew}: API Gateway triggers are being retired; use Type: FunctionURL")
        else:
            raise TemplateError(f"{ew}: unsupported event Type {etype!r} (cijobs deploy handles Timer, FunctionURL)")
    return tuple(timers), url


def _optional_block(props: Mapping[str, Any], key: str, where: str, required: tuple[str, ...],
                    optional: tuple[str, ...] = ()) -> Optional[tuple[dict[str, Any], str]]:
    """``props[key]`` checked to be a mapping with no keys but ``required`` + ``optional`` (the required ones
    are checked by the caller, with their types), and its place for messages; None when absent."""
    block = props.get(key)
    if block is None:
        return None
    w = f"{where}.{key}"
    if not isinstance(block, dict):
        raise TemplateError(f"{w} must be a mapping with {' and '.join(required)}")
    allowed = (*required, *optional)
    extra = set(block) - set(allowed)
    if extra:
        raise TemplateError(f"{w}: unknown keys {sorted(extra)} ({', '.join(allowed)})")
    return block, w


def _dead_letter(props: Mapping[str, Any], where: str) -> Optional[DeadLetterSpec]:
    found = _optional_block(props, "DeadLetterConfig", where, ("Type", "Name"), ("FilterType",))
    if found is None:
        return None
    block, w = found
    dtype = _req(block, "Type", w, str)
    if dtype not in DEAD_LETTER_TYPES:
        raise TemplateError(f"{w}.Type must be CMQ-Q (a TDMQ CMQ queue) or CMQ-T (a topic), got {dtype!r}")
    name = _req(block, "Name", w, str)
    if not PLACEHOLDER_RE.search(name) and not DEAD_LETTER_NAME_RE.match(name):
        raise TemplateError(f"{w}.Name must be a CMQ queue/topic name (a letter, then up to 63 of "
                            f"[A-Za-z0-9_-]) or an ${{env:NAME}} placeholder, got {name!r}")
    filter_type = block.get("FilterType")
    if filter_type is not None and not isinstance(filter_type, str):
        raise TemplateError(f"{w}.FilterType must be a string, got {filter_type!r}")
    return DeadLetterSpec(dtype, name, filter_type or None)


def _async_retry(props: Mapping[str, Any], where: str) -> Optional[AsyncRetrySpec]:
    found = _optional_block(props, "AsyncTriggerConfig", where, ("RetryNum", "MsgTTL"))
    if found is None:
        return None
    block, w = found
    retry = _req(block, "RetryNum", w, int)
    if not 0 <= retry <= RETRY_NUM_MAX:
        raise TemplateError(f"{w}.RetryNum must be 0-{RETRY_NUM_MAX}, got {retry}")
    ttl = _req(block, "MsgTTL", w, int)
    lo, hi = MSG_TTL_RANGE
    if not lo <= ttl <= hi:
        raise TemplateError(f"{w}.MsgTTL must be {lo}-{hi} seconds, got {ttl}")
    return AsyncRetrySpec(retry, ttl)


def parse_template(doc: Mapping[str, Any]) -> FunctionSpec:
    """Validate the TCSAM document and return its single function."""
    extra = set(doc) - {"Resources", "Globals"}
    if extra:
        raise TemplateError(f"unknown top-level keys {sorted(extra)}: TCSAM allows only Resources and Globals")
    resources = doc.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("Resources is required: a mapping namespace → {Type, <function>: {...}}")
    glob = (doc.get("Globals") or {}).get("Function") or {}
    if not isinstance(glob, dict):
        raise TemplateError("Globals.Function must be a mapping")
    found: list[tuple[str, str, dict[str, Any]]] = []
    for ns, body in resources.items():
        if not isinstance(body, dict) or body.get("Type") != NAMESPACE_TYPE:
            raise TemplateError(f"Resources.{ns}: Type must be {NAMESPACE_TYPE}")
        for fname, fbody in body.items():
            if fname == "Type":
                continue
            if not isinstance(fbody, dict) or fbody.get("Type") != FUNCTION_TYPE:
                raise TemplateError(f"Resources.{ns}.{fname}: Type must be {FUNCTION_TYPE}")
            props = fbody.get("Properties")
            if not isinstance(props, dict):
                raise TemplateError(f"Resources.{ns}.{fname}: Properties is required")
            found.append((str(ns), str(fname), {**glob, **props}))
    if len(found) != 1:
        raise TemplateError(f"the template must describe exactly one function, found {len(found)}")
    ns, fname, props = found[0]
    where = f"Resources.{ns}.{fname}.Properties"
    if not FUNCTION_NAME_RE.match(fname):
        raise TemplateError(f"Resources.{ns}.{fname}: function name must be 2-60 chars, letters/digits/-/_")
    handler = _req(props, "Handler", where, str)
    if not HANDLER_RE.match(handler):
        raise TemplateError(f"{where}.Handler must look like file.function (e.g. index.main_handler), got {handler!r}")
    runtime = _req(props, "Runtime", where, str)
    if runtime not in SUPPORTED_RUNTIMES:
        raise TemplateError(f"{where}.Runtime must be one of {', '.join(SUPPORTED_RUNTIMES)}, got {runtime!r}")
    memory = _req(props, "MemorySize", where, int)
    if not (memory == 64 or (128 <= memory <= 3072 and memory % 128 == 0)):
        raise TemplateError(f"{where}.MemorySize must be 64 or 128-3072 in steps of 128 (MB), got {memory}")
    timeout = _req(props, "Timeout", where, int)
    if not 1 <= timeout <= 900:
        raise TemplateError(f"{where}.Timeout must be 1-900 seconds, got {timeout}")
    code_uri = _req(props, "CodeUri", where, str)
    role = props.get("Role")
    if role is not None and (not isinstance(role, str) or not role):
        raise TemplateError(f"{where}.Role must be the execution role name")
    ftype = props.get("Type", "Event")
    if ftype != "Event":
        raise TemplateError(f"{where}.Type must be Event (cijobs is an event function), got {ftype!r}")
    description = props.get("Description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise TemplateError(f"{where}.Description must be a string, got {description!r}")
    if len(description) > DESCRIPTION_MAX or not DESCRIPTION_RE.match(description):
        bad = sorted({c for c in description if not DESCRIPTION_RE.match(c)})
        raise TemplateError(
            f"{where}.Description may contain only {DESCRIPTION_ALLOWED}, at most {DESCRIPTION_MAX} "
            f"(SCF CreateFunction/UpdateFunctionConfiguration), got {len(description)} characters"
            + (f" including {' '.join(repr(c) for c in bad)}" if bad else "")
        )
    timers, url = _events(props, where)
    return FunctionSpec(
        namespace=ns,
        name=fname,
        handler=handler,
        runtime=runtime,
        memory_mb=memory,
        timeout_s=timeout,
        code_uri=code_uri,
        description=description,
        role=role,
        environment=_environment(props, where),
        timers=timers,
        function_url=url,
        dead_letter=_dead_letter(props, where),
        async_retry=_async_retry(props, where),
    )


def resolve_environment(spec: FunctionSpec, env: Mapping[str, str]) -> dict[str, str]:
    """Substitute ``${env:NAME}`` from ``env``; drop empty values (SCF refuses them; cijobs' default applies).

    Raises :class:`TemplateError` naming every referenced variable that is unset or empty.
    """
    missing = [n for n in spec.placeholders(required_only=True) if not (env.get(n) or "").strip()]
    if missing:
        raise TemplateError(
            f"template.yaml refers to {', '.join('${env:' + n + '}' for n in missing)}: "
            f"set {', '.join(missing)} in the environment of the deploying shell"
        )
    out: dict[str, str] = {}
    for key, raw in spec.environment.items():
        value = substitute(raw, env)
        if value != "":
            out[key] = value
    size = sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in out.items())
    if size > ENV_TOTAL_LIMIT:
        raise TemplateError(f"environment variables total {size} bytes; SCF allows {ENV_TOTAL_LIMIT} per function")
    return out


def substitute(raw: str, env: Mapping[str, str]) -> str:
    """``raw`` with every placeholder replaced by its (stripped) value; an unset optional one gives ``""``."""
    return PLACEHOLDER_RE.sub(lambda m: (env.get(m.group(1)) or "").strip(), raw)


def resolve_dead_letter(spec: FunctionSpec, env: Mapping[str, str]) -> FunctionSpec:
    """``spec`` with ``DeadLetterConfig.Name`` resolved from ``env``; without a dead-letter queue when it
    resolves empty. Raises :class:`TemplateError` for a required placeholder that is unset or a bad name."""
    dl = spec.dead_letter
    if dl is None:
        return spec
    missing = [n for n, optional in PLACEHOLDER_RE.findall(dl.name) if not optional and not (env.get(n) or "").strip()]
    if missing:
        raise TemplateError(f"DeadLetterConfig.Name refers to ${{env:{missing[0]}}}: set {missing[0]} in the "
                            "environment of the deploying shell")
    name = substitute(dl.name, env)
    if not name:
        return dataclasses.replace(spec, dead_letter=None)
    if not DEAD_LETTER_NAME_RE.match(name):
        raise TemplateError(f"DeadLetterConfig.Name resolved to {name!r}: a CMQ queue/topic name is a letter, "
                            "then up to 63 of [A-Za-z0-9_-]")
    return dataclasses.replace(spec, dead_letter=dataclasses.replace(dl, name=name))
