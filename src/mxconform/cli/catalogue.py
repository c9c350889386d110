"""`mxconform list` and `mxconform requirements`: what the suites check and which
requirements they cite, found by pytest's collection alone (no target is started)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mxconform import stopping
from mxconform.cli.pytest_args import inner_plugins, suites_argv
from mxconform.paths import servers_file
from mxconform.spec import requirements
from mxconform.spec.coverage import coverage, kind_of, literal_citations, suite_files
from mxconform.targets.config import ConfigError
from mxconform.targets.loading import load_servers

from .hints import keyword_problem, requirement_id, requirement_problem, uncited_problem

EXIT_OK, EXIT_ERROR = 0, 2


class _Collector:
    """Reads each collected check's identity (id, requirements, transport, API), and what a
    selection left: every check id and cited requirement before it (for did-you-mean), the
    ids it matched before the targets it leaves nothing were dropped, and, per target, the
    checks as `run` records them (each transport apart) and which of them can apply."""

    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}
        self.paths: set[Path] = set()  # every check module, for its literal citations
        self.every: set[str] = set()
        self.cited: set[str] = set()
        self.matched: set[str] = set()
        self.per_target: dict[str, dict[str, int]] = {}

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        from mxconform.plugin.checks import CHECK_MARKER, _check_identity

        if item.get_closest_marker(CHECK_MARKER) is not None:
            check_id, req_ids, _, _ = _check_identity(item)
            self.every.add(check_id)
            self.cited.update(req_ids)
            self.paths.add(Path(str(item.path)))

    # trylast, registered before the plugin: after -k and -r, before `selection` drops (the
    # trylast implementations are called in the order they were registered)
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from mxconform.plugin.checks import CHECK_MARKER, check_id_of

        self.matched = {check_id_of(i) for i in items if i.get_closest_marker(CHECK_MARKER)}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from mxconform.plugin.checks import CHECK_MARKER, _check_identity
        from mxconform.plugin.selection import applies_to
        from mxconform.plugin.state import get_run, has_run

        cat = requirements.catalogue()
        run = get_run(session.config) if has_run(session.config) else None
        for item in session.items:
            if item.get_closest_marker(CHECK_MARKER) is None:
                continue
            check_id, req_ids, transport, api = _check_identity(item)
            entry = self.checks.setdefault(
                check_id,
                {
                    "check_id": check_id,
                    "area": cat[req_ids[0]].area if req_ids else "other",
                    "api": api,
                    "transports": [],
                    "requirements": [],
                    "source": item.nodeid.split("[")[0],
                },
            )
            if transport and transport not in entry["transports"]:
                entry["transports"].append(transport)
            for rid in req_ids:
                if rid not in (r["id"] for r in entry["requirements"]):
                    entry["requirements"].append({"id": rid, "level": cat[rid].level})
            target = getattr(getattr(item, "callspec", None), "params", {}).get("target")
            if run is None or target not in run.states:
                continue
            applicable = applies_to(item, list(run.state(target).target.auth))
            on = entry.setdefault("targets", {}).setdefault(
                target, {"records": 0, "applicable": applicable}
            )
            on["records"] += 1
            counts = self.per_target.setdefault(target, {"records": 0, "applicable": 0})
            counts["records"] += 1
            counts["applicable"] += applicable


def collect_checks(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The suites' checks, selected by `-k` and `-r` as `run` would select them."""
    return _sorted(_collect(args))


def _sorted(collector: _Collector) -> list[dict[str, Any]]:
    return sorted(collector.checks.values(), key=lambda c: c["check_id"])


def _collect(args: argparse.Namespace) -> _Collector:
    argv = [*suites_argv(), "--collect-only", "-qq"]
    if args.servers:
        argv += ["--servers", str(Path(args.servers).resolve())]
    for name in getattr(args, "server", None) or []:
        argv += ["--server", name]
    if args.k:
        argv += ["-k", args.k]
    for rid in getattr(args, "requirement", None) or []:
        argv += ["--requirement", rid]
    collector = _Collector()
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        code = pytest.main(argv, plugins=[collector, *inner_plugins()])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise ConfigError(
            f"could not collect the suites (pytest exit {int(code)}):\n{said.getvalue()}"
        )
    return collector


def check_requirements(args: argparse.Namespace) -> None:
    """`-r` ids the catalogue lacks: one line with the closest ones (no collection)."""
    problem = requirement_problem(getattr(args, "requirement", None) or [])
    if problem:
        raise ConfigError(problem)


def check_run_selection(args: argparse.Namespace) -> None:
    """`run -k`: collected first (no target started), so that a `-k` (with `-r`) matching
    no check is one line naming the closest ids. A selection whose checks apply to none of
    the targets is left to the run, which says so for each. A `--jobs` child's parent did it."""
    if not args.k or getattr(args, "results_only", False):
        return
    load_servers(servers_file(args.servers)).select(args.server or [])  # its errors first
    try:
        collector = _collect(args)
    except ConfigError:
        if stopping.requested():  # a stop signal cut the collection short: the run's stop
            raise KeyboardInterrupt from None
        raise
    if not collector.matched:
        raise ConfigError(_why_nothing(args, collector))


