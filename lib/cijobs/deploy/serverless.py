"""Generate ``serverless.yml`` (Serverless Cloud Framework, ``component: scf``) from ``template.yaml``.

``template.yaml`` is the one source; ``serverless.yml`` is committed for
people who deploy with the ``scf`` CLI of serverless-cloud-framework and a
test checks that it equals what this module generates, so the two never
drift. Regenerate with ``python -m cijobs.deploy.serverless``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from .template import FunctionSpec, TemplateError, load_template, parse_template

HEADER = """\
# GENERATED from template.yaml by `python -m cijobs.deploy.serverless`: do not edit by hand.
# Serverless Cloud Framework (npm serverless-cloud-framework >= 1.2.0 for the http/function URL event).
# Build the code first (`make package` unpacks it into dist/cijobs), export the ${env:...}
# variables below (see README "Deployment"), then run `scf deploy`.
"""


def _src(code_uri: str) -> str:
    base = code_uri[:-4] if code_uri.endswith(".zip") else code_uri
    return base if base.startswith(("./", "/")) else "./" + base


def serverless_document(spec: FunctionSpec) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "name": spec.name,
        "namespace": spec.namespace,
        "region": "${env:TENCENTCLOUD_REGION}",
        "src": _src(spec.code_uri),
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
    variables = {k: v for k, v in spec.environment.items() if v != ""}
    if variables:
        inputs["environment"] = {"variables": variables}
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


def render(spec: FunctionSpec) -> str:
    import yaml

    body = yaml.safe_dump(serverless_document(spec), sort_keys=False, allow_unicode=True, width=120)
    return HEADER + body


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cijobs.deploy.serverless", description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--output", default="serverless.yml")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is not current")
    args = parser.parse_args(argv)
    try:
        text = render(parse_template(load_template(args.template)))
    except TemplateError as exc:
        print(f"serverless: {exc}", file=sys.stderr)
        return 2
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as fh:
                current = fh.read()
        except OSError:
            current = ""
        if current != text:
            print(f"{args.output} is out of date: run python -m cijobs.deploy.serverless", file=sys.stderr)
            return 1
        return 0
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
