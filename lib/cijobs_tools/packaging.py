"""Build the SCF code package ``dist/cijobs.zip`` (``make package``).

Contents: ``index.py`` at the zip root (from ``handler/index.py``), the
``cijobs`` package (the runtime package, whole, with its data files; the
developer tools live in the separate ``cijobs_tools`` package, which is never
packaged), and the runtime dependencies pinned in
``pyproject.toml``, unpacked from **pure-Python wheels** (``py3-none-any``) so
that one zip runs on SCF's Python 3.10+ runtimes and on 3.11 here (Python 3.9
is not supported: urllib3 2.6+ needs 3.10). The Tencent SDKs are added only
when the configuration needs them (``CMQ_MODE=api``);
``tencentcloud-sdk-python-scf`` (deploy only) never. No tests, no
``__pycache__``, no ``*.dist-info`` except licence files. Entries are sorted
and time-stamped 1980-01-01, so the same inputs give the same bytes.

Wheels are fetched once with ``pip download`` into a cache directory
(default ``.venv/cijobs-wheels``) and reused offline afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUTPUT = os.path.join("dist", "cijobs.zip")
DEFAULT_CACHE = os.path.join(".venv", "cijobs-wheels")
ZIP_LIMIT = 50 * 1024 * 1024  # Code.ZipFile limit of the SCF API
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
NEVER_PACKAGED = ("tencentcloud-sdk-python-scf",)
_LICENCE_RE = re.compile(r"(^|/)(licen[cs]e|copying|notice|authors)[^/]*$|^METADATA$", re.IGNORECASE)
_SKIP_DIRS = ("__pycache__", "tests", "test")
# Files several wheels ship with different content (each Tencent SDK wheel carries its own
# tencentcloud/__init__.py with its version); the first wheel in name order wins, i.e. -common.
SHARED_FILES = frozenset({"tencentcloud/__init__.py"})
# The one package that runs in SCF; everything under lib/ besides it is a developer tool.
RUNTIME_PACKAGE = "cijobs"


class PackagingError(RuntimeError):
    """The package cannot be built; the message says what is missing."""


@dataclass(frozen=True)
class Requirement:
    name: str
    version: str

    @property
    def key(self) -> str:
        return normalize_name(self.name)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class PackageReport:
    path: str
    size: int
    sha256: str
    files: int
    requirements: list[Requirement] = field(default_factory=list)


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _array(text: str, key: str) -> list[str]:
    match = re.search(rf'^{re.escape(key)}\s*=\s*\[(.*?)\]', text, re.MULTILINE | re.DOTALL)
    if not match:
        raise PackagingError(f"pyproject.toml has no {key} = [...] list")
    body = "\n".join(line.split("#", 1)[0] for line in match.group(1).splitlines())
    return re.findall(r'"([^"]+)"', body)


def _pins(items: Iterable[str]) -> list[Requirement]:
    out = []
    for item in items:
        name, sep, version = item.partition("==")
        if not sep or not version.strip():
            raise PackagingError(f"dependency {item!r} is not pinned with ==")
        out.append(Requirement(name.strip(), version.strip()))
    return out


def read_requirements(pyproject_text: str, extras: Sequence[str] = ()) -> list[Requirement]:
    """The runtime pins, plus those of ``extras`` (e.g. ``cmq-api``), minus deploy-only packages."""
    reqs = _pins(_array(pyproject_text, "dependencies"))
    for extra in extras:
        reqs += _pins(_array(pyproject_text, extra))
    seen: dict[str, Requirement] = {}
    for r in reqs:
        if r.key in NEVER_PACKAGED:
            continue
        if r.key in seen and seen[r.key].version != r.version:
            raise PackagingError(f"{r.name} is pinned twice: {seen[r.key].version} and {r.version}")
        seen[r.key] = r
    return list(seen.values())


def extras_for(env: dict[str, str]) -> list[str]:
    """Optional dependency groups the configuration needs (``CMQ_MODE=api`` → ``cmq-api``)."""
    return ["cmq-api"] if (env.get("CMQ_MODE") or "").strip().lower() == "api" else []


def _parse_wheel(filename: str) -> Optional[tuple[str, str, str]]:
    """``name-ver(-build)?-py-abi-plat.whl`` → (normalized name, version, "py-abi-plat")."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    return normalize_name(parts[0]), parts[1], "-".join(parts[-3:])


def _is_pure(tag: str) -> bool:
    py, abi, plat = tag.split("-")
    return abi == "none" and plat == "any" and all(p.startswith("py3") or p == "py2" for p in py.split("."))


def find_wheel(cache: str, req: Requirement) -> Optional[str]:
    if not os.path.isdir(cache):
        return None
    for fn in sorted(os.listdir(cache)):
        parsed = _parse_wheel(fn)
        if parsed and parsed[0] == req.key and parsed[1] == req.version and _is_pure(parsed[2]):
            return os.path.join(cache, fn)
    return None