def _why_nothing(args: argparse.Namespace, collector: _Collector) -> str:
    """Why `-k` and `-r` matched no check: a `-r` id no check cites, or a `-k` matching none
    (alone, or with `-r`: asked again without it)."""
    wanted = list(getattr(args, "requirement", None) or [])
    uncited = [r for r in wanted if r not in collector.cited]
    if wanted and len(uncited) == len(wanted):
        return uncited_problem(uncited, literal_citations(suite_files(collector.paths)))
    if not args.k:
        return "the selection holds no check"
    if not wanted:
        return keyword_problem(args.k, collector.every)
    alone = _collect(argparse.Namespace(**{**vars(args), "requirement": []}))
    if not alone.matched:
        return keyword_problem(args.k, collector.every)
    rids = ", ".join(wanted)
    return (
        f"-k {args.k!r} and -r {rids} select no check together: of the {len(alone.matched)} "
        f"check ids -k matches, none cites {rids}"
    )


def list_checks(args: argparse.Namespace) -> int:
    if getattr(args, "server", None):  # an unknown name: one line naming the known ones
        load_servers(servers_file(args.servers)).select(args.server)
    collector = _collect(args)
    checks = _sorted(collector)
    if not checks and (args.k or args.requirement):
        if not collector.matched:
            raise ConfigError(_why_nothing(args, collector))
        names = ", ".join(args.server or []) or "the default targets"
        raise ConfigError(f"the selection's checks apply to none of {names}")
    if args.json:
        print(json.dumps(checks, indent=2))
        return EXIT_OK
    for c in checks:
        transports = ",".join(c["transports"]) or "-"
        reqs = " ".join(f"{r['id']}({r['level']})" for r in c["requirements"])
        skipped = [t for t, on in c.get("targets", {}).items() if not on["applicable"]]
        where = f"  [SKIP on {', '.join(skipped)}: API not declared]" if skipped else ""
        print(
            f"{c['check_id']}  area={c['area']} api={c['api'] or '-'} "
            f"transports={transports}  {reqs}{where}"
        )
    print(f"{len(checks)} check id{'' if len(checks) == 1 else 's'}", file=sys.stderr)
    if getattr(args, "server", None):
        for line in per_target_lines(collector.per_target, len(checks)):
            print(line, file=sys.stderr)
    return EXIT_OK


def per_target_lines(per_target: dict[str, dict[str, int]], ids: int) -> list[str]:
    """`list --server`: the count a run records on each target, and why it is not `list`'s."""
    lines = []
    for name, n in per_target.items():
        skipped = n["records"] - n["applicable"]
        lines.append(
            f"{name}: {n['records']} checks as `run` records them ({n['applicable']} to run"
            + (
                f", {skipped} recorded as not-applicable SKIP: of an API it does not declare)"
                if skipped
                else ")"
            )
        )
    lines.append(
        f"`list` counts check ids ({ids}); `run` counts each check once per transport "
        "(header, query) and per target, and SKIPs more by version gate once the target "
        "says its spec version"
    )
    return lines


def list_requirements(args: argparse.Namespace) -> int:
    """The catalogue with the checks citing each row and its coverage kind, counted as
    results.json and the page count it (`spec.coverage`: a literal `req=` inside a check
    counts; `untestable` and `needs` rows are not "uncovered")."""
    args.k, args.requirement = None, []
    collector = _collect(args)
    cited: dict[str, list[str]] = {}
    for c in sorted(collector.checks.values(), key=lambda c: c["check_id"]):
        for r in c["requirements"]:
            cited.setdefault(r["id"], []).append(c["check_id"])
    every = set(cited) | literal_citations(suite_files(collector.paths))
    rows = [
        {
            "id": rid,
            "level": req.level,
            "basis": req.basis,
            "area": req.area,
            "since": req.since,
            "until": req.until,
            "statement": req.statement,
            "url": req.url(None),
            "coverage": kind_of(req, every),
            "untestable": req.untestable,
            "needs": req.needs,
            "checks": cited.get(rid, []),
        }
        for rid, req in sorted(requirements.catalogue().items())
    ]
    if args.uncovered:
        rows = [r for r in rows if r["coverage"] == "uncovered"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        gate = (
            f" {row['since'] or ''}..{row['until'] or ''}" if row["since"] or row["until"] else ""
        )
        print(f"{row['id']} [{row['level']}, {row['area']}{gate}]: {row['statement']}")
        print(f"    {_covered_by(row)}")
    totals = coverage(every)["total"]
    shown = ", ".join(f"{n} {kind}" for kind, n in totals.items())
    print(f"{len(rows)} requirements shown; of the catalogue's rows: {shown}", file=sys.stderr)
    return EXIT_OK


def _covered_by(row: dict[str, Any]) -> str:
    if row["checks"]:
        return "checks: " + ", ".join(row["checks"])
    if row["coverage"] == "checked":
        return "checked inside a check (a literal req= citation)"
    if row["coverage"] == "needs":
        return f"not checked: needs {row['needs']}"
    if row["coverage"] == "untestable":
        return f"not checked: untestable ({row['untestable']})"
    return "no check yet"


def add_selection(p: argparse.ArgumentParser) -> None:
    """`-k` and `--requirement`: for `run`, `list` and `requirements` alike."""
    p.add_argument(
        "-k",
        metavar="EXPR",
        help="select checks by id or name (pytest -k expression: 'tokens.missing', "
        "'legacy and not expired')",
    )
    p.add_argument(
        "-r",
        "--requirement",
        metavar="REQ",
        action="append",
        default=[],
        type=requirement_id,
        help="select the checks citing this requirement id, in any case (repeatable)",
    )
