"""Reading servers.yaml and known-issues files into the models of `config`: every problem a
user can cause becomes one ConfigError line naming the file, the key path and the problem."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mxconform.targets.config import ConfigError, ServersFile, Target
from mxconform.targets.known_issues import KnownIssue, KnownIssuesFile

PROVISIONING_METHODS = (
    "open-registration",
    "synapse-shared-secret",
    "registration-token",
    "static-users",
)


def _where(path: Path, loc: tuple[int | str, ...]) -> str:
    parts = ""
    for item in loc:
        if isinstance(item, int):
            parts += f"[{item}]"
        elif item in PROVISIONING_METHODS or item.startswith("function-"):
            continue  # pydantic's union branch names are noise to a user
        else:
            parts += f".{item}" if parts else item
    return f"{path}: {parts}" if parts else str(path)


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return f"unknown method; expected one of {expected}"
    if kind == "literal_error":
        return f"expected {error.get('ctx', {}).get('expected', '')}"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def load_servers(path: Path) -> ServersFile:
    """Read and validate a servers file; every user error becomes one ConfigError line.
    A target's `tls.ca_file` is resolved against the file's folder and must exist."""
    servers = _load(path, ServersFile, "a mapping with `defaults` and `targets`")
    targets = []
    for i, target in enumerate(servers.targets):
        ca_file = target.tls.ca_file
        if ca_file is not None:
            found = (path.parent / ca_file).resolve()
            if not found.is_file():
                raise ConfigError(f"{path}: targets[{i}].tls.ca_file: no such file: {found}")
            tls = target.tls.model_copy(update={"ca_file": str(found)})
            target = target.model_copy(update={"tls": tls})
            target.ssl_context()  # an unreadable bundle is the user's problem: say so now
        targets.append(target)
    return servers.model_copy(update={"targets": targets})


def load_known_issues(target: Target, servers_path: Path) -> list[KnownIssue]:
    """The target's known issues; the file's path is relative to the servers file."""
    if target.known_issues is None:
        return []
    path = servers_path.parent / target.known_issues
    return _load(path, KnownIssuesFile, "a mapping with `known_issues`").known_issues


_M = TypeVar("_M", bound=BaseModel)


def _load(path: Path, model: type[_M], shape: str) -> _M:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected {shape}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(
            f"{_where(path, tuple(first['loc']))}: {_describe(first)}{suffix}"
        ) from None
