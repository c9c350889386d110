"""What `mxconform run` prints: its own progress (no pytest dots, sections or tracebacks),
a line per problem as it happens, one line for a target that cannot be run, and a summary
whose headline and exit line agree with the exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from nonconformant import BreakingProxy

from conftest import remote_servers_file
from mxconform.cli import EXIT_ERROR, EXIT_FAIL, EXIT_OK

pytestmark = pytest.mark.integration
PYTEST_NOISE = ("Traceback", "short test summary", "= FAILURES =", "= ERRORS =", "[100%]")
DOTS = re.compile(r"^[.sFEIWxX]+\s*(\[\s*\d+%\])?$")  # pytest's progress letters


# The live console's progress line, printed every 5 s when not on a TTY: how many there are
# depends on the machine's load, not on what the run has to say.
PROGRESS_LINE = re.compile(r"^\S+: \d+/\d+ checks, ")


def _assert_ours(out: str, max_lines: int) -> list[str]:
    lines = out.splitlines()
    assert len([line for line in lines if not PROGRESS_LINE.match(line)]) <= max_lines, out
    for noise in PYTEST_NOISE:
        assert noise not in out, (noise, out)
    assert not [line for line in lines if DOTS.match(line)], out
    return lines


@pytest.fixture(scope="module")
def proxy(synapse):
    with BreakingProxy(synapse.base_url) as p:
        yield p


def test_a_known_fail_is_not_shown_as_a_failure(run_harness, synapse, tmp_path, capfd):
    servers = remote_servers_file(tmp_path, synapse.base_url)
    (tmp_path / "known.yaml").write_text(
        "known_issues:\n"
        "  - check: legacy.refresh.consumed\n"
        "    reason: Synapse answers 403\n"
        "    link: https://example.org/issue\n"
    )
    servers.write_text(servers.read_text() + "    known_issues: known.yaml\n")
    run = run_harness(synapse.base_url, "-k", "legacy.refresh", servers=servers)
    out, err = capfd.readouterr()
    lines = _assert_ours(out + err, 15)
    assert run.outcome.exit_code == EXIT_OK
    assert "  FAIL " not in out  # known: no FAIL line as it happens
    lead = "  under-test: selection -k 'legacy.refresh': MUST met"
    headline = next(line for line in lines if line.startswith(lead))
    assert "1 known deviation (not failing)" in headline and "KNOWN 1" in headline
    assert " FAIL " not in headline
    assert lines[-1].startswith("  exit 0: every selected MUST met (-k 'legacy.refresh': a sel")
    assert any(line.startswith("under-test: done, ") for line in lines)
    # the server's provenance is its own: no git details of our checkout in its version
    header = run.document["targets"][0]["server_header"]
    assert header.startswith("Synapse/") and "(" not in header, header
    assert run.document["harness"]["version"]


def test_synapse_cannot_see_a_git_repository_around_it(tmp_path):
    import subprocess

    from mxconform.targets.embedded.synapse import synapse_env

    env = synapse_env(tmp_path)
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).parent,  # inside our checkout
        env=env,
        capture_output=True,
    )
    assert found.returncode != 0 and not found.stdout


def test_a_real_fail_is_one_line_as_it_happens_and_in_the_summary(run_harness, proxy, capfd):
    proxy.use("wrong-password-accepted")
    run = run_harness(proxy.base_url, "-k", "legacy.login.wrong-password")
    out, err = capfd.readouterr()
    lines = _assert_ours(out + err, 15)
    assert run.outcome.exit_code == EXIT_FAIL
    failed = sorted(c["check_id"] for c in run.checks if c["verdict"] == "FAIL")
    assert failed
    live = [line for line in lines if line.startswith("  FAIL  ")]
    assert [line.split()[1].rstrip(":") for line in live] == failed
    assert lines[-1].startswith("  exit 1: 1 FAIL not listed as known issues")


def test_an_unreachable_target_is_one_line_not_one_per_check(run_harness, capfd):
    run = run_harness("http://127.0.0.1:9")
    out, err = capfd.readouterr()
    lines = _assert_ours(out + err, 10)
    assert run.outcome.exit_code == EXIT_ERROR
    assert len(run.checks) > 100
    unavailable = [line for line in lines if "UNAVAILABLE" in line]
    assert len(unavailable) == 2, out  # as it happens, and the summary's headline
    assert "not reachable: cannot connect to http://127.0.0.1:9" in unavailable[0]
    assert not [line for line in lines if line.startswith("  ERROR")]
    assert lines[-1].startswith("  exit 2: ")


def test_quiet_prints_the_summary_only_and_json_keeps_stdout_for_json(run_harness, synapse, capfd):
    run = run_harness(synapse.base_url, "-k", "tokens.whoami", "-q", "--json")
    out, err = capfd.readouterr()
    data = json.loads(out)
    assert data["exit_code"] == run.outcome.exit_code == EXIT_OK
    assert data["targets"]["under-test"]["must_applicable"] > 0
    assert data["report"].endswith("index.html")
    assert "checks selected" not in err  # -q: no progress
    assert "under-test: selection -k 'tokens.whoami': MUST met" in err and "exit 0" in err


def test_requirement_selects_the_checks_citing_it(run_harness, synapse, capfd):
    run = run_harness(synapse.base_url, "-r", "REFRESH-401", "-q")
    capfd.readouterr()
    assert run.checks
    assert all("REFRESH-401" in c["requirements"] for c in run.checks)


def test_a_selection_that_grades_no_must_does_not_say_every_must_is_met(
    run_harness, synapse, capfd
):
    """An observation alone (INFO) exits 0, but the last line does not claim conformance."""
    run = run_harness(synapse.base_url, "-k", "tokens.www-authenticate")
    out, err = capfd.readouterr()
    last = (out + err).rstrip().splitlines()[-1]
    assert run.outcome.exit_code == EXIT_OK and set(run.verdicts().values()) == {"INFO"}
    assert last == (
        "  exit 0: no FAIL, but no MUST was graded: this selection does not say the server "
        "conforms"
    )
