"""`make package`: the SCF zip holds index.py at its root, cijobs and only the pure-Python runtime pins."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from typing import Any

import pytest

from cijobs.packaging import (
    NEVER_PACKAGED,
    PackageReport,
    PackagingError,
    Requirement,
    build_package,
    extras_for,
    read_requirements,
)
from conftest import ROOT

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


def test_build_is_reproducible(built: PackageReport, tmp_path: Any) -> None:
    again = build_package(str(tmp_path / "again.zip"), cache=CACHE)
    assert again.sha256 == built.sha256 and again.size == built.size


def test_missing_wheel_is_a_clear_error(tmp_path: Any) -> None:
    from cijobs.packaging import fetch_wheels

    with pytest.raises(PackagingError, match="pip download of pure-Python wheels failed"):
        fetch_wheels([Requirement("cijobs-no-such-package-xyz", "0.0.1")], str(tmp_path), python="/bin/false")


def test_cmq_api_mode_adds_only_the_tdmq_sdk(tmp_path: Any) -> None:
    report = build_package(str(tmp_path / "api.zip"), cache=CACHE, extras=extras_for({"CMQ_MODE": "api"}))
    with zipfile.ZipFile(report.path) as zf:
        names = set(zf.namelist())
    assert "tencentcloud/tdmq/__init__.py" in names and "tencentcloud/common/credential.py" in names
    assert not [n for n in names if n.startswith("tencentcloud/scf/")]
