"""`run --baseline OLD.json`: the diff against an earlier run, printed and kept in the
run's results.json (`run.baseline`), so the page shows "changes since baseline"."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mxconform.report import render_all
from mxconform.report.diff import Diff, diff_results, lost_coverage, render_diff
from mxconform.results import read_document, write_document


@dataclass
class BaselineResult:
    text: str
    regressions: bool
    lost_coverage: bool = False

    def gates(self, fail_on: str) -> bool:
        """Whether the diff fails the run: a regression always; lost coverage with
        `--fail-on lost-coverage`."""
        return self.regressions or (fail_on == "lost-coverage" and self.lost_coverage)


def _entry(item: Any) -> dict[str, Any]:
    """A diff item: a key (check id, target, transport), (key, was, now), or a whole target
    (name, its checks): `*` for its check id, since the page and the schema want one."""
    if len(item) == 3 and isinstance(item[0], tuple):
        key, was, now = item
        return {**_entry(key), "was": was, "now": now}
    if len(item) == 2:
        target, checks = item
        return {"check_id": "*", "target": target, "transport": None, "checks": checks}
    check_id, target, transport = item
    return {"check_id": check_id, "target": target, "transport": transport}


def diff_json(d: Diff, path: Path) -> dict[str, Any]:
    """Every category the diff has (whatever diff.py defines), each a list of entries."""
    return {
        "path": str(path),
        "categories": {f.name: [_entry(i) for i in getattr(d, f.name)] for f in fields(d)},
    }


def attach_baseline(report_dir: Path, baseline: Path, document: dict[str, Any]) -> BaselineResult:
    result = diff_results(read_document(baseline), document)
    document["run"]["baseline"] = diff_json(result, baseline)
    results = report_dir / "results.json"
    write_document(document, results)
    render_all(results)
    return BaselineResult(render_diff(result), bool(result.regressions), lost_coverage(result))
