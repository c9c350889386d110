"""Selections on the default targets: a target the selection leaves nothing to run is "not
selected" (never started, exit 0), a partial run never reads "conformant", and a selection
that applies to no target at all is exit 2 with the reason in words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mxconform.targets.embedded.synapse import synapse_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not synapse_available(), reason="the embedded extra is not installed"),
]


def run(tmp_path: Path, *selection: str) -> tuple[int, dict[str, Any], dict[str, Any], str]:
    """`mxconform run --json` as a user types it (a process per default target)."""
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mxconform.cli",
            "run",
            "--json",
            "--report-dir",
            str(reports),
            *list(selection),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = json.loads(done.stdout)
    document = json.loads((reports / "latest" / "results.json").read_text())
    return done.returncode, summary, document, done.stderr


def test_a_selection_of_one_api_leaves_the_other_target_not_selected(tmp_path):
    code, summary, document, human = run(tmp_path, "-k", "legacy.login.flows")
    assert code == 0, human
    oauth = next(t for t in document["targets"] if t["name"] == "synapse-oauth")
    assert oauth["not_selected"] is True
    assert oauth.get("startup_s") is None and oauth.get("running") is None  # never started
    assert not [c for c in document["checks"] if c["target"] == "synapse-oauth"]
    assert document["summary"]["synapse-oauth"]["not_selected"] is True
    # partial: named as such, never "conformant"
    assert document["run"]["selection"]["complete"] is False
    assert summary["complete"] is False and "-k 'legacy.login.flows'" in summary["selection"]
    for name, entry in summary["targets"].items():
        assert entry["conformant_on_must"] is False, name
    assert summary["targets"]["synapse-legacy"]["must_met_in_selection"] is True
    assert "synapse-oauth: not selected" in human
    said = "synapse-legacy: selection -k 'legacy.login.flows': MUST met 1/1 of the selected"
    assert said in human
    assert "a selection, not a conformance verdict" in summary["exit_reason"]
    assert "{" not in summary["exit_reason"]  # never a Python dict


def test_a_requirement_selection_starts_only_the_target_it_applies_to(tmp_path):
    code, _summary, document, human = run(tmp_path, "-r", "REFRESH-401")
    assert code == 0, human
    not_selected = [t["name"] for t in document["targets"] if t["not_selected"]]
    assert not_selected == ["synapse-oauth"]
    assert {c["target"] for c in document["checks"]} == {"synapse-legacy"}
    assert all("REFRESH-401" in c["requirements"] for c in document["checks"])


def test_a_selection_applying_to_no_target_is_exit_2_in_words(tmp_path):
    code, summary, document, human = run(
        tmp_path, "--server", "synapse-legacy", "-k", "oauth.metadata.issuer"
    )
    assert code == 2, human
    assert document["targets"][0]["not_selected"] is True
    assert "holds no check that applies to synapse-legacy" in summary["exit_reason"]
