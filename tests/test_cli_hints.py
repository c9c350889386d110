"""A selection or a value that names nothing is a usage error at once, in one line naming
the closest names that exist: `-k` and `-r` (did-you-mean, `-r` in any case), the values of
`run`'s options (checked as they are parsed), and `list --server`, which counts the checks
as `run` records them on that target."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from conftest import SECRET_VAR
from mxconform.cli import main, parser
from mxconform.cli.hints import closest, keyword_problem, requirement_id, requirement_problem
from mxconform.cli.options import spec_version
from mxconform.spec import requirements


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return lines[0]


def test_list_k_matching_nothing_names_the_closest_check_ids(capsys):
    assert main(["list", "-k", "tokens.mising"]) == 2
    line = _error_line(capsys)
    assert line.startswith("mxconform: error: -k 'tokens.mising' selects no check")
    assert "did you mean tokens.missing" in line


def test_run_k_matching_nothing_is_refused_before_any_target_starts(tmp_path, capsys):
    reports = tmp_path / "reports"
    assert main(["run", "-k", "tokens.mising", "--report-dir", str(reports)]) == 2
    line = _error_line(capsys)
    assert "did you mean tokens.missing" in line
    assert not reports.exists()  # nothing ran, nothing was started or written


def test_r_takes_an_id_in_any_case_and_names_the_closest_to_an_unknown_one(capsys):
    assert requirement_id("refresh-401") == "REFRESH-401"
    assert requirement_id("NO-SUCH") == "NO-SUCH"
    assert parser().parse_args(["list", "-r", "refresh-401"]).requirement == ["REFRESH-401"]
    assert main(["list", "-r", "refresh-401"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all("REFRESH-401(MUST)" in line for line in out)
    assert main(["list", "-r", "REFRESH-4O1"]) == 2
    line = _error_line(capsys)
    assert "-r REFRESH-4O1: not in the catalogue (did you mean REFRESH-401" in line
    assert main(["run", "-r", "refresh-4o1", "--report-dir", "/nonexistent/never"]) == 2
    assert "did you mean REFRESH-401" in _error_line(capsys)


def test_r_naming_a_row_no_check_cites_says_so(capsys):
    assert main(["requirements", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    needs = next(r for r in rows if not r["checks"] and r["coverage"] == "needs")
    assert main(["list", "-r", needs["id"]]) == 2
    said = f"-r {needs['id']}: no check cites it (it needs {needs['needs']}, which"
    assert said in _error_line(capsys)
    inside = next(r for r in rows if not r["checks"] and r["coverage"] == "checked")
    assert main(["list", "-r", inside["id"]]) == 0  # judged inside a check: selected


def test_k_and_r_that_each_select_but_not_together_say_so(capsys):
    assert main(["list", "-k", "tokens.missing", "-r", "REFRESH-401"]) == 2
    line = _error_line(capsys)
    assert "-k 'tokens.missing' and -r REFRESH-401 select no check together" in line


def test_the_hints_themselves():
    ids = {"tokens.missing.rejected.whoami", "legacy.refresh.unknown", "oauth.metadata.issuer"}
    assert "tokens.missing" in keyword_problem("tokens.mising", ids)
    said = keyword_problem("legacy and refrsh", ids)
    assert "did you mean refresh" in said and "legacy" not in said.split("mean")[1]
    assert "did you mean" not in keyword_problem("zzzqqq", ids)
    assert closest("ADMIN_ULR", ["admin_url", "base_url"]) == ["admin_url"]
    assert requirement_problem(["REFRESH-401"]) is None
    assert requirement_problem(sorted(requirements.catalogue())[:1]) is None


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--spec-version", "v9.9"], "not a spec version this harness knows; known: v1.1"),
        (["--spec-version", "v1.0"], "v1.20"),
        (["--spec-version", "banana"], "not a spec version"),
        (["--repeat", "0"], "--repeat: expected a whole number from 1 up"),
        (["--hypothesis-examples", "0"], "--hypothesis-examples: expected a whole number"),
        (["--target-timeout", "0"], "--target-timeout: expected a number of seconds above 0"),
        (["--max-wait", "-5"], "--max-wait: expected a number of seconds above 0"),
        (["--max-wait", "inf"], "--max-wait: expected a number of seconds above 0"),
        (["--jobs", "0"], "--jobs: expected auto or a number of processes from 1 up"),
    ],
)
def test_run_options_are_checked_as_they_are_parsed(argv, said, capsys):
    with pytest.raises(SystemExit) as stopped:
        parser().parse_args(["run", *argv])
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def test_spec_versions_are_normalised():
    assert spec_version("1.15") == "v1.15"
    assert spec_version("v1.15") == "v1.15"
    assert spec_version("V1.20") == "v1.20"
    assert spec_version("r0.6.1") == "r0.6.1"
    args = parser().parse_args(["run", "--spec-version", "1.15", "--repeat", "2", "--jobs", "3"])
    assert (args.spec_version, args.repeat, args.jobs) == ("v1.15", 2, "3")
    with pytest.raises(argparse.ArgumentTypeError):
        spec_version("v1.21")


def test_a_baseline_gate_needs_a_baseline(capsys):
    assert main(["run", "--fail-on", "lost-coverage", "--report-dir", "/nonexistent/x"]) == 2
    assert "--fail-on lost-coverage compares with --baseline" in _error_line(capsys)


def test_list_server_counts_checks_as_run_records_them(capsys):
    """Every check once per transport on that target, the ones of an API it does not
    declare included (run records them as not-applicable SKIPs), and why `list` differs."""
    assert main(["list", "--json"]) == 0
    ids = json.loads(capsys.readouterr().out)
    assert main(["list", "--json", "--server", "synapse-legacy"]) == 0
    per = json.loads(capsys.readouterr().out)
    assert {c["check_id"] for c in per} == {c["check_id"] for c in ids}
    records = sum(c["targets"]["synapse-legacy"]["records"] for c in per)
    applicable = sum(
        c["targets"]["synapse-legacy"]["records"]
        for c in per
        if c["targets"]["synapse-legacy"]["applicable"]
    )
    by_transports = sum(max(1, len(c["transports"])) for c in per)
    assert records == by_transports > len(ids)
    oauth_only = [c for c in per if c["api"] == "oauth"]
    assert oauth_only and not any(c["targets"]["synapse-legacy"]["applicable"] for c in oauth_only)
    assert main(["list", "--server", "synapse-legacy"]) == 0
    err = capsys.readouterr().err
    said = f"synapse-legacy: {records} checks as `run` records them ({applicable} to run, "
    assert said in err and f"{records - applicable} recorded as not-applicable SKIP" in err
    assert f"`list` counts check ids ({len(ids)}); `run` counts each check once per" in err


def test_list_server_of_a_selection_that_applies_to_none_of_them(capsys):
    assert main(["list", "--server", "synapse-legacy", "-k", "oauth.metadata.issuer"]) == 2
    assert "apply to none of synapse-legacy" in _error_line(capsys)


@pytest.mark.integration
def test_list_server_says_what_a_run_records(run_harness, synapse, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(SECRET_VAR, synapse.shared_secret)
    selection = "tokens.unknown.rejected.whoami or legacy.login.flows or oauth.metadata.issuer"
    run = run_harness(synapse.base_url, "-k", selection)
    recorded = [c for c in run.checks if c["target"] == "under-test"]
    skipped_api = [c for c in recorded if (c.get("skip") or {}).get("why") == "api"]
    capsys.readouterr()
    servers = tmp_path / "servers.yaml"  # the run's own
    argv = ["list", "--servers", str(servers), "--server", "under-test", "-k", selection]
    assert main(argv) == 0
    err = capsys.readouterr().err
    match = re.search(r"under-test: (\d+) checks as `run` records them \((\d+) to run", err)
    assert match, err
    assert int(match.group(1)) == len(recorded) == 4
    assert int(match.group(1)) - int(match.group(2)) == len(skipped_api) == 1


def test_an_unknown_target_with_k_is_still_one_line(capsys):
    assert main(["list", "--server", "nowhere"]) == 2
    assert "unknown target 'nowhere'; targets in this file: " in _error_line(capsys)
    assert main(["run", "--server", "nowhere", "-k", "tokens", "--report-dir", "/no/x"]) == 2
    assert "unknown target 'nowhere'; targets in this file: " in _error_line(capsys)


def test_r_selects_the_checks_that_judge_a_row_inside_by_a_literal_citation(capsys):
    """A row `requirements` counts as checked through a literal `req=` (in the check or a
    function of its module it calls) is selected by `-r` as the checks judging it."""
    assert main(["list", "-r", "LOGINTOKEN-200", "--json"]) == 0
    ids = {c["check_id"] for c in json.loads(capsys.readouterr().out)}
    assert "uia.completed.get-login-token" in ids  # req= inside the check's own body
    assert main(["list", "-r", "TOKEN-SOFTLOGOUT-FIELD", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)  # req= in a helper of the check's module
