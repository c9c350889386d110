"""Synapse releases by version: a pip version spec made into a cached venv's Python.

One venv per exact release under the cache dir (`<cache>/<version>/`), usable only once its
marker file is written, which happens after a verified install: a half-built venv is never run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from mxconform.errors import HarnessError

Version = tuple[int, ...]
MARKER = ".mxconform-release.json"
_EXACT = re.compile(r"^\d+(\.\d+)+$")
_RELEASE = re.compile(r"^\d+\.\d+\.\d+(\.\d+)*$")  # an exact spec: 1.70.1, not 1.70
_LINE = re.compile(r"^(\d+\.\d+)\.\*$")

# synapse-oauth needs the `matrix_authentication_service` section (first in 1.136.0's wheel)
# and the stable scope `urn:matrix:client:api:*` (first in 1.138.0's; 1.136 and 1.137 answer
# every token "doesn't grant access to the Matrix C-S API"). Run on 1.138.0 and 1.150.0.
MAS_CONTRACT_SINCE = "1.138.0"

LIST_TIMEOUT_S = 120.0
INSTALL_TIMEOUT_S = 1800.0
CHECK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Pin:
    """A dependency that must be held back for releases older than `below`, and why."""

    requirement: str
    below: str
    reason: str


PINS = (
    Pin(
        "prometheus-client<0.22",
        "1.150",
        "newer prometheus-client breaks synapse/metrics at import: TypeError: Cannot create a "
        "consistent method resolution order (MRO) for bases Generic, Collector",
    ),
    Pin(
        "pydantic<2",
        "1.90",
        "pydantic 2 breaks synapse/http/servlet.py: ImportError: cannot import name "
        "'MissingError' from 'pydantic' (seen on 1.70.1; 1.90 pins pydantic<2 itself)",
    ),
)


def parse_version(text: str) -> Version | None:
    """`1.70.1` as (1, 70, 1); None for anything else (pre-releases included)."""
    return tuple(int(p) for p in text.split(".")) if _EXACT.match(text) else None


def spec_problem(spec: str) -> str | None:
    """Why a `synapse_version` spec is not one we take, or None."""
    if _RELEASE.match(spec) or _LINE.match(spec):
        return None
    return f"expected an exact release like 1.70.1 or a release line like 1.130.*, got {spec!r}"


def matches(spec: str, version: str) -> bool:
    """Does an exact release satisfy the spec (`1.70.1` exactly, `1.130.*` its line)?"""
    line = _LINE.match(spec)
    if line:
        return version.startswith(line.group(1) + ".") and parse_version(version) is not None
    return parse_version(version) is not None and parse_version(version) == parse_version(spec)


def oauth_problem(spec: str) -> str | None:
    """Why a spec cannot run synapse-oauth (no release it matches has the MAS contract)."""
    line = _LINE.match(spec)
    newest = parse_version(line.group(1) + ".9999" if line else spec)
    floor = parse_version(MAS_CONTRACT_SINCE)
    if newest is None or floor is None or newest >= floor:
        return None
    return (
        f"synapse-oauth needs Synapse {MAS_CONTRACT_SINCE} or later, the first release tested "
        f"to have the MAS contract (matrix_authentication_service and the stable "
        f"urn:matrix:client:api:* scope); {spec} is older"
    )


def pins_for(version: str) -> list[str]:
    """The requirements installed next to matrix-synapse==version (see PINS for why)."""
    v = parse_version(version)
    assert v is not None, version
    return [p.requirement for p in PINS if v < (parse_version(p.below) or ())]


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """$MXCONFORM_CACHE_DIR, else $XDG_CACHE_HOME/mxconform/synapse, else ~/.cache/..."""
    env = os.environ if env is None else env
    if env.get("MXCONFORM_CACHE_DIR"):
        return Path(env["MXCONFORM_CACHE_DIR"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "mxconform" / "synapse"


@dataclass(frozen=True)
class Release:
    """An installed exact release: its venv and the pins it was built with."""

    version: str
    path: Path
    pins: tuple[str, ...] | None  # None: a venv built by hand and adopted

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def _read_marker(path: Path) -> Release | None:
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != path.name:
        return None
    if not (path / "bin" / "python").resolve().is_file():
        return None  # the interpreter the venv links to is gone (a CI runner's new patch)
    pins = data.get("pins")
    return Release(path.name, path, tuple(pins) if isinstance(pins, list) else None)


def _write_marker(release: Release) -> None:
    data = {"version": release.version, "pins": release.pins}
    tmp = release.path / (MARKER + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(release.path / MARKER)  # atomic: a marker is whole or absent


def cached(cache: Path | None = None) -> list[Release]:
    """The releases in the cache with a marker, oldest first."""
    cache = cache or cache_dir()
    found = [r for d in _version_dirs(cache) if (r := _read_marker(d)) is not None]
    return sorted(found, key=lambda r: parse_version(r.version) or ())


def unverified(cache: Path | None = None) -> list[Path]:
    """Release folders without a marker: half-built, or made by hand and not yet checked."""
    found = [d for d in _version_dirs(cache or cache_dir()) if _read_marker(d) is None]
    return sorted(found, key=lambda d: parse_version(d.name) or ())


def _version_dirs(cache: Path) -> list[Path]:
    if not cache.is_dir():
        return []
    return [d for d in cache.iterdir() if d.is_dir() and parse_version(d.name) is not None]


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{' '.join(argv[:4])} … took over {timeout:g}s") from None
    except OSError as exc:
        raise HarnessError(f"could not run {argv[0]}: {exc}") from None


def _tail(output: str, lines: int = 20) -> str:
    """The end of pip's output, with any user:password@ in URLs masked."""
    text = re.sub(r"://[^/@\s]+@", "://***@", output)
    return "\n".join(text.strip().splitlines()[-lines:])


