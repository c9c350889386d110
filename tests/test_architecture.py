"""The package layout is the architecture: imports go one way, and no module grows past
about 400 lines (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "mxconform"

# Lower ranks are nearer the ground: a package may import its own modules and lower ranks.
RANK = {
    "errors": 0,
    "paths": 0,
    "stopping": 0,  # stop signals: recorded, a budget, a hard stop
    "__init__": 0,
    "spec": 1,
    "http": 1,
    "targets": 2,
    "legacy": 3,
    "oauth": 4,
    "results": 5,
    "report": 6,
    "plugin": 7,
    "parallel": 8,  # `run --jobs N`: one child process per target, merged
    "cli": 9,
}
MAX_LINES = 450  # "about 400"


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The top-level mxconform packages a module imports (relative imports resolved)."""
    rel = path.relative_to(SRC.parent).with_suffix("").parts
    pkg = list(rel if path.name == "__init__.py" else rel[:-1])
    if path.name == "__init__.py":
        pkg = pkg[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("mxconform.")]
            found |= {n.split(".")[1] for n in names}
            continue
        else:
            continue
        parts = name.split(".")
        if parts[0] == "mxconform":
            found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def test_every_package_has_a_rank() -> None:
    packages = {_package(p) for p in SRC.rglob("*.py")}
    assert packages <= set(RANK), f"place these in RANK: {sorted(packages - set(RANK))}"


def test_imports_go_one_way() -> None:
    upward = []
    for path in SRC.rglob("*.py"):
        mine = _package(path)
        for other in _imports(path) - {mine}:
            if RANK[other] >= RANK[mine]:
                upward.append(f"{path.relative_to(SRC)} imports mxconform.{other}")
    assert not upward, "imports against the arrows:\n" + "\n".join(sorted(upward))


def test_the_report_reads_only_results() -> None:
    for path in (SRC / "report").rglob("*.py"):
        assert _imports(path) - {"report"} <= {"results", "spec", "paths"}, path


def test_no_module_is_over_about_400_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by job: {long}"
