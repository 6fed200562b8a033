"""Generate ``serverless.yml`` (Serverless Cloud Framework, ``component: scf``) from ``template.yaml``.

``template.yaml`` is the one source; ``make package`` writes
``dist/serverless.yml`` next to the unpacked code (``dist/cijobs/``) for people
who deploy with the ``scf`` CLI of serverless-cloud-framework. It is never
committed: it is generated with the code it deploys.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

from .template import PLACEHOLDER_RE, FunctionSpec, TemplateError, load_template, parse_template


def _framework_value(raw: str) -> str:
    """``${env:NAME:-}`` → ``${env:NAME}`` (the framework's only placeholder form)."""
    return PLACEHOLDER_RE.sub(lambda m: "${env:" + m.group(1) + "}", raw)

HEADER = """\
# GENERATED from template.yaml by `make package`: do not edit by hand.
# Serverless Cloud Framework (npm serverless-cloud-framework >= 1.2.0 for the http/function URL event).
# `make package` unpacked the code next to this file (./cijobs); export the ${env:...}
# variables below (see docs/deployment.md), then run `scf deploy` in this directory.
# The framework has no optional placeholder (template.yaml's ${env:NAME:-}): those appear here
# as ${env:NAME}. AsyncTriggerConfig (retries, retention) is not mapped: the component applies
# retryNum/msgTTL only with asyncRunEnable; set them in the SCF console (see docs/operations.md).
"""


DEFAULT_OUTPUT = os.path.join("dist", "serverless.yml")


def _src(code_uri: str, out_dir: str, template_dir: str) -> str:
    """The unpacked code directory (``CodeUri``, relative to the template, without ``.zip``), relative to
    the directory the file is written to."""
    base = code_uri[:-4] if code_uri.endswith(".zip") else code_uri
    if os.path.isabs(base):
        return base
    rel = os.path.relpath(os.path.join(template_dir, base), out_dir or ".").replace(os.sep, "/")
    return rel if rel.startswith(("./", "../")) else "./" + rel


def serverless_document(spec: FunctionSpec, out_dir: str = "dist", template_dir: str = ".") -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "name": spec.name,
        "namespace": spec.namespace,
        "region": "${env:TENCENTCLOUD_REGION}",
        "src": _src(spec.code_uri, out_dir, template_dir),
        "type": "event",
        "handler": spec.handler,
        "runtime": spec.runtime,
        "memorySize": spec.memory_mb,
        "timeout": spec.timeout_s,
    }
    if spec.role:
        inputs["role"] = spec.role
    if spec.description:
        inputs["description"] = spec.description
    variables = {k: _framework_value(v) for k, v in spec.environment.items() if v != ""}
    if variables:
        inputs["environment"] = {"variables": variables}
    if spec.dead_letter is not None:
        dead_letter = {"type": spec.dead_letter.type, "name": _framework_value(spec.dead_letter.name)}
        if spec.dead_letter.filter_type:
            dead_letter["filterType"] = spec.dead_letter.filter_type
        inputs["deadLetter"] = dead_letter
    events: list[dict[str, Any]] = []
    for t in spec.timers:
        params: dict[str, Any] = {"qualifier": t.qualifier, "cronExpression": t.cron, "enable": t.enable}
        if t.message:
            params["argument"] = t.message
        events.append({"timer": {"name": t.name, "parameters": params}})
    if spec.function_url is not None:
        u = spec.function_url
        # the component reads the function URL trigger's name from parameters (timer: event level)
        events.append({"http": {"parameters": {
            "name": u.name,
            "qualifier": u.qualifier,
            "authType": u.auth_type,
            "netConfig": {"enableIntranet": u.enable_intranet, "enableExtranet": u.enable_extranet},
        }}})
    if events:
        inputs["events"] = events
    return {"app": spec.name, "stage": "dev", "component": "scf", "name": spec.name, "inputs": inputs}


def render(spec: FunctionSpec, out_dir: str = "dist", template_dir: str = ".") -> str:
    import yaml

    body = yaml.safe_dump(serverless_document(spec, out_dir, template_dir), sort_keys=False, allow_unicode=True,
                          width=120)
    return HEADER + body


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cijobs_tools.deploy.serverless",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="file to write (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        text = render(parse_template(load_template(args.template)), os.path.dirname(os.path.abspath(args.output)),
                      os.path.dirname(os.path.abspath(args.template)))
    except TemplateError as exc:
        print(f"serverless: {exc}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
