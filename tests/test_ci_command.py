"""`mxconform ci plan|servers|summary`, the pieces the action and the reusable workflow call:
a matrix from one list of targets, servers files from inputs, annotations GitHub can read."""

from __future__ import annotations

import json

import pytest
import yaml

from mxconform.cli import main
from mxconform.cli.ci import fail_annotations, summary_markdown
from mxconform.targets.loading import load_servers

SERVERS = """\
defaults: [a, b]
targets:
  - name: a
    embedded: synapse-legacy
    auth: [legacy]
    provisioning: {method: synapse-shared-secret}
  - name: b
    embedded: synapse-legacy
    synapse_version: "1.150.*"
    auth: [legacy]
    provisioning: {method: synapse-shared-secret}
  - {name: c, embedded: dendrite, dendrite_version: "0.13.8", auth: [legacy],
     provisioning: {method: synapse-shared-secret}}
"""


def test_the_plan_is_the_defaults_then_the_extra_targets(tmp_path, capsys):
    servers = tmp_path / "servers.yaml"
    servers.write_text(SERVERS)
    assert main(["ci", "plan", "--servers", str(servers), "--extra", "c, a"]) == 0
    legs = json.loads(capsys.readouterr().out)["include"]
    assert legs == [
        {"target": "a", "synapse": "", "dendrite": ""},
        {"target": "b", "synapse": "1.150.*", "dendrite": ""},
        {"target": "c", "synapse": "", "dendrite": "0.13.8"},
    ]
    assert main(["ci", "plan", "--servers", str(servers), "--extra", "staging"]) == 2
    assert "no such target in the servers file: staging" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--base-url", "https://matrix.example.org"],
            {"base_url": "https://matrix.example.org", "server_name": "matrix.example.org"},
        ),
        (
            ["--synapse-version", "1.130.*"],
            {"embedded": "synapse-legacy", "synapse_version": "1.130.*"},
        ),
        (["--dendrite-version", "0.13.8"], {"embedded": "dendrite", "dendrite_version": "0.13.8"}),
        ([], {"embedded": "synapse-legacy", "server_name": "localhost"}),
    ],
)
def test_a_servers_file_from_the_inputs_loads(tmp_path, monkeypatch, flags, expected):
    monkeypatch.setenv("MXCONFORM_REGISTRATION_SECRET", "s3cret-from-the-environment")
    out = tmp_path / "servers.yaml"
    assert main(["ci", "servers", "-o", str(out), *flags]) == 0
    (target,) = yaml.safe_load(out.read_text())["targets"]
    assert expected.items() <= target.items()
    loaded = load_servers(out)
    assert loaded.defaults == ["homeserver"]
    if "base_url" in expected:  # the secret stays a reference in the file
        assert target["provisioning"]["shared_secret"] == "${MXCONFORM_REGISTRATION_SECRET}"
        assert "s3cret" not in out.read_text()


def test_two_kinds_of_target_at_once_are_refused(tmp_path, capsys):
    out = tmp_path / "s.yaml"
    flags = ["--base-url", "https://x.example", "--synapse-version", "1.150.*"]
    assert main(["ci", "servers", "-o", str(out), *flags]) == 2
    assert "give one of" in capsys.readouterr().err and not out.exists()


def _document(verdict: str, known: bool) -> dict:
    check = {
        "check_id": "legacy.login.wrong-password",
        "transport": None,
        "target": "t",
        "verdict": verdict,
        "message": "expected HTTP 403, got 200: 100% wrong\nsecond line",
        "observed": "HTTP 200 | a token",
        "basis": ["LOGIN-BAD-CREDS"],
        "requirements": ["LOGIN-BAD-CREDS"],
        "nodeid": "legacy/check_login.py::check_wrong_password_is_forbidden[t]",
        "known_issue": {"reason": "known"} if known else None,
    }
    summary = {
        "counts": {"PASS": 0, "FAIL": 1, "WARN": 0, "INFO": 0, "SKIP": 0, "ERROR": 0},
        "total": 1,
        "known_fail": int(known),
        "must_applicable": 1,
        "must_passed": 0,
        "should_applicable": 0,
        "should_passed": 0,
    }
    return {"targets": [{"name": "t"}], "summary": {"t": summary}, "checks": [check]}


def test_an_unknown_fail_is_one_escaped_annotation_and_a_row():
    document = _document("FAIL", known=False)
    (line,) = fail_annotations(document)
    assert line.startswith("::error file=suites/legacy/check_login.py,title=mxconform t%3A ")
    assert "100%25 wrong%0Asecond line (rules: LOGIN-BAD-CREDS)" in line
    table = summary_markdown(document)
    assert (
        "| t | `legacy.login.wrong-password[-]` | LOGIN-BAD-CREDS | HTTP 200 \\| a token |" in table
    )


def test_a_known_fail_is_neither_annotated_nor_listed():
    document = _document("FAIL", known=True)
    assert fail_annotations(document) == []
    assert "No FAIL beyond the known issues." in summary_markdown(document)


def test_a_partial_run_is_named_in_the_job_summary():
    document = _document("PASS", known=False)
    document["run"] = {"selection": {"complete": False, "text": "-k 'login'"}}
    document["targets"].append({"name": "u", "not_selected": True})
    document["summary"]["u"] = dict(document["summary"]["t"], not_selected=True, total=0)
    table = summary_markdown(document)
    assert "- **t: selection -k 'login': MUST met 0/1 of the selected;" in table
    assert "- **u: not selected (-k 'login' holds no check for it)**" in table