def fetch_wheels(reqs: Sequence[Requirement], cache: str, python: str = sys.executable) -> dict[str, str]:
    """Pure-Python wheel path per requirement, downloading the missing ones with pip."""
    os.makedirs(cache, exist_ok=True)
    missing = [r for r in reqs if not find_wheel(cache, r)]
    if missing:
        cmd = [
            python, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
            "--only-binary=:all:", "--no-deps", "--platform", "manylinux2014_x86_64",
            "--python-version", "3.10", "--implementation", "py", "--abi", "none",
            "--dest", cache, *[str(r) for r in missing],
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise PackagingError(
                "pip download of pure-Python wheels failed for "
                f"{', '.join(str(r) for r in missing)}: {' | '.join(tail)}"
            )
    out: dict[str, str] = {}
    for r in reqs:
        path = find_wheel(cache, r)
        if not path:
            raise PackagingError(f"no pure-Python (py3-none-any) wheel for {r}; it cannot go into the SCF zip")
        out[r.key] = path
    return out


def _keep_wheel_entry(name: str) -> bool:
    if name.endswith("/") or name.endswith((".pyc", ".pyo")):
        return False
    parts = name.split("/")
    if parts[0].endswith(".dist-info"):
        return bool(_LICENCE_RE.search("/".join(parts[1:])))
    if parts[0].endswith(".data"):
        return False
    return not any(p in _SKIP_DIRS for p in parts[:-1])


def _keep_source(rel: str) -> bool:
    parts = rel.split(os.sep)
    return not any(p == "__pycache__" for p in parts) and not rel.endswith((".pyc", ".pyo"))


def collect_entries(root: str, wheels: dict[str, str]) -> dict[str, bytes]:
    """Archive name → bytes for everything the zip holds."""
    entries: dict[str, bytes] = {}
    handler = os.path.join(root, "handler", "index.py")
    if not os.path.isfile(handler):
        raise PackagingError(f"{handler} is missing")
    with open(handler, "rb") as fh:
        entries["index.py"] = fh.read()
    pkg = os.path.join(root, "lib", RUNTIME_PACKAGE)
    if not os.path.isfile(os.path.join(pkg, "__init__.py")):
        raise PackagingError(f"{pkg} is not the {RUNTIME_PACKAGE} package")
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info"))
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, os.path.join(root, "lib"))
            if _keep_source(rel):
                with open(full, "rb") as fh:
                    entries[rel.replace(os.sep, "/")] = fh.read()
    for key in sorted(wheels):
        with zipfile.ZipFile(wheels[key]) as whl:
            for info in whl.infolist():
                if not _keep_wheel_entry(info.filename):
                    continue
                data = whl.read(info)
                prior = entries.get(info.filename)
                if prior is not None and info.filename in SHARED_FILES:
                    continue
                if prior is not None and prior != data:
                    raise PackagingError(f"{info.filename} comes from two wheels with different content")
                entries[info.filename] = data
    return entries


def write_zip(entries: dict[str, bytes], output: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[name])
    os.replace(tmp, output)


def unpack(zip_path: str, directory: str) -> None:
    """Replace ``directory`` with the zip's contents (for tools that deploy a directory)."""
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(directory)


def build_package(
    output: str = DEFAULT_OUTPUT,
    *,
    root: str = ROOT,
    cache: Optional[str] = None,
    extras: Sequence[str] = (),
    python: str = sys.executable,
) -> PackageReport:
    """Build the zip and return its size, sha256 and the pins it contains."""
    with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as fh:
        reqs = read_requirements(fh.read(), extras)
    cache = cache or os.path.join(root, DEFAULT_CACHE)
    wheels = fetch_wheels(reqs, cache, python)
    entries = collect_entries(root, wheels)
    write_zip(entries, output)
    size = os.path.getsize(output)
    if size > ZIP_LIMIT:
        raise PackagingError(f"{output} is {size} bytes; the SCF API takes at most {ZIP_LIMIT} inline")
    with open(output, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return PackageReport(output, size, digest, len(entries), list(reqs))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cijobs_tools.packaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="zip to write (default %(default)s)")
    parser.add_argument("--cache", default=None, help=f"wheel cache directory (default {DEFAULT_CACHE})")
    parser.add_argument("--unpack", default=None, metavar="DIR",
                        help="also extract the zip into DIR (the src directory of serverless.yml)")
    parser.add_argument("--extra", action="append", default=None,
                        help="add an optional dependency group (e.g. cmq-api); default: from CMQ_MODE")
    args = parser.parse_args(argv)
    extras = args.extra if args.extra is not None else extras_for(dict(os.environ))
    try:
        report = build_package(args.output, cache=args.cache, extras=extras)
    except PackagingError as exc:
        print(f"cijobs package: {exc}", file=sys.stderr)
        return 1
    if args.unpack:
        unpack(report.path, args.unpack)
    print(f"{report.path}: {report.size} bytes ({report.size / 1024:.0f} KiB), {report.files} files, "
          f"sha256 {report.sha256}")
    print("dependencies: " + ", ".join(str(r) for r in report.requirements))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
