"""`make package`: the SCF zip holds index.py at its root, cijobs and only the pure-Python runtime pins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from typing import Any

import pytest

from cijobs_tools.packaging import (
    NEVER_PACKAGED,
    PackageReport,
    PackagingError,
    Requirement,
    build_package,
    extras_for,
    read_requirements,
)
from fakes import ROOT

CACHE = os.path.join(ROOT, ".venv", "cijobs-wheels")  # shared with `make package`: downloads happen once
RUNTIME = {"requests", "urllib3", "idna", "certifi", "charset-normalizer", "defusedxml", "structlog"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> PackageReport:
    out = tmp_path_factory.mktemp("pkg") / "cijobs.zip"
    return build_package(str(out), cache=CACHE)


def pyproject() -> str:
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as fh:
        return fh.read()


def test_requirements_are_the_runtime_pins() -> None:
    reqs = read_requirements(pyproject())
    assert {r.key for r in reqs} == RUNTIME
    assert all(r.version and r.version[0].isdigit() for r in reqs)
    with_api = {r.key for r in read_requirements(pyproject(), ["cmq-api"])}
    assert with_api == RUNTIME | {"tencentcloud-sdk-python-common", "tencentcloud-sdk-python-tdmq"}
    deploy = {r.key for r in read_requirements(pyproject(), ["deploy"])}
    assert not deploy & set(NEVER_PACKAGED)  # the SCF SDK never goes into the zip


def test_unpinned_dependency_is_refused() -> None:
    with pytest.raises(PackagingError, match="not pinned"):
        read_requirements('dependencies = [\n    "requests>=2",\n]\n')


def test_extras_follow_the_configuration() -> None:
    assert extras_for({"CMQ_MODE": "api"}) == ["cmq-api"]
    assert extras_for({"CMQ_MODE": "dataflow"}) == [] and extras_for({}) == []


def test_zip_contents(built: PackageReport) -> None:
    with zipfile.ZipFile(built.path) as zf:
        names = zf.namelist()
        index = zf.read("index.py")
    with open(os.path.join(ROOT, "handler", "index.py"), "rb") as fh:
        assert index == fh.read()
    tops = {n.split("/", 1)[0] for n in names}
    assert {"index.py", "cijobs", "requests", "urllib3", "idna", "certifi", "charset_normalizer", "defusedxml",
            "structlog"} <= tops
    assert "tencentcloud" not in tops  # dataflow mode needs no SDK
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so", ".pyd"))]
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    dist_info = [n.split("/", 1)[1] for n in names if n.split("/", 1)[0].endswith(".dist-info")]
    assert dist_info and all(("licen" in n.lower() or n in ("METADATA",) or "notice" in n.lower())
                             for n in dist_info)
    assert "certifi/cacert.pem" in names  # data files travel too
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zipfile.ZipFile(built.path).infolist())
    assert built.size < 2 * 1024 * 1024, f"package grew to {built.size} bytes"


def test_zip_imports_in_a_clean_interpreter(built: PackageReport, tmp_path: Any) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import index; "
        "assert callable(index.main_handler); import cijobs, requests, structlog, defusedxml; "
        "assert cijobs.__file__.startswith(sys.argv[1]) and requests.__file__.startswith(sys.argv[1]); "
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-I", "-c", code, built.path], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_every_packaged_module_imports_without_the_tools_package(built: PackageReport, tmp_path: Any) -> None:
    with zipfile.ZipFile(built.path) as zf:
        names = zf.namelist()
    assert not [n for n in names if n.startswith("cijobs_tools/")]
    # the whole runtime package is there, file for file
    runtime = os.path.join(ROOT, "lib", "cijobs")
    on_disk = {os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "lib")).replace(os.sep, "/")
               for d, _, files in os.walk(runtime) if "__pycache__" not in d for f in files
               if not f.endswith(".pyc")}
    assert on_disk == {n for n in names if n.startswith("cijobs/")}
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
                     if n.startswith("cijobs/") and n.endswith(".py"))
    assert "cijobs.app" in modules and "cijobs.normalize" in modules
    code = (
        "import sys, importlib; sys.path.insert(0, sys.argv[1]); "
        "[importlib.import_module(m) for m in sys.argv[2:]]; "
        "assert not [m for m in sys.modules if m.startswith('cijobs_tools')]; "
        "print(len(sys.argv) - 2)"
    )
    proc = subprocess.run([sys.executable, "-I", "-c", code, built.path, *modules], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(len(modules))


def test_handler_runs_a_timer_tick_from_the_zip(built: PackageReport, tmp_path: Any) -> None:
    """index.main_handler builds the app and answers a timer event using only what the zip holds."""
    event = {"Type": "Timer", "TriggerName": "poll-pending", "Time": "2026-01-01T00:00:00Z", "Message": "poll-pending"}
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import index; "
        "out = index.main_handler(json.loads(sys.argv[2]), {'request_id': 'r-1', 'time_limit_in_ms': 10000}); "
        "print(json.dumps(out))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou",
           "RESULT_SINK": f"file://{tmp_path}/results", "PENDING_STORE": f"file://{tmp_path}/pending",
           "LOG_LEVEL": "info"}
    proc = subprocess.run([sys.executable, "-I", "-c", code, built.path, json.dumps(event)], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=60, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1])["Trigger"] == "timer"
    assert any('"invocation_summary"' in line for line in lines[:-1])


def test_build_is_reproducible(tmp_path: Any) -> None:
    """Same inputs, same bytes (a frozen copy of the sources: others may be editing the checkout)."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "lib", "cijobs"), src / "lib" / "cijobs",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "handler"), src / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), src / "pyproject.toml")
    first = build_package(str(tmp_path / "first.zip"), root=str(src), cache=CACHE)
    again = build_package(str(tmp_path / "again.zip"), root=str(src), cache=CACHE)
    assert again.sha256 == first.sha256 and again.size == first.size


def test_missing_wheel_is_a_clear_error(tmp_path: Any) -> None:
    from cijobs_tools.packaging import fetch_wheels

    with pytest.raises(PackagingError, match="pip download of pure-Python wheels failed"):
        fetch_wheels([Requirement("cijobs-no-such-package-xyz", "0.0.1")], str(tmp_path), python="/bin/false")


def test_cmq_api_mode_adds_only_the_tdmq_sdk(tmp_path: Any) -> None:
    report = build_package(str(tmp_path / "api.zip"), cache=CACHE, extras=extras_for({"CMQ_MODE": "api"}))
    with zipfile.ZipFile(report.path) as zf:
        names = set(zf.namelist())
    assert "tencentcloud/tdmq/__init__.py" in names and "tencentcloud/common/credential.py" in names
    assert not [n for n in names if n.startswith("tencentcloud/scf/")]


def test_runtime_package_imports_nothing_from_the_tools_package() -> None:
    """Every import statement of lib/cijobs, at any depth (lazy imports too), stays out of cijobs_tools."""
    import ast

    offenders = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "lib", "cijobs")):
        for fn in files:
            if not fn.endswith(".py"):
                continue
            path = os.path.join(dirpath, fn)
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), path)
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                offenders += [f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] == "cijobs_tools"]
            if "cijobs_tools" in open(path, encoding="utf-8").read():
                offenders.append(f"{path}: names cijobs_tools (importlib?)")
    assert offenders == []
