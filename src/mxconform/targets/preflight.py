"""Preflight: is the target there, and is it a Matrix homeserver? Asked once per target,
before any check, so that a typo in `base_url` or a closed port is one clear ERROR in
seconds, not a graded run of FAILs or a minute of time-outs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import httpx

from mxconform.errors import TargetUnavailable
from mxconform.http.wire import (
    ACCEPT_ENCODING,
    MAX_JSON_DEPTH,
    UndecodableBody,
    body_decoder,
    nested_deeper,
)
from mxconform.spec import requirements

VERSIONS_PATH = "/_matrix/client/versions"
_MAX_BODY = 1 << 20  # /versions is a few kB; more is not a homeserver's answer
_MAX_DEADLINE_S = 15.0
_HEADERS = {"User-Agent": "mxconform", "Accept-Encoding": ACCEPT_ENCODING}


@dataclass
class Identity:
    """What `/versions` said: the advertised versions, split by whether we know them."""

    status: int
    content_type: str | None
    server_header: str | None
    advertised: list[str]
    known: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    took_ms: float = 0.0

    def held_to(self, override: str | None) -> tuple[requirements.SpecVersion, str]:
        """The version the target is held to, and why (shown in provenance)."""
        if override:
            parsed = requirements.parse_version(override)
            assert parsed is not None  # validated where the override was given
            return parsed, "override"
        newest = requirements.NEWEST_KNOWN
        if self.beyond_newest:
            return newest, (
                f"advertises {', '.join(self.unknown)}, which this harness does not know: "
                f"held to the newest it knows, {requirements.format_version(newest)}"
            )
        return max(requirements.parse_version(k) or (0, 0) for k in self.known), "advertised"

    @property
    def beyond_newest(self) -> bool:
        """Whether it advertises a well-formed version newer than any the harness knows."""
        parsed = (requirements.parse_version(u) for u in self.unknown)
        return any(v is not None and v > requirements.NEWEST_KNOWN for v in parsed)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "content_type": self.content_type,
            "versions_unknown": self.unknown,
            "took_ms": self.took_ms,
        }


def _read_bounded(
    resp: httpx.Response, started: float, deadline: float
) -> tuple[bytes, str | None]:
    """The body, decoded by us a bounded step at a time: no more than just over
    `_MAX_BODY`, read and decoded within the deadline; or why its coding was refused."""
    chunks: list[bytes] = []
    size = 0
    try:
        decoder = body_decoder(resp.headers)
        for raw in chain(resp.iter_raw(), [b""]):  # b"": the wire has ended
            for piece in decoder.feed(raw) if raw else decoder.end():
                chunks.append(piece)
                size += len(piece)
                if size > _MAX_BODY:
                    return b"".join(chunks), None
            if time.perf_counter() - started > deadline:
                break
    except UndecodableBody as exc:
        return b"", str(exc)
    return b"".join(chunks), None


def _versions(content: bytes) -> tuple[list[Any] | None, str]:
    """The `versions` list of a /versions body, or None and why not: every way a body can
    fail to be one (too long, not UTF-8, too deep, not JSON, another shape) is a reason,
    never an exception."""
    if len(content) > _MAX_BODY:
        return None, f" (its body is over {_MAX_BODY} bytes)"
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None, " (its body is not UTF-8)"
    if nested_deeper(text):
        return None, f" (its body is nested deeper than {MAX_JSON_DEPTH} levels)"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f" (its body is not JSON: {str(exc)[:80]})"
    except RecursionError:
        return None, " (its body is nested too deep to parse)"
    if not isinstance(data, dict):
        return None, f" (it is a JSON {type(data).__name__})"
    versions = data.get("versions")
    if not isinstance(versions, list):
        shown = "missing" if versions is None else f"a {type(versions).__name__}"
        return None, f" (its `versions` is {shown})"
    return versions, ""


def identify(base_url: str, timeout_s: float, verify: Any = True) -> Identity:
    """GET /versions within a hard deadline: the answer must be a JSON object whose
    `versions` list names at least one spec version; anything else is TargetUnavailable."""
    url = base_url.rstrip("/") + VERSIONS_PATH
    deadline = min(timeout_s, _MAX_DEADLINE_S)
    started = time.perf_counter()
    try:
        with (
            httpx.Client(timeout=deadline, follow_redirects=False, verify=verify) as http,
            http.stream("GET", url, headers=_HEADERS) as resp,
        ):
            content, refused = _read_bounded(resp, started, deadline)
    except httpx.ConnectError as exc:
        raise TargetUnavailable(f"not reachable: cannot connect to {url} ({exc})") from None
    except httpx.TimeoutException:
        raise TargetUnavailable(f"not reachable: no answer from {url} in {deadline:g}s") from None
    except httpx.HTTPError as exc:
        raise TargetUnavailable(f"not reachable: {url}: {type(exc).__name__}: {exc}") from None
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    ctype = resp.headers.get("content-type")
    answered = f"HTTP {resp.status_code} {ctype or 'without a Content-Type'} from {url}"
    if refused:
        raise TargetUnavailable(f"not a Matrix homeserver: {answered}: {refused}")
    versions, why = _versions(content) if resp.status_code == 200 else (None, "")
    if versions is None:
        raise TargetUnavailable(
            f"not a Matrix homeserver: {answered} is not a JSON object with a `versions` list{why}"
        )
    advertised = [v for v in versions if isinstance(v, str)]
    known = [v for v in advertised if requirements.is_known_version(v)]
    identity = Identity(
        status=resp.status_code,
        content_type=ctype,
        server_header=resp.headers.get("server"),
        advertised=advertised,
        known=known,
        unknown=[str(v)[:40] for v in versions if v not in known][:20],
        took_ms=took_ms,
    )
    if not known and not identity.beyond_newest:
        shown = json.dumps(versions)[:200]
        raise TargetUnavailable(
            f"not a Matrix homeserver: {answered} lists no spec version in `versions` ({shown})"
        )
    return identity
