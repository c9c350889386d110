"""Redaction of layered encodings: a server that echoes a secret URL-encoded, JSON-escaped,
HTML-escaped or base64-encoded, up to three of those deep, leaks it into no output (results,
page, JUnit, Allure), and bodies that are not UTF-8 break no renderer."""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import quote

import httpx
import pytest
from hostile import reply, serve
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from leaks import ENCODERS, assert_no_secret, compose, forms, in_base64_run, leaks

from mxconform.http.client import MatrixClient, Pacer, RequestPolicy
from mxconform.http.credentials import bearer_header, query_param
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry, redact_body, redact_url
from mxconform.plugin.console import _ScrubbingFile
from mxconform.report import render_all
from mxconform.results import CheckRecord, build_document, write_document
from mxconform.spec.verdicts import Verdict

# Where the echoing server puts what it was asked to echo (the encoded secret).
CONTEXTS = ("json", "html", "text", "header", "location", "base64-json")
FORM = "application/x-www-form-urlencoded"


def _echo(h, seen, stub):
    asked = json.loads(seen.body)
    echoed, context = compose(asked["value"], asked["names"]), asked["context"]
    if context == "json":
        reply(h, 200, {"error": f"unknown token {echoed}", "echo": echoed})
    elif context == "html":
        reply(h, 200, f"<html><p>not {echoed} again</p><a href='?t={echoed}'>retry</a></html>")
    elif context == "text":
        reply(h, 400, f"bad request: {echoed}!".encode())
    elif context == "header":
        reply(h, 200, {}, {"X-Echo": echoed, "WWW-Authenticate": f'Bearer error="{echoed}"'})
    elif context == "location":
        reply(h, 302, b"", {"Location": f"http://127.0.0.1/cb?state=s&code_x={echoed}#y"})
    else:  # one more layer: base64 of a JSON document, the echo anywhere in its run
        document = json.dumps({"pad": asked["pad"], "echo": echoed}, ensure_ascii=False)
        reply(h, 200, base64.b64encode(document.encode()))


async def _exchange(url: str, registry: SecretRegistry, asked: dict) -> list[dict]:
    async with httpx.AsyncClient(verify=False) as http:  # plain HTTP: no CA bundle to load
        client = MatrixClient(http, url, Recorder(), registry, Pacer(1000), RequestPolicy())
        await client.request("POST", "/echo", json=asked, credentials=bearer_header("tok" * 4))
    return [e.to_json() for e in client.recorder.exchanges]


def _outputs(evidence: list[dict], echoed: str, registry: SecretRegistry) -> dict[str, str]:
    """Every file a run writes for one FAIL check holding this evidence, rendered as the
    run renders them, by name."""
    record = CheckRecord(
        "echo",
        "echo",
        ["TOKEN-BEARER-1"],
        "t",
        "legacy",
        "header",
        Verdict.FAIL,
        f"the server said {echoed}",
        expected="no echo",
        observed={"echo": echoed},
        observations=[f"echoed {echoed}"],
        evidence=evidence,
    )
    document = build_document(harness={}, run={}, targets=[], records=[record], secrets=registry)
    with TemporaryDirectory() as folder:
        results = Path(folder) / "results.json"
        write_document(document, results)
        render_all(results)
        return {
            str(path.relative_to(folder)): path.read_text(encoding="utf-8")
            for path in Path(folder).rglob("*")
            if path.is_file()
        }


# Realistic secrets (what secrets.token_urlsafe makes) and awkward ones: quotes, markup, URL
# and base64 specials, spaces, non-ASCII (no control characters: see layers._TEXTUAL).
_TOKENS = st.binary(min_size=8, max_size=32).map(
    lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
)
_AWKWARD = st.text(
    alphabet=st.one_of(
        st.sampled_from("\"'<>&+/=% \\:;?#"),
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
    ),
    min_size=6,
    max_size=16,
)
# No per-example deadline (a loaded machine's time, not the scrub's); few examples, each a
# real exchange and a full rendering.
_BOUNDED = settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])


