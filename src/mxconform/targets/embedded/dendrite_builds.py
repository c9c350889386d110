"""Dendrite builds by version: `go install github.com/matrix-org/dendrite/cmd/...@vX` into a
cache keyed by Dendrite's version and Go's.

One folder per build (`<cache>/<version>-<go version>/bin/`), usable only once its marker is
written, which happens after the built `dendrite` has answered `-version`: a half-built folder
is never run. The module and build caches (`<cache>/gomod`, `<cache>/gobuild`) are the
project's own, shared by every build, so a second Dendrite version or Go release downloads
and compiles only what changed. Only the upstream module (Apache-2.0) is ever built.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mxconform.errors import HarnessError
from mxconform.targets.embedded import releases

MODULE = "github.com/matrix-org/dendrite"
DEFAULT_VERSION = "0.13.8"
COMMANDS = ("dendrite", "generate-keys", "generate-config", "create-account")
MARKER = ".mxconform-dendrite.json"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
INSTALL_TIMEOUT_S = 1800.0
CHECK_TIMEOUT_S = 60.0


def version_problem(version: str) -> str | None:
    """Why a `dendrite_version` is not one we take (an exact release: 0.13.8), or None."""
    return None if _VERSION.match(version) else f"expected a release like 0.13.8, got {version!r}"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """$MXCONFORM_DENDRITE_CACHE_DIR, else `dendrite/` beside the Synapse releases
    (~/.cache/mxconform/dendrite), or inside $MXCONFORM_CACHE_DIR when that is set."""
    env = os.environ if env is None else env
    if env.get("MXCONFORM_DENDRITE_CACHE_DIR"):
        return Path(env["MXCONFORM_DENDRITE_CACHE_DIR"])
    if env.get("MXCONFORM_CACHE_DIR"):
        return Path(env["MXCONFORM_CACHE_DIR"]) / "dendrite"
    return releases.cache_dir(env).parent / "dendrite"


def go_binary(env: Mapping[str, str] | None = None) -> str | None:
    """`go` on PATH, else Go's default install folder; None when neither is there."""
    env = os.environ if env is None else env
    found = shutil.which("go", path=env.get("PATH"))
    if found:
        return found
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.exists() else None


