"""The nightly matrix: several runs' results.json side by side, one column per target, one row
per requirement, each cell the verdict of the checks that judged that requirement on that
target (`results.rule_verdicts`) and a link into that run's own report; with a history folder,
each target's MUST compliance over the last nights and the rules whose verdict changed since
the previous night."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mxconform.results import gating_failures, read_document

from . import html as page

LEVELS = ("MUST", "SHOULD", "MAY")
# A cell's text, by token (html.TOKENS, and OBSERVED: cited, judged by none of its checks).
SHORT = {t.upper(): t for t in ("pass", "known", "warn", "info", "error")}
SHORT |= {"FAIL": "FAIL", "NOT_APPLICABLE": "n/a", "NOT_TESTED": "untested", "OBSERVED": "obs."}
# shields.io's colours, by what the target's own exit status would be
BADGE_COLOURS = {
    "pass": "#4c1",  # exit 0
    "known": "#dfb317",  # exit 0, with FAILs its known-issues file lists
    "fail": "#e05d44",  # exit 1: a FAIL not listed as known
    "error": "#fe7d37",  # exit 2: part of it not graded (ERROR, not started, accounts left)
    "none": "#9f9f9f",  # not selected, or no MUST applies
}


@dataclass
class Cell:
    verdict: str  # rule_verdicts' verdict: FAIL ... SKIP, or OBSERVED
    checks: int
    known: bool  # the verdict is FAIL and every FAIL behind it is a known issue
    href: str
    was: str | None = None  # the previous night's token, when it differs
    token: str = ""  # what the cell shows: the verdict, KNOWN, or a SKIP's kind


@dataclass
class Night:
    started_at: str
    must_passed: int
    must_applicable: int
    known: int = 0


@dataclass
class Column:
    key: str  # unique on the page (a target name, suffixed when two runs share one)
    target: str
    server: str
    apis: str
    href: str
    started_at: str
    summary: dict[str, Any]
    state: str = "pass"  # the target's exit status, as BADGE_COLOURS names it
    selection: str | None = None  # how a partial run selected its checks
    not_selected: bool = False
    cells: dict[str, Cell] = field(default_factory=dict)
    trend: list[Night] = field(default_factory=list)
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # rid, before, after
    previous: str | None = None  # started_at of the night compared with


def find_results(paths: list[Path]) -> list[Path]:
    """results.json files named, or found under named folders (`latest` links skipped)."""
    found: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir():
            candidates = sorted(
                p for p in path.rglob("*.json") if "latest" not in p.relative_to(path).parts
            )
            candidates = [p for p in candidates if p.name == "results.json" or p.parent == path]
        else:
            candidates = [path]
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    return list(found.values())


def _documents(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in paths:
        try:
            out.append((path, read_document(path)))
        except (OSError, ValueError):
            continue  # a history folder may hold anything; named results are checked by the CLI
    return out


def _server(target: dict[str, Any]) -> str:
    # the homeserver's own name first: a reverse proxy may put its own in the Server header
    header = str(target.get("server_software") or target.get("server_header") or "")
    header = header.split(" (")[0]
    version = target.get("synapse_version")
    if version and str(version) not in header:
        return f"{header} (Synapse {version})".strip() if header else f"Synapse {version}"
    return header or "unknown server"


def _summary(document: dict[str, Any], target: str) -> dict[str, Any]:
    """The document's summary of `target`; else computed as `results.summarise` does, with each
    check's level read from the document's own requirements."""
    summary = document.get("summary", {}).get(target)
    if summary:
        return dict(summary)
    levels = {rid: r.get("level") for rid, r in document.get("requirements", {}).items()}
    out: dict[str, Any] = {}
    graded = [
        c
        for c in document["checks"]
        if c["target"] == target and c["verdict"] not in ("SKIP", "ERROR") and c["requirements"]
    ]
    for level, broken in (("must", "FAIL"), ("should", "WARN")):
        mine = [c for c in graded if levels.get(c["requirements"][0]) == level.upper()]
        out[f"{level}_applicable"] = len(mine)
        out[f"{level}_passed"] = sum(1 for c in mine if c["verdict"] != broken)
    return out


def requirement_verdicts(document: dict[str, Any], target: str) -> dict[str, Cell]:
    """Per requirement `target`'s checks cite: its cell (no link yet), from the checks whose
    verdict rests on it (`html.rule_tokens`: a FAIL another rule of the check broke is not
    counted against this one)."""
    return {
        rid: Cell(e["verdict"], e["checks"], e["known"], "", token=e["token"])
        for rid, e in page.rule_tokens(document["checks"], target).items()
    }


def target_state(document: dict[str, Any], target: dict[str, Any]) -> str:
    """What the target's own exit status would be (cli.summary.exit_status, per target)."""
    if target.get("not_selected"):
        return "none"
    mine = [c for c in document["checks"] if c["target"] == target["name"]]
    if gating_failures(mine):
        return "fail"
    graded = [c for c in mine if c["verdict"] not in ("SKIP", "ERROR")]
    errors = [c for c in mine if c["verdict"] == "ERROR" and not c.get("known_issue")]
    left = (target.get("housekeeping") or {}).get("users_left_active")
    if target.get("start_error") or not graded or errors or left:
        return "error"
    if document["run"].get("interrupted"):
        return "error"
    if any(c["verdict"] == "FAIL" for c in mine):
        return "known"
    return "pass"


