"""The argument list `mxconform run` hands to pytest for one run of the suites."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from mxconform.paths import suites_dir


def inner_plugins() -> list[Any]:
    """The plugins of the run, handed to pytest as modules (ours first, in the order the
    suites' conftest names them). Named instead (`-p`, `pytest_plugins`), each name is
    first looked up among every installed package's entry points, at every run."""
    import _hypothesis_pytestplugin  # type: ignore[import-untyped]  # --hypothesis-seed
    import pytest_asyncio.plugin

    import mxconform.plugin

    ours = [importlib.import_module(name) for name in mxconform.plugin.pytest_plugins]
    return [pytest_asyncio.plugin, _hypothesis_pytestplugin, *ours, mxconform.plugin]


def suites_argv() -> list[str]:
    """The suites, their settings, and which of pytest's plugins load (for `run`, `list`
    and `requirements` alike; hand `inner_plugins()` to `pytest.main` with it)."""
    suites = suites_dir()
    return [
        str(suites),
        "--rootdir",
        str(suites),
        "-c",
        str(suites / "pytest.ini"),
        "-p",
        "no:cacheprovider",
        # Only the plugins the checks need (inner_plugins), not every pytest plugin installed
        # beside the harness: loading those cost a tenth of a second a run, and their hooks
        # run on every check. Nor the search for unraisable exceptions: a full garbage
        # collection at the end of each run (a sixth of a second in a busy process).
        "--disable-plugin-autoload",
        "-p",
        "no:unraisableexception",
    ]


def pytest_argv(args: argparse.Namespace, path: Path) -> list[str]:
    """The suites, their settings and plugins, and the run's options as the plugin's."""
    argv = [
        *suites_argv(),
        "--servers",
        str(path.resolve()),
        "--report-dir",
        str(Path(args.report_dir).resolve()),
        # mxconform's console (plugin/progress.py), not pytest's dots and sections
        "--console",
        "quiet" if args.quiet else ("verbose" if args.verbose else "live"),
        "-qq",
        "-o",
        "console_output_style=classic",
    ]
    for name in args.server or []:
        argv += ["--server", name]
    for rid in getattr(args, "requirement", None) or []:
        argv += ["--requirement", rid]
    if args.spec_version:
        argv += ["--spec-version", args.spec_version]
    if getattr(args, "max_wait", None) is not None:
        argv += ["--max-wait", str(args.max_wait)]
    if getattr(args, "oauth_driver", None):
        argv += ["--oauth-driver", args.oauth_driver]
    if getattr(args, "hypothesis_examples", None):
        argv += ["--hypothesis-examples", str(args.hypothesis_examples)]
    if getattr(args, "hypothesis_seed", None) is not None:
        argv += ["--hypothesis-seed", str(args.hypothesis_seed)]
    if getattr(args, "target_timeout", None) is not None:
        argv += ["--target-timeout", str(args.target_timeout)]
    argv += ["--offline"]  # every synapse_version is in the cache now (prepare_releases)
    if args.k:
        argv += ["-k", args.k]
    if getattr(args, "shard", None):
        argv += ["--shard", args.shard]
    if getattr(args, "results_only", False):
        argv += ["--results-only"]
    if getattr(args, "tb", None):
        argv += [f"--tb={args.tb}", "-rfE"]  # tracebacks (scrubbed) and pytest's sections
    else:
        argv += ["--no-summary"]
    return argv
