"""`run --jobs N`: a process per target, merged into one report with the same verdicts per
check as the run in one process; the exit code is the worst child's; no secret on the console."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from leaks import assert_no_secret
from test_report import check, document

from conftest import SECRET_VAR
from mxconform.cli import parser, run_suites
from mxconform.parallel import MAX_SHARDS, exit_code_of, jobs_for
from mxconform.report.merge import merge_shards, merge_targets


def two_targets(folder: Path, base_url: str) -> Path:
    """Two remote targets that are one embedded Synapse (two embedded ones are too slow here)."""
    path = folder / "servers.yaml"
    entries = "".join(
        f"  - name: {name}\n"
        f"    base_url: {base_url}\n"
        "    server_name: localhost\n"
        "    auth: [legacy]\n"
        f"    provisioning: {{method: synapse-shared-secret, shared_secret: '${{{SECRET_VAR}}}'}}\n"
        "    max_requests_per_second: 1000\n"
        for name in ("side-a", "side-b")
    )
    path.write_text("defaults: [side-a, side-b]\ntargets:\n" + entries)
    return path


def once_and_in_two(servers: Path, folder: Path, selection: str, capfd: Any) -> tuple:
    """The same selection run with `--jobs 1`, then `--jobs 2`; the second run's output."""

    def run(jobs: int):
        argv = ["run", "--servers", str(servers), "--report-dir", str(folder / f"jobs{jobs}")]
        return run_suites(parser().parse_args([*argv, "--jobs", str(jobs), "-k", selection]))

    first = run(1)
    capfd.readouterr()
    second = run(2)
    out, err = capfd.readouterr()
    return first, second, out, err


def verdicts(report_dir: Path) -> dict[tuple[str, str, str], str]:
    doc = json.loads((report_dir / "results.json").read_text())
    return {
        (c["target"], c["check_id"], c["transport"] or "-"): c["verdict"] for c in doc["checks"]
    }


@pytest.mark.integration
def test_parallel_run_has_the_sequential_verdicts(tmp_path, synapse, monkeypatch, capfd):
    monkeypatch.setenv(SECRET_VAR, synapse.shared_secret)
    servers = two_targets(tmp_path, synapse.base_url)

    selection = "tokens.missing or tokens.unknown or legacy.login"
    sequential, parallel, out, err = once_and_in_two(servers, tmp_path, selection, capfd)
    assert sequential.report_dir and parallel.report_dir
    seq, par = verdicts(sequential.report_dir), verdicts(parallel.report_dir)
    assert seq == par and len(seq) > 10
    assert {t for t, _, _ in par} == {"side-a", "side-b"}
    assert parallel.exit_code == sequential.exit_code
    doc = json.loads((parallel.report_dir / "results.json").read_text())
    assert set(doc["summary"]) == {"side-a", "side-b"} and doc["run"]["jobs"] == 2
    assert (
        doc["summary"]
        == json.loads((sequential.report_dir / "results.json").read_text())["summary"]
    )
    assert (parallel.report_dir / "index.html").exists()
    assert (parallel.report_dir / "junit-side-b.xml").exists()
    assert (tmp_path / "jobs2" / "latest").resolve() == parallel.report_dir.resolve()
    assert not list((tmp_path / "jobs2").glob(".jobs-*"))  # the children's folders are gone
    for name in ("side-a", "side-b"):
        assert [line for line in out.splitlines() if line.startswith(f"{name}: exit ")], out
    assert not [line for line in out.splitlines() if line.startswith("[")]  # one prefix
    assert_no_secret(out + err, [synapse.shared_secret])


@pytest.mark.integration
def test_json_stdout_stays_json_with_children(tmp_path, synapse, monkeypatch, capfd):
    """`--json` with `--jobs`: the children's progress goes to stderr, stdout is the summary."""
    monkeypatch.setenv(SECRET_VAR, synapse.shared_secret)
    servers = two_targets(tmp_path, synapse.base_url)
    argv = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r"), "--json"]
    outcome = run_suites(parser().parse_args([*argv, "--jobs", "2", "-k", "tokens.missing"]))
    out, err = capfd.readouterr()
    assert json.loads(out)["exit_code"] == outcome.exit_code
    assert "side-a: exit" in err and "side-b: exit" in err


def test_the_exit_code_is_the_worst_childs():
    assert exit_code_of([0, 0]) == 0
    assert exit_code_of([0, 2]) == 2
    assert exit_code_of([2, 1, 0]) == 1
    assert exit_code_of([0, 3]) == 2


def test_merge_recomputes_the_summary_and_requirements():
    a = document(check("x", "PASS"))
    b = document(check("x", "FAIL", target="u"))
    b["targets"] = [dict(b["targets"][0], name="u")]
    b["run"]["started_at"] = "2026-11-26T09:00:00+00:00"
    merged = merge_targets([a, b], "mxconform run --jobs 2", 2, 3.5)
    assert [t["name"] for t in merged["targets"]] == ["u", "t"]  # by start time
    assert merged["summary"]["t"]["must_passed"] == 1 and merged["summary"]["u"]["must_passed"] == 0
    assert "TOKEN-MISSING" in merged["requirements"]
    assert "TOKEN-MISSING" not in merged["uncovered_requirements"]
    assert merged["run"]["started_at"] == "2026-11-26T09:00:00+00:00"
    assert merged["run"]["duration_s"] == 3.5 and len(merged["run"]["parts"]) == 2


