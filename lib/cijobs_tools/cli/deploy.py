"""`cijobs deploy`: create or update the SCF function described by template.yaml.

Reads the template, resolves ``${env:NAME}`` placeholders from this shell's
environment, validates the resulting settings as the function does at cold
start (plus the SCF-only rules: no ``file://`` stores; see
:mod:`cijobs_tools.deploy.checks`) and the code package (``make package``),
then calls the SCF Cloud API (GetFunction → CreateFunction, or
UpdateFunctionCode + UpdateFunctionConfiguration, with the dead-letter queue
when ``DeadLetterConfig`` names one; UpdateFunctionEventInvokeConfig for the
async retries; then ListTriggers → CreateTrigger/UpdateTrigger, or DeleteTrigger + CreateTrigger when a trigger
moves to another qualifier, for the timer and the function
URL). ``--dry-run`` prints those calls (secrets redacted, the zip as size and
sha256) and makes none. Credentials: the deployer's TENCENTCLOUD_SECRETID/SECRETKEY
(+ SESSIONTOKEN for temporary ones), a CAM user or role with
``docs/permissions/deployer.json``.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import EXIT_FAILED, EXIT_OK, fail

REGION_ENV = "TENCENTCLOUD_REGION"
DEPLOYER_POLICY = "docs/permissions/deployer.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the API calls it would make; make none")
    parser.add_argument("--template", default="template.yaml", help="TCSAM template (default %(default)s)")
    parser.add_argument("--region", default=None, help=f"SCF region, e.g. ap-guangzhou (default: ${REGION_ENV})")
    parser.add_argument("--package", default=None,
                        help="code zip (default: the template's CodeUri, relative to the template)")
    parser.add_argument("--endpoint", default=None, help=argparse.SUPPRESS)  # tests / private API endpoints


def run(args: argparse.Namespace) -> int:
    from cijobs.credentials import CredentialsError
    from cijobs.credentials import from_env as credentials_from_env
    from cijobs.settings import REGION_RE

    from ..deploy.api import DeployError, sdk_caller
    from ..deploy.checks import check_function_settings
    from ..deploy.deployer import CodePackage, Deployer, dry_run_plan, format_call
    from ..deploy.template import (
        TemplateError,
        load_template,
        parse_template,
        resolve_dead_letter,
        resolve_environment,
    )

    env = dict(os.environ)
    try:
        spec = parse_template(load_template(args.template))
        env_vars = resolve_environment(spec, env)
        spec = resolve_dead_letter(spec, env)
    except TemplateError as exc:
        return fail(str(exc))
    try:
        check_function_settings(env_vars)  # the function would refuse these at start: refuse them now
    except ValueError as exc:  # SettingsError, SinkConfigError, CmqConfigError, FunctionSettingsError
        return fail(f"the function would refuse these settings: {exc}")
    region = args.region or (env.get(REGION_ENV) or "").strip()
    if not region:
        return fail(f"no region: pass --region (e.g. ap-guangzhou) or set {REGION_ENV}")
    if not REGION_RE.match(region):
        return fail(f"--region must look like ap-guangzhou, got {region!r}")
    package_path = args.package or os.path.join(os.path.dirname(os.path.abspath(args.template)), spec.code_uri)
    try:
        package = CodePackage.from_file(package_path)
        package.check(spec, env_vars)
    except DeployError as exc:
        return fail(str(exc))

    if spec.dead_letter is None:
        print("cijobs: warning: no dead-letter queue (DeadLetterConfig.Name is empty): async events that still "
              "fail after their retries are dropped; see docs/operations.md", file=sys.stderr)
    if args.dry_run:
        print(f"# dry run: region {region}, function {spec.namespace}/{spec.name}, package {package_path}")
        for call in dry_run_plan(spec, env_vars, package):
            print(format_call(call, package))
        return EXIT_OK

    try:
        credentials = credentials_from_env(env)
    except CredentialsError:
        return fail(deployer_credentials_advice(env))
    try:
        api = sdk_caller(credentials, region, endpoint=args.endpoint)
        result = Deployer(spec, env_vars, package, api, out=lambda line: print(line, file=sys.stderr)).run()
    except DeployError as exc:
        return fail(str(exc), EXIT_FAILED)
    verb = "created" if result.created else "updated"
    print(f"{verb} {spec.namespace}/{spec.name} in {region}: {', '.join(result.actions)}")
    if spec.function_url is not None:
        if result.function_url:
            print(f"function URL: {result.function_url}\n"
                  f"CI callback URL: {result.function_url}/callbacks/ci?token=<API_TOKEN>")
        else:
            print("function URL: see the function's 函数 URL / Function URL tab in the SCF console")
    return EXIT_OK


def deployer_credentials_advice(env: dict[str, str]) -> str:
    """What to do when the deploying shell has no credentials (names only, never a value)."""
    missing = [n for n in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY") if not (env.get(n) or "").strip()]
    return (
        f"no deployer credentials: set {' and '.join(missing)} (and TENCENTCLOUD_SESSIONTOKEN for temporary "
        f"credentials) in this shell, the API key of a CAM user or role allowed what {DEPLOYER_POLICY} "
        "grants (SCF create/update and cam:PassRole for the function's execution role); "
        "or run with --dry-run to print the calls without credentials"
    )
