"""Small matchers for responses, in the spirit of Complement's must/match helpers.

    expect(resp, match.status(401), match.errcode("M_MISSING_TOKEN"))

Each expectation cites a requirement (by default the check's first); its level decides
whether a mismatch is FAIL, WARN or INFO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from mxconform.errors import HarnessError, NotFromHomeserver, PreconditionFailed
from mxconform.spec.verdicts import cite, unmet

_ABSENT = object()


def body(resp: httpx.Response) -> Any:
    """The JSON body, or None when there is none or it is not JSON. The client refuses
    bodies nested too deep before they get here; one that still is cannot be judged."""
    try:
        return resp.json()
    except ValueError:
        return None
    except RecursionError:
        raise HarnessError("response nested too deep to parse as JSON") from None


def field_of(resp: httpx.Response, key: str) -> Any:
    data = body(resp)
    return data.get(key, _ABSENT) if isinstance(data, dict) else _ABSENT


def _show(value: Any) -> str:
    return "absent" if value is _ABSENT else repr(value)


@dataclass(frozen=True)
class Matcher:
    expected: str
    probe: Callable[[httpx.Response], tuple[bool, str]]


class match:
    @staticmethod
    def status(code: int) -> Matcher:
        return Matcher(f"HTTP {code}", lambda r: (r.status_code == code, f"HTTP {r.status_code}"))

    @staticmethod
    def status_in(codes: range | tuple[int, ...], label: str) -> Matcher:
        return Matcher(label, lambda r: (r.status_code in codes, f"HTTP {r.status_code}"))

    @staticmethod
    def errcode(code: str) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, "errcode")
            return found == code, f"errcode {_show(found)}"

        return Matcher(f"errcode {code}", probe)

    @staticmethod
    def json_key_equal(key: str, value: Any) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, key)
            return found == value, f"{key} {_show(found)}"

        return Matcher(f"{key} {value!r}", probe)

    @staticmethod
    def json_key_in(key: str, allowed: tuple[Any, ...], *, absent_ok: bool) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, key)
            ok = (found is _ABSENT and absent_ok) or (found is not _ABSENT and found in allowed)
            return ok, f"{key} {_show(found)}"

        shown = " or ".join(repr(a) for a in allowed) + (" or absent" if absent_ok else "")
        return Matcher(f"{key} {shown}", probe)

    @staticmethod
    def json_list_contains(key: str, *values: str) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, key)
            if not isinstance(found, list):
                return False, f"{key} {_show(found)}"
            missing = [v for v in values if v not in found]
            return not missing, f"{key} {found!r}"

        return Matcher(f"{key} listing {', '.join(values)}", probe)

    @staticmethod
    def oauth_error(*codes: str) -> Matcher:
        """An RFC 6749 error body: `error` is one of the codes."""

        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, "error")
            return found in codes, f"error {_show(found)}"

        return Matcher(f"error {' or '.join(codes)}", probe)

    @staticmethod
    def not_redirect_to(redirect_uri: str) -> Matcher:
        """The server did not send the user agent to an (unregistered) redirect URI."""

        def probe(r: httpx.Response) -> tuple[bool, str]:
            location = r.headers.get("location", "")
            hit = r.status_code in (301, 302, 303, 307, 308) and location.startswith(redirect_uri)
            return not hit, f"HTTP {r.status_code} Location {location or 'absent'}"

        return Matcher(f"no redirect to {redirect_uri}", probe)

    @staticmethod
    def json_keys_present(*keys: str) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            data = body(r)
            if not isinstance(data, dict):
                return False, "no JSON object"
            missing = [k for k in keys if k not in data]
            return not missing, f"missing {', '.join(missing)}" if missing else "all present"

        return Matcher(f"JSON object with {', '.join(keys)}", probe)

    @staticmethod
    def json_key_type(key: str, kind: type, *, absent_ok: bool) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, key)
            if found is _ABSENT:
                return absent_ok, f"{key} absent"
            return isinstance(found, kind), f"{key} of type {type(found).__name__}"

        return Matcher(f"{key} of type {kind.__name__}", probe)

    @staticmethod
    def json_key_absent(key: str) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            found = field_of(r, key)
            return found is _ABSENT, f"{key} present" if found is not _ABSENT else "absent"

        return Matcher(f"no {key}", probe)

    @staticmethod
    def flows_of_stages() -> Matcher:
        """A UIA body's `flows`: a non-empty list of objects with a list of string stages."""

        def probe(r: httpx.Response) -> tuple[bool, str]:
            flows = field_of(r, "flows")
            ok = (
                isinstance(flows, list)
                and bool(flows)
                and all(
                    isinstance(f, dict)
                    and isinstance(f.get("stages"), list)
                    and all(isinstance(s, str) for s in f["stages"])
                    for f in flows
                )
            )
            return ok, f"flows {_show(flows)}"

        return Matcher("flows as a list of {stages: [string]}", probe)

    @staticmethod
    def content_type(expected: str) -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            ctype = r.headers.get("content-type")
            main = (ctype or "").split(";")[0].strip().lower()
            return main == expected, f"Content-Type {ctype!r}"

        return Matcher(f"Content-Type {expected}", probe)

    @staticmethod
    def content_type_json() -> Matcher:
        def probe(r: httpx.Response) -> tuple[bool, str]:
            ctype = r.headers.get("content-type")
            main = (ctype or "").split(";")[0].strip().lower()
            return main == "application/json", f"Content-Type {ctype!r}"

        return Matcher("Content-Type application/json", probe)


