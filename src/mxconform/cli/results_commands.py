"""The commands that read stored results only: `report`, `diff` and `matrix`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mxconform.results import read_document
from mxconform.targets.config import ConfigError

EXIT_OK, EXIT_FAIL = 0, 1


def rerender(args: argparse.Namespace) -> int:
    from mxconform.report import render_all

    path = Path(args.results)
    try:
        document = read_document(path)
        baseline = read_document(Path(args.baseline)) if args.baseline else None
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    for out in render_all(path):
        print(out)
    if baseline is None:
        return EXIT_OK
    from mxconform.report.diff import diff_results, render_diff

    result = diff_results(baseline, document)
    print(f"\ncompared with {args.baseline}:\n{render_diff(result)}")
    return EXIT_FAIL if result.regressions else EXIT_OK


def diff(args: argparse.Namespace) -> int:
    """Compare two runs (or, with --matrix, two sets of runs, target by target); exit 1 when
    the newer one has regressions."""
    from mxconform.report.diff import combine, diff_results, render_diff
    from mxconform.report.matrix import find_results

    try:
        if args.matrix:
            sets = []
            for where in (args.old, args.new):
                found = find_results([Path(where)])
                if not found:
                    raise ConfigError(f"{where}: no results.json found")
                sets.append(combine([read_document(p) for p in found]))
            old, new = sets
        else:
            old, new = read_document(Path(args.old)), read_document(Path(args.new))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    result = diff_results(old, new)
    print(render_diff(result))
    return EXIT_FAIL if result.regressions else EXIT_OK


def matrix(args: argparse.Namespace) -> int:
    """`mxconform matrix RESULTS... [--history DIR] -o DIR`: the side-by-side page and badges."""
    from mxconform.report.matrix import find_results, write_matrix

    results = find_results([Path(p) for p in args.results])
    if not results:
        raise ConfigError("no results.json among the paths given")
    for path in results:
        try:
            read_document(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
    history = None
    if args.history:
        folder = Path(args.history)
        if not folder.is_dir():
            raise ConfigError(f"--history: {folder} is not a folder")
        history = find_results([folder])
    if args.nights < 1:
        raise ConfigError("--nights: expected a number from 1 up")
    written = write_matrix(results, Path(args.output), history, args.nights)
    print(f"{len(results)} results, {len(written) - 1} targets: {written[0]}")
    for path in written[1:]:
        print(f"  {path}")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser("report", help="re-render index.html, JUnit and Allure from results.json")
    rep.add_argument("results", metavar="RESULTS_JSON", help="a run's results.json")
    rep.add_argument(
        "--baseline",
        metavar="OLD_RESULTS_JSON",
        help="also print the diff against an earlier run (exit 1 on regressions)",
    )
    d = sub.add_parser("diff", help="compare two results.json files (exit 1 on regressions)")
    d.add_argument("old", metavar="OLD", help="the earlier run's results.json (or folder)")
    d.add_argument("new", metavar="NEW", help="the later run's results.json (or folder)")
    d.add_argument(
        "--matrix",
        action="store_true",
        help="OLD and NEW are folders of results.json files (one run per target or several), "
        "compared target by target",
    )
    m = sub.add_parser("matrix", help="put several runs side by side: one page, badges")
    m.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or folders")
    m.add_argument(
        "-o", "--output", metavar="DIR", required=True, help="where the page and badges go"
    )
    m.add_argument("--history", metavar="DIR", help="a folder of earlier results.json files")
    m.add_argument("--nights", metavar="N", type=int, default=14, help="trend length (14)")
