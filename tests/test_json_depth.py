"""JSON from a server is measured before it is parsed: a body nested deeper than
MAX_JSON_DEPTH is one clean HarnessError (never a RecursionError, never judged), and a
nesting bomb at /versions is one "not a Matrix homeserver" reason for the whole target."""

from __future__ import annotations

import json

import httpx
import pytest
from hostile import reply, serve

from conftest import SECRET_VAR, remote_servers_file
from mxconform.cli import parser, run_suites
from mxconform.errors import HarnessError, TargetUnavailable
from mxconform.http.client import MatrixClient, Pacer, RequestPolicy, new_http_client
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.http.wire import MAX_JSON_DEPTH, TooDeep, bytes_nested_deeper, nested_deeper
from mxconform.spec.matchers import body
from mxconform.targets.preflight import identify

BOMB = b'{"versions": ' + b"[" * 100_000  # 100 kB: past any recursion limit


def _nest(depth: int, inner: object = 1) -> object:
    for _ in range(depth):
        inner = [inner] if depth % 2 else {"k": inner}
    return inner


def test_json_loads_does_recurse_into_a_bomb():
    """Why the scan exists: the stdlib parser gives up with a RecursionError."""
    with pytest.raises(RecursionError):
        json.loads(BOMB + b"]" * 100_000 + b"}")


@pytest.mark.parametrize("depth", [1, 10, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_bodies_up_to_the_limit_pass(depth):
    text = json.dumps({"a": _nest(depth - 1), "b": [[1], {"c": [2]}] * 50})
    assert not nested_deeper(text)
    assert not bytes_nested_deeper(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(_nest(MAX_JSON_DEPTH + 1)),
        "[" * (MAX_JSON_DEPTH + 1),  # cut short: the parser descends before it fails
        ' \n{"a": "x]]]", "b": ' + "[" * 70 + "]" * 70 + "}",  # brackets in strings ignored
        '["\\"]]]]", ' + "{" * 65,  # an escaped quote does not end the string
    ],
)
def test_bodies_past_the_limit_are_caught(text):
    assert nested_deeper(text)
    assert bytes_nested_deeper(text.encode("utf-8"))
    assert bytes_nested_deeper(text.encode("utf-16"))  # as json.loads would decode it


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"s": "[" * 1000 + "{" * 1000}),  # deep only inside a string
        '"[[[[' + "[" * 100 + '"',
        "<html>" + "[" * 100,  # not a JSON document: the parser fails at once
        "[" + "[]" * 1000 + "]",  # many brackets, shallow
    ],
)
def test_brackets_that_do_not_nest_are_not_depth(text):
    assert not nested_deeper(text)


async def test_the_client_refuses_a_deep_body_before_anyone_parses_it():
    def handler(h, seen, stub):
        reply(h, 200, BOMB, {"Content-Type": "application/json"})

    with serve(handler) as stub:
        async with new_http_client() as http:
            c = MatrixClient(
                http, stub.url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy()
            )
            with pytest.raises(TooDeep, match=f"nested deeper than {MAX_JSON_DEPTH}"):
                await c.request("GET", "/deep")
    exchange = c.recorder.exchanges[0]
    assert exchange.status == 200 and "nested deeper" in (exchange.error or "")
    assert isinstance(exchange.response_body, dict) and exchange.response_body["truncated"]


def test_body_turns_a_recursion_into_a_harness_error():
    """Belt and braces for a response built elsewhere than the client."""
    resp = httpx.Response(200, content=BOMB + b"]" * 100_000 + b"}")
    with pytest.raises(HarnessError, match="nested too deep"):
        body(resp)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (BOMB, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"versions": ["v1.11"', "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'["v1.11"]', "it is a JSON list"),
        (b'{"versions": "v1.11"}', "its `versions` is a str"),
        (b'{"unstable_features": {}}', "its `versions` is missing"),
    ],
)
def test_every_unparsable_versions_is_one_reason(content, why):
    def handler(h, seen, stub):
        reply(h, 200, content)

    with serve(handler) as stub, pytest.raises(TargetUnavailable) as raised:
        identify(stub.url, 5.0)
    message = str(raised.value)
    assert message.startswith("not a Matrix homeserver: HTTP 200 application/octet-stream")
    assert why in message, message


def test_a_nesting_bomb_at_versions_is_one_error_for_the_target(tmp_path, monkeypatch):
    """The whole harness in-process: every selected check ERROR with the one reason."""
    monkeypatch.setenv(SECRET_VAR, "unused")

    def handler(h, seen, stub):
        reply(h, 200, BOMB)

    with serve(handler) as stub:
        servers = remote_servers_file(tmp_path, stub.url)
        argv = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r")]
        outcome = run_suites(parser().parse_args([*argv, "-k", "whoami"]))
    assert outcome.report_dir is not None
    checks = json.loads((outcome.report_dir / "results.json").read_text())["checks"]
    assert len(checks) > 3
    assert {c["verdict"] for c in checks} == {"ERROR"}
    reason = f"not a Matrix homeserver: HTTP 200 application/octet-stream from {stub.url}"
    for check in checks:
        assert reason in check["message"] and "nested deeper than 64" in check["message"]
    assert {s.path for s in stub.requests} == {"/_matrix/client/versions"}


def test_any_failure_of_preflight_is_one_reason_not_a_half_ready_target(tmp_path, monkeypatch):
    """A preflight that raises something unforeseen (here a RecursionError) still leaves the
    target unavailable with one reason: not running and unidentified, which made the
    following checks fail on an empty AssertionError."""
    monkeypatch.setenv(SECRET_VAR, "unused")

    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("mxconform.plugin.targets.identify", broken)
    with serve(lambda h, seen, stub: reply(h, 200, {"versions": ["v1.11"]})) as stub:
        servers = remote_servers_file(tmp_path, stub.url)
        argv = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r")]
        outcome = run_suites(parser().parse_args([*argv, "-k", "whoami"]))
    assert outcome.report_dir is not None
    checks = json.loads((outcome.report_dir / "results.json").read_text())["checks"]
    assert len(checks) > 3 and {c["verdict"] for c in checks} == {"ERROR"}
    for check in checks:
        assert "preflight failed: RecursionError('maximum recursion" in check["message"]
