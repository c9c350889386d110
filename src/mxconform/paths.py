"""Where bundled files live: inside the installed wheel, or at the top of a checkout."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent


def suites_dir() -> Path:
    """The suites shipped with the wheel, else the checkout's top-level `suites/`."""
    bundled = _PACKAGE / "suites"
    return bundled if bundled.is_dir() else _CHECKOUT / "suites"


def default_servers_file() -> Path:
    """The servers.yaml shipped with the wheel, else the checkout's own."""
    bundled = _PACKAGE / "data" / "servers.yaml"
    return bundled if bundled.is_file() else _CHECKOUT / "servers.yaml"


def servers_file(arg: str | None) -> Path:
    """The servers file to use: the one named, else ./servers.yaml, else the bundled one."""
    if arg:
        return Path(arg)
    local = Path("servers.yaml")
    return local if local.is_file() else default_servers_file()


def data_file(name: str) -> Path:
    return _PACKAGE / "data" / name


def _git_dir() -> Path | None:
    """The checkout's git folder: `.git`, or where a worktree's `.git` file points."""
    dot = _CHECKOUT / ".git"
    if dot.is_dir():
        return dot
    try:
        text = dot.read_text().strip()
    except OSError:
        return None
    if not text.startswith("gitdir: "):
        return None
    found = Path(text[8:])
    return found if found.is_absolute() else (_CHECKOUT / found).resolve()


def git_commit() -> str | None:
    """The checkout's HEAD commit, read without running git (None outside a checkout).
    This is mxconform's own commit; a server's version is what the server says."""
    git = _git_dir()
    if git is None:
        return None
    try:
        ref = (git / "HEAD").read_text().strip()
        if not ref.startswith("ref: "):
            return ref
        # a worktree shares refs with the main repository (its `commondir`)
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref[5:]).is_file():
                return (base / ref[5:]).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref[5:]):
                return line.split()[0]
        return None
    except OSError:
        return None


def command_line() -> str:
    """The command as the user would type it: `mxconform …` also when started as
    `python -m mxconform.cli` (whose argv[0] is `__main__.py`), for the report's provenance."""
    program = Path(sys.argv[0]).name
    if program in ("__main__.py", "-m", "-c", ""):
        program = "mxconform"
    return shlex.join([program, *sys.argv[1:]])