def installed_version(python: str | Path) -> str | None:
    """The matrix-synapse release an interpreter imports, or None (asked once, with a timeout)."""
    try:
        done = _run([str(python), "-c", "import synapse; print(synapse.__version__)"], 60.0)
    except HarnessError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _adopt(path: Path) -> Release | None:
    """A venv made by hand (no marker) is used only if it imports Synapse at its folder's
    version; the marker is then written so the check is not repeated."""
    python = path / "bin" / "python"
    if not python.exists() or installed_version(python) != path.name:
        return None
    if _run([str(python), "-c", "import synapse.app.homeserver"], CHECK_TIMEOUT_S).returncode:
        return None
    release = Release(path.name, path, None)
    _write_marker(release)
    return release


def available_versions() -> list[str]:
    """The matrix-synapse releases the configured index offers (pip's own config applies)."""
    done = _run(
        [sys.executable, "-m", "pip", "index", "versions", "matrix-synapse"], LIST_TIMEOUT_S
    )
    for line in done.stdout.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    raise HarnessError(
        "could not list matrix-synapse releases with pip (offline? try --offline to use the "
        f"cache):\n{_tail(done.stdout + done.stderr, 5)}"
    )


def newest(spec: str, versions: list[str]) -> str | None:
    """The newest exact release in `versions` that the spec matches."""
    found = [v for v in versions if matches(spec, v)]
    return max(found, key=lambda v: parse_version(v) or ()) if found else None


