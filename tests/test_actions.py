"""The GitHub Action and the reusable workflow, executed: every `run:` step of `action.yml`,
`.github/actions/harness/action.yml` and `.github/workflows/conformance.yml` runs in a local
emulation of the runner (tests/gha.py) against the embedded targets, and the two callers of
docs/ci.md run as they are written there."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from gha import Runner, StepFailed, run_workflow

from conftest import SECRET_VAR

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "conformance.yml"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> Path:
    """What `setup-python` hands out here: an interpreter of its own, into which the steps
    install the harness, with this environment's dependencies on its path (a .pth line after
    its own packages, so the harness the step installs is the one imported)."""
    venv = tmp_path_factory.mktemp("runner") / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    purelib = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "zz-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin" / "python"


def _runner(tmp_path: Path, python: Path, **github: str) -> Runner:
    workspace, temp = tmp_path / "work", tmp_path / "runner-temp"
    workspace.mkdir()
    temp.mkdir()
    context = {
        "repository": "example/homeserver",
        "workflow": "nightly matrix auth",
        "run_id": "1001",
        "sha": "0" * 40,
        "ref_name": "main",
        "token": "not-a-token",
        "event": {"repository": {"default_branch": "main"}},
        **github,
    }
    return Runner(workspace, ROOT, python, temp, github=context)


def _servers(path: Path, known_issues: bool = True) -> None:
    known = f"    known_issues: {ROOT / 'known-issues' / 'synapse.yaml'}\n" if known_issues else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "defaults: [synapse-legacy]\n"
        "targets:\n"
        "  - name: synapse-legacy\n"
        "    embedded: synapse-legacy\n"
        "    server_name: localhost\n"
        "    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n" + known
    )


def _caller(kind: str) -> dict:
    """The caller of docs/ci.md marked `<!-- caller: KIND -->`, parsed as it is written."""
    text = (ROOT / "docs" / "ci.md").read_text()
    found = re.search(rf"<!-- caller: {kind} -->\n```yaml\n(.*?)```", text, re.S)
    assert found, f"docs/ci.md has no {kind} caller"
    return yaml.safe_load(found[1])


def test_the_action_runs_the_suites_and_leaves_a_report_a_summary_and_no_annotation(
    tmp_path, python
):
    runner = _runner(tmp_path, python)
    _servers(runner.workspace / "servers.yaml")
    outputs = runner.run_action(
        ROOT, {"servers": "servers.yaml", "args": "-k 'whoami or legacy.login.flows'"}
    )
    assert outputs["exit-code"] == "0"
    report = Path(outputs["report-dir"])
    document = json.loads((report / "results.json").read_text())
    assert {c["verdict"] for c in document["checks"]} <= {"PASS", "INFO", "SKIP"}
    assert [u.name for u in runner.uploads] == ["mxconform-report"]
    assert runner.uploads[0].path == report and (report / "index.html").is_file()
    summary = runner.summary.read_text()
    assert "## mxconform" in summary and "synapse-legacy: selection -k " in summary
    assert "MUST met " in summary and " of the selected" in summary  # a partial run, named
    assert "No FAIL beyond the known issues." in summary
    assert not [line for out in runner.stdout for line in out.splitlines() if "::error" in line]
    # the cache key names the exact interpreter: a new patch release restores nothing dead
    exact = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert [k for k in runner.cache_keys if f"-py{exact}-" in k], runner.cache_keys


def test_a_fail_is_an_annotation_a_row_of_the_summary_and_the_job_s_failure(tmp_path, python):
    """Without its known-issues file, Synapse's 500 for a malformed delete_devices body is a
    FAIL: the job fails with mxconform's exit code, after the summary and the upload."""
    runner = _runner(tmp_path, python)
    _servers(runner.workspace / "servers.yaml", known_issues=False)
    with pytest.raises(StepFailed, match="the verdict"):
        runner.run_action(ROOT, {"servers": "servers.yaml", "args": "-k badinput.delete-devices"})
    errors = [line for out in runner.stdout for line in out.splitlines() if "::error" in line]
    assert errors and all(
        e.startswith("::error file=suites/badinput/check_badinput.py,") for e in errors
    )
    assert "badinput.delete-devices[-] FAIL" in errors[0] and "API-BAD-JSON" in errors[0]
    summary = runner.summary.read_text()
    assert "| synapse-legacy | `badinput.delete-devices[-]` | API-BAD-JSON |" in summary
    assert [u.name for u in runner.uploads] == ["mxconform-report"]


