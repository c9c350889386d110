"""What the commands print and write: one target name per console line with `--jobs`,
verdict counts in the one display order, `report -o`, `--json` of `diff` and `targets`,
`--fail-on lost-coverage`, and accounts left active named by the parent of `--jobs` too."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from test_report import check, document

from mxconform.cli import _baseline_regressions, main
from mxconform.cli.baseline import attach_baseline, diff_json
from mxconform.cli.summary import summary_lines
from mxconform.http.redact import SecretRegistry
from mxconform.parallel.children import Child, prefixed, run_all
from mxconform.plugin.progress import Progress, _TargetProgress
from mxconform.report.diff import diff_results, lost_coverage
from mxconform.report.merge import merge_shards, merge_targets
from mxconform.spec.verdicts import DISPLAY_ORDER


def _write(folder: Path, doc: dict[str, Any], name: str = "results.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


# ---- 1. one prefix per line ------------------------------------------------------------


def test_a_childs_line_carries_its_targets_name_once():
    started = "synapse-legacy: started in 2.0 s, http://127.0.0.1:1 answers as Synapse/1"
    assert prefixed("synapse-legacy", started) == started
    assert prefixed("synapse-legacy 1/2", started).startswith("synapse-legacy 1/2: started in")
    fail = "  FAIL  legacy.x [header]: refused"
    assert prefixed("synapse-legacy", fail) == "synapse-legacy: FAIL  legacy.x [header]: refused"
    assert prefixed("a", "  no report: boom\n") == "a: no report: boom"


def test_the_parent_prints_each_childs_lines_and_exit_with_one_prefix(tmp_path, capsys):
    script = (
        "import sys\n"
        "name = sys.argv[1]\n"
        "print(f'{name}: starting embedded synapse-legacy ...')\n"
        "print(f'{name}: started in 1.0 s, http://127.0.0.1:1 answers as Synapse/1')\n"
        "print('  FAIL  legacy.x [header]: refused')\n"
        "print(f'{name}: done, 1/1 checks, FAIL 1, 1.0 s')\n"
        "print('')\n"
        "print('mxconform: 1 check on 1 target in 1.0 s')\n"
        "print(f'  {name}: MUST met 0/1; 1 check: FAIL 1')\n"
        "sys.exit(1)\n"
    )
    children = [
        Child(name, [sys.executable, "-c", script, name], tmp_path / name)
        for name in ("side-a", "side-b")
    ]
    run_all(argparse.Namespace(verbose=False), children, 2, SecretRegistry())
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines and not [line for line in lines if line.startswith("[")], lines
    for name in ("side-a", "side-b"):
        mine = [line for line in lines if line.startswith(f"{name}: ")]
        assert f"{name}: exit 1" in mine
        assert f"{name}: FAIL  legacy.x [header]: refused" in mine
        assert all(line.count(name) == 1 for line in mine), mine
    assert len(lines) == 10  # 4 progress lines and the exit of each; no summary block
    assert [c.exit_code for c in children] == [1, 1]


# ---- 2. one verdict order --------------------------------------------------------------


def test_the_done_line_lists_verdicts_in_the_display_order():
    progress = Progress(SimpleNamespace(), "live")  # type: ignore[arg-type]
    state = _TargetProgress(total=7, done=7, started=0.0)
    for verdict in ("PASS", "SKIP", "INFO", "WARN", "ERROR", "KNOWN", "FAIL"):
        state.counts[verdict] += 1
    text = progress._progress_text("t", state, colour=False)
    words = [w for w in text.split() if w in DISPLAY_ORDER]
    assert tuple(words) == DISPLAY_ORDER


# ---- 6. report -o ----------------------------------------------------------------------


def test_report_o_writes_elsewhere_and_leaves_the_source_as_it_was(tmp_path, capsys):
    source = _write(tmp_path / "run", document(check("a", "PASS"), check("b", "FAIL")))
    before = {p.name: p.read_bytes() for p in source.parent.iterdir()}
    out = tmp_path / "rendered" / "here"
    assert main(["report", str(source), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert {p.name for p in source.parent.iterdir()} == set(before)
    assert {p.name: p.read_bytes() for p in source.parent.iterdir()} == before
    assert {"index.html", "junit.xml", "junit-t.xml", "allure-results", "results.json"} <= {
        p.name for p in out.iterdir()
    }
    assert all(Path(p).parent == out for p in printed)
    assert (out / "results.json").read_bytes() == source.read_bytes()
    # rendered as in place: the same page
    assert main(["report", str(source)]) == 0
    assert (out / "index.html").read_text() == (source.parent / "index.html").read_text()
    (tmp_path / "file").write_text("x")
    assert main(["report", str(source), "-o", str(tmp_path / "file")]) == 2


# ---- 7. --json for diff and targets ----------------------------------------------------


def test_diff_json_is_json_alone_on_stdout(tmp_path, capsys):
    old = _write(tmp_path, document(check("a", "PASS"), check("b", "PASS")), "old.json")
    new = _write(tmp_path, document(check("a", "FAIL"), check("b", "SKIP")), "new.json")
    assert main(["diff", str(old), str(new), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1 and data["regressions"] is True
    assert data["lost_coverage"] is True and data["counts"]["lost_coverage"] == 1
    assert data["categories"]["regressions"] == [
        {"check_id": "a", "target": "t", "transport": "header"}
    ]
    assert data["categories"]["lost_coverage"][0] == {
        "check_id": "b",
        "target": "t",
        "transport": "header",
        "was": "PASS",
        "now": "SKIP",
    }


def test_targets_json_is_json_alone_on_stdout(capsys):
    assert main(["targets", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    names = [t["name"] for t in data["targets"]]
    assert "synapse-legacy" in names and "synapse-oauth" in names
    legacy = data["targets"][names.index("synapse-legacy")]
    assert legacy["default"] is True and legacy["auth"] == ["legacy"]
    assert legacy["provisioning"] == "synapse-shared-secret"
    assert "${" not in out  # a secret's variable is not even named


# ---- 8. --fail-on lost-coverage --------------------------------------------------------


def test_diff_fails_on_lost_coverage_only_when_asked(tmp_path, capsys):
    old = _write(tmp_path, document(check("a", "PASS"), check("b", "INFO")), "old.json")
    new = _write(tmp_path, document(check("a", "PASS"), check("b", "ERROR")), "new.json")
    assert main(["diff", str(old), str(new)]) == 0
    assert main(["diff", str(old), str(new), "--fail-on", "lost-coverage"]) == 1
    same = _write(tmp_path, document(check("a", "PASS"), check("b", "INFO")), "same.json")
    assert main(["diff", str(old), str(same), "--fail-on", "lost-coverage"]) == 0
    capsys.readouterr()


def test_a_target_gone_is_lost_coverage_and_kept_in_the_baseline(tmp_path):
    old = document(check("a", "PASS"), check("a", "PASS", target="u"))
    old["targets"].append(dict(old["targets"][0], name="u"))
    new = document(check("a", "PASS"))
    result = diff_results(old, new)
    assert result.missing_targets == [("u", 1)] and lost_coverage(result)
    entries = diff_json(result, tmp_path / "old.json")["categories"]["missing_targets"]
    assert entries == [{"check_id": "*", "target": "u", "transport": None, "checks": 1}]
    run = tmp_path / "run"
    _write(run, new)
    baseline = _write(tmp_path, old, "old.json")
    attached = attach_baseline(run, baseline, new)  # used to raise on a target gone
    assert not attached.regressions and attached.lost_coverage
    assert not attached.gates("fail") and attached.gates("lost-coverage")
    none_before = document(check("a", "PASS"))
    none_before["targets"].append(dict(none_before["targets"][0], name="u"))  # not selected
    assert not lost_coverage(diff_results(none_before, new))


def test_run_baseline_gates_on_lost_coverage_with_the_option(tmp_path, capsys):
    old = _write(tmp_path, document(check("a", "PASS"), check("b", "PASS")), "old.json")
    new = document(check("a", "PASS"), check("b", "SKIP"))
    run = tmp_path / "run"
    _write(run, new)
    for fail_on, gates in (("fail", False), ("regression", False), ("lost-coverage", True)):
        args = argparse.Namespace(baseline=str(old), fail_on=fail_on)
        assert _baseline_regressions(args, run, new, sys.stdout) is gates, fail_on
    assert "lost coverage (graded before, now SKIP, ERROR or absent): 1" in capsys.readouterr().out


# ---- 9. accounts left active, said by the parent of --jobs too -------------------------


def _left(doc: dict[str, Any], target: str, users: list[str], ledger: str) -> dict[str, Any]:
    doc["targets"][0].update(
        name=target,
        housekeeping={
            "users_created": users,
            "users_deactivated": [],
            "users_left_active": users,
            "ledgers": [ledger],
        },
    )
    for c in doc["checks"]:
        c["target"] = target
    return doc


def test_the_merged_summary_names_accounts_left_active(tmp_path):
    """`--jobs`: the parent's summary comes from the merged document, whose targets keep
    each child's housekeeping (shares of one target added up)."""
    a = _left(document(check("x", "PASS")), "side-a", ["@a1:x"], "/state/a.jsonl")
    b = _left(document(check("x", "PASS")), "side-b", [], "/state/b.jsonl")
    merged = merge_targets([a, b], "mxconform run --jobs 2", 2, 1.0)
    lines = summary_lines(merged, tmp_path, 1.0, 2, "left active")
    at = lines.index("  side-a: 1 test account left ACTIVE on the server:")
    finish = "    finish with: mxconform cleanup /state/a.jsonl"
    assert lines[at + 1 : at + 3] == ["    @a1:x", finish]
    assert not any("side-b: " in line and "ACTIVE" in line for line in lines)
    one = _left(document(check("x", "PASS")), "solo", ["@s1:x"], "/state/1.jsonl")
    two = _left(document(check("y", "PASS")), "solo", ["@s2:x"], "/state/2.jsonl")
    shared = merge_targets([merge_shards([one, two])], "mxconform run --jobs 2", 2, 1.0)
    lines = summary_lines(shared, tmp_path, 1.0, 2, "left active")
    at = lines.index("  solo: 2 test accounts left ACTIVE on the server:")
    assert lines[at + 1 : at + 3] == ["    @s1:x", "    @s2:x"]
    assert "    finish with: mxconform cleanup /state/2.jsonl" in lines


def test_cleanup_problems_are_on_the_terminal_not_only_in_the_report(tmp_path):
    doc = _left(document(check("x", "PASS")), "side-a", ["@a1:x"], "/state/a.jsonl")
    doc["targets"][0]["housekeeping"]["problems"] = ["cleanup stopped after 120s:\n 1 left"]
    lines = summary_lines(doc, tmp_path, 1.0, 2, "left active")
    assert "  side-a: cleanup: cleanup stopped after 120s: 1 left" in lines