def run_time(started_at: str) -> tuple[str, str]:
    """A run's start as (date, time of day) in UTC: two runs of one day told apart."""
    try:
        when = datetime.fromisoformat(started_at).astimezone(UTC)
    except ValueError:
        return started_at[:10], started_at[11:19]
    return when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S UTC")


def _area(requirement: dict[str, Any]) -> str:
    return str(requirement.get("area") or "other")


def _night(document: dict[str, Any], target: str) -> Night:
    s = _summary(document, target)
    return Night(
        str(document["run"]["started_at"]),
        int(s.get("must_passed", 0)),
        int(s.get("must_applicable", 0)),
        int(s.get("known_fail", 0)),
    )


def _history(
    history: list[dict[str, Any]], column: Column, nights: int
) -> tuple[list[Night], dict[str, Any] | None]:
    """The column target's earlier nights (oldest first, at most `nights` with this one) and
    the document of the night before this one."""
    earlier: dict[str, dict[str, Any]] = {}
    for document in history:
        started = str(document["run"]["started_at"])
        if started < column.started_at and any(
            t["name"] == column.target for t in document["targets"]
        ):
            earlier.setdefault(started, document)
    ordered = [earlier[k] for k in sorted(earlier)]
    keep = ordered[-(nights - 1) :] if nights > 1 else []
    return [_night(d, column.target) for d in keep], (ordered[-1] if ordered else None)


def _report_link(path: Path, out_dir: Path) -> str | None:
    """The run's own report, relative to the matrix page: the index.html beside its
    results.json (a file named or one found in a folder alike); None when there is none."""
    report = path.parent / "index.html"
    if not report.is_file():
        return None
    return Path(os.path.relpath(report.resolve(), out_dir.resolve())).as_posix()


def _href(report: str, target: str, area: str | None = None, verdict: str | None = None) -> str:
    params = [("target", target), ("area", area), ("verdict", verdict)]
    return report + "#" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params if v)


def build_matrix(
    results: list[Path], out_dir: Path, history: list[Path] | None = None, nights: int = 14
) -> dict[str, Any]:
    """The page's model: columns (targets), rows (requirements by area and level)."""
    documents = _documents(results)
    if not documents:
        raise ValueError("no results.json documents to put side by side")
    past = [d for _, d in _documents(history or [])]
    requirements: dict[str, dict[str, Any]] = {}
    columns: list[Column] = []
    seen: dict[str, int] = {}
    reports: list[tuple[Path, dict[str, Any]]] = []  # reports the matrix renders itself
    for path, document in documents:
        requirements.update({k: v for k, v in document.get("requirements", {}).items()})
        report = _report_link(path, out_dir)
        if report is None:  # no index.html beside it: the matrix renders one of its own
            report = f"reports/{len(reports) + 1}/index.html"
            reports.append((out_dir / report, document))
        selection = page.selection_text(document)
        for target in document["targets"]:
            name = target["name"]
            seen[name] = seen.get(name, 0) + 1
            key = name if seen[name] == 1 else f"{name}~{seen[name]}"
            column = Column(
                key=key,
                target=name,
                server=_server(target),
                apis=", ".join(target.get("auth", [])),
                href=_href(report, name),
                started_at=str(document["run"]["started_at"]),
                summary=_summary(document, name),
                state=target_state(document, target),
                selection=selection,
                not_selected=bool(target.get("not_selected")),
            )
            for rid, cell in requirement_verdicts(document, name).items():
                area = _area(requirements.get(rid, {}))
                verdict = None if cell.token == "OBSERVED" else cell.token
                cell.href = _href(report, name, area, verdict)
                column.cells[rid] = cell
            trend, previous = _history(past, column, nights)
            column.trend = [*trend, _night(document, name)]
            if previous is not None:
                column.previous = str(previous["run"]["started_at"])
                before = requirement_verdicts(previous, name)
                for rid in sorted(set(before) | set(column.cells)):
                    was = before[rid].token if rid in before else "absent"
                    now = column.cells[rid].token if rid in column.cells else "absent"
                    if was != now:
                        column.changes.append((rid, was, now))
                        if rid in column.cells:
                            column.cells[rid].was = was
            columns.append(column)
    for rid in {rid for c in columns for rid in c.cells} - set(requirements):
        requirements[rid] = {"level": "?", "area": "other", "statement": "", "url": ""}
    level_rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    rows = sorted(
        requirements.items(),
        key=lambda kv: (_area(kv[1]), level_rank.get(str(kv[1].get("level")), 9), kv[0]),
    )
    groups: list[tuple[str, str, list[tuple[str, dict[str, Any]]]]] = []
    for rid, req in rows:
        group = (_area(req), str(req.get("level", "?")))
        if not groups or groups[-1][:2] != group:
            groups.append((*group, []))
        groups[-1][2].append((rid, req))
    return {
        "columns": columns,
        "groups": groups,
        "areas": sorted({_area(r) for r in requirements.values()}),
        "levels": sorted(
            {str(r.get("level", "?")) for r in requirements.values()},
            key=lambda lvl: level_rank.get(lvl, 9),
        ),
        "history_nights": len(past),
        "runs": [(p, d["run"]) for p, d in documents],
        "reports": reports,
    }


