"""The main job end to end: `mxconform run` against the embedded default targets (a legacy
Synapse and a delegated one), as the README says, then the canary: no token, password or secret
of the run appears in any output file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

import pytest
from leaks import leaks
from test_oauth_suite import UIA_OPS

from mxconform.cli import main, parser, run_suites
from mxconform.paths import data_file
from mxconform.plugin.plan import measured
from mxconform.targets.embedded.synapse import synapse_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not synapse_available(), reason="the embedded extra is not installed"),
]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("main-run")
    # In this process (--jobs 1), so the run's own secrets can be looked for in its files;
    # the default, a process per target, gives the same verdicts (test_parallel.py).
    args = parser().parse_args(["run", "--jobs", "1", "--report-dir", str(folder / "reports")])
    return run_suites(args)


def test_default_run_passes_on_embedded_synapse(main_run):
    assert main_run.exit_code == 0
    assert main_run.report_dir is not None
    document = json.loads((main_run.report_dir / "results.json").read_text())
    assert [t["name"] for t in document["targets"]] == ["synapse-legacy", "synapse-oauth"]
    for target in document["targets"]:
        assert target["server_header"].startswith("Synapse/1.163")
        assert target["startup_s"] > 0
    verdicts = [c["verdict"] for c in document["checks"]]
    unexpected = [
        c["check_id"]
        for c in document["checks"]
        if c["verdict"] in ("FAIL", "ERROR", "WARN") and not c["known_issue"]
    ]
    assert unexpected == []
    known = [c for c in document["checks"] if c["known_issue"]]
    assert sorted(c["check_id"] for c in known) == [  # known-issues/synapse.yaml
        "badinput.delete-devices",
        "legacy.login.device-is-xsign-key",
        "legacy.refresh.consumed",
        "uia.fallback-page",
        "uia.password.unknown-3pid",
    ]
    assert document["summary"]["synapse-legacy"]["known_fail"] == 5
    assert document["summary"]["synapse-oauth"]["known_fail"] == 0  # https issuer: no FAIL
    assert sum(v in ("PASS", "INFO") for v in verdicts) >= 150
    by_api = {(c["target"], c["auth_api"]) for c in document["checks"] if c["verdict"] == "PASS"}
    assert {("synapse-legacy", "legacy"), ("synapse-oauth", "oauth")} <= by_api
    # Each target SKIPs the other API's checks, saying why.
    oauth_on_legacy = [
        c
        for c in document["checks"]
        if c["target"] == "synapse-legacy" and c["auth_api"] == "oauth"
    ]
    assert oauth_on_legacy and {c["verdict"] for c in oauth_on_legacy} == {"SKIP"}
    assert all("not offered" in c["message"] for c in oauth_on_legacy)
    assert {(c["skip"]["kind"], c["skip"]["why"]) for c in oauth_on_legacy} == {
        ("not_applicable", "api")
    }
    transports = {c["transport"] for c in document["checks"] if c["verdict"] == "PASS"}
    assert {"header", "query"} <= transports
    ids = [(c["check_id"], c["target"], c["transport"]) for c in document["checks"]]
    assert len(ids) == len(set(ids)), "check ids must be unique per target and transport"


def test_the_delegated_target_refuses_oauth_tokens_on_every_uia_endpoint(main_run):
    """The mission's core claim on the embedded delegated target (https issuer, held to
    v1.18): every UIA endpoint refuses an OAuth token, with or without a password stage."""
    document = json.loads((main_run.report_dir / "results.json").read_text())
    oauth = {
        f"{c['check_id']}[{c['transport'] or '-'}]": c
        for c in document["checks"]
        if c["target"] == "synapse-oauth"
    }
    for op in UIA_OPS:
        assert oauth[f"oauth.uia.refused.{op}[-]"]["verdict"] == "PASS"
        assert oauth[f"oauth.uia.refused-with-password.{op}[-]"]["verdict"] == "PASS"
    assert oauth["oauth.uia.m-oauth.approved[-]"]["verdict"] == "PASS"
    assert oauth["oauth.authz.code-flow[-]"]["verdict"] == "PASS"
    assert oauth["oauth.uia.refused.delete-devices[-]"]["grant"].startswith("authorization code")


def test_outputs_are_rendered_from_results(main_run):
    out = main_run.report_dir
    assert (out.parent / "latest").resolve() == out.resolve()
    html = (out / "index.html").read_text()
    assert "Content-Security-Policy" in html and "tokens.valid.accepted.whoami" in html
    assert html.count("<script>") == 1, "only the report's own (CSP-hashed) filter script"
    assert html.count('<script type="application/json"') == 1  # inert evidence data
    head = unescape(html.split("<body>")[0])
    assert "script-src 'sha256-" in head and "http://" not in head
    assert "https://spec.matrix.org/v1.15/client-server-api/#" in html  # Synapse's version
    suites = ET.parse(out / "junit.xml").getroot()
    cases = suites.findall(".//testcase")
    checks = json.loads((out / "results.json").read_text())["checks"]
    applicable = [c for c in checks if (c.get("skip") or {}).get("kind") != "not_applicable"]
    assert len(cases) == len(applicable)  # not-applicable SKIPs are counted, not listed
    assert not suites.findall(".//failure")  # the known issue is reported as skipped
    for name in ("synapse-legacy", "synapse-oauth"):
        per_target = ET.parse(out / f"junit-{name}.xml").getroot()
        mine = [c for c in applicable if c["target"] == name]
        assert len(per_target.findall(".//testcase")) == len(mine)
        assert (out / "logs" / name / "synapse-homeserver.log").is_file()
    assert (out / "logs" / "synapse-oauth" / "authserver.log").is_file()


def test_no_secret_of_the_run_reaches_any_file(main_run):
    secrets = main_run.secrets
    kinds = {len(s) for s in secrets}
    assert len(secrets) >= 4 and kinds, "the run should have handled tokens and passwords"
    offenders = []
    for path in Path(main_run.report_dir).rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            offenders += [f"{path.name}: {leak}" for leak in leaks(text, secrets)]
            for packed in _packed_blocks(text):  # the page's gzip + base64 quiet evidence
                offenders += [f"{path.name} (packed): {leak}" for leak in leaks(packed, secrets)]
    assert offenders == []
    page = (Path(main_run.report_dir) / "index.html").read_text()
    assert _packed_blocks(page), "the quiet evidence is packed: the canary must look inside"


def _packed_blocks(text: str) -> list[str]:
    """The page's inert JSON blocks that hold a gzip + base64 string, unpacked."""
    import base64
    import gzip
    import re

    found = []
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', text, re.S):
        data = json.loads(block)
        if isinstance(data, str):
            found.append(gzip.decompress(base64.b64decode(data)).decode())
    return found