def _from_homeserver(resp: httpx.Response) -> None:
    """A proxy's own answer is no evidence about the homeserver: ERROR, never judged."""
    why = resp.extensions.get("mxconform.not_homeserver")
    if why:
        where = f"{resp.request.method} {resp.request.url.path}"
        raise NotFromHomeserver(f"{where} was answered by a proxy, not the homeserver: {why}")


def expect(resp: httpx.Response, *matchers: Matcher, req: str | None = None) -> None:
    """All matchers must hold; a mismatch is scored at the cited requirement's level."""
    _from_homeserver(resp)
    cite(req)
    failed = [(m, observed) for m in matchers for ok, observed in [m.probe(resp)] if not ok]
    if failed:
        expected = "; ".join(m.expected for m, _ in failed)
        observed = "; ".join(o for _, o in failed)
        where = f"{resp.request.method} {resp.request.url.path}"
        unmet(
            f"{where}: expected {expected}, got {observed}",
            req=req,
            expected=expected,
            observed=observed,
        )


def require(resp: httpx.Response, *matchers: Matcher, what: str) -> None:
    """A setup step's answer must be as needed, or the check is ERROR ("precondition
    failed"): only the request under test is judged by `expect`."""
    _from_homeserver(resp)
    failed = [(m, observed) for m in matchers for ok, observed in [m.probe(resp)] if not ok]
    if failed:
        expected = "; ".join(m.expected for m, _ in failed)
        observed = "; ".join(o for _, o in failed)
        where = f"{resp.request.method} {resp.request.url.path}"
        raise PreconditionFailed(
            f"precondition failed: {what}: {where} answered {observed} (needed {expected})"
        )


def expect_true(
    condition: bool,
    message: str,
    *,
    req: str | None = None,
    expected: Any = None,
    observed: Any = None,
) -> None:
    """A non-response expectation (a follow-up read, a comparison between responses)."""
    cite(req)
    if not condition:
        unmet(message, req=req, expected=expected, observed=observed)


def expect_uia_challenge(resp: httpx.Response) -> None:
    """A 401 UIA challenge: `flows` of string `stages`, and a `session` string if any."""
    expect(resp, match.status(401), match.json_keys_present("flows"), req="UIA-NOAUTH-401")
    expect(
        resp,
        match.flows_of_stages(),
        match.json_key_type("session", str, absent_ok=True),
        req="UIA-401-SHAPE",
    )