def trend_svg(trend: list[Night], width: int = 6, height: int = 18) -> str:
    """MUST met per night as bars (full and green when every applicable MUST was met, purple
    as KNOWN when the FAILs are all known issues)."""
    parts = []
    for i, night in enumerate(trend):
        passed, applicable = night.must_passed, night.must_applicable
        ratio = passed / applicable if applicable else 0.0
        h = max(1, round(ratio * height))
        colour = "#1a7f37" if passed == applicable > 0 else "#cf222e"
        if passed < applicable <= passed + night.known:
            colour = "#8250df"
        if not applicable:
            colour = "#6e7781"
        title = f"{night.started_at}: MUST {passed}/{applicable}"
        if night.known:
            title += f", {night.known} known"
        parts.append(
            f'<rect x="{i * width}" y="{height - h}" width="{width - 1}" height="{h}" '
            f'fill="{colour}"><title>{_xml(title)}</title></rect>'
        )
    total = max(1, len(trend)) * width
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{total}"'
        f' height="{height}" role="img" aria-label="MUST met over the last {len(trend)} nights">'
        + "".join(parts)
        + "</svg>"
    )


def _xml(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def badge_svg(label: str, value: str, colour: str) -> str:
    """A flat badge, shields.io-style: `label | value`."""

    def width(text: str) -> int:
        return 10 + round(6.5 * len(text))

    left, right = width(label), width(value)
    total = left + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{_xml(label)}: {_xml(value)}"><title>{_xml(label)}: {_xml(value)}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{left / 2}" y="14">{_xml(label)}</text>'
        f'<text x="{left + right / 2}" y="14">{_xml(value)}</text></g></svg>\n'
    )


def badge_name(key: str) -> str:
    return "badge-" + re.sub(r"[^a-z0-9._-]+", "-", key.lower()) + ".svg"


def column_badge(column: Column) -> str:
    """The target's MUST count, coloured by the exit status its run would have: green 0,
    yellow 0 with known deviations, red 1, orange 2 (part not graded), grey nothing graded."""
    s = column.summary
    passed, applicable = int(s.get("must_passed", 0)), int(s.get("must_applicable", 0))
    state = column.state
    if column.not_selected:
        value, state = "not selected", "none"
    elif not applicable:
        value, state = "MUST n/a", state if state in ("error", "fail") else "none"
    else:
        value = f"MUST {passed}/{applicable}"
        known = int(s.get("known_fail", 0))
        if state == "known" and known:
            value += f", {known} known"
        errors = int(s.get("counts", {}).get("ERROR", 0))
        if state == "error" and errors:
            value += f", {errors} ERROR"
    if column.selection and not column.not_selected:
        value = f"selection: {value}"
    return badge_svg("matrix auth", value, BADGE_COLOURS[state])


def render_matrix(model: dict[str, Any]) -> str:
    style, script = page._asset("matrix.css"), page._asset("matrix.js")
    return page._ENV.get_template("matrix.html.j2").render(
        **model,
        tokens=(*page.TOKENS, "OBSERVED"),
        labels=page.LABELS,
        short=SHORT,
        run_time=run_time,
        trend_svg=trend_svg,
        badge_name=badge_name,
        style=style,
        script=script,
        csp=f"default-src 'none'; style-src '{page._csp_hash(style)}'; "
        f"script-src '{page._csp_hash(script)}'; img-src data:",
    )


def write_matrix(
    results: list[Path], out_dir: Path, history: list[Path] | None = None, nights: int = 14
) -> list[Path]:
    """index.html and one badge-<target>.svg per column, in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_matrix(results, out_dir, history, nights)
    index = out_dir / "index.html"
    index.write_text(render_matrix(model))
    written = [index]
    for path, document in model["reports"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page.render_html(document), encoding="utf-8")
    for column in model["columns"]:
        badge = out_dir / badge_name(column.key)
        badge.write_text(column_badge(column))
        written.append(badge)
    return written
