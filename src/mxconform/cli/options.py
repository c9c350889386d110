"""`mxconform run`'s options, each checked as it is parsed: a mistyped value is a usage error
before anything is collected or started, not a surprise minutes into the run (a spec version
the catalogue does not know would hold every target to no rule at all)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from mxconform.spec import requirements
from mxconform.targets.config import ConfigError

from .catalogue import add_selection

FAIL_ON = ("fail", "warn", "regression", "lost-coverage")
BASELINE_GATES = ("regression", "lost-coverage")  # gates that compare with --baseline only


def known_versions() -> str:
    """The spec versions `--spec-version` takes, in words."""
    major, minor = requirements.NEWEST_KNOWN
    v1 = [requirements.format_version((major, n)) for n in range(1, minor + 1)]
    return ", ".join(v1) + " (or an r0 release, r0.x.y)"


def spec_version(text: str) -> str:
    """`v1.15`, `1.15` or `V1.15` (all `v1.15`), or an r0 release: one the catalogue knows."""
    given = text.strip()
    candidate = given if given[:1] in ("v", "V", "r") else f"v{given}"
    candidate = candidate[:1].lower() + candidate[1:]
    if requirements.is_known_version(candidate):
        return candidate
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a spec version this harness knows; known: {known_versions()}"
    )


def from_one(text: str) -> int:
    """A count of runs or examples: 0 would run nothing and say nothing."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 up, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A budget in seconds: 0, a negative or a non-finite one is no budget anyone means."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def jobs(text: str) -> str:
    """`auto` or a number of processes from 1 up (kept as text: `parallel.jobs_for` reads it)."""
    if text.strip() == "auto":
        return "auto"
    try:
        return str(from_one(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a number of processes from 1 up, got {text!r}"
        ) from None


def check_run(args: argparse.Namespace) -> None:
    """What argparse cannot check on one value: a baseline gate without a baseline would
    gate nothing (a child of `--jobs` gets the gate, the parent keeps the baseline)."""
    if (
        getattr(args, "fail_on", None) == "lost-coverage"
        and not args.baseline
        and not getattr(args, "results_only", False)
    ):
        raise ConfigError("--fail-on lost-coverage compares with --baseline: give one")


MAX_WAIT_HELP = (
    "wall-clock seconds the run may wait out each target's rate limiting (429) before it "
    "gives the target up; cleanup has a budget of its own (default: rate_limit_budget_s, 120)"
)
OFFLINE_HELP = "embedded targets' synapse_version: use only releases already in the cache"


def add_run_parser(sub: Any, servers_help: str) -> None:
    r = sub.add_parser("run", help="run the conformance suites and write a report")
    r.add_argument("--servers", metavar="FILE", help=servers_help)
    r.add_argument(
        "--server",
        metavar="NAME",
        action="append",
        help="run against this target (repeatable; default: the file's defaults)",
    )
    r.add_argument(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="where the run's folder <UTC timestamp>/ is written (default: reports)",
    )
    r.add_argument(
        "--spec-version",
        metavar="V",
        type=spec_version,
        help="hold every target to this spec version (v1.15, or 1.15) instead of the newest "
        "it advertises",
    )
    r.add_argument(
        "--oauth-driver",
        choices=["browser", "form", "mas-admin", "static"],
        help="log in to OAuth targets with this driver instead of servers.yaml's",
    )
    add_selection(r)
    r.add_argument(
        "-v", "--verbose", action="store_true", help="a line for every check, not only problems"
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress: the summary only")
    r.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (the progress and human summary go to stderr)",
    )
    r.add_argument(
        "--tb",
        choices=["short", "long", "line", "native", "no"],
        help="show tracebacks for debugging (secrets still redacted); default: one line each",
    )
    r.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="fail",
        help="exit 1 on FAIL (default), on FAIL and WARN (SHOULDs gate too), only on "
        "regressions against --baseline (nightly jobs), or on regressions and lost coverage "
        "against it (a check graded before, now SKIP, ERROR or absent)",
    )
    r.add_argument(
        "--repeat",
        metavar="N",
        type=from_one,
        default=1,
        help="run N times; checks whose verdict changes between runs are marked flaky",
    )
    r.add_argument(
        "--baseline",
        metavar="OLD_RESULTS_JSON",
        help="compare with an earlier run (shown in the report too); regressions exit 1",
    )
    r.add_argument(
        "--jobs",
        metavar="N",
        type=jobs,
        default="auto",
        help="run the targets concurrently, a process per target, at most N at once; a "
        "single embedded target is started once and its checks shared by N processes; one "
        "merged report (default auto: as many as there are targets and CPUs, up to 4 for a "
        "single embedded target; 1: in this process, one after another, with live progress)",
    )
    r.add_argument(
        "--hypothesis-examples",
        metavar="N",
        type=from_one,
        help="bad-input checks: malformed bodies drawn per endpoint (default: 8)",
    )
    r.add_argument(
        "--hypothesis-seed",
        metavar="SEED",
        type=int,
        help="bad-input checks: replay a run's bodies (its results.json run.hypothesis_seed)",
    )
    r.add_argument(
        "--target-timeout",
        metavar="SECONDS",
        type=seconds,
        help="each target's wall-clock budget from its first check: past it, its remaining "
        "checks ERROR (its clean-up still runs); default: servers.yaml's time_budget_s, none",
    )
    r.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    r.add_argument("--max-wait", metavar="SECONDS", type=seconds, help=MAX_WAIT_HELP)
    r.add_argument("--shard", metavar="K/N", help=argparse.SUPPRESS)  # --jobs hands it out
    r.add_argument("--results-only", action="store_true", help=argparse.SUPPRESS)  # and this
