"""The report page and the matrix as a user reads them (synthetic documents, see
test_report.py): each card lists its target's real FAILs with the rule and the spec link; the
check list opens on FAIL, ERROR and WARN; SKIPs are split by kind; a rule counts as failed
only where a check judged it; code spans are code; the evidence of quiet checks is packed;
the matrix links every run to its report, tells two runs of a day apart and colours a badge
by the exit status."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import lxml.html
from test_matrix import run_doc, write
from test_report import check, document

from mxconform.cli import main
from mxconform.report import render_all
from mxconform.report.html import headline
from mxconform.report.matrix import BADGE_COLOURS, build_matrix, write_matrix
from mxconform.results import summarise

REQS = {
    "API-BAD-JSON": ("MUST", "general", "A body that is not JSON is refused `M_NOT_JSON`."),
    "API-ERR-SHAPE": ("MUST", "general", "An error is a JSON object with `errcode`."),
    "TOKEN-MISSING": ("MUST", "tokens", "A request without a token gets `M_MISSING_TOKEN`."),
}
NA = {"kind": "not_applicable", "why": "api"}
NOT_TESTED = {"kind": "not_tested", "why": "capability"}
KNOWN = {"reason": "Synapse answers `M_FORBIDDEN`", "link": "https://x"}


def page_doc(*checks: dict, **run: object) -> dict:
    doc = document(*checks)
    doc["requirements"] = {
        rid: {
            "level": level,
            "area": area,
            "statement": text,
            "url": f"https://spec.matrix.org/latest/#{rid.lower()}",
            "url_by_target": {"t": f"https://spec.matrix.org/v1.15/#{rid.lower()}"},
        }
        for rid, (level, area, text) in REQS.items()
    }
    doc["run"].update(run)
    doc["summary"] = summarise(doc["checks"])
    return doc


def fail_on_one_rule() -> dict:
    """badinput.delete-devices: broke API-BAD-JSON, cites API-ERR-SHAPE as well."""
    return check(
        "badinput.delete-devices",
        "FAIL",
        transport=None,
        title="POST `/delete_devices` with a body that is not JSON",
        message="HTTP 500, `M_UNKNOWN`",
        requirements=["API-BAD-JSON", "API-ERR-SHAPE"],
        basis=["API-BAD-JSON"],
    )


def q(element: lxml.html.HtmlElement, selector: str) -> list:
    """`tag.class tag.class ...` (descendants) as XPath: lxml's cssselect is not installed."""
    path = "."
    for step in selector.split():
        tag, *classes = step.split(".")
        test = " and ".join(
            f"contains(concat(' ', normalize-space(@class), ' '), ' {c} ')" for c in classes
        )
        path += f"//{tag or '*'}" + (f"[{test}]" if test else "")
    return element.xpath(path)


def render(tmp_path: Path, doc: dict) -> tuple[str, lxml.html.HtmlElement]:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    text = render_all(path)[0].read_text()
    return text, lxml.html.fromstring(text)


def test_a_card_lists_its_unknown_fails_with_the_rule_and_the_spec_link(tmp_path: Path):
    doc = page_doc(
        fail_on_one_rule(),
        check("tokens.known", "FAIL", known_issue=KNOWN),
        check("tokens.fine", "PASS"),
    )
    _, page = render(tmp_path, doc)
    [card] = q(page, "article.card")
    [item] = q(card, ".fails li")  # the known FAIL is a known deviation, not here
    links = {a.get("href"): a.text_content() for a in q(item, "a")}
    assert links == {
        "#t--badinput.delete-devices--none": "badinput.delete-devices",
        "https://spec.matrix.org/v1.15/#api-bad-json": "API-BAD-JSON",
    }
    assert "API-ERR-SHAPE" not in item.text_content()  # cited, not broken
    assert page.get_element_by_id("t--badinput.delete-devices--none").tag == "tr"
    assert "tokens.known" in q(card, "details.known")[0].text_content()
    assert q(card, ".answer")[0].text_content().startswith("NOT conformant on MUST: 1")


def test_a_rule_fails_only_where_a_check_judged_it(tmp_path: Path):
    doc = page_doc(fail_on_one_rule())
    _, page = render(tmp_path, doc)
    rows = {q(tr, "td")[0].text_content(): tr for tr in q(page, "table.requirements tr")[1:]}
    assert q(rows["API-BAD-JSON"], "td")[3].text_content().strip() == "t: FAIL"
    assert q(rows["API-ERR-SHAPE"], "td")[3].text_content().strip() == "t: observed"
    cited = q(page, "tr.check a.rid.cited")
    assert [a.text_content() for a in cited] == ["API-ERR-SHAPE"]
    # the matrix the same way
    model = build_matrix([write(tmp_path / "run", doc)], tmp_path / "site")
    cells = model["columns"][0].cells
    assert (cells["API-BAD-JSON"].token, cells["API-ERR-SHAPE"].token) == ("FAIL", "OBSERVED")


