"""`cijobs deploy`: planning, redaction, and the real SDK calls (checked with `responses`)."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import zipfile
from typing import Any

import pytest
import responses

from cijobs.credentials import Credentials
from cijobs_tools.cli import main
from cijobs_tools.deploy.api import DeployError, ScfApiError, sdk_caller
from cijobs_tools.deploy.deployer import (
    REQUEST_BODY_LIMIT,
    ZIP_LIMIT,
    CodePackage,
    Deployer,
    create_function_call,
    desired_triggers,
    dry_run_plan,
    format_call,
    redact_params,
    trigger_calls,
    update_code_call,
)
from cijobs_tools.deploy.template import parse_template, resolve_dead_letter

SCF_URL = "https://scf.tencentcloudapi.com/"
API_TOKEN = "tok-0123456789abcdef"
DEPLOY_ENV = {
    "CI_BUCKET": "examplebucket-1250000000",
    "CI_REGION": "ap-guangzhou",
    "RESULT_SINK": "cos://examplebucket-1250000000.ap-guangzhou/results",
    "PENDING_STORE": "cos://examplebucket-1250000000.ap-guangzhou/pending",
    "API_TOKEN": API_TOKEN,
}
CREDS = Credentials("AKIDdeployer", "deployer-secret-key", "deployer-session-token")

TEMPLATE_DOC: dict[str, Any] = {
    "Resources": {"default": {
        "Type": "TencentCloud::Serverless::Namespace",
        "cijobs": {"Type": "TencentCloud::Serverless::Function", "Properties": {
            "CodeUri": "cijobs.zip", "Handler": "index.main_handler", "Runtime": "Python3.10",
            "MemorySize": 256, "Timeout": 60, "Role": "CIJobsExecuteRole", "Description": "d",
            "Environment": {"Variables": {
                "CI_BUCKET": "${env:CI_BUCKET}", "CI_REGION": "${env:CI_REGION}",
                "API_TOKEN": "${env:API_TOKEN}", "LOG_LEVEL": "info", "CI_ENDPOINT": "",
                "RESULT_SINK": "${env:RESULT_SINK}", "PENDING_STORE": "${env:PENDING_STORE}",
                "CMQ_ENDPOINT": "${env:CMQ_ENDPOINT:-}", "CLAIM_CHECK_STORE": "${env:CLAIM_CHECK_STORE:-}",
                "RESULT_KEY_TEMPLATE": "${env:RESULT_KEY_TEMPLATE:-}", "CMQ_SECRET_ID": "${env:CMQ_SECRET_ID:-}",
            }},
            "Events": {
                "poll-pending": {"Type": "Timer", "Properties": {
                    "CronExpression": "0 */5 * * * * *", "Message": "poll-pending", "Enable": True}},
                "callbacks": {"Type": "FunctionURL", "Properties": {"AuthType": "NONE"}},
            },
        }},
    }},
}
RESOLVED = {"CI_BUCKET": DEPLOY_ENV["CI_BUCKET"], "CI_REGION": "ap-guangzhou", "API_TOKEN": API_TOKEN,
            "LOG_LEVEL": "info", "RESULT_SINK": DEPLOY_ENV["RESULT_SINK"], "PENDING_STORE": DEPLOY_ENV["PENDING_STORE"]}


def make_zip(names: tuple[str, ...] = ("index.py", "cijobs/__init__.py")) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n in names:
            zf.writestr(n, "x = 1\n")
    return buf.getvalue()


class FakeScf:
    """Just enough of the SCF API 2018-04-16 to deploy against; records every call."""

    def __init__(self, function: dict[str, Any] | None = None, triggers: list[dict[str, Any]] | None = None,
                 polls_until_active: int = 1) -> None:
        self.function = function
        self.triggers = triggers or []
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.polls_until_active = polls_until_active
        self._pending_polls = 0

    def actions(self) -> list[str]:
        return [a for a, _, _ in self.calls]

    def bodies(self, action: str) -> list[dict[str, Any]]:
        return [b for a, b, _ in self.calls if a == action]

    def _busy(self, status: str) -> None:
        assert self.function is not None
        self.function["Status"] = status
        self._pending_polls = self.polls_until_active

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        action = request.headers["X-TC-Action"]
        body = json.loads(request.body)
        self.calls.append((action, body, dict(request.headers)))
        result: dict[str, Any] = {}
        if action == "GetFunction":
            if self.function is None:
                return self._error("ResourceNotFound.Function", "function not found")
            if self._pending_polls:  # still Creating/Updating for this poll
                self._pending_polls -= 1
            else:
                self.function["Status"] = "Active"
            result = dict(self.function)
        elif action == "CreateFunction":
            self.function = {"FunctionName": body["FunctionName"], "Runtime": body["Runtime"]}
            self._busy("Creating")
        elif action in ("UpdateFunctionCode", "UpdateFunctionConfiguration"):
            assert self.function is not None, "no function"
            assert self.function["Status"] in ("Active", "UpdateFailed", "PublishFailed"), "changed while busy"
            self._busy("Updating")
        elif action == "UpdateFunctionEventInvokeConfig":
            assert self.function is not None, "no function"
        elif action == "ListTriggers":
            page = self.triggers[body.get("Offset", 0): body.get("Offset", 0) + body.get("Limit", 20)]
            result = {"Triggers": page, "TotalCount": len(self.triggers)}
        elif action == "DeleteTrigger":
            key = (body["Type"], body["TriggerName"], body.get("Qualifier") or "$LATEST")
            left = [t for t in self.triggers
                    if (t["Type"], t["TriggerName"], t.get("Qualifier") or "$LATEST") != key]
            if len(left) == len(self.triggers):
                return self._error("ResourceNotFound.Trigger", f"no trigger {key}")
            self.triggers = left
        elif action in ("CreateTrigger", "UpdateTrigger"):
            desc = body["TriggerDesc"]
            if body["Type"] == "http":
                desc = json.dumps({**json.loads(desc), "NetConfig": json.loads(desc)["NetConfig"],
                                   "Url": "https://1250000000-abcd1234.ap-guangzhou.tencentscf.com"})
            result = {"TriggerInfo": {"TriggerName": body["TriggerName"], "Type": body["Type"],
                                      "TriggerDesc": desc, "Enable": 1, "Qualifier": body.get("Qualifier")}}
        else:
            return self._error("InvalidAction", action)
        return 200, {"Content-Type": "application/json"}, json.dumps({"Response": {**result, "RequestId": "req-1"}})

    @staticmethod
    def _error(code: str, message: str) -> tuple[int, dict[str, str], str]:
        payload = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req-err"}}
        return 200, {"Content-Type": "application/json"}, json.dumps(payload)


@pytest.fixture
def spec() -> Any:
    return parse_template(TEMPLATE_DOC)


@pytest.fixture
def package() -> CodePackage:
    return CodePackage(make_zip())


def run_deploy(fake: FakeScf, spec: Any, package: CodePackage) -> Any:
    sleeps: list[float] = []
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=fake)
        result = Deployer(spec, RESOLVED, package, sdk_caller(CREDS, "ap-guangzhou"),
                          out=lambda _: None, sleep=sleeps.append).run()
    return result, sleeps


def test_new_function_is_created_then_triggers_added(spec: Any, package: CodePackage) -> None:
    fake = FakeScf()
    result, sleeps = run_deploy(fake, spec, package)
    assert result.created
    assert fake.actions() == ["GetFunction", "CreateFunction", "GetFunction", "GetFunction",
                              "ListTriggers", "CreateTrigger", "CreateTrigger"]
    assert sleeps == [2.0]  # polled once while Creating
    create = fake.bodies("CreateFunction")[0]
    assert create["Handler"] == "index.main_handler" and create["Runtime"] == "Python3.10"
    assert create["Role"] == "CIJobsExecuteRole" and create["MemorySize"] == 256 and create["Timeout"] == 60
    assert create["Code"]["ZipFile"] == package.b64() and create["CodeSource"] == "ZipFile"
    env = {v["Key"]: v["Value"] for v in create["Environment"]["Variables"]}
    assert env == RESOLVED  # placeholders resolved, empty CI_ENDPOINT dropped
    timer, url = fake.bodies("CreateTrigger")
    assert timer == {"FunctionName": "cijobs", "Namespace": "default", "Type": "timer",
                     "TriggerName": "poll-pending", "TriggerDesc": "0 */5 * * * * *", "Qualifier": "$DEFAULT",
                     "Enable": "OPEN", "CustomArgument": "poll-pending"}
    assert url["Type"] == "http" and url["TriggerName"] == "callbacks"
    assert json.loads(url["TriggerDesc"]) == {"AuthType": "NONE",
                                              "NetConfig": {"EnableIntranet": False, "EnableExtranet": True}}
    assert result.function_url == "https://1250000000-abcd1234.ap-guangzhou.tencentscf.com"


def test_requests_are_signed_with_the_explicit_session_token(spec: Any, package: CodePackage) -> None:
    fake = FakeScf()
    run_deploy(fake, spec, package)
    for _, _, headers in fake.calls:
        assert headers["X-TC-Token"] == "deployer-session-token"
        assert headers["X-TC-Version"] == "2018-04-16" and headers["X-TC-Region"] == "ap-guangzhou"
        assert "Credential=AKIDdeployer/" in headers["Authorization"]
        assert headers["Authorization"].startswith("TC3-HMAC-SHA256 ")  # the ~10 MB body limit, not 1 MB
        assert "deployer-secret-key" not in json.dumps(headers)


def test_existing_function_is_updated_and_matching_triggers_left_alone(spec: Any, package: CodePackage) -> None:
    existing_timer = {"Type": "timer", "TriggerName": "poll-pending", "Qualifier": "$DEFAULT", "Enable": 1,
                      "TriggerDesc": '{"cron":"0 */5 * * * * *"}', "CustomArgument": "poll-pending"}
    old_url = {"Type": "http", "TriggerName": "url-trigger", "Qualifier": "$DEFAULT", "Enable": 1,
               "TriggerDesc": json.dumps({"AuthType": "NONE", "NetConfig": {"EnableIntranet": True,
                                                                           "EnableExtranet": False}})}
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Active"},
                   triggers=[existing_timer, old_url])
    result, _ = run_deploy(fake, spec, package)
    assert not result.created
    assert fake.actions() == ["GetFunction", "UpdateFunctionCode", "GetFunction", "GetFunction",
                              "UpdateFunctionConfiguration", "GetFunction", "GetFunction",
                              "ListTriggers", "UpdateTrigger"]
    code = fake.bodies("UpdateFunctionCode")[0]
    assert code["Code"] == {"ZipFile": package.b64()} and code["Handler"] == "index.main_handler"
    config = fake.bodies("UpdateFunctionConfiguration")[0]
    assert "Runtime" not in config and "Code" not in config
    assert {v["Key"]: v["Value"] for v in config["Environment"]["Variables"]} == RESOLVED
    update = fake.bodies("UpdateTrigger")[0]
    assert update["TriggerName"] == "url-trigger"  # one URL per qualifier: the existing one is updated
    assert json.loads(update["TriggerDesc"])["NetConfig"] == {"EnableIntranet": False, "EnableExtranet": True}


def test_second_deploy_creates_no_triggers(spec: Any, package: CodePackage) -> None:
    fake = FakeScf()
    run_deploy(fake, spec, package)
    fake.triggers = [
        {**json.loads(json.dumps(b)), "Enable": 1} for b in fake.bodies("CreateTrigger")
    ]
    fake.calls.clear()
    run_deploy(fake, spec, package)
    assert "CreateTrigger" not in fake.actions() and "UpdateTrigger" not in fake.actions()
    assert "CreateFunction" not in fake.actions()


def test_runtime_change_is_refused(spec: Any, package: CodePackage) -> None:
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.9", "Status": "Active"})
    with pytest.raises(DeployError, match=r"runs Python3\.9, the template says Python3\.10"):
        run_deploy(fake, spec, package)
    assert fake.actions() == ["GetFunction"]


def test_failed_creation_stops_with_the_reason(spec: Any, package: CodePackage) -> None:
    fake = FakeScf()
    fake.polls_until_active = 100
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=fake)
        deployer = Deployer(spec, RESOLVED, package, sdk_caller(CREDS, "ap-guangzhou"), out=lambda _: None,
                            sleep=lambda s: fake.function.update(Status="CreateFailed",  # type: ignore[union-attr]
                                                                 StatusReasons=[{"ErrorMessage": "role"}]))
        with pytest.raises(DeployError, match="CreateFailed"):
            deployer.run()


@pytest.mark.parametrize("status", ["UpdateFailed", "PublishFailed"])
def test_function_left_in_a_failed_update_is_redeployed(spec: Any, package: CodePackage, status: str) -> None:
    # The previous code keeps serving after UpdateFailed/PublishFailed: deploy updates it like an Active one.
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": status,
                             "StatusReasons": [{"ErrorMessage": "last update failed"}]})
    result, _ = run_deploy(fake, spec, package)
    assert fake.actions()[:2] == ["GetFunction", "UpdateFunctionCode"]
    assert "UpdateFunctionConfiguration" in fake.actions() and not result.created


def test_update_in_progress_ending_in_update_failed_is_redeployed(spec: Any, package: CodePackage) -> None:
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Updating"})
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=fake)
        deployer = Deployer(spec, RESOLVED, package, sdk_caller(CREDS, "ap-guangzhou"), out=lambda _: None,
                            sleep=lambda s: fake.function.update(Status="UpdateFailed"))  # type: ignore[union-attr]
        fake._pending_polls = 100  # still Updating until the first sleep turns it UpdateFailed
        deployer.run()
    assert fake.actions()[:4] == ["GetFunction", "GetFunction", "GetFunction", "UpdateFunctionCode"]


@pytest.mark.parametrize("status", ["CreateFailed", "Deleting", "DeleteFailed"])
def test_function_that_cannot_be_updated_says_delete_and_recreate(spec: Any, package: CodePackage,
                                                                  status: str) -> None:
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": status,
                             "StatusReasons": [{"ErrorMessage": "role missing"}]})
    fake._pending_polls = 100  # GetFunction keeps answering the status above
    with pytest.raises(DeployError) as info:
        run_deploy(fake, spec, package)
    message = str(info.value)
    assert f"is {status}" in message and "role missing" in message
    assert "delete the function" in message and "recreate it" in message
    assert "UpdateFunctionCode" not in fake.actions()


def test_update_that_fails_after_our_change_still_stops(spec: Any, package: CodePackage) -> None:
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Active"})
    fake.polls_until_active = 100
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=fake)
        deployer = Deployer(spec, RESOLVED, package, sdk_caller(CREDS, "ap-guangzhou"), out=lambda _: None,
                            sleep=lambda s: fake.function.update(Status="UpdateFailed"))  # type: ignore[union-attr]
        with pytest.raises(DeployError, match="is UpdateFailed"):
            deployer.run()
    assert fake.actions().count("UpdateFunctionCode") == 1 and "UpdateFunctionConfiguration" not in fake.actions()


def test_api_errors_carry_code_and_request_id(spec: Any, package: CodePackage) -> None:
    def denied(request: Any) -> tuple[int, dict[str, str], str]:
        return FakeScf._error("AuthFailure.SignatureFailure", "bad signature")

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=denied)
        with pytest.raises(ScfApiError) as info:
            Deployer(spec, RESOLVED, package, sdk_caller(CREDS, "ap-guangzhou"), out=lambda _: None).run()
    assert info.value.code == "AuthFailure.SignatureFailure" and info.value.request_id == "req-err"
    assert "GetFunction failed" in str(info.value)


def test_unknown_parameter_is_refused_before_sending() -> None:
    with responses.RequestsMock() as rsps:
        call = sdk_caller(CREDS, "ap-guangzhou")
        with pytest.raises(DeployError, match="unknown to the SDK model"):
            call("CreateTrigger", {"FunctionName": "f", "TriggerNmae": "typo"})
        assert len(rsps.calls) == 0


def test_trigger_call_is_none_when_up_to_date(spec: Any) -> None:
    timer = desired_triggers(spec)[0]
    same = {"Type": "timer", "TriggerName": "poll-pending", "TriggerDesc": "0 */5 * * * * *", "Enable": 1,
            "Qualifier": "$DEFAULT", "CustomArgument": "poll-pending"}
    assert trigger_calls(spec, timer, [same]) == []
    (changed,) = trigger_calls(spec, timer, [{**same, "TriggerDesc": "0 */10 * * * * *"}])
    assert changed.action == "UpdateTrigger"
    (disabled,) = trigger_calls(spec, timer, [{**same, "Enable": 0}])
    assert disabled.params["Enable"] == "OPEN"


@pytest.mark.parametrize("kind", ["timer", "http"])
def test_qualifier_change_deletes_and_recreates_the_trigger(spec: Any, package: CodePackage, kind: str) -> None:
    # UpdateTrigger.Qualifier names the version/alias the trigger was created on; it cannot move it.
    timer = {"Type": "timer", "TriggerName": "poll-pending", "Qualifier": "$DEFAULT", "Enable": 1,
             "TriggerDesc": '{"cron":"0 */5 * * * * *"}', "CustomArgument": "poll-pending"}
    url = {"Type": "http", "TriggerName": "callbacks", "Qualifier": "$DEFAULT", "Enable": 1,
           "TriggerDesc": json.dumps({"AuthType": "NONE", "NetConfig": {"EnableIntranet": False,
                                                                       "EnableExtranet": True}})}
    moved = timer if kind == "timer" else url
    moved["Qualifier"] = "$LATEST"  # same name, created on another version/alias
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Active"},
                   triggers=[timer, url])
    result, _ = run_deploy(fake, spec, package)
    assert fake.actions()[-3:] == ["ListTriggers", "DeleteTrigger", "CreateTrigger"]
    assert "UpdateTrigger" not in fake.actions()
    assert fake.bodies("DeleteTrigger") == [{"FunctionName": "cijobs", "Namespace": "default", "Type": kind,
                                            "TriggerName": moved["TriggerName"], "Qualifier": "$LATEST"}]
    (create,) = fake.bodies("CreateTrigger")
    assert create["Type"] == kind and create["Qualifier"] == "$DEFAULT"
    assert create["TriggerName"] == ("poll-pending" if kind == "timer" else "callbacks")
    assert [t["TriggerName"] for t in fake.triggers] == (["callbacks"] if kind == "timer" else ["poll-pending"])
    if kind == "http":
        assert result.function_url == "https://1250000000-abcd1234.ap-guangzhou.tencentscf.com"


def test_qualifier_change_calls_are_accepted_by_the_sdk_models(spec: Any) -> None:
    timer = desired_triggers(spec)[0]
    have = {"Type": "timer", "TriggerName": "poll-pending", "Qualifier": "1", "Enable": 1,
            "TriggerDesc": "0 */5 * * * * *", "CustomArgument": "poll-pending"}
    delete, create = trigger_calls(spec, timer, [have])
    assert (delete.action, create.action) == ("DeleteTrigger", "CreateTrigger")
    assert delete.params["Qualifier"] == "1" and create.params["Qualifier"] == "$DEFAULT"
    with responses.RequestsMock() as rsps:  # the SDK model knows every field we send
        rsps.add(responses.POST, SCF_URL, json={"Response": {"RequestId": "r"}})
        sdk_caller(CREDS, "ap-guangzhou")(delete.action, delete.params)
        assert json.loads(rsps.calls[0].request.body) == delete.params


def test_dry_run_prints_delete_and_create_for_a_moved_trigger(spec: Any, package: CodePackage) -> None:
    lines = [format_call(c, package) for c in dry_run_plan(spec, RESOLVED, package)]
    deletes = [line for line in lines if line.startswith("DeleteTrigger ")]
    assert len(deletes) == 2
    assert '"TriggerName": "poll-pending"' in deletes[0] and "another Qualifier than $DEFAULT" in deletes[0]
    assert lines[lines.index(deletes[0]) + 1].startswith("CreateTrigger ")


def test_function_url_with_extra_keys_and_other_casing_is_up_to_date(spec: Any) -> None:
    url = desired_triggers(spec)[1]
    have = {"Type": "http", "TriggerName": "callbacks", "Qualifier": "$DEFAULT", "Enable": 1,
            "TriggerDesc": json.dumps({
                "authType": "NONE", "Url": "https://1250000000-abcd1234.ap-guangzhou.tencentscf.com",
                "NetConfig": {"enableIntranet": False, "ENABLEEXTRANET": True, "VpcConfig": {}},
            })}
    assert trigger_calls(spec, url, [have]) == []
    for changed in ({"enableIntranet": True, "ENABLEEXTRANET": True},  # a key the template sets differs
                    {"EnableIntranet": False},  # a key the template sets is missing
                    "not a mapping"):
        desc = {**json.loads(have["TriggerDesc"]), "NetConfig": changed}
        (call,) = trigger_calls(spec, url, [{**have, "TriggerDesc": json.dumps(desc)}])
        assert call.action == "UpdateTrigger"
    (call,) = trigger_calls(spec, url, [{**have, "TriggerDesc": json.dumps({"AuthType": "CAM"})}])
    assert call.action == "UpdateTrigger"


def test_redeploy_against_a_richer_list_triggers_answer_changes_nothing(spec: Any, package: CodePackage) -> None:
    timer = {"Type": "timer", "TriggerName": "poll-pending", "Qualifier": "$DEFAULT", "Enable": 1,
             "TriggerDesc": '{"cron":"0 */5 * * * * *"}', "CustomArgument": "poll-pending"}
    url = {"Type": "http", "TriggerName": "callbacks", "Qualifier": "$DEFAULT", "Enable": 1,
           "TriggerDesc": json.dumps({"AuthType": "NONE", "Url": "https://1-x.ap-guangzhou.tencentscf.com",
                                      "NetConfig": {"EnableIntranet": False, "EnableExtranet": True,
                                                    "ExtranetDomain": "1-x.ap-guangzhou.tencentscf.com"}})}
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Active"},
                   triggers=[timer, url])
    result, _ = run_deploy(fake, spec, package)
    assert fake.actions()[-1] == "ListTriggers"
    assert result.function_url == "https://1-x.ap-guangzhou.tencentscf.com"


def test_removed_timer_message_is_cleared_on_update(package: CodePackage) -> None:
    doc = copy.deepcopy(TEMPLATE_DOC)
    timer_props = doc["Resources"]["default"]["cijobs"]["Properties"]["Events"]["poll-pending"]["Properties"]
    del timer_props["Message"]
    spec = parse_template(doc)
    old = {"Type": "timer", "TriggerName": "poll-pending", "Qualifier": "$DEFAULT", "Enable": 1,
           "TriggerDesc": '{"cron":"0 */5 * * * * *"}', "CustomArgument": "poll-pending"}
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Active"},
                   triggers=[old])
    run_deploy(fake, spec, package)
    (update,) = fake.bodies("UpdateTrigger")
    assert update["TriggerName"] == "poll-pending" and update["CustomArgument"] == ""
    (create,) = fake.bodies("CreateTrigger")  # the function URL; a new timer needs no empty argument
    assert create["Type"] == "http" and "CustomArgument" not in create
    timer = desired_triggers(spec)[0]
    assert trigger_calls(spec, timer, [{**old, "CustomArgument": ""}]) == []  # cleared: up to date
    assert trigger_calls(spec, timer, [{k: v for k, v in old.items() if k != "CustomArgument"}]) == []
    (fresh,) = trigger_calls(spec, timer, [])
    assert fresh.action == "CreateTrigger" and "CustomArgument" not in fresh.params


def test_redaction_hides_secrets_and_the_zip(spec: Any, package: CodePackage) -> None:
    plan = dry_run_plan(spec, RESOLVED, package)
    text = "\n".join(format_call(c, package) for c in plan)
    assert API_TOKEN not in text and package.b64()[:40] not in text
    assert f"<zip {package.size} bytes sha256={package.sha256}>" in text
    assert [c.action for c in plan] == ["GetFunction", "CreateFunction", "UpdateFunctionCode",
                                        "UpdateFunctionConfiguration", "GetFunction", "ListTriggers",
                                        "DeleteTrigger", "CreateTrigger", "DeleteTrigger", "CreateTrigger"]
    red = redact_params({"Environment": {"Variables": [{"Key": "CMQ_SECRET_KEY", "Value": "k"},
                                                       {"Key": "LOG_LEVEL", "Value": "info"}]}})
    assert red["Environment"]["Variables"] == [{"Key": "CMQ_SECRET_KEY", "Value": "[redacted]"},
                                               {"Key": "LOG_LEVEL", "Value": "info"}]


def test_inline_zip_limit_keeps_the_request_body_under_10_mb(spec: Any) -> None:
    assert ZIP_LIMIT < 7.5 * 1000 * 1000  # not the 50 MB of Code.ZipFile's docstring
    biggest = CodePackage(b"\xff" * ZIP_LIMIT)
    env = {f"VAR_{i:03d}": "v" * 32 for i in range(100)}  # ~4 KB, SCF's environment limit
    long_spec = dataclasses.replace(spec, description="x" * 1000)
    for call in (create_function_call(long_spec, env, biggest), update_code_call(long_spec, biggest)):
        body = json.dumps(call.params, separators=(",", ":")).encode()
        assert len(body) < REQUEST_BODY_LIMIT == 10 * 1000 * 1000


def test_too_big_zip_is_refused_with_a_pointer_to_cos(spec: Any) -> None:
    with pytest.raises(DeployError, match=r"at most 7450848 bytes: upload larger packages to COS"):
        CodePackage(b"\0" * (ZIP_LIMIT + 1)).check(spec, RESOLVED)


def test_package_checks(spec: Any) -> None:
    with pytest.raises(DeployError, match=r"no index\.py at its root"):
        CodePackage(make_zip(("handler/index.py", "cijobs/__init__.py"))).check(spec, RESOLVED)
    with pytest.raises(DeployError, match="not a zip"):
        CodePackage(b"not a zip").check(spec, RESOLVED)
    with pytest.raises(DeployError, match="CMQ_MODE=api make package"):
        CodePackage(make_zip()).check(spec, {**RESOLVED, "CMQ_MODE": "api"})


# ---------------------------------------------------------------- the CLI

@pytest.fixture
def deploy_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, package: CodePackage) -> Any:
    import yaml

    (tmp_path / "template.yaml").write_text(yaml.safe_dump(TEMPLATE_DOC), encoding="utf-8")
    (tmp_path / "cijobs.zip").write_bytes(package.data)
    for k in [*DEPLOY_ENV, "TENCENTCLOUD_REGION", "TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY",
              "TENCENTCLOUD_SESSIONTOKEN", "CMQ_ENDPOINT", "CLAIM_CHECK_STORE", "RESULT_KEY_TEMPLATE",
              "CMQ_SECRET_ID", "DEAD_LETTER_QUEUE"]:
        monkeypatch.delenv(k, raising=False)
    for k, v in DEPLOY_ENV.items():
        monkeypatch.setenv(k, v)
    return tmp_path


def test_cli_dry_run_prints_calls_and_makes_none(deploy_dir: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, SCF_URL, json={"Response": {}})
        code = main(["deploy", "--dry-run", "--region", "ap-shanghai",
                     "--template", str(deploy_dir / "template.yaml")])
        assert len(rsps.calls) == 0
    out = capsys.readouterr().out
    assert code == 0
    assert "CreateFunction {" in out and "CreateTrigger {" in out and "ap-shanghai" in out
    assert API_TOKEN not in out and '"Value": "[redacted]"' in out


def test_cli_fails_clearly_when_a_placeholder_is_unset(deploy_dir: Any, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("API_TOKEN")
    code = main(["deploy", "--dry-run", "--region", "ap-guangzhou", "--template", str(deploy_dir / "template.yaml")])
    assert code == 2
    assert "set API_TOKEN" in capsys.readouterr().err


def test_cli_refuses_invalid_settings(deploy_dir: Any, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CI_BUCKET", "Not_A_Bucket")
    code = main(["deploy", "--dry-run", "--region", "ap-guangzhou", "--template", str(deploy_dir / "template.yaml")])
    assert code == 2 and "CI_BUCKET must look like" in capsys.readouterr().err


def test_cli_needs_region_and_credentials(deploy_dir: Any, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    template = str(deploy_dir / "template.yaml")
    assert main(["deploy", "--template", template]) == 2
    assert "no region" in capsys.readouterr().err
    monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-guangzhou")
    assert main(["deploy", "--template", template]) == 2
    assert "TENCENTCLOUD_SECRETID" in capsys.readouterr().err


def test_cli_deploys_through_the_sdk(deploy_dir: Any, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDcli")
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "cli-secret")
    monkeypatch.setattr("cijobs_tools.deploy.deployer.time.sleep", lambda s: None)
    fake = FakeScf(polls_until_active=0)
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=fake)
        code = main(["deploy", "--region", "ap-guangzhou", "--template", str(deploy_dir / "template.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert fake.actions()[:2] == ["GetFunction", "CreateFunction"]
    assert "created default/cijobs" in out
    assert "tencentscf.com/callbacks/ci?token=<API_TOKEN>" in out and API_TOKEN not in out
    assert all("X-TC-Token" not in h for _, _, h in fake.calls)  # no session token given → none sent


# ---------------------------------------------------------------- the function's own checks, before deploying

CMQ_ENDPOINT = "http://gz.mqadapter.cmq.tencentyun.com"


def dry_run(deploy_dir: Any) -> int:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, SCF_URL, json={"Response": {}})
        code = main(["deploy", "--dry-run", "--region", "ap-guangzhou",
                     "--template", str(deploy_dir / "template.yaml")])
        assert len(rsps.calls) == 0  # refused or planned: no API call either way
    return code


@pytest.mark.parametrize(("env", "names"), [
    ({"RESULT_SINK": "file:///tmp/cijobs/results"}, ["RESULT_SINK", "file://", "/tmp", "cos://"]),
    ({"RESULT_SINK": "cos://examplebucket-1250000000.ap-guangzhou/r,file:///tmp/r"}, ["RESULT_SINK", "file:///tmp/r"]),
    ({"PENDING_STORE": "file:///tmp/cijobs/pending"}, ["PENDING_STORE", "lost"]),
    ({"CLAIM_CHECK_STORE": "file:///tmp/claims"}, ["CLAIM_CHECK_STORE", "file://"]),
    ({"RESULT_SINK": "cmq-queue://ap-guangzhou/results"}, ["CMQ_ENDPOINT", "cmq-queue://ap-guangzhou/results"]),
    ({"RESULT_SINK": "cmq-topic://ap-guangzhou/results"}, ["CMQ_ENDPOINT"]),
    ({"RESULT_SINK": "cmq-queue://ap-guangzhou/9-not-a-name", "CMQ_ENDPOINT": CMQ_ENDPOINT},
     ["RESULT_SINK", "queue/topic name"]),
    ({"RESULT_SINK": "cmq-queue://ap-guangzhou/results", "CMQ_ENDPOINT": "gz.mqadapter"}, ["CMQ_ENDPOINT"]),
    ({"RESULT_SINK": "cmq-queue://ap-guangzhou/results", "CMQ_ENDPOINT": CMQ_ENDPOINT, "CMQ_SECRET_ID": "AKIDcmq"},
     ["CMQ_SECRET_ID and CMQ_SECRET_KEY"]),
    ({"RESULT_KEY_TEMPLATE": "{prefix}/{Tag}.json"}, ["RESULT_KEY_TEMPLATE", "{JobId}"]),
    ({"RESULT_SINK": "cos://examplebucket-1250000000.ap-guangzhou/p/.pending"}, ["RESULT_SINK", ".pending"]),
    ({"PENDING_STORE": "cos://not-a-bucket/p"}, ["PENDING_STORE"]),
    ({"RESULT_SINK": "s3://bucket/r"}, ["RESULT_SINK"]),
])
def test_dry_run_refuses_what_the_function_would_refuse_or_lose(
        deploy_dir: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], names: list[str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert dry_run(deploy_dir) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no plan printed
    assert "the function would refuse these settings" in captured.err
    for name in names:
        assert name in captured.err
    assert API_TOKEN not in captured.err


def test_dry_run_with_a_cmq_sink_and_its_endpoint_deploys_the_endpoint(
        deploy_dir: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RESULT_SINK", "cmq-queue://ap-guangzhou/results")
    monkeypatch.setenv("CMQ_ENDPOINT", CMQ_ENDPOINT)
    assert dry_run(deploy_dir) == 0
    create = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("CreateFunction "))
    variables = {v["Key"]: v["Value"] for v in json.loads(create.split(" ", 1)[1].split("  # ")[0])
                 ["Environment"]["Variables"]}
    assert variables["CMQ_ENDPOINT"] == CMQ_ENDPOINT and variables["RESULT_SINK"].startswith("cmq-queue://")
    assert "CLAIM_CHECK_STORE" not in variables  # optional and unset: not set on the function


def test_missing_deployer_credentials_get_deployer_advice(deploy_dir: Any, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-guangzhou")
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDonlytheid")
    assert main(["deploy", "--template", str(deploy_dir / "template.yaml")]) == 2
    err = capsys.readouterr().err
    assert "TENCENTCLOUD_SECRETKEY" in err and "docs/permissions/deployer.json" in err
    assert "cam:PassRole" in err and "--dry-run" in err
    assert "bind an execution role" not in err and "AKIDonlytheid" not in err


# ---------------------------------------------------------------- dead-letter queue and async retries

DLQ_TEMPLATE: dict[str, Any] = copy.deepcopy(TEMPLATE_DOC)
DLQ_TEMPLATE["Resources"]["default"]["cijobs"]["Properties"].update({
    "DeadLetterConfig": {"Type": "CMQ-Q", "Name": "${env:DEAD_LETTER_QUEUE:-}"},
    "AsyncTriggerConfig": {"RetryNum": 1, "MsgTTL": 3600},
})


def dlq_spec(queue: str = "cijobs-dlq") -> Any:
    return resolve_dead_letter(parse_template(DLQ_TEMPLATE), {"DEAD_LETTER_QUEUE": queue})


def test_create_sets_the_dead_letter_queue_and_async_retries(package: CodePackage) -> None:
    fake = FakeScf()
    run_deploy(fake, dlq_spec(), package)
    assert fake.bodies("CreateFunction")[0]["DeadLetterConfig"] == {"Type": "CMQ-Q", "Name": "cijobs-dlq"}
    (retry,) = fake.bodies("UpdateFunctionEventInvokeConfig")  # accepted by the SDK's request model
    assert retry == {"FunctionName": "cijobs", "Namespace": "default",
                     "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 3600}}
    actions = fake.actions()
    assert actions.index("CreateFunction") < actions.index("UpdateFunctionEventInvokeConfig") \
        < actions.index("ListTriggers")


def test_update_sets_the_dead_letter_queue_in_the_configuration(package: CodePackage) -> None:
    fake = FakeScf(function={"FunctionName": "cijobs", "Runtime": "Python3.10", "Status": "Active"})
    run_deploy(fake, dlq_spec(), package)
    (config,) = fake.bodies("UpdateFunctionConfiguration")
    assert config["DeadLetterConfig"] == {"Type": "CMQ-Q", "Name": "cijobs-dlq"}
    assert len(fake.bodies("UpdateFunctionEventInvokeConfig")) == 1


def test_without_a_queue_name_no_dead_letter_config_is_sent(spec: Any, package: CodePackage) -> None:
    fake = FakeScf()
    run_deploy(fake, resolve_dead_letter(parse_template(DLQ_TEMPLATE), {}), package)
    assert "DeadLetterConfig" not in fake.bodies("CreateFunction")[0]
    fake = FakeScf()
    run_deploy(fake, spec, package)  # no AsyncTriggerConfig in the template: the call is not made
    assert "UpdateFunctionEventInvokeConfig" not in fake.actions()


def test_dry_run_plans_the_dead_letter_queue_or_warns_without_one(
        deploy_dir: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    (deploy_dir / "template.yaml").write_text(yaml.safe_dump(DLQ_TEMPLATE), encoding="utf-8")
    assert dry_run(deploy_dir) == 0
    captured = capsys.readouterr()
    assert "no dead-letter queue" in captured.err
    assert '"DeadLetterConfig"' not in captured.out and "UpdateFunctionEventInvokeConfig {" in captured.out
    monkeypatch.setenv("DEAD_LETTER_QUEUE", "cijobs-dlq")
    assert dry_run(deploy_dir) == 0
    captured = capsys.readouterr()
    assert "no dead-letter queue" not in captured.err
    assert '"DeadLetterConfig": {"Name": "cijobs-dlq", "Type": "CMQ-Q"}' in captured.out
