"""The commands that read stored results only: `report`, `diff` and `matrix`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mxconform.results import read_document
from mxconform.targets.config import ConfigError

EXIT_OK, EXIT_FAIL = 0, 1


def rerender(args: argparse.Namespace) -> int:
    """`mxconform report RESULTS [-o DIR]`: the renderers again, beside RESULTS or, with
    `-o`, into DIR (with a copy of RESULTS, which they are rendered from), leaving the
    source folder as it was (a stored run may be read-only, or kept as evidence)."""
    from mxconform.report import render_all

    path = Path(args.results)
    try:
        document = read_document(path)
        baseline = read_document(Path(args.baseline)) if args.baseline else None
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    output = getattr(args, "output", None)
    if output is not None:
        path = _copied(path, Path(output))
    for out in render_all(path):
        print(out)
    if baseline is None:
        return EXIT_OK
    from mxconform.report.diff import diff_results, render_diff

    result = diff_results(baseline, document)
    print(f"\ncompared with {args.baseline}:\n{render_diff(result)}")
    return EXIT_FAIL if result.regressions else EXIT_OK


def _copied(results: Path, folder: Path) -> Path:
    """RESULTS copied into `folder` (made if need be), for the renderers to write beside."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"-o {folder}: not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "results.json"
    if target.resolve() != results.resolve():
        shutil.copyfile(results, target)
    return target


def diff(args: argparse.Namespace) -> int:
    """Compare two runs (or, with --matrix, two sets of runs, target by target); exit 1 when
    the newer one has regressions (or, with `--fail-on lost-coverage`, lost coverage)."""
    from mxconform.report.diff import combine, diff_results, lost_coverage, render_diff
    from mxconform.report.matrix import find_results

    from .baseline import diff_json

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
    fail_on = getattr(args, "fail_on", "regression")
    lost = lost_coverage(result)
    failing = bool(result.regressions) or (fail_on == "lost-coverage" and lost)
    code = EXIT_FAIL if failing else EXIT_OK
    if getattr(args, "json", False):
        categories = diff_json(result, Path(args.old))["categories"]
        data = {
            "old": args.old,
            "new": args.new,
            "fail_on": fail_on,
            "exit_code": code,
            "regressions": bool(result.regressions),
            "lost_coverage": lost,
            "counts": {name: len(items) for name, items in categories.items()},
            "categories": categories,
        }
        print(json.dumps(data, indent=2))
    else:
        print(render_diff(result))
    return code


def matrix(args: argparse.Namespace) -> int:
    """`mxconform matrix RESULTS... [--history DIR] -o DIR`: the side-by-side page and badges.
    Each RESULTS is a results.json or a folder of them, and each column links to the report
    beside its results.json either way; a path that holds none is named in one line."""
    from mxconform.report.matrix import find_results, write_matrix

    results: list[Path] = []
    for given in (Path(p) for p in args.results):
        if not given.exists():
            raise ConfigError(f"{given}: no such file or folder")
        found = find_results([given])
        if not found:
            raise ConfigError(f"{given}: no results.json in it")
        results += [p for p in found if p.resolve() not in {r.resolve() for r in results}]
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
    rep.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write the rendered files (and a copy of RESULTS_JSON) into DIR instead of "
        "beside RESULTS_JSON, which is left as it was",
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
    d.add_argument(
        "--fail-on",
        choices=("regression", "lost-coverage"),
        default="regression",
        help="exit 1 on regressions (default), or on regressions and lost coverage (a check "
        "graded before, now SKIP, ERROR or absent; a target gone altogether)",
    )
    d.add_argument(
        "--json",
        action="store_true",
        help="print the diff as JSON on stdout (each category's entries, counts, exit code)",
    )
    m = sub.add_parser("matrix", help="put several runs side by side: one page, badges")
    m.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or folders")
    m.add_argument(
        "-o", "--output", metavar="DIR", required=True, help="where the page and badges go"
    )
    m.add_argument("--history", metavar="DIR", help="a folder of earlier results.json files")
    m.add_argument("--nights", metavar="N", type=int, default=14, help="trend length (14)")