def test_merge_keeps_the_catalogue_coverage_of_every_part():
    """Each part's coverage counts its collected checks; a row checked by any part stays
    checked, and the rest keep their kind (the page's coverage table needs it)."""
    from mxconform.spec.coverage import coverage

    a, b = document(check("x", "PASS")), document(check("y", "PASS", target="u"))
    a["coverage"] = coverage({"TOKEN-MISSING"})
    b["coverage"] = coverage({"WHOAMI-200"})
    merged = merge_targets([a, b], "mxconform run", 2, 1.0)
    assert merged["coverage"] == coverage({"TOKEN-MISSING", "WHOAMI-200"})


def test_shares_merge_back_in_the_order_the_checks_were_selected():
    """`--shard K/N` deals the checks out one at a time: merged, they are in their first
    order again, and the accounts and set-up requests of every share are added up."""
    first = document(*(check(f"c{i}", "PASS") for i in (0, 2, 4)))
    second = document(*(check(f"c{i}", "PASS") for i in (1, 3)))
    first["targets"][0].update(setup_exchanges=3, housekeeping={"users_created": ["@a:x"]})
    second["targets"][0].update(
        setup_exchanges=2, housekeeping={"users_created": ["@b:x"], "devices_logged_out": 1}
    )
    merged = merge_shards([first, second])
    assert [c["check_id"] for c in merged["checks"]] == ["c0", "c1", "c2", "c3", "c4"]
    assert len(merged["targets"]) == 1 and merged["targets"][0]["setup_exchanges"] == 5
    assert merged["targets"][0]["housekeeping"]["users_created"] == ["@a:x", "@b:x"]
    assert merged["targets"][0]["housekeeping"]["devices_logged_out"] == 1
    assert merged["run"]["shards"] == 2
    whole = merge_targets([merged], "mxconform run --jobs 2", 2, 1.0)
    assert whole["summary"]["t"]["total"] == 5


def test_auto_jobs_share_only_a_single_embedded_target(monkeypatch):
    """A lone embedded target is shared by up to MAX_SHARDS processes (one Synapse serves
    them all); a remote one never is (its request-rate bound is per process)."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert jobs_for("auto", 1, shareable=True) == 2
    assert jobs_for("auto", 1, shareable=False) == 1
    assert jobs_for("auto", 3) == 2
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert jobs_for("auto", 1, shareable=True) == MAX_SHARDS


@pytest.mark.integration
def test_a_shared_embedded_target_has_the_single_process_verdicts(tmp_path, capfd):
    """One embedded Synapse started by the parent, its checks dealt to two processes that
    attach to it (its secret only on their stdin): the verdicts, their order and the
    summary of the run in one process; the target's logs kept; no secret on the console."""
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [solo]\ntargets:\n  - name: solo\n    embedded: synapse-legacy\n"
        "    server_name: localhost\n    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n"
    )

    selection = "tokens.missing or legacy.login or uia.completed"
    single, shared, out, err = once_and_in_two(servers, tmp_path, selection, capfd)
    assert single.report_dir and shared.report_dir
    one = json.loads((single.report_dir / "results.json").read_text())
    two = json.loads((shared.report_dir / "results.json").read_text())
    order = [(c["check_id"], c["transport"], c["verdict"]) for c in one["checks"]]
    assert [(c["check_id"], c["transport"], c["verdict"]) for c in two["checks"]] == order
    assert len(order) > 20 and two["summary"] == one["summary"]
    assert [t["name"] for t in two["targets"]] == ["solo"] and two["run"]["shards"] == 2
    assert two["targets"][0]["startup_s"] > 0
    assert (shared.report_dir / "logs" / "solo" / "synapse-homeserver.log").exists()
    assert "\nsolo 1/2: " in out and "\nsolo 2/2: " in out  # each line names its share once
    assert "solo 1/2: starting" not in out  # the parent starts it, and says so
    assert_no_secret(out + err, [*shared.secrets])
    # the children's passwords and tokens came back to the parent (a pipe, memory only),
    # which scrubbed the shared target's logs of them when it stopped it
    assert len(shared.secrets) > 2 * len(two["targets"][0]["housekeeping"]["users_discarded"])
    logs = "".join(p.read_text() for p in (shared.report_dir / "logs").rglob("*.log"))
    assert_no_secret(logs, [*shared.secrets])


@pytest.mark.integration
def test_sigterm_reaches_every_child_and_the_merged_report_is_partial(tmp_path, synapse):
    """A CI cancel during `--jobs 2`: the signal is forwarded once to each child, each writes
    its partial report, the parent merges them marked interrupted, exits 143, leaves `latest`
    alone and no child folder behind."""
    servers = two_targets(tmp_path, synapse.base_url)
    reports = tmp_path / "reports"
    env = {**os.environ, SECRET_VAR: synapse.shared_secret}
    command = [sys.executable, "-m", "mxconform.cli", "run", "--servers", str(servers)]
    process = subprocess.Popen(
        # a line per check (-v); enough checks that both children are still running when
        # the signal comes, without the accounts of a whole run to clean up afterwards
        [*command, "--report-dir", str(reports), "--jobs", "2", "-v", "-k", "tokens or login"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    seen, started = [], set()
    while len(started) < 2:  # both children have graded a check
        line = process.stdout.readline()
        assert line, "".join(seen)
        seen.append(line)
        found = re.match(r"^(side-[ab]): (PASS|FAIL|INFO|SKIP|ERROR)\s", line)
        if found:
            started.add(found.group(1))
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=150)
    out = "".join(seen) + out
    assert process.returncode == 143, out[-2000:]
    folders = [p for p in reports.iterdir() if p.name != "latest"]
    assert len(folders) == 1 and not folders[0].name.startswith(".jobs-"), folders
    document = json.loads((folders[0] / "results.json").read_text())
    assert document["run"]["interrupted"] == "SIGTERM"
    assert {t["name"] for t in document["targets"]} == {"side-a", "side-b"}, out[-3000:]
    assert not (reports / "latest").exists()
    assert synapse.shared_secret not in out