def test_composed_encodings_of_a_secret_reach_no_output():
    """1 to 3 encodings of random and realistic secrets, echoed in a body, a header or a
    redirect, then in the check's message: no form of them in any file of the run."""
    page = "".join(_outputs([], "", SecretRegistry()).values())

    @_BOUNDED
    @given(
        secret=st.one_of(_TOKENS, _AWKWARD),
        names=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=1, max_size=3),
        context=st.sampled_from(CONTEXTS),
        pad=st.text(alphabet="abc", max_size=2),
    )
    def echoed_anywhere(secret: str, names: list[str], context: str, pad: str) -> None:
        # a secret the page says anyway ("SHOULD", a requirement id) proves nothing
        assume(not leaks(page, [secret]))
        if context == "base64-json":
            names = names[:2]  # the body's own base64 is the third layer
        echoed = compose(secret, names)
        if context in ("header", "location") and not echoed.isascii():
            context = "json"  # HTTP headers carry ASCII only
        registry = SecretRegistry()
        registry.add(secret, "password")
        asked = {"value": secret, "names": names, "context": context, "pad": pad}
        evidence = asyncio.run(_exchange(stub.url, registry, asked))
        assert evidence[0]["status"] in (200, 302, 400)
        for name, text in _outputs(evidence, echoed, registry).items():
            assert not leaks(text, [secret]), (name, names, context)

    with serve(_echo) as stub:  # one server for every example: starting one costs more
        echoed_anywhere()


def test_the_evidence_stays_readable_around_a_masked_echo():
    """Masked where the encoding is: the words around it, and the base64 around it, stay."""
    registry = SecretRegistry()
    token = "mat_Zm9vYmFyYmF6cXV4_1234"
    registry.add(token, "access_token")
    page = f"<p>not {html.escape(compose(token, ['json', 'url']))} again</p>"
    assert registry.scrub(page) == "<p>not <redacted:access_token> again</p>"
    document = base64.b64encode(json.dumps({"user": "@a:b", "echo": token}).encode()).decode()
    scrubbed = registry.scrub(f"blob {document} end")
    assert scrubbed.startswith("blob eyJ1c2VyIjogIkBhOmIiLCAiZWNobyI6IC")
    assert "<redacted:access_token>" in scrubbed and scrubbed.endswith(" end")


def test_the_canary_finds_every_composition_it_claims():
    """The test helper itself: a composition, and a form inside a longer base64 run."""
    secret = "p4ss-w0rd-secret"
    inner = compose(secret, ["json", "url"])
    run = base64.b64encode(b"x" + inner.encode() + b"y").decode()
    assert leaks(f"<p>{html.escape(compose(secret, ['html', 'base64']))}</p>", [secret])
    assert leaks(run, [secret])
    assert any(core in run for core in in_base64_run(inner))
    assert not leaks("nothing here but <p>text</p>", [secret])
    assert_no_secret("nothing here but <p>text</p>", [secret])
    with pytest.raises(AssertionError, match="1 secret forms"):  # shown cut short
        assert_no_secret(f"log: {compose(secret, ['url', 'json'])}", [secret])
    assert {compose(secret, ["html", "base64", "url"]), compose(secret, ["base64"])[:-2]} <= forms(
        secret
    )


async def test_bodies_not_utf8_and_lone_surrogates_render_everywhere():
    """Invalid UTF-8 bytes and a JSON lone surrogate (`"\\ud800"`, in a key and a value)
    reach every output as U+FFFD, and nothing raises on the way."""

    def answer(h, seen, stub):
        if seen.path == "/json":
            body = b'{"\\ud800key": "x\\ud800y", "bad": "\xff\xfe", "ok": "\\udbff\\udfff"}'
            reply(h, 401, body, {"Content-Type": "application/json"})
        else:
            reply(h, 200, b"\xff\xfe\xc3(not utf-8\x80)", {"Content-Type": "text/plain"})

    registry = SecretRegistry()
    registry.add("\ud800-surrogate-secret", "password")  # the harness may be sent one
    with serve(answer) as stub:
        async with httpx.AsyncClient() as http:
            recorder = Recorder()
            client = MatrixClient(http, stub.url, recorder, registry, Pacer(1000), RequestPolicy())
            for path in ("/json", "/text"):
                response = await client.request("GET", path)
    assert response.status_code == 200
    evidence = [e.to_json() for e in recorder.exchanges]
    outputs = _outputs(evidence, "the server said \ud800\udfff", registry)
    assert {"results.json", "index.html", "junit.xml", "junit-t.xml"} <= set(outputs)
    assert any(name.startswith("allure-results/") for name in outputs)
    page = outputs["index.html"]
    assert "x\ufffdy" in html.unescape(page) and "\U0010ffff" in page
    assert "\ud800" not in "".join(outputs.values())


