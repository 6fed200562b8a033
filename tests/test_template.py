"""template.yaml is valid, declares every setting the code reads, and serverless.yml is generated from it."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import pytest
import yaml

from cijobs.settings import SETTINGS, Settings
from cijobs_tools.deploy.serverless import render, serverless_document
from cijobs_tools.deploy.template import (
    PLACEHOLDER_RE,
    SUPPORTED_RUNTIMES,
    TemplateError,
    load_template,
    parse_template,
    resolve_dead_letter,
    resolve_environment,
)
from fakes import ROOT

TEMPLATE = os.path.join(ROOT, "template.yaml")
# Variables SCF itself sets (scf-platform.md §3.1): code may read them, the template must not declare them.
PLATFORM_VARS = {
    "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN", "TENCENTCLOUD_RUNENV",
    "TENCENTCLOUD_REGION", "TENCENTCLOUD_APPID", "TENCENTCLOUD_UIN", "USER_CODE_ROOT", "TRIGGER_SRC",
    "_SCF_SERVER_PORT", "SCF_FUNCTIONNAME", "SCF_NAMESPACE", "SCF_FUNCTIONVERSION", "SCF_RUNTIME", "TZ",
}
_READ_RE = re.compile(
    r"""(?:\benv(?:iron)?\.get|\bos\.getenv|\benviron\.get|\benviron\[|\benv\[)\(?\s*(?:(['"])([A-Za-z_][A-Za-z0-9_]*)\1|([A-Z_][A-Z0-9_]*)\b)"""
)
_CONST_RE = re.compile(r"""^([A-Z_][A-Z0-9_]*)\s*(?::\s*\w+\s*)?=\s*['"]([A-Z_][A-Z0-9_]*)['"]\s*$""", re.MULTILINE)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_template(TEMPLATE)


def env_reads(path: str) -> set[str]:
    """Environment variable names a source file reads, literal or through a module constant."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    consts = dict(_CONST_RE.findall(text))
    names = set()
    for _, literal, ident in _READ_RE.findall(text):
        if literal:
            names.add(literal)
        elif ident in consts:
            names.add(consts[ident])
    return names


def source_files() -> list[str]:
    out = [os.path.join(ROOT, "handler", "index.py")]
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "lib", "cijobs")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    return out


def test_template_shape_and_function(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    assert set(doc) <= {"Resources", "Globals"}
    assert spec.handler == "index.main_handler" and spec.runtime in SUPPORTED_RUNTIMES
    assert spec.role, "an execution role is needed for TENCENTCLOUD_* temporary credentials"
    assert spec.memory_mb >= 128 and 1 <= spec.timeout_s <= 900
    assert [t.cron.split() for t in spec.timers] == [["0", "*/5", "*", "*", "*", "*", "*"]]
    assert spec.timers[0].message and spec.timers[0].enable
    assert spec.function_url is not None and spec.function_url.enable_extranet
    assert spec.code_uri == "dist/cijobs.zip"


def test_every_setting_is_declared_and_no_credentials(doc: dict[str, Any]) -> None:
    declared = set(parse_template(doc).environment)
    assert declared == {s.env for s in SETTINGS}
    assert not [k for k in declared if k.startswith("TENCENTCLOUD_")]


def test_every_variable_the_code_reads_is_declared(doc: dict[str, Any]) -> None:
    declared = set(parse_template(doc).environment)
    undeclared = {}
    for path in source_files():
        extra = env_reads(path) - declared - PLATFORM_VARS
        if extra:
            undeclared[os.path.relpath(path, ROOT)] = sorted(extra)
    assert undeclared == {}, f"declare these in template.yaml and cijobs.settings.SETTINGS: {undeclared}"


def test_env_read_scanner_finds_reads(tmp_path: Any) -> None:
    src = tmp_path / "m.py"
    src.write_text('NAME = "FOO_BAR"\nx = os.environ.get("ONE")\ny = env.get(NAME)\nz = os.environ["TWO"]\n'
                   'w = os.getenv("THREE")\n')
    assert env_reads(str(src)) == {"ONE", "FOO_BAR", "TWO", "THREE"}


def test_secrets_are_placeholders_and_literals_are_valid(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    for s in SETTINGS:
        if s.secret:
            assert spec.environment[s.env] in ("", "${env:" + s.env + "}", "${env:" + s.env + ":-}"), \
                f"{s.env} must not be committed"
    literals = {k: v for k, v in spec.environment.items() if v and not PLACEHOLDER_RE.search(v)}
    Settings.from_env(literals)  # every committed value parses


def test_handler_file_is_in_the_package_layout(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    assert os.path.isfile(os.path.join(ROOT, "handler", spec.handler_file))
    with open(os.path.join(ROOT, "handler", spec.handler_file), encoding="utf-8") as fh:
        assert re.search(rf"^def {spec.handler.split('.')[1]}\(", fh.read(), re.MULTILINE)


def test_placeholders_resolve_from_the_deployer_environment(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou", "API_TOKEN": "t0ken-value-0123456",
           "RESULT_SINK": "cos://examplebucket-1250000000.ap-guangzhou/r",
           "PENDING_STORE": "cos://examplebucket-1250000000.ap-guangzhou/p"}
    resolved = resolve_environment(spec, env)
    assert resolved["API_TOKEN"] == "t0ken-value-0123456" and "CI_ENDPOINT" not in resolved
    Settings.from_env(resolved).require_ci_target()
    with pytest.raises(TemplateError, match=r"\$\{env:API_TOKEN\}.*set API_TOKEN"):
        resolve_environment(spec, {k: v for k, v in env.items() if k != "API_TOKEN"})
    with pytest.raises(TemplateError, match="4096"):
        resolve_environment(spec, {**env, "API_TOKEN": "x" * 5000})


def _props(doc: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = doc["Resources"]["default"]["cijobs"]["Properties"]
    return props


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.pop("Handler"), "Handler is required"),
    (lambda p: p.update(Runtime="Python3.6"), "Runtime must be one of Python3.10"),
    (lambda p: p.update(Runtime="Python3.11"), "Runtime must be one of"),
    (lambda p: p.update(MemorySize=200), "MemorySize must be 64 or 128-3072"),
    (lambda p: p.update(Timeout=901), "Timeout must be 1-900"),
    (lambda p: p.update(Handler="index"), "file.function"),
    (lambda p: p["Environment"]["Variables"].update(TENCENTCLOUD_SECRETID="x"), "prefix SCF reserves"),
    (lambda p: p["Environment"]["Variables"].update(SCF_X="x"), "prefix SCF reserves"),
    (lambda p: p["Events"]["poll-pending"]["Properties"].update(CronExpression="*/5 * * * *"), "7 fields"),
    (lambda p: p["Events"].update(api={"Type": "APIGW", "Properties": {}}), "retired; use Type: FunctionURL"),
    (lambda p: p["Events"].update(u2={"Type": "FunctionURL", "Properties": {}}), "only one FunctionURL"),
    (lambda p: p["Events"]["callbacks"]["Properties"].update(AuthType="CAM"), "AuthType must be NONE"),
])
def test_template_errors_name_the_problem(doc: dict[str, Any], change: Any, message: str) -> None:
    bad = copy.deepcopy(doc)
    change(_props(bad))
    with pytest.raises(TemplateError, match=re.escape(message) if "(" in message else message):
        parse_template(bad)


def test_globals_apply_and_extra_top_level_keys_are_refused(doc: dict[str, Any]) -> None:
    with_globals = copy.deepcopy(doc)
    _props(with_globals).pop("Timeout")
    with_globals["Globals"] = {"Function": {"Timeout": 30}}
    assert parse_template(with_globals).timeout_s == 30
    with pytest.raises(TemplateError, match="only Resources and Globals"):
        parse_template({**doc, "Outputs": {}})


def test_serverless_yml_is_generated_into_dist_not_committed(doc: dict[str, Any], tmp_path: Any) -> None:
    from cijobs_tools.deploy.serverless import main

    assert not os.path.exists(os.path.join(ROOT, "serverless.yml")), "serverless.yml is generated into dist/"
    out = tmp_path / "dist" / "serverless.yml"
    assert main(["--template", os.path.join(ROOT, "template.yaml"), "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text == render(parse_template(doc), str(tmp_path / "dist"), ROOT)
    # the code directory is relative to the file: make package unpacks dist/cijobs.zip into dist/cijobs
    src = yaml.safe_load(text)["inputs"]["src"]
    assert os.path.normpath(os.path.join(tmp_path, "dist", src)) == os.path.join(ROOT, "dist", "cijobs")
    assert yaml.safe_load(render(parse_template(doc)))["inputs"]["src"] == "./cijobs"  # dist/serverless.yml
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as fh:
        assert "cijobs_tools.deploy.serverless --output dist/serverless.yml" in fh.read()


def test_serverless_document_maps_the_template(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    sls = yaml.safe_load(render(spec))
    assert sls == serverless_document(spec)
    assert sls["component"] == "scf"
    inputs = sls["inputs"]
    assert (inputs["name"], inputs["handler"], inputs["runtime"]) == (spec.name, spec.handler, spec.runtime)
    assert (inputs["memorySize"], inputs["timeout"], inputs["role"]) == (spec.memory_mb, spec.timeout_s, spec.role)
    assert inputs["environment"]["variables"]["API_TOKEN"] == "${env:API_TOKEN}"
    assert "" not in inputs["environment"]["variables"].values()
    kinds = [next(iter(e)) for e in inputs["events"]]
    assert kinds == ["timer", "http"] and "apigw" not in kinds
    timer = inputs["events"][0]["timer"]["parameters"]
    assert timer["cronExpression"] == spec.timers[0].cron and timer["enable"] is True
    assert timer["argument"] == spec.timers[0].message
    assert inputs["events"][1]["http"]["parameters"]["authType"] == "NONE"


def test_timer_message_names_no_job_ids(doc: dict[str, Any]) -> None:
    """The tick's Message is a note, not IDs: the timer then works the pending registry only."""
    from cijobs.events.base import Limits
    from cijobs.events.timer import TimerEvent

    spec = parse_template(doc)
    for t in spec.timers:
        event = TimerEvent.from_event({"Type": "Timer", "TriggerName": t.name, "Time": "2026-01-01T00:00:00Z",
                                       "Message": t.message})
        assert event.job_ids(Limits(1024 * 1024, 100)) == []


def test_committed_description_uses_only_characters_scf_accepts(doc: dict[str, Any]) -> None:
    # SCF CreateFunction.Description: letters, digits, spaces, commas, full stops, Chinese; at most 1000.
    description = _props(doc)["Description"]
    assert description and re.fullmatch(r"[A-Za-z0-9 ,.\u4e00-\u9fff]{1,1000}", description)
    assert parse_template(doc).description == description


@pytest.mark.parametrize("text", ["Queries CI (Cloud Infinite) jobs", "jobs: done", "a\nb", "x" * 1001,
                                  "tab\there", "semi;colon"])
def test_description_with_characters_scf_refuses_is_an_error(doc: dict[str, Any], text: str) -> None:
    bad = copy.deepcopy(doc)
    _props(bad)["Description"] = text
    with pytest.raises(TemplateError) as info:
        parse_template(bad)
    message = str(info.value)
    assert "Properties.Description may contain only" in message
    assert "English letters, digits, spaces, commas, full stops and Chinese characters" in message
    assert "at most 1000" in message
    if "(" in text:
        assert "'('" in message and "')'" in message


@pytest.mark.parametrize("text", ["", "Queries CI jobs, writes results.", "查询数据万象任务, 写入 COS.", "x" * 1000])
def test_description_scf_accepts_parses(doc: dict[str, Any], text: str) -> None:
    ok = copy.deepcopy(doc)
    _props(ok)["Description"] = text
    assert parse_template(ok).description == text


def test_committed_template_has_an_optional_dead_letter_queue_and_async_retries(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    assert spec.dead_letter is not None and spec.dead_letter.type in ("CMQ-Q", "CMQ-T")
    assert spec.dead_letter.name == "${env:DEAD_LETTER_QUEUE:-}"
    assert spec.async_retry is not None and spec.async_retry.params() == {
        "RetryConfig": [{"RetryNum": spec.async_retry.retry_num}], "MsgTTL": spec.async_retry.msg_ttl_s}
    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou", "API_TOKEN": "t-0123456789abcdef",
           "RESULT_SINK": "cos://examplebucket-1250000000.ap-guangzhou/r",
           "PENDING_STORE": "cos://examplebucket-1250000000.ap-guangzhou/p"}
    assert resolve_dead_letter(spec, env).dead_letter is None  # unset: no dead-letter queue, no error
    resolved = resolve_dead_letter(spec, {**env, "DEAD_LETTER_QUEUE": " cijobs-dlq "})
    assert resolved.dead_letter is not None and resolved.dead_letter.params() == {"Type": "CMQ-Q",
                                                                                  "Name": "cijobs-dlq"}
    with pytest.raises(TemplateError, match=r"DeadLetterConfig\.Name resolved to 'bad name'"):
        resolve_dead_letter(spec, {**env, "DEAD_LETTER_QUEUE": "bad name"})


def test_cmq_endpoint_is_an_optional_placeholder_not_a_hard_coded_empty_value(doc: dict[str, Any]) -> None:
    spec = parse_template(doc)
    assert spec.environment["CMQ_ENDPOINT"] == "${env:CMQ_ENDPOINT:-}"
    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou", "API_TOKEN": "t-0123456789abcdef",
           "RESULT_SINK": "cmq-queue://ap-guangzhou/results",
           "PENDING_STORE": "cos://examplebucket-1250000000.ap-guangzhou/p"}
    assert "CMQ_ENDPOINT" not in resolve_environment(spec, env)  # optional: unset leaves it unset
    assert "CMQ_ENDPOINT" not in spec.placeholders(required_only=True)
    endpoint = "http://gz.mqadapter.cmq.tencentyun.com"
    assert resolve_environment(spec, {**env, "CMQ_ENDPOINT": endpoint})["CMQ_ENDPOINT"] == endpoint


@pytest.mark.parametrize("block,message", [
    ({"DeadLetterConfig": {"Type": "CKAFKA", "Name": "q"}}, "Type must be CMQ-Q"),
    ({"DeadLetterConfig": {"Type": "CMQ-Q"}}, "DeadLetterConfig: Name is required"),
    ({"DeadLetterConfig": {"Type": "CMQ-Q", "Name": "9bad"}}, r"Name must be a CMQ queue/topic name"),
    ({"DeadLetterConfig": {"Type": "CMQ-T", "Name": "t", "Topic": "x"}}, "unknown keys"),
    ({"AsyncTriggerConfig": {"RetryNum": 5, "MsgTTL": 21600}}, "RetryNum must be 0-2"),
    ({"AsyncTriggerConfig": {"RetryNum": 1, "MsgTTL": 30}}, "MsgTTL must be 60-21600"),
    ({"AsyncTriggerConfig": {"RetryNum": True, "MsgTTL": 600}}, "RetryNum must be an integer"),
])
def test_dead_letter_and_async_retry_errors_name_the_problem(doc: dict[str, Any], block: dict[str, Any],
                                                             message: str) -> None:
    changed = copy.deepcopy(doc)
    props = _props(changed)
    props.pop("DeadLetterConfig", None)
    props.pop("AsyncTriggerConfig", None)
    props.update(block)
    with pytest.raises(TemplateError, match=message):
        parse_template(changed)


def test_serverless_document_maps_the_dead_letter_queue_and_optional_placeholders(doc: dict[str, Any]) -> None:
    inputs = serverless_document(parse_template(doc))["inputs"]
    assert inputs["deadLetter"] == {"type": "CMQ-Q", "name": "${env:DEAD_LETTER_QUEUE}"}
    assert inputs["environment"]["variables"]["CMQ_ENDPOINT"] == "${env:CMQ_ENDPOINT}"
    assert not [v for v in inputs["environment"]["variables"].values() if ":-}" in v]
