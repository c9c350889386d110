"""Allure results derived from results.json, written through allure-python-commons' own model
and file logger: one test result per check, labelled by API, spec area and requirement, with
the redacted HTTP exchanges attached. `npx allure generate` (npm registry) renders them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import (
    Attachment,
    Label,
    Link,
    Parameter,
    Status,
    StatusDetails,
    TestResult,
)

_STATUS = {
    "PASS": Status.PASSED,
    "FAIL": Status.FAILED,
    "ERROR": Status.BROKEN,
    "SKIP": Status.SKIPPED,
    "WARN": Status.PASSED,
    "INFO": Status.PASSED,
}


def _millis(text: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000) if text else None
    except ValueError:
        return None


def render_allure(document: dict[str, Any], out: Path) -> int:
    """Write one Allure result per check into `out`; returns how many were written."""
    logger = AllureFileLogger(out, clean=True)
    reqs: dict[str, Any] = document.get("requirements", {})
    start = _millis(document["run"].get("started_at"))
    for check in document["checks"]:
        transport = check.get("transport")
        key = f"{check['target']}/{check['check_id']}/{transport or '-'}"
        areas = sorted({reqs[r]["area"] for r in check["requirements"] if r in reqs})
        labels = [Label("epic", f"{check.get('auth_api') or 'general'} API")]
        labels += [Label("feature", area) for area in areas]
        labels += [Label("story", rid) for rid in check["requirements"]]
        labels += [Label("suite", check["target"]), Label("tag", check["verdict"])]
        attachments = []
        for n, exchange in enumerate(check.get("evidence", []), 1):
            source = f"{uuid.uuid4()}-attachment.json"
            logger.report_attached_data(json.dumps(exchange, indent=2), source)
            attachments.append(
                Attachment(
                    name=f"exchange {n}: {exchange['method']} {exchange['status']}",
                    source=source,
                    type="application/json",
                )
            )
        known = check.get("known_issue")
        result = TestResult(
            uuid=str(uuid.uuid4()),
            name=f"{check['check_id']}" + (f" [{transport}]" if transport else ""),
            fullName=key,
            historyId=hashlib.sha256(key.encode()).hexdigest(),
            testCaseId=hashlib.sha256(key.encode()).hexdigest(),
            description=check.get("title"),
            status=_STATUS[check["verdict"]],
            statusDetails=StatusDetails(
                message=f"{check['verdict']}: {check['message']}", known=bool(known) or None
            ),
            labels=labels,
            links=[Link("tms", reqs[r]["url"], r) for r in check["requirements"] if r in reqs]
            + ([Link("issue", known["link"], "known issue")] if known else []),
            parameters=[
                Parameter("target", check["target"]),
                Parameter("transport", transport or "none"),
            ],
            attachments=attachments,
            start=start,
            stop=(start or 0) + int(check.get("duration_s", 0) * 1000) if start else None,
        )
        logger.report_result(result)
    return len(document["checks"])
