"""docs/permissions/*.json: they parse, and every request the code makes is allowed by one statement.

The actions are derived from the code, not listed by hand: the COS HTTP requests in ``cijobs.cos``, the
store operations each user of a store makes (results, pending registry, claim checks), the CI paths
in ``cijobs.ci_client``, the CMQ actions in ``cijobs.cmq_client`` and the SCF calls in
``cijobs_tools.deploy.deployer``. A new request without a policy statement fails here; so does a
request of a shape the scanner does not know (teach the scanner, then the policy).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import pytest

from fakes import ROOT

PERMISSIONS = os.path.join(ROOT, "docs", "permissions")
LIB = os.path.join(ROOT, "lib")

# COS client request (method, key or None) → COS CAM action
COS_REQUESTS = {("PUT", "key"): "PutObject", ("GET", "key"): "GetObject", ("HEAD", "key"): "HeadObject",
                ("DELETE", "key"): "DeleteObject", ("GET", "None"): "GetBucket"}
# ObjectStore method → COS CAM action (None: no request)
STORE_OPS = {"create": "PutObject", "put": "PutObject", "get": "GetObject", "head": "HeadObject",
             "delete": "DeleteObject", "list": "GetBucket", "list_page": "GetBucket", "key": None, "pointer": None}
# store users: (file, attribute holding the store, placeholder of its prefix in the policy)
STORE_USERS = [
    ("cijobs/pending.py", "self.store", "<PENDING_PREFIX>"),
    ("cijobs/sinks/objects.py", "self.store", "<RESULT_PREFIX>"),
    ("cijobs/sinks/base.py", "store", "<CLAIM_CHECK_PREFIX>"),  # claim_check(store, ...): CMQ and webhook
]
# CI request path (after the bucket's base URL, as given to JobClient.signed_get) → CI CAM action
CI_PATHS = {"/jobs/": "DescribeMediaJob", "/jobs?": "DescribeMediaJobs"}
CI_CALLERS = ("cijobs/ci_client.py", "cijobs/ci_list.py")  # the query and the list API (discovery, doctor)
# granted although no code calls it, with the reason
EXTRA_EXECUTION: dict[str, str] = {}


def load(name: str) -> dict[str, Any]:
    with open(os.path.join(PERMISSIONS, name), encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


def source(rel: str) -> str:
    with open(os.path.join(LIB, rel), encoding="utf-8") as fh:
        return fh.read()


def statements_allowing(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in policy["statement"] if s["effect"] == "allow" and action in s["action"]]


def covered(policy: dict[str, Any], action: str, placeholder: str = "") -> bool:
    """Some statement allows ``action`` on a resource (or prefix condition) naming ``placeholder``."""
    for s in statements_allowing(policy, action):
        where = json.dumps(s["resource"]) + json.dumps(s.get("condition", {}))
        if placeholder in where:
            return True
    return False


# ---------------------------------------------------------------- derived from the code

def cos_client_actions() -> set[str]:
    text = source("cijobs/cos.py")
    calls = re.findall(r'self\._request\(\s*"([A-Z]+)",\s*bucket,\s*region,\s*(None|key)\b', text)
    assert len(calls) == text.count("self._request("), "a COS request of a shape this test does not know"
    unknown = [c for c in calls if c not in COS_REQUESTS]
    assert not unknown, f"map these COS requests to CAM actions in COS_REQUESTS: {unknown}"
    return {COS_REQUESTS[c] for c in calls}


def store_actions(rel: str, attr: str) -> set[str]:
    ops = set(re.findall(re.escape(attr) + r"\.(\w+)\(", source(rel)))
    assert ops, f"no {attr} calls found in {rel}: update STORE_USERS"
    unknown = ops - set(STORE_OPS)
    assert not unknown, f"map these store operations to COS actions in STORE_OPS: {sorted(unknown)}"
    return {a for a in (STORE_OPS[o] for o in ops) if a}


def ci_actions() -> set[str]:
    paths = [p for rel in CI_CALLERS for p in re.findall(r'signed_get\(\s*f?"(/[A-Za-z_/]*\??)', source(rel))]
    assert paths, f"no CI request paths found in {CI_CALLERS}"
    unknown = [p for p in paths if p not in CI_PATHS]
    assert not unknown, f"map these CI paths to CAM actions in CI_PATHS: {unknown}"
    return {CI_PATHS[p] for p in paths}


def cmq_actions() -> tuple[set[str], set[str]]:
    """(queue actions, topic actions): data-flow Action names and Cloud API 3.0 client calls."""
    text = source("cijobs/cmq_client.py")
    names = set(re.findall(r'"((?:Batch)?(?:Send|Publish)Message)"', text))
    names |= set(re.findall(r"client\.(\w+)\(req\)", text))
    assert {"SendMessage", "PublishMessage"} <= names, "the CMQ scanner found no actions"
    unknown = {n for n in names if not n.startswith(("Send", "BatchSend", "Publish", "BatchPublish"))}
    assert not unknown, f"CMQ actions neither send nor publish: {unknown}"
    return {n for n in names if "Send" in n}, {n for n in names if "Publish" in n}


def scf_actions() -> set[str]:
    text = source("cijobs_tools/deploy/deployer.py")
    actions = set(re.findall(r'Call\(\s*"(\w+)"', text))
    assert {"GetFunction", "CreateFunction", "UpdateFunctionConfiguration"} <= actions
    return actions


# ---------------------------------------------------------------- the files

@pytest.mark.parametrize("name", ["execution-role.json", "deployer.json"])
def test_policy_files_parse_and_are_narrow(name: str) -> None:
    policy = load(name)
    assert policy["version"] == "2.0" and policy["statement"]
    for s in policy["statement"]:
        assert set(s) <= {"effect", "action", "resource", "condition"}
        assert s["effect"] == "allow"
        assert s["action"] and all(re.fullmatch(r"name/[a-z]+:[A-Za-z]+", a) for a in s["action"]), s["action"]
        assert s["resource"] and "*" not in s["resource"], "no statement on every resource"
        assert all(r.startswith("qcs::") for r in s["resource"])


def test_execution_role_allows_every_request_the_function_makes() -> None:
    policy = load("execution-role.json")
    needed: set[str] = set()
    for action in cos_client_actions():
        assert statements_allowing(policy, f"name/cos:{action}"), f"cos:{action} is used by cijobs.cos"
    for rel, attr, placeholder in STORE_USERS:
        for action in store_actions(rel, attr):
            needed.add(f"name/cos:{action}")
            assert covered(policy, f"name/cos:{action}", placeholder), \
                f"{rel} needs cos:{action} on {placeholder}"
    for action in ci_actions():
        needed.add(f"name/ci:{action}")
        assert covered(policy, f"name/ci:{action}", "<CI_BUCKET>"), f"ci:{action} on the CI bucket"
    queue, topic = cmq_actions()
    for action in queue:
        needed.add(f"name/tdmq:{action}")
        assert covered(policy, f"name/tdmq:{action}", "<RESULT_QUEUE>"), f"tdmq:{action} on the result queue"
    for action in topic:
        needed.add(f"name/tdmq:{action}")
        assert covered(policy, f"name/tdmq:{action}", "<RESULT_TOPIC>"), f"tdmq:{action} on the result topic"
    granted = {a for s in policy["statement"] for a in s["action"]}
    assert granted - needed == set(EXTRA_EXECUTION), "grant only what the code calls (or say why)"


def test_pending_listing_is_limited_to_the_registry_prefix() -> None:
    policy = load("execution-role.json")
    (listing,) = statements_allowing(policy, "name/cos:GetBucket")
    assert listing["condition"] == {"string_like": {"cos:prefix": "<PENDING_PREFIX>/*"}}
    for s in policy["statement"]:
        for r in s["resource"]:
            if r.startswith("qcs::cos:") and s is not listing:
                assert re.search(r"<(RESULT|PENDING|CLAIM_CHECK)_PREFIX>/", r), f"COS access beyond a prefix: {r}"


def test_deployer_allows_every_scf_call_and_passing_the_role() -> None:
    policy = load("deployer.json")
    needed = {f"name/scf:{a}" for a in scf_actions()} | {"name/cam:PassRole"}
    for action in needed:
        assert statements_allowing(policy, action), f"{action} is called by cijobs deploy"
    granted = {a for s in policy["statement"] for a in s["action"]}
    assert granted == needed
    (pass_role,) = statements_allowing(policy, "name/cam:PassRole")
    assert pass_role["resource"] == ["qcs::cam::uin/<UIN>:roleName/<EXECUTION_ROLE>"]


def test_scanners_see_new_calls(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The derivation is not vacuous: a new store operation or CMQ action shows up."""
    fake = tmp_path / "cijobs" / "sinks"
    fake.mkdir(parents=True)
    (fake / "objects.py").write_text("self.store.create(k)\nself.store.delete(k)\n")
    (tmp_path / "cijobs" / "cmq_client.py").write_text(
        'x = {"Action": "BatchSendMessage" if b else "SendMessage"}\ny = "PublishMessage"\nclient.SendCmqMsg(req)\n')
    monkeypatch.setattr(sys.modules[__name__], "LIB", str(tmp_path))
    assert store_actions("cijobs/sinks/objects.py", "self.store") == {"PutObject", "DeleteObject"}
    assert cmq_actions() == ({"SendMessage", "BatchSendMessage", "SendCmqMsg"}, {"PublishMessage"})
    assert not covered(load("execution-role.json"), "name/cos:DeleteObject", "<RESULT_PREFIX>/*")