def test_the_docs_action_caller_tests_a_homeserver_by_url_and_secret(
    tmp_path, python, synapse, monkeypatch
):
    """docs/ci.md's five lines, against the session's Synapse as a remote homeserver: the
    servers file the action writes, shared-secret provisioning through the secret input."""
    monkeypatch.delenv(SECRET_VAR, raising=False)
    caller = _caller("action")
    (job,) = caller["jobs"].values()
    (step,) = job["steps"]
    runner = _runner(tmp_path, python)
    ctx = {
        "vars": {"HOMESERVER_URL": synapse.base_url, "HOMESERVER_NAME": synapse.server_name},
        "secrets": {"REGISTRATION_SHARED_SECRET": synapse.shared_secret},
        "github": runner.github,
    }
    given = runner.render(step["with"], ctx)
    try:
        outputs = runner.run_action(
            ROOT, {**given, "args": "-k 'tokens.whoami or legacy.login.password'"}
        )
    except StepFailed:
        pytest.fail("\n---\n".join(runner.stderr + runner.stdout))
    assert outputs["exit-code"] == "0"
    document = json.loads((Path(outputs["report-dir"]) / "results.json").read_text())
    (target,) = document["targets"]
    assert (
        target["base_url"] == synapse.base_url and target["provisioning"] == "synapse-shared-secret"
    )
    assert (
        target["housekeeping"]["users_created"] and not target["housekeeping"]["users_left_active"]
    )
    assert synapse.shared_secret not in (Path(outputs["report-dir"]) / "results.json").read_text()


def test_the_docs_workflow_caller_runs_the_matrix_and_builds_the_page(tmp_path, python):
    """docs/ci.md's caller of the reusable workflow: the plan from the servers file, a leg per
    target through the action, no baseline on a first run, then the matrix page; Pages off."""
    caller = _caller("workflow")
    (job,) = caller["jobs"].values()
    assert job["uses"].split("@")[0].endswith("/mxconform/.github/workflows/conformance.yml")
    runner = _runner(tmp_path, python)
    _servers(runner.workspace / job["with"]["servers"])
    results = run_workflow(runner, WORKFLOW, job["with"], {"registration-secret": ""})
    assert results["plan"]["result"] == "success"
    matrix = json.loads(results["plan"]["outputs"]["matrix"])
    assert matrix == {"include": [{"target": "synapse-legacy", "synapse": "", "dendrite": ""}]}
    assert results["conformance"]["result"] == "success"
    assert results["matrix-page"]["result"] == "success"
    assert results["pages"]["result"] == "skipped"
    names = [u.name for u in runner.uploads]
    assert names == ["report-synapse-legacy", "matrix-history", "matrix-page"]
    site = runner.workspace / "site"
    assert (site / "index.html").is_file() and (site / "badge-synapse-legacy.svg").is_file()
    assert list((runner.workspace / "history").glob("*-synapse-legacy.json"))
    said = "".join(runner.stdout)
    assert "no earlier report of synapse-legacy from nightly matrix auth on main" in said


def test_the_nightly_is_a_caller_of_the_reusable_workflow_with_inputs_it_declares():
    nightly = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    (job,) = nightly["jobs"].values()
    assert job["uses"] == "$/./.github/workflows/conformance.yml"
    declared = yaml.safe_load(WORKFLOW.read_text())[True]["workflow_call"]
    assert set(job["with"]) <= set(declared["inputs"])
    assert set(job["secrets"]) <= set(declared["secrets"])
    servers = ROOT / job["with"]["servers"]
    planned = subprocess.run(
        [sys.executable, "-m", "mxconform.cli", "ci", "plan", "--servers", servers],
        capture_output=True,
        text=True,
        check=True,
    )
    legs = [leg["target"] for leg in json.loads(planned.stdout)["include"]]
    assert "dendrite" in legs and "staging" not in legs


def test_the_action_builds_and_runs_a_dendrite_release(tmp_path, python):
    """The Dendrite steps (Go, the build, its cache key): the build is the cached one when
    the project's tests already made it, else made now (minutes, once)."""
    from mxconform.targets.embedded import dendrite_builds

    if dendrite_builds.go_binary() is None:
        pytest.skip("Dendrite is built from source: no Go on this machine")
    runner = _runner(tmp_path, python)
    version = dendrite_builds.DEFAULT_VERSION
    inputs = {"dendrite-version": version, "args": "-k 'tokens.whoami or legacy.login.password'"}
    try:
        outputs = runner.run_action(ROOT, inputs)
    except StepFailed:
        pytest.fail("\n---\n".join(runner.stderr + runner.stdout))
    assert outputs["exit-code"] == "0"
    document = json.loads((Path(outputs["report-dir"]) / "results.json").read_text())
    assert document["targets"][0]["server_software"].startswith("Dendrite")
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True)
    go = go.stdout.strip()
    assert [k for k in runner.cache_keys if f"-{go}--{version}-" in k], runner.cache_keys
