"""Targets run apart (`run --jobs N`: one process per target) made one document again: the
targets and checks side by side, the summary and cited requirements recomputed."""

from __future__ import annotations

import copy
from typing import Any

from mxconform.results import SCHEMA_VERSION, cited_requirements, coverage_parts, summarise
from mxconform.spec import requirements


def merge_targets(
    documents: list[dict[str, Any]], command: str, jobs: int, duration_s: float
) -> dict[str, Any]:
    if not documents:
        raise ValueError("no runs to merge")
    documents = sorted(copy.deepcopy(documents), key=lambda d: str(d["run"]["started_at"]))
    targets = [t for d in documents for t in d["targets"]]
    checks = [c for d in documents for c in d["checks"]]
    first, last = (
        documents[0]["run"],
        max((d["run"] for d in documents), key=lambda r: str(r["finished_at"])),
    )
    interrupted = next(
        (d["run"]["interrupted"] for d in documents if d["run"].get("interrupted")), None
    )
    run = dict(first)
    run.update(
        finished_at=last["finished_at"],
        duration_s=round(duration_s, 2),
        command=command,
        jobs=jobs,
        interrupted=interrupted,
        parts=[
            {
                "targets": [t["name"] for t in d["targets"]],
                "command": d["run"]["command"],
                "started_at": d["run"]["started_at"],
                "duration_s": d["run"]["duration_s"],
            }
            for d in documents
        ],
    )
    summary = summarise(checks, targets)
    for d in documents:  # what only a part knew (flaky counts of --repeat) is kept
        for name, entry in d.get("summary", {}).items():
            summary.setdefault(name, {}).update(
                {k: v for k, v in entry.items() if k not in summary.get(name, {})}
            )
    return {
        "schema_version": SCHEMA_VERSION,
        "harness": documents[0]["harness"],
        "run": run,
        "targets": targets,
        "summary": summary,
        "requirements": cited_requirements(checks, targets, _cited(documents)),
        **coverage_parts(checks, _cited(documents)),
        "checks": checks,
    }


def _cited(documents: list[dict[str, Any]]) -> set[str]:
    """The rows some part's suites cite: each part counts every collected check, so a row is
    checked when any part says so (a part without coverage: the rows its records cite)."""
    every = set(requirements.catalogue())
    cited: set[str] = set()
    for d in documents:
        cov = d.get("coverage")
        if not isinstance(cov, dict):
            cited |= {rid for c in d["checks"] for rid in c["requirements"]}
            continue
        rest = set(cov.get("untestable", [])) | set(cov.get("uncovered", []))
        rest |= {rid for rows in (cov.get("needs") or {}).values() for rid in rows}
        cited |= every - rest
    return cited


def merge_shards(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's results from the processes that shared its checks (`--shard K/N`, in
    order of K), as one process would have written them: the checks back in the order they
    were selected (dealt one at a time, so taken back one at a time), the accounts and
    set-up requests of every share added up."""
    shares = copy.deepcopy(documents)
    first = shares[0]
    checks: list[dict[str, Any]] = []
    longest = max(len(d["checks"]) for d in shares)
    for i in range(longest):
        checks += [d["checks"][i] for d in shares if i < len(d["checks"])]
    targets = [d["targets"][0] for d in shares if d["targets"]]
    target = copy.deepcopy(targets[0]) if targets else {}
    housekeeping = target.get("housekeeping") or {}
    for other in targets[1:]:
        theirs = other.get("housekeeping") or {}
        for key, value in theirs.items():
            if isinstance(value, list):
                housekeeping[key] = [*housekeeping.get(key, []), *value]
            elif isinstance(value, int):
                housekeeping[key] = housekeeping.get(key, 0) + value
        target["setup_exchanges"] = int(target.get("setup_exchanges") or 0) + int(
            other.get("setup_exchanges") or 0
        )
        target["start_error"] = target.get("start_error") or other.get("start_error")
        spent = dict(target.get("operations") or {})
        for kind, n in (other.get("operations") or {}).items():
            spent[kind] = spent.get(kind, 0) + n
        target["operations"] = dict(sorted(spent.items()))
    if housekeeping:
        target["housekeeping"] = housekeeping
    run = dict(first["run"])
    run["finished_at"] = max(str(d["run"]["finished_at"]) for d in shares)
    run["duration_s"] = max(float(d["run"]["duration_s"]) for d in shares)
    run["interrupted"] = next(
        (d["run"]["interrupted"] for d in shares if d["run"].get("interrupted")), None
    )
    run["shards"] = len(shares)
    return {**first, "run": run, "targets": [target] if targets else [], "checks": checks}