def test_a_selection_is_named_and_never_conformant(tmp_path: Path):
    summary = {"must_applicable": 5, "must_passed": 5, "known_fail": 0}
    full = headline({"name": "t"}, summary)
    assert full["text"] == "conformant on MUST (5/5 met)"
    part = headline({"name": "t"}, summary, "-k legacy.login")
    assert part == {
        "state": "partial",
        "text": "selection (-k legacy.login): MUST met 5/5 of the selected checks",
    }
    selection = {"complete": False, "k": "tokens", "requirements": [], "text": "-k tokens"}
    doc = page_doc(check("tokens.fine", "PASS"), selection=selection)
    doc["targets"].append(dict(doc["targets"][0], name="other", not_selected=True))
    _, page = render(tmp_path, doc)
    answers = [a.text_content() for a in q(page, "article.card .answer")]
    assert answers[0].startswith("selection (-k tokens): MUST met 1/1 of the selected checks")
    assert answers[1] == "not selected: no selected check applies to it"
    assert not any("conformant" in a for a in answers)
    assert q(page, "article.card")[1].get("class") == "card not-selected"


def test_the_list_opens_on_fail_error_and_warn_and_skips_are_split_by_kind(tmp_path: Path):
    doc = page_doc(
        check("tokens.a", "FAIL"),
        check("tokens.b", "FAIL", known_issue=KNOWN),
        check("tokens.c", "ERROR"),
        check("tokens.d", "WARN"),
        check("tokens.e", "INFO"),
        check("tokens.f", "PASS"),
        check("tokens.g", "SKIP", skip=NA),
        check("tokens.h", "SKIP", skip=NA),
        check("tokens.i", "SKIP", skip=NOT_TESTED),
        check("tokens.j", "SKIP"),  # an older document: not tested
    )
    _, page = render(tmp_path, doc)
    shown = [tr.get("data-verdict") for tr in q(page, "tr.check") if tr.get("hidden") is None]
    assert shown == ["FAIL", "ERROR", "WARN"]
    boxes = {
        i.get("value"): i.get("checked") is not None
        for i in page.xpath(".//input[@data-group='verdict']")
    }
    assert list(boxes) == [
        "FAIL",
        "KNOWN",
        "ERROR",
        "WARN",
        "INFO",
        "PASS",
        "NOT_APPLICABLE",
        "NOT_TESTED",
    ]
    assert [v for v, on in boxes.items() if on] == ["FAIL", "ERROR", "WARN"]
    badges = [b.text_content() for b in q(page, "article.card .counts .badge")]
    assert badges == [
        "FAIL 1",
        "KNOWN 1",
        "ERROR 1",
        "WARN 1",
        "INFO 1",
        "PASS 1",
        "SKIP n/a 2",
        "SKIP not tested 2",
    ]
    assert q(page, "article.card .counts a")[1].get("href") == "#verdict=KNOWN&target=t"


def test_code_spans_are_code_in_titles_messages_and_reasons(tmp_path: Path):
    finding = {"verdict": "WARN", "requirement": "API-ERR-SHAPE", "message": "no `error`"}
    doc = page_doc(
        fail_on_one_rule(), check("tokens.k", "FAIL", known_issue=KNOWN, findings=[finding])
    )
    _, page = render(tmp_path, doc)
    for where in ("article.card", "tr.check"):
        for element in q(page, where):
            assert "`" not in element.text_content(), element.text_content()
    codes = {c.text_content() for c in [*q(page, "tr.check code"), *q(page, "article.card code")]}
    assert {"/delete_devices", "M_UNKNOWN", "M_FORBIDDEN", "error"} <= codes
    titles = [a.get("title") for a in q(page, "a.rid")]
    assert titles and not any("`" in t for t in titles)


def test_quiet_evidence_is_packed_and_rendered_the_same_twice(tmp_path: Path):
    exchange = {
        "method": "GET",
        "url": "http://t/_matrix/client/v3/account/whoami",
        "request_headers": [["authorization", "Bearer <redacted:credential>"]],
        "request_body": None,
        "started_at": "",
        "duration_ms": 1,
        "error": None,
        "note": None,
        "status": 200,
        "response_headers": [["content-type", "application/json"]] * 8,
        "response_body": {"user_id": "@u:t", "device_id": "D"},
    }
    checks = [check(f"tokens.c{i}", "PASS", evidence=[exchange] * 4) for i in range(200)]
    doc = page_doc(*checks)
    text, page = render(tmp_path, doc)
    assert text == render_all(tmp_path / "results.json")[0].read_text()
    blob = json.loads(page.get_element_by_id("lazy-evidence").text)
    unpacked = json.loads(gzip.decompress(base64.b64decode(blob)))
    assert len(unpacked) == 200
    assert unpacked["0"][0]["curl"].endswith("-H 'authorization: Bearer $CREDENTIAL'")
    evidence_json = len(json.dumps([c["evidence"] for c in checks]))
    assert len(blob) < evidence_json / 20  # the bytes of a run are its quiet evidence


