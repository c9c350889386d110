"""Redaction of layered encodings: a server that echoes a secret URL-encoded, JSON-escaped,
HTML-escaped or base64-encoded, up to three of those deep, leaks it into no output (results,
page, JUnit, Allure), and bodies that are not UTF-8 break no renderer."""

from __future__ import annotations

import html
import json
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from hostile import reply, serve

from mxconform.http.client import MatrixClient, Pacer, RequestPolicy
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.report import render_all
from mxconform.results import CheckRecord, build_document, write_document
from mxconform.spec.verdicts import Verdict


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