def test_a_stored_document_with_lone_surrogates_still_renders(tmp_path):
    """A results.json written before this scrub (JSON keeps `\\ud800` escaped) re-renders."""
    registry = SecretRegistry()
    record = CheckRecord("x", "x", ["TOKEN-BEARER-1"], "t", "legacy", None, Verdict.ERROR, "boom")
    document = build_document(harness={}, run={}, targets=[], records=[record], secrets=registry)
    document["checks"][0]["message"] = "raw \ud800 from an old run"
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))  # as the old write_document did
    paths = render_all(results)
    assert "raw \ufffd from an old run" in paths[0].read_text(encoding="utf-8")


def test_a_secret_split_by_query_parsing_is_masked_whole():
    """An HTML-escaped echo in a redirect's query: `&quot;` would split it into parameters,
    each too short to be found, kept by the re-encoding; the URL is scrubbed first."""
    registry = SecretRegistry()
    secret = 'pa"ss<wo>rd&x'
    registry.add(secret, "password")
    url = redact_url(f"http://h/cb?state=s&echo={html.escape(secret)}#y", registry)
    assert url == "http://h/cb?state=s&echo=<redacted:password>#y"
    form = redact_body(f"a=1&b={html.escape(secret)}".encode(), FORM, registry, 10_000)
    assert form == {"form": [["a", "1"], ["b", "<redacted:password>"]]}


def test_the_console_prints_no_composed_secret_and_no_lone_surrogate():
    """The console's scrubbing file (every byte pytest and the harness print): a strict UTF-8
    stream takes a lone surrogate, and no layer of a secret gets through."""
    registry = SecretRegistry()
    secret = "c0nsole-secret-value"
    registry.add(secret, "password")
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
    console = _ScrubbingFile(stream, registry.scrub)
    console.write(f"FAIL said {compose(secret, ['json', 'url', 'base64'])} and \ud800\n")
    stream.flush()
    printed = raw.getvalue().decode("utf-8")
    assert printed == "FAIL said <redacted:password> and \ufffd\n"
    assert not leaks(printed, [secret])


async def test_a_token_that_is_not_text_goes_back_as_given():
    """A server's token with a lone surrogate (JSON `"\\ud800"`) or non-ASCII, used as the
    harness uses tokens (header, query, JSON and form bodies): sent as its UTF-8 bytes, no
    UnicodeEncodeError of the harness, and masked in the evidence."""
    registry = SecretRegistry()
    token = "syt_\ud800_tökén_0123"
    registry.add(token, "access_token")
    with serve(lambda h, seen, stub: reply(h, 200, {})) as stub:
        async with httpx.AsyncClient(verify=False) as http:
            client = MatrixClient(
                http, stub.url, Recorder(), registry, Pacer(1000), RequestPolicy()
            )
            for credentials in (bearer_header(token), query_param(token)):
                await client.request("POST", "/a", credentials=credentials, json={"t": token})
            await client.request("POST", "/b", form={"password": token})
        seen = stub.requests
    assert seen[0].headers["Authorization"].encode("latin-1") == b"Bearer " + token.encode(
        "utf-8", "surrogatepass"
    )
    assert json.loads(seen[0].body) == {"t": token}
    assert "access_token=syt_%ED%A0%80_t%C3%B6k%C3%A9n_0123" in seen[1].path
    evidence = json.dumps([e.to_json() for e in client.recorder.exchanges], ensure_ascii=False)
    evidence.encode("utf-8")  # writable
    assert not leaks(evidence, ["_tökén_0123"])


def test_a_scrubbed_text_is_never_served_stale():
    """The scrub's cache: a text scrubbed before a secret was known is scrubbed again."""
    registry = SecretRegistry()
    registry.add("first-secret-value", "password")
    line = "said second-secret-value"
    assert registry.scrub(line) == line
    registry.add("second-secret-value", "access_token")
    assert registry.scrub(line) == "said <redacted:access_token>"


def test_an_encoders_own_choices_are_decoded_too():
    """Escapes no stdlib encoder writes but others do (PHP's `\\/`, every character escaped,
    lower-case hex, `&#112;`): decoded, not registered, so they are found all the same."""
    registry = SecretRegistry()
    secret = "pass/word-1234"
    registry.add(secret, "password")
    for echoed in (
        secret.replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" for c in secret),
        "".join(f"%{ord(c):02x}" for c in secret),
        "".join(f"&#{ord(c)};" for c in secret),
        "".join(f"&#x{ord(c):X}" for c in secret),  # no semicolons: HTML still reads them
        quote("".join(f"&#{ord(c)};" for c in secret), safe=""),
    ):
        assert registry.scrub(f"said {echoed}.") == "said <redacted:password>.", echoed
