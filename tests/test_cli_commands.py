"""The commands that run nothing: `list`, `requirements`, `targets`, `--version`, `diff`'s
errors, the help text, and JUnit whose counts agree with its elements."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_report import check, document

from mxconform.cli import main, parser
from mxconform.report.junit import render_junit
from mxconform.spec import requirements


def test_list_names_each_check_with_its_area_api_transports_and_requirements(capsys):
    assert main(["list", "--json", "-k", "tokens.valid.accepted"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert checks
    whoami = next(c for c in checks if c["check_id"] == "tokens.valid.accepted.whoami")
    assert whoami["area"] == "tokens" and whoami["api"] == "legacy"
    assert whoami["transports"] == ["header", "query"]
    levels = {r["id"]: r["level"] for r in whoami["requirements"]}
    assert set(levels.values()) <= {"MUST", "SHOULD", "MAY"} and levels


def test_list_by_requirement_and_in_words(capsys):
    assert main(["list", "-r", "REFRESH-401"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all("REFRESH-401(MUST)" in line for line in out)
    assert {line.split()[0] for line in out} >= {"legacy.refresh.consumed"}
    assert main(["list", "-r", "NO-SUCH-RULE"]) == 2
    assert "NO-SUCH-RULE" in capsys.readouterr().err


def test_requirements_lists_the_catalogue_and_who_cites_it(capsys):
    assert main(["requirements", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == set(requirements.catalogue())
    refresh = next(r for r in rows if r["id"] == "REFRESH-401")
    assert "legacy.refresh.consumed" in refresh["checks"]
    assert main(["requirements", "--uncovered", "--json"]) == 0
    uncovered = json.loads(capsys.readouterr().out)
    assert all(not r["checks"] for r in uncovered)
    assert len(uncovered) < len(rows)


def test_version_and_targets(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("mxconform ")
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "; provisioning synapse-shared-secret" in out
    assert "; oauth driver form" in out
    assert "open-registrationoauth" not in out and "secretoauth" not in out


def test_every_option_of_every_command_has_help():
    def walk(p) -> list[str]:
        missing = []
        for action in p._actions:
            if action.help is None and action.dest not in ("help", "command", "action"):
                missing.append(f"{p.prog} {action.option_strings or action.dest}")
            choices = getattr(action, "choices", None)
            for sub in choices.values() if isinstance(choices, dict) else ():
                missing += walk(sub)
        return missing

    assert walk(parser()) == []


def test_diff_of_a_file_that_is_not_json_names_it(tmp_path: Path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "report.html"
    good.write_text(json.dumps(document(check("a", "PASS"))))
    bad.write_text("<!doctype html>")
    assert main(["diff", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "not JSON" in err[0]


def test_junit_counts_agree_with_its_elements():
    doc = document(
        check("a", "PASS"),
        check("b", "FAIL"),
        check("c", "FAIL", known_issue={"reason": "known", "link": "https://x"}),
        check("d", "ERROR"),
        check("e", "SKIP"),
        check("f", "WARN", transport=None),
    )
    root = ET.fromstring(render_junit(doc).split("?>", 1)[1])
    for element in [root, *root.findall("testsuite")]:
        cases = element.findall(".//testcase")
        assert element.get("tests") == str(len(cases)) == "6"
        for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            assert element.get(attr) == str(len(element.findall(f".//testcase/{tag}"))), attr
    assert root.get("failures") == "1" and root.get("skipped") == "2"
    known = next(c for c in root.iter("testcase") if c.get("name") == "c[header]")
    assert known.find("skipped").get("message").startswith("known issue: known")
    assert {c.get("name") for c in root.iter("testcase")} >= {"a[header]", "f"}


def test_a_baseline_diff_is_kept_in_results_and_shown_on_the_page(tmp_path: Path):
    from mxconform.cli.baseline import attach_baseline

    old = tmp_path / "old.json"
    old.write_text(json.dumps(document(check("a", "PASS"), check("b", "FAIL"))))
    run = tmp_path / "run"
    run.mkdir()
    new = document(check("a", "FAIL"), check("b", "PASS"))
    (run / "results.json").write_text(json.dumps(new))
    result = attach_baseline(run, old, new)
    assert result.regressions and "regressions (new FAIL): 1" in result.text
    stored = json.loads((run / "results.json").read_text())["run"]["baseline"]
    assert stored["path"] == str(old)
    assert stored["categories"]["regressions"] == [
        {"check_id": "a", "target": "t", "transport": "header"}
    ]
    assert [c["check_id"] for c in stored["categories"]["fixed"]] == ["b"]
    html = (run / "index.html").read_text()
    assert "Changes since baseline" in html and "regressions: 1" in html


def test_serve_prints_a_servers_yaml_block_naming_the_embedded_issuer(tmp_path):
    """`mxconform serve`'s block for its OAuth target loads as servers.yaml and names the
    embedded OAuth server's issuer: the origin credentials may go to, besides base_url."""
    import textwrap

    import yaml

    from mxconform.cli.commands import remote_block
    from mxconform.targets.config import ServersFile, Target
    from mxconform.targets.lifecycle import AdminAccess, RunningTarget

    target = Target(
        name="synapse-oauth", embedded="synapse-oauth", server_name="localhost", auth=["oauth"]
    )
    rt = RunningTarget(
        target,
        "http://127.0.0.1:8008",
        "localhost",
        None,
        oauth_admin=AdminAccess("https://127.0.0.1:8443", "mxconform-admin", "s3cret-value"),
        oauth_issuer="https://127.0.0.1:8443/",
    )
    block = remote_block(rt, "MXCONFORM_ADMIN_SECRET")
    assert "s3cret-value" not in block
    text = "defaults: [synapse-oauth-served]\ntargets:\n" + textwrap.indent(
        textwrap.dedent(block), "  "
    )
    served = ServersFile.model_validate(yaml.safe_load(text)).targets[0]
    assert served.oauth is not None and served.oauth.issuer == "https://127.0.0.1:8443/"
    assert served.base_url == "http://127.0.0.1:8008"