def test_the_matrix_links_each_run_to_its_report_given_as_a_file_or_a_folder(tmp_path: Path):
    doc = run_doc("2026-11-30T02:00:00+00:00", {"t": [check("tokens.missing", "PASS")]})
    by_file, by_folder = write(tmp_path / "a", doc), write(tmp_path / "b", doc)
    bare = tmp_path / "c" / "results.json"  # results only: no index.html beside it
    bare.parent.mkdir()
    bare.write_text(json.dumps(doc))
    out = tmp_path / "site"
    assert main(["matrix", str(by_file), str(by_folder.parent), str(bare), "-o", str(out)]) == 0
    html = (out / "index.html").read_text()
    hrefs = re.findall(r'<th class="col"[^>]*><a href="([^"#]*)', html)
    assert hrefs == ["../a/index.html", "../b/index.html", "reports/1/index.html"]
    assert "results.json" not in " ".join(re.findall(r'href="([^"]*)"', html))
    assert "tokens.missing" in (out / "reports" / "1" / "index.html").read_text()
    assert main(["matrix", str(tmp_path / "nowhere"), "-o", str(out)]) == 2


def test_matrix_columns_tell_two_runs_of_a_day_apart(tmp_path: Path):
    paths = [
        write(tmp_path / name, run_doc(when, {"t": [check("tokens.missing", "PASS")]}))
        for name, when in (("am", "2026-11-30T02:00:00+00:00"), ("pm", "2026-11-30T15:30:05+01:00"))
    ]
    write_matrix(paths, tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert "2026-11-30<br>02:00:00 UTC" in html and "2026-11-30<br>14:30:05 UTC" in html


def test_a_badge_is_coloured_by_the_exit_status(tmp_path: Path):
    runs = {
        "pass": [check("tokens.missing", "PASS")],
        "known": [check("tokens.missing", "FAIL", known_issue=KNOWN), check("tokens.x", "PASS")],
        "fail": [check("tokens.missing", "FAIL"), check("tokens.x", "PASS")],
        "error": [check("tokens.missing", "PASS"), check("tokens.x", "ERROR")],
    }
    paths = []
    for name, checks in runs.items():
        doc = run_doc("2026-11-30T02:00:00+00:00", {name: checks})
        doc["summary"] = summarise(doc["checks"])
        paths.append(write(tmp_path / name, doc))
    write_matrix(paths, tmp_path / "site")
    for name in runs:
        badge = (tmp_path / "site" / f"badge-{name}.svg").read_text()
        assert f'fill="{BADGE_COLOURS[name]}"' in badge, (name, badge)
    assert "MUST 1/2, 1 known" in (tmp_path / "site" / "badge-known.svg").read_text()


def test_a_whole_target_gone_since_the_baseline_reads_as_the_target(tmp_path: Path):
    doc = page_doc(check("tokens.missing", "PASS", transport=None))
    doc["run"]["baseline"] = {
        "path": "old/results.json",
        "categories": {
            "missing_targets": [
                {"check_id": "*", "target": "gone", "transport": None, "checks": 12}
            ]
        },
    }
    _, page = render(tmp_path, doc)
    item = q(page, "ul.baseline li li")[0]
    assert item.text_content().strip() == "gone: all 12 checks"
    assert not item.xpath(".//a")  # no link to a row that does not exist


def test_an_interop_rule_is_named_as_such_not_as_a_level(tmp_path: Path):
    doc = page_doc(
        check(
            "oauth.oidc.id-token",
            "INFO",
            transport=None,
            message="interoperability finding: no id_token",
            requirements=["OAUTH-OIDC-ID-TOKEN"],
            basis=["OAUTH-OIDC-ID-TOKEN"],
        )
    )
    doc["requirements"]["OAUTH-OIDC-ID-TOKEN"] = {
        "level": "unspecified",
        "basis": "interop",
        "area": "oauth-oidc",
        "statement": "openid granted: an id_token",
        "url": "https://spec.matrix.org/latest/#x",
        "url_by_target": {},
    }
    text, _ = render(tmp_path, doc)
    assert "(interop)" in text and "interop (INFO, not a Matrix rule)" in text
    assert "interoperability finding: no id_token" in text