def test_report_can_be_regenerated_from_results(main_run, capsys):
    """Re-rendering a stored results.json gives the same page and JUnit as the run did."""
    results = main_run.report_dir / "results.json"
    outputs = ("index.html", "junit.xml", "junit-synapse-legacy.xml")
    before = {name: (main_run.report_dir / name).read_text() for name in outputs}
    (main_run.report_dir / "index.html").unlink()
    assert main(["report", str(results)]) == 0
    after = {name: (main_run.report_dir / name).read_text() for name in outputs}
    assert after == before
    assert main(["report", str(results), "--baseline", str(results)]) == 0
    assert "regressions (new FAIL): 0" in capsys.readouterr().out


def test_results_follow_the_published_schema(main_run):
    import jsonschema

    from mxconform.paths import data_file

    schema = json.loads(data_file("results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads((main_run.report_dir / "results.json").read_text())
    jsonschema.validate(document, schema)
    document["checks"][0]["verdict"] = "MAYBE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_the_request_plan_matches_what_the_checks_spent(main_run):
    """`data/operations.json` (what `run` plans with) says what each legacy check spends of
    logins and registrations; when a check changes that, run benchmarks/operations.py."""
    document = json.loads((main_run.report_dir / "results.json").read_text())
    spent = measured(document, "synapse-legacy")
    planned = json.loads(data_file("operations.json").read_text())["checks"]
    changed = {
        k: (planned.get(k), spent.get(k))
        for k in {*spent, *planned}
        if spent.get(k) != planned.get(k)
    }
    assert not changed, f"(planned, spent) differ; run benchmarks/operations.py: {changed}"


def test_skips_say_whether_the_rule_does_not_apply_or_was_not_tested(main_run):
    """Of the legacy target's SKIPs, the other API's checks and the version gates are not
    applicable; the e-mail validation the harness cannot do is not tested."""
    document = json.loads((main_run.report_dir / "results.json").read_text())
    for name, entry in document["summary"].items():
        mine = [c for c in document["checks"] if c["target"] == name and c["verdict"] == "SKIP"]
        assert all(c["skip"]["kind"] in ("not_applicable", "not_tested") for c in mine)
        assert sum(entry["skipped"].values()) == entry["counts"]["SKIP"] == len(mine)
        assert sum(entry["skipped_why"].values()) == len(mine)
        gated = [c for c in mine if "applies from" in c["message"]]
        assert gated and {c["skip"]["why"] for c in gated} == {"version"}, name
    legacy = document["summary"]["synapse-legacy"]
    assert legacy["skipped_why"]["not_applicable.api"] >= 100
    untested = [
        c
        for c in document["checks"]
        if c["target"] == "synapse-legacy" and (c.get("skip") or {}).get("kind") == "not_tested"
    ]
    assert untested and all("e-mail" in c["message"] for c in untested)
    assert document["summary"]["synapse-oauth"]["skipped"]["not_tested"] == 0


def test_one_coverage_number_in_requirements_json_and_results(main_run, capsys):
    """`mxconform requirements --json` and results.json count the catalogue's rows alike,
    a literal `req=` inside a check included; every checked row is in results.json's
    requirements."""
    document = json.loads((main_run.report_dir / "results.json").read_text())
    capsys.readouterr()
    assert main(["requirements", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["coverage"]] = kinds.get(row["coverage"], 0) + 1
    assert {k: kinds.get(k, 0) for k in document["coverage"]["total"]} == document["coverage"][
        "total"
    ]
    checked = {r["id"] for r in rows if r["coverage"] == "checked"}
    assert checked <= set(document["requirements"])
    assert document["uncovered_requirements"] == document["coverage"]["uncovered"]
    for rid in ("LOGINTOKEN-200", "LOGINTOKEN-SINGLE-USE", "TOKEN-SOFTLOGOUT-FIELD"):
        assert rid in checked and rid in document["requirements"], rid
    assert {r["id"] for r in rows if r["coverage"] == "needs"} == {
        rid for ids in document["coverage"]["needs"].values() for rid in ids
    }
    # the page's coverage table says the same numbers
    import lxml.html

    page = lxml.html.fromstring((main_run.report_dir / "index.html").read_text())
    (total,) = page.xpath('//details[@id="coverage"]//tr[th[1][normalize-space()="all"]]')
    shown = [int(cell.text_content()) for cell in total.xpath("./th")[1:]]
    assert shown == [kinds.get(k, 0) for k in ("checked", "untestable", "needs", "uncovered")]


def test_check_titles_are_whole_sentences(main_run):
    """A title is its docstring's first paragraph, never cut at the first line's end."""
    document = json.loads((main_run.report_dir / "results.json").read_text())
    cut = {
        c["check_id"]: c["title"]
        for c in document["checks"]
        if not c["title"].endswith((".", ")", "?", "!", ":"))
    }
    assert cut == {}
    assert all("\n" not in c["title"] and "  " not in c["title"] for c in document["checks"])
