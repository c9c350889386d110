"""The nightly matrix page, its badges, and the diff's lost-coverage category, on synthetic
results documents (see test_report.py)."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from test_report import check, document

from mxconform.cli import main
from mxconform.report.diff import combine, diff_results, render_diff
from mxconform.report.matrix import build_matrix, find_results, write_matrix

REQS = {
    "TOKEN-MISSING": {"level": "MUST", "area": "tokens", "statement": "s", "url": "https://x/1"},
    "LOGIN-GET": {"level": "MUST", "area": "legacy", "statement": "s", "url": "https://x/2"},
    "TOKEN-SHAPE": {"level": "SHOULD", "area": "tokens", "statement": "s", "url": "https://x/3"},
}


def run_doc(started: str, targets: dict[str, list[dict]], **target_info) -> dict:
    """A results document with several targets: {name: [check(...), ...]}."""
    doc = document()
    doc["run"]["started_at"] = started
    doc["requirements"] = REQS
    doc["targets"] = [
        {"name": n, "auth": ["legacy"], "base_url": f"http://{n}", **target_info} for n in targets
    ]
    doc["checks"] = [dict(c, target=n) for n, cs in targets.items() for c in cs]
    return doc


def write(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(doc))
    (folder / "index.html").write_text("report")
    return path


def tonight(tmp_path: Path) -> list[Path]:
    a = run_doc(
        "2026-11-30T02:00:00+00:00",
        {
            "synapse-new": [
                check("tokens.missing", "PASS"),
                check("tokens.shape", "WARN", requirements=["TOKEN-SHAPE"]),
                check(
                    "legacy.login",
                    "FAIL",
                    requirements=["LOGIN-GET"],
                    known_issue={"reason": "r", "link": "l"},
                ),
            ]
        },
        server_header="Synapse/1.163.2 (b=main)",
        synapse_version="1.163.2",
    )
    b = run_doc(
        "2026-11-30T02:10:00+00:00",
        {
            "synapse-old": [
                check("tokens.missing", "FAIL"),
                check("tokens.missing", "PASS", transport="query"),
                check("legacy.login", "SKIP", requirements=["LOGIN-GET"]),
            ]
        },
        synapse_version="1.70.1",
    )
    return [write(tmp_path / "runs" / "new", a), write(tmp_path / "runs" / "old", b)]


def history(tmp_path: Path) -> Path:
    folder = tmp_path / "history"
    for day, verdict in (("27", "PASS"), ("28", "FAIL"), ("29", "PASS")):
        doc = run_doc(
            f"2026-11-{day}T02:10:00+00:00",
            {
                "synapse-old": [
                    check("tokens.missing", verdict),
                    check("legacy.login", "PASS", requirements=["LOGIN-GET"]),
                ]
            },
        )
        doc["summary"] = {
            "synapse-old": {"must_passed": 2 if verdict == "PASS" else 1, "must_applicable": 2}
        }
        write(folder / day, doc)
    return folder


def test_cells_are_the_worst_verdict_linked_to_their_report(tmp_path: Path):
    out = tmp_path / "site"
    model = build_matrix(tonight(tmp_path), out)
    new, old = model["columns"]
    assert (new.key, old.key) == ("synapse-new", "synapse-old")
    assert new.server == "Synapse/1.163.2" and old.server == "Synapse 1.70.1"
    assert old.cells["TOKEN-MISSING"].verdict == "FAIL"  # worst of FAIL and PASS
    assert old.cells["TOKEN-MISSING"].checks == 2
    assert new.cells["LOGIN-GET"].verdict == "FAIL" and new.cells["LOGIN-GET"].known
    assert old.cells["LOGIN-GET"].verdict == "SKIP"
    assert "TOKEN-SHAPE" not in old.cells
    assert new.href == "../runs/new/index.html#target=synapse-new"
    assert old.cells["TOKEN-MISSING"].href == (
        "../runs/old/index.html#target=synapse-old&area=tokens&verdict=FAIL"
    )
    # rows: grouped by area, then level
    assert [(a, lvl) for a, lvl, _ in model["groups"]] == [
        ("legacy", "MUST"),
        ("tokens", "MUST"),
        ("tokens", "SHOULD"),
    ]


def test_page_is_self_contained_and_badges_are_written(tmp_path: Path, capsys):
    runs = tonight(tmp_path)
    out = tmp_path / "site"
    assert main(["matrix", str(tmp_path / "runs"), "-o", str(out)]) == 0
    html = (out / "index.html").read_text()
    head = unescape(html.split("<body>")[0])
    assert "default-src 'none'" in head and "unsafe-inline" not in head
    assert not re.search(r"(src|href)=\"(https?:)?//", html.replace('href="https://x/', ""))
    assert 'href="../runs/old/index.html#target=synapse-old"' in html
    badge = (out / "badge-synapse-new.svg").read_text()
    assert "matrix auth" in badge and "MUST 1/2" in badge  # the known FAIL still counts
    assert "MUST 1/2" in (out / "badge-synapse-old.svg").read_text()
    assert runs[0].exists() and "2 targets" in capsys.readouterr().out


def test_history_gives_a_trend_and_the_rules_changed_since_the_previous_night(tmp_path: Path):
    model = build_matrix(
        tonight(tmp_path), tmp_path / "site", find_results([history(tmp_path)]), nights=3
    )
    new, old = model["columns"]
    assert [n.started_at[:10] for n in old.trend] == ["2026-11-28", "2026-11-29", "2026-11-30"]
    assert [(n.must_passed, n.must_applicable) for n in old.trend[:2]] == [(1, 2), (2, 2)]
    assert old.previous == "2026-11-29T02:10:00+00:00"
    # a SKIP without its kind (an older document) counts as not tested
    assert old.changes == [("LOGIN-GET", "PASS", "NOT_TESTED"), ("TOKEN-MISSING", "PASS", "FAIL")]
    assert old.cells["TOKEN-MISSING"].was == "PASS"
    assert new.previous is None and len(new.trend) == 1


def test_two_runs_of_one_target_get_two_columns(tmp_path: Path):
    doc = run_doc("2026-11-30T02:00:00+00:00", {"t": [check("tokens.missing", "PASS")]})
    paths = [write(tmp_path / "a", doc), write(tmp_path / "b", doc)]
    model = build_matrix(paths, tmp_path / "site")
    assert [c.key for c in model["columns"]] == ["t", "t~2"]


def test_matrix_command_refuses_no_results(tmp_path: Path):
    assert main(["matrix", str(tmp_path), "-o", str(tmp_path / "site")]) == 2


def test_twenty_targets_by_250_requirements_render(tmp_path: Path):
    reqs = {
        f"R-{i:03}": {
            "level": "MUST" if i % 3 else "SHOULD",
            "area": f"a{i % 7}",
            "statement": "s",
            "url": "https://x",
        }
        for i in range(250)
    }
    paths = []
    for t in range(20):
        doc = run_doc(
            "2026-11-30T02:00:00+00:00",
            {
                f"t{t:02}": [
                    check(
                        f"c{i}", ("PASS", "FAIL", "SKIP")[(i + t) % 3], requirements=[f"R-{i:03}"]
                    )
                    for i in range(250)
                ]
            },
        )
        doc["requirements"] = reqs
        paths.append(write(tmp_path / f"r{t}", doc))
    write_matrix(paths, tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert (
        html.count('class="req" data-area') == 250
        and len(list((tmp_path / "site").glob("badge-*"))) == 20
    )


def diffdoc(targets: dict[str, list[dict]]) -> dict:
    return run_doc("2026-11-30T02:00:00+00:00", targets)


def test_diff_lost_coverage_and_missing_targets():
    old = diffdoc(
        {
            "a": [
                check("x", "PASS"),
                check("y", "PASS"),
                check("z", "PASS"),
                check("s", "SKIP"),
                check("w", "WARN"),
            ],
            "gone": [check("x", "PASS"), check("y", "PASS")],
        }
    )
    new = diffdoc(
        {
            "a": [check("x", "SKIP"), check("y", "ERROR"), check("w", "PASS")],
            "fresh": [check("x", "PASS")],
        }
    )
    d = diff_results(old, new)
    assert d.lost_coverage == [
        (("x", "a", "header"), "PASS", "SKIP"),
        (("y", "a", "header"), "PASS", "ERROR"),
        (("z", "a", "header"), "PASS", "absent"),
    ]
    assert d.missing_targets == [("gone", 2)] and d.new_targets == [("fresh", 1)]
    assert [k for k, *_ in d.changed] == [("w", "a", "header")]
    assert [k[0] for k in d.removed] == ["s"] and d.added == [] and not d.regressions
    text = render_diff(d)
    assert "gone: all 2 checks absent" in text and text.count("gone") == 1


def test_diff_of_matrices_compares_target_by_target(tmp_path: Path, capsys):
    old_a = diffdoc({"a": [check("x", "PASS")]})
    old_b = diffdoc({"b": [check("x", "PASS")]})
    new_a = diffdoc({"a": [check("x", "FAIL")]})
    write(tmp_path / "old" / "a", old_a)
    write(tmp_path / "old" / "b", old_b)
    write(tmp_path / "new" / "a", new_a)
    assert main(["diff", "--matrix", str(tmp_path / "old"), str(tmp_path / "new")]) == 1
    out = capsys.readouterr().out
    assert "a: x [header]" in out and "b: all 1 checks absent" in out
    # a later run of the same target stands for it
    later = diffdoc({"a": [check("x", "PASS")]})
    later["run"]["started_at"] = "2026-12-01T00:00:00+00:00"
    assert [c["verdict"] for c in combine([later, new_a])["checks"]] == ["PASS"]


def test_a_folder_named_latest_can_be_given(tmp_path: Path):
    (tmp_path / "reports" / "20261130T020000Z").mkdir(parents=True)
    doc = run_doc("2026-11-30T02:00:00+00:00", {"t": [check("tokens.missing", "PASS")]})
    path = write(tmp_path / "reports" / "20261130T020000Z", doc)
    (tmp_path / "reports" / "latest").symlink_to("20261130T020000Z")
    assert find_results([tmp_path / "reports"]) == [path]  # the link is not a second run
    assert [p.resolve() for p in find_results([tmp_path / "reports" / "latest"])] == [
        path.resolve()
    ]


def test_fail_on_regression_fails_on_regressions_only():
    from mxconform.cli import EXIT_FAIL, EXIT_OK, exit_status

    doc = {"checks": [check("a", "FAIL"), check("b", "PASS")]}
    assert exit_status(doc, 0, False, "regression")[0] == EXIT_OK
    assert exit_status(doc, 0, True, "regression")[0] == EXIT_FAIL
    assert exit_status(doc, 0, False, "fail")[0] == EXIT_FAIL
