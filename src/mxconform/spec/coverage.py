"""Catalogue coverage: which rows the suites check, and why the others are not checked.

A row is *checked* when a check cites it (its marker, a parameter's own rule, or a literal
`req="..."` in an `expect`, `observe` or `unmet` of the suites); otherwise it carries
`untestable` (not observable from a client) or `needs` (a capability the harness is not
given); a row with none of the three is *uncovered*.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mxconform.spec import requirements

KINDS = ("checked", "untestable", "needs", "uncovered")


def literal_citations(paths: Iterable[Path]) -> set[str]:
    """Requirement ids passed as a literal `req="..."` keyword anywhere in these files."""
    found: set[str] = set()
    for path in paths:
        stat = path.stat()
        found |= _citations_in(path, stat.st_mtime_ns, stat.st_size)
    return found


@functools.lru_cache(maxsize=256)
def _citations_in(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """One file's citations, parsed once per version of it: a process that runs the suites
    many times (the project's tests) parsed every suite file at each run's collection."""
    return _req_keywords(_parsed(path, mtime_ns, size))


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _req_keywords(node: ast.AST) -> frozenset[str]:
    return frozenset(
        kw.value.value
        for kw in ast.walk(node)
        if isinstance(kw, ast.keyword)
        and kw.arg == "req"
        and isinstance(kw.value, ast.Constant)
        and isinstance(kw.value.value, str)
    )


def function_citations(path: Path, name: str) -> frozenset[str]:
    """The literal `req="..."` citations of one check function and of the functions of its
    module it calls, however deep: what `--requirement` selects by besides the markers, so
    a row `requirements` counts as checked selects the check that checks it."""
    stat = path.stat()
    tree = _parsed(path, stat.st_mtime_ns, stat.st_size)
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    found: set[str] = set()
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        found |= _req_keywords(functions[current])
        todo += [
            call.func.id
            for call in ast.walk(functions[current])
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        ]
    return frozenset(found)


def suite_files(item_paths: Iterable[Path]) -> list[Path]:
    """The check modules, and every conftest.py beside them or above them up to `suites/`."""
    files: set[Path] = set()
    for path in item_paths:
        files.add(path)
        folder = path.parent
        while True:
            conftest = folder / "conftest.py"
            if conftest.exists():
                files.add(conftest)
            if folder.name == "suites" or folder.parent == folder:
                break
            folder = folder.parent
    return sorted(files)


def kind_of(req: requirements.Requirement, cited: set[str]) -> str:
    if req.id in cited:
        return "checked"
    if req.needs:
        return "needs"
    if req.untestable:
        return "untestable"
    return "uncovered"


def coverage(cited: Iterable[str]) -> dict[str, Any]:
    """Per area and overall: how many rows are checked, untestable, needing a capability, or
    uncovered; with the ids of the last three (the checked ones are in the records)."""
    cited_set = set(cited)
    areas: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(KINDS, 0)
    rows: dict[str, list[str]] = {k: [] for k in KINDS[1:]}
    needs: dict[str, list[str]] = {}
    for req in requirements.catalogue().values():
        kind = kind_of(req, cited_set)
        areas.setdefault(req.area, dict.fromkeys(KINDS, 0))[kind] += 1
        total[kind] += 1
        if kind != "checked":
            rows[kind].append(req.id)
        if kind == "needs" and req.needs:
            needs.setdefault(req.needs, []).append(req.id)
    return {
        "total": total,
        "areas": areas,
        "untestable": rows["untestable"],
        "needs": needs,
        "uncovered": rows["uncovered"],
    }
