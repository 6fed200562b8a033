"""The `cijobs` command itself: --version, the top-level help, lazy imports, the log-level rules."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from cijobs_tools.cli import main
from cijobs_tools.cli.output import log_level
from fakes import FIXTURES, ROOT


def cijobs(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {}), "PYTHONPATH": os.path.join(ROOT, "lib")}
    return subprocess.run([sys.executable, "-m", "cijobs_tools", *argv], capture_output=True, text=True,
                          env=full, timeout=60, check=False)


def test_version_prints_the_package_version() -> None:
    proc = cijobs("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == f"cijobs {version('cijobs')}\n"


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cijobs {version('cijobs')}"


def test_top_level_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("query", "normalize", "invoke", "emulator", "deploy"):
        assert f"\n    {verb} " in out  # each verb with what it is for
    assert "environment variables" in out and ".env file is not read" in out and "override" in out
    assert "-v" in out and "-q" in out and "--version" in out
    assert "only the module of the verb" not in out  # not the module docstring


# cijobs_tools.cli.__init__ must not pull these in for the light verbs
HEAVY = ("cijobs_tools.emulator", "cijobs_tools.deploy", "tencentcloud", "qcloud_cos", "yaml")
PROBE = """
import sys
from cijobs_tools.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
print("\\nHEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), rc)
"""


@pytest.mark.parametrize("argv", [
    ["query", "--help"],
    ["normalize", os.path.join(FIXTURES, "Tts.xml")],
    ["normalize", "--help"],
    ["--help"],
    ["--version"],
])
def test_light_verbs_never_import_the_emulator_or_deploy(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "lib")}, timeout=60, check=False)
    last = proc.stdout.strip().splitlines()[-1]
    assert last in ("HEAVY= 0", "HEAVY= None"), proc.stdout[-500:] + proc.stderr


def test_query_in_process_does_not_import_the_emulator() -> None:
    code = ("import sys, io\nfrom cijobs_tools.cli import main\n"
            "rc = main(['query', 'j' + 'a' * 32, '--bucket', 'examplebucket-1250000000', '--region', 'ap-guangzhou',"
            " '--endpoint', 'http://127.0.0.1:9', '--timeout', '0.5'])\n"
            f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "lib"), "TENCENTCLOUD_SECRETID": "AKIDx",
           "TENCENTCLOUD_SECRETKEY": "k" * 8, "HTTP_MAX_ATTEMPTS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout + proc.stderr


@pytest.mark.parametrize(("flags", "env", "level"), [
    ({}, {}, "warning"),
    ({}, {"LOG_LEVEL": "INFO"}, "info"),
    ({}, {"LOG_LEVEL": "bogus"}, "warning"),
    ({"verbose": 1}, {}, "info"),
    ({"verbose": 2}, {"LOG_LEVEL": "error"}, "debug"),
    ({"verbose": 3}, {}, "debug"),
    ({"quiet": True}, {"LOG_LEVEL": "debug"}, "error"),
])
def test_log_level_flag_over_log_level_over_warning(flags: dict[str, object], env: dict[str, str],
                                                    level: str) -> None:
    assert log_level(argparse.Namespace(**flags), env) == level


def test_verbosity_before_or_after_the_verb(capsys: pytest.CaptureFixture[str]) -> None:
    from cijobs_tools.cli import build_parser

    assert build_parser("normalize").parse_args(["-vv", "normalize", "x"]).verbose == 2
    assert build_parser("normalize").parse_args(["normalize", "-q", "x"]).quiet is True
    assert build_parser("normalize").parse_args(["normalize", "x"]).verbose == 0
