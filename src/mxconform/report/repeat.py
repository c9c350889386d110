"""Repeated runs: one document from several, where a check whose verdict changed between
repeats is marked flaky, keeps its worst verdict, and carries every repeat's evidence."""

from __future__ import annotations

import copy
from typing import Any

from mxconform.results import summarise
from mxconform.spec.verdicts import VERDICT_ORDER

_RANK = {v.value: i for i, v in enumerate(VERDICT_ORDER)}  # FAIL first: lower is worse


def merge_repeats(documents: list[dict[str, Any]]) -> dict[str, Any]:
    if not documents:
        raise ValueError("no runs to merge")
    merged = copy.deepcopy(documents[-1])
    runs = [
        {(c["check_id"], c["target"], c.get("transport")): c for c in d["checks"]}
        for d in documents
    ]
    for check in merged["checks"]:
        key = (check["check_id"], check["target"], check.get("transport"))
        seen = [run[key] for run in runs if key in run]
        verdicts = [c["verdict"] for c in seen]
        check["repeats"] = len(seen)
        if len(set(verdicts)) > 1:
            worst = min(seen, key=lambda c: _RANK[c["verdict"]])
            check.update(verdict=worst["verdict"], message=worst["message"])
            check["flaky"] = {
                "verdicts": verdicts,
                "runs": [
                    {"verdict": c["verdict"], "message": c["message"], "evidence": c["evidence"]}
                    for c in seen
                ],
            }
    merged["summary"] = summarise(merged["checks"], merged.get("targets"))
    for name, entry in merged["summary"].items():
        entry["flaky"] = sum(1 for c in merged["checks"] if c["target"] == name and c.get("flaky"))
    merged["run"]["repeats"] = len(documents)
    merged["run"]["started_at"] = documents[0]["run"]["started_at"]
    return merged
