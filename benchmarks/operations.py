"""Measure what each legacy check spends of the operations homeservers rate-limit hardest
(password logins, registrations) and write `src/mxconform/data/operations.json`, the figures
`mxconform run` plans with (plugin/plan.py).

    python benchmarks/operations.py [RESULTS_JSON]

Without an argument it runs the legacy suite on the embedded `synapse-legacy` target first.
Run it after changing what a check logs in or registers: tests/test_main_run.py says when.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from mxconform.cli import parser, run_suites
from mxconform.plugin.plan import measured

OUT = Path(__file__).resolve().parents[1] / "src" / "mxconform" / "data" / "operations.json"


def main(argv: list[str]) -> int:
    if argv:
        document = json.loads(Path(argv[0]).read_text())
    else:
        folder = tempfile.mkdtemp(prefix="mxconform-operations-")
        args = ["run", "--server", "synapse-legacy", "--jobs", "1", "-q", "--report-dir", folder]
        outcome = run_suites(parser().parse_args(args))
        assert outcome.report_dir is not None
        document = json.loads((outcome.report_dir / "results.json").read_text())
    target = next(t for t in document["targets"] if t["name"] == "synapse-legacy")
    checks = measured(document, "synapse-legacy")
    OUT.write_text(
        json.dumps(
            {
                "measured_on": f"synapse-legacy ({target.get('server_header')})",
                "checks": checks,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{OUT}: {len(checks)} checks spend logins or registrations")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