# What a release's venv was resolved to: written beside its marker, read into provenance.
RESOLVED = "mxconform-resolved.json"
# A pip that knows --uploaded-prior-to (the bundled one of an older Python does not).
DATED_PIP = "pip>=25.3"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def release_date(version: str, index: str | None = None) -> datetime | None:
    """When `matrix-synapse==version` was uploaded (the newest of its files), from the
    index's JSON simple API (PEP 691, upload-time of PEP 700); None when it does not say."""
    base = (index or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    try:
        resp = httpx.get(f"{base}/matrix-synapse/", headers={"Accept": SIMPLE_JSON}, timeout=30.0)
        files = resp.json().get("files", []) if resp.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    stamps = [
        str(f.get("upload-time"))
        for f in files
        if isinstance(f, dict)
        and f.get("upload-time")
        and _of_version(str(f.get("filename")), version)
    ]
    if not stamps:
        return None
    return max(datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in stamps)


def _of_version(filename: str, version: str) -> bool:
    return filename.startswith((f"matrix_synapse-{version}-", f"matrix_synapse-{version}.tar"))


def install_venv(version: str, path: Path) -> None:
    """python -m venv, pip install matrix-synapse==version with its pins and with the
    dependencies as they were a day after its upload (`--uploaded-prior-to`: an old release
    run with today's libraries fails in ways it never shipped with), then an import check;
    what pip resolved is written beside the venv for the run's provenance."""
    released = release_date(version)
    prior_to = (released + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ") if released else None
    pip = [str(path / "bin" / "python"), "-m", "pip"]
    dated = ["--uploaded-prior-to", prior_to] if prior_to else []
    steps = [
        [sys.executable, "-m", "venv", str(path)],
        [*pip, "install", "-q", DATED_PIP],
        [*pip, "install", "-q", *dated, f"matrix-synapse=={version}", *pins_for(version)],
        [str(path / "bin" / "python"), "-c", "import synapse.app.homeserver"],
    ]
    for argv in steps:
        done = _run(argv, INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            raise HarnessError(
                f"installing Synapse {version} failed at `{' '.join(argv[1:4])}`:\n"
                + _tail(done.stdout + done.stderr)
            )
    frozen = _run([*pip, "list", "--format", "json", "--exclude", "pip"], CHECK_TIMEOUT_S)
    try:
        packages = {p["name"]: p["version"] for p in json.loads(frozen.stdout or "[]")}
    except (ValueError, KeyError, TypeError):
        packages = {}
    (path / RESOLVED).write_text(
        json.dumps({"uploaded_prior_to": prior_to, "packages": packages}, indent=1) + "\n"
    )


def resolution(version: str, cache: Path | None = None) -> dict[str, Any] | None:
    """What a cached release's dependencies were resolved to (None: a venv from before this
    was recorded, or made by hand)."""
    try:
        data = json.loads(((cache or cache_dir()) / version / RESOLVED).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _locked(cache: Path, version: str) -> Iterator[None]:
    """One installer per release at a time (two runs starting together share the result)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{version}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install_hint(spec: str, cache: Path) -> str:
    return (
        f"no cached Synapse release matches {spec} in {cache}; "
        f"install it with: mxconform synapse install '{spec}'"
    )


def ensure(
    spec: str,
    *,
    offline: bool = False,
    cache: Path | None = None,
    lister: Callable[[], list[str]] = available_versions,
    installer: Callable[[str, Path], None] = install_venv,
) -> Release:
    """The release a spec names, installed into the cache when missing (never when offline)."""
    problem = spec_problem(spec)
    if problem:
        raise HarnessError(f"synapse_version: {problem}")
    cache = cache or cache_dir()
    if offline:
        for path in sorted(_version_dirs(cache), key=lambda d: parse_version(d.name) or ())[::-1]:
            if matches(spec, path.name) and (release := _read_marker(path) or _adopt(path)):
                return release
        raise HarnessError(_install_hint(spec, cache))
    exact = spec if _RELEASE.match(spec) else newest(spec, lister())
    if exact is None:
        raise HarnessError(f"no matrix-synapse release on the package index matches {spec}")
    path = cache / exact
    with _locked(cache, exact):
        release = _read_marker(path) or (_adopt(path) if path.exists() else None)
        if release is not None:
            return release
        shutil.rmtree(path, ignore_errors=True)  # half-built: start again
        try:
            installer(exact, path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        release = Release(exact, path, tuple(pins_for(exact)))
        _write_marker(release)
        return release