def _run(
    argv: list[str], timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{' '.join(argv[:3])} … took over {timeout:g}s") from None
    except OSError as exc:
        raise HarnessError(f"could not run {argv[0]}: {exc}") from None


def _tail(output: str, lines: int = 20) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


def go_version(go: str) -> str:
    """`go1.26.8`: the toolchain that would build (part of the cache key)."""
    done = _run([go, "env", "GOVERSION"], CHECK_TIMEOUT_S)
    version = done.stdout.strip()
    if done.returncode != 0 or not version.startswith("go"):
        raise HarnessError(f"{go} env GOVERSION failed:\n{_tail(done.stdout + done.stderr, 5)}")
    return version


@dataclass(frozen=True)
class Build:
    """An installed build: where its commands are, what built it and how long it took."""

    version: str
    go: str
    path: Path
    build_s: float | None = None

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def command(self, name: str) -> Path:
        return self.bin / name


def _read_marker(path: Path) -> Build | None:
    try:
        data = json.loads((path / MARKER).read_text())
        build = Build(str(data["version"]), str(data["go"]), path, data.get("build_s"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(build.command(c).exists() for c in COMMANDS):
        return None
    return build


def cached(cache: Path | None = None) -> list[Build]:
    """The verified builds in the cache, by folder name."""
    cache = cache or cache_dir()
    if not cache.is_dir():
        return []
    return [b for d in sorted(cache.iterdir()) if d.is_dir() and (b := _read_marker(d))]


def go_env(go: str, cache: Path, bin_dir: Path) -> dict[str, str]:
    """The environment `go install` runs with: every cache the project's own, modules
    resolved outside any go.mod, cgo on (go-sqlite3 needs it)."""
    env = dict(os.environ)
    env.update(
        GOBIN=str(bin_dir),
        GOMODCACHE=str(cache / "gomod"),
        GOCACHE=str(cache / "gobuild"),
        GOFLAGS="-mod=mod",
        CGO_ENABLED="1",
        GO111MODULE="on",
        GOTOOLCHAIN="local",  # the Go that is in the cache key builds, never a download
    )
    env["PATH"] = f"{Path(go).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def install(version: str, path: Path, go: str, cache: Path) -> float:
    """`go install` of every command at `v<version>` (niced: it takes minutes of CPU), then
    `dendrite -version`; the build's seconds."""
    started = time.perf_counter()
    env = go_env(go, cache, path / "bin")
    targets = [f"{MODULE}/cmd/{c}@v{version}" for c in COMMANDS]
    done = _run(["nice", "-n", "10", go, "install", *targets], INSTALL_TIMEOUT_S, env)
    if done.returncode != 0:
        raise HarnessError(
            f"building Dendrite {version} failed (go install {MODULE}/cmd/...@v{version}):\n"
            + _tail(done.stdout + done.stderr)
        )
    check = _run([str(path / "bin" / "dendrite"), "-version"], CHECK_TIMEOUT_S)
    if check.returncode != 0 or version not in check.stdout + check.stderr:
        raise HarnessError(
            f"the built dendrite does not say it is {version}:\n"
            + _tail(check.stdout + check.stderr, 5)
        )
    return time.perf_counter() - started


@contextlib.contextmanager
def _locked(cache: Path, key: str) -> Iterator[None]:
    """One builder per key at a time (two runs starting together share the result)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Installer = Callable[[str, Path, str, Path], float]

NO_GO = (
    "Dendrite is built from source and needs Go (1.21 or later) with a C compiler: "
    "no `go` on PATH nor in /usr/local/go/bin"
)


def _missing(version: str, cache: Path, go: str | None) -> str:
    """Why there is no build to run: the last build's failure when one was tried (a run
    reads the cache only), else no Go, else the command that builds it."""
    why = f"no cached Dendrite {version} build in {cache}"
    tried = sorted(cache.glob(f".{version}-*.failed")) if cache.is_dir() else []
    if tried:
        return f"{why}; its last build failed: {tried[-1].read_text(errors='replace')}"
    if go is None:
        return f"{why}. {NO_GO}"
    return f"{why}; build it with: mxconform dendrite install {version}"


def ensure(
    version: str = DEFAULT_VERSION,
    *,
    offline: bool = False,
    cache: Path | None = None,
    go: str | None = None,
    installer: Installer = install,
) -> Build:
    """The build of `version` with this machine's Go, built into the cache when missing
    (never when offline: then any cached build of the version will do)."""
    problem = version_problem(version)
    if problem:
        raise HarnessError(f"dendrite_version: {problem}")
    cache = cache or cache_dir()
    if offline:
        found = [b for b in cached(cache) if b.version == version]
        if found:
            return found[-1]
        raise HarnessError(_missing(version, cache, go or go_binary()))
    go = go or go_binary()
    if go is None:
        raise HarnessError(NO_GO)
    key = f"{version}-{go_version(go)}"
    path = cache / key
    with _locked(cache, key):
        build = _read_marker(path)
        if build is not None:
            return build
        shutil.rmtree(path, ignore_errors=True)  # half-built: start again
        failed = cache / f".{key}.failed"
        try:
            seconds = installer(version, path, go, cache)
        except BaseException as exc:
            shutil.rmtree(path, ignore_errors=True)
            if isinstance(exc, HarnessError):  # said again by a run that only reads the cache
                failed.write_text(str(exc))
            raise
        failed.unlink(missing_ok=True)
        build = Build(version, key.split("-", 1)[1], path, round(seconds, 1))
        (path / MARKER).write_text(
            json.dumps({"version": version, "go": build.go, "build_s": build.build_s})
        )
        return build
