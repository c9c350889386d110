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

from mxconform.cli.pytest_args import inner_plugins, suites_argv
from mxconform.spec import requirements
from mxconform.targets.config import ConfigError

EXIT_OK, EXIT_ERROR = 0, 2


class _Collector:
    """Reads each collected check's identity (id, requirements, transport, API)."""

    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from mxconform.plugin.checks import CHECK_MARKER, _check_identity

        cat = requirements.catalogue()
        for item in items:
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


def collect_checks(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The suites' checks, selected by `-k` and `-r` as `run` would select them."""
    argv = [*suites_argv(), "--collect-only", "-qq"]
    if args.servers:
        argv += ["--servers", str(Path(args.servers).resolve())]
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
    return sorted(collector.checks.values(), key=lambda c: c["check_id"])


def list_checks(args: argparse.Namespace) -> int:
    checks = collect_checks(args)
    if args.json:
        print(json.dumps(checks, indent=2))
        return EXIT_OK
    for c in checks:
        transports = ",".join(c["transports"]) or "-"
        reqs = " ".join(f"{r['id']}({r['level']})" for r in c["requirements"])
        print(
            f"{c['check_id']}  area={c['area']} api={c['api'] or '-'} "
            f"transports={transports}  {reqs}"
        )
    print(f"{len(checks)} checks", file=sys.stderr)
    return EXIT_OK


def list_requirements(args: argparse.Namespace) -> int:
    args.k, args.requirement = None, []
    cited: dict[str, list[str]] = {}
    for c in collect_checks(args):
        for r in c["requirements"]:
            cited.setdefault(r["id"], []).append(c["check_id"])
    rows = [
        {
            "id": rid,
            "level": req.level,
            "area": req.area,
            "since": req.since,
            "until": req.until,
            "statement": req.statement,
            "url": req.url(None),
            "checks": cited.get(rid, []),
        }
        for rid, req in sorted(requirements.catalogue().items())
        if not args.uncovered or rid not in cited
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        gate = (
            f" {row['since'] or ''}..{row['until'] or ''}" if row["since"] or row["until"] else ""
        )
        checks = ", ".join(cited.get(str(row["id"]), [])) or "no check yet"
        print(f"{row['id']} [{row['level']}, {row['area']}{gate}]: {row['statement']}")
        print(f"    checks: {checks}")
    covered = sum(1 for r in rows if r["checks"])
    print(f"{len(rows)} requirements, {covered} cited by a check", file=sys.stderr)
    return EXIT_OK


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
        help="select the checks citing this requirement id (repeatable)",
    )
