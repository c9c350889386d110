"""Where bundled files live: inside the installed wheel, or at the top of a checkout."""

from __future__ import annotations

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


def git_commit() -> str | None:
    """The checkout's HEAD commit, read without running git (None outside a checkout)."""
    head = _CHECKOUT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (_CHECKOUT / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None
