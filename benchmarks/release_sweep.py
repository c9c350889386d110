"""Run the legacy suite on several Synapse releases, each installed as it shipped (its
dependencies of the day), and print one table row per release: the verdicts and every FAIL
with the rule it broke, known or not.

    python benchmarks/release_sweep.py 1.70.1 1.90.0 1.110.0 ... [--cache DIR]

Each release is installed into the cache first when missing (`mxconform synapse install`);
its known-issues file is `known-issues/synapse-<major.minor>.yaml` where there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = """defaults: [sweep]
targets:
  - name: sweep
    embedded: synapse-legacy
    server_name: localhost
    auth: [legacy]
    provisioning: {{method: synapse-shared-secret}}
    synapse_version: "{version}"
{known}"""


def run(version: str, folder: Path, env: dict[str, str]) -> dict[str, object]:
    line = ".".join(version.split(".")[:2])
    known = ROOT / "known-issues" / f"synapse-{line}.yaml"
    servers = folder / f"servers-{version}.yaml"
    servers.write_text(
        TARGET.format(
            version=version, known=f"    known_issues: {known}\n" if known.exists() else ""
        )
    )
    mx = [sys.executable, "-m", "mxconform.cli"]
    subprocess.run([*mx, "synapse", "install", version], env=env, check=True, stdout=sys.stderr)
    reports = folder / version
    argv = [*mx, "run", "--servers", str(servers), "--offline", "--jobs", "1", "-q", "--json"]
    done = subprocess.run(
        [*argv, "--report-dir", str(reports)], env=env, capture_output=True, text=True
    )
    document = json.loads((reports / "latest" / "results.json").read_text())
    (target,) = document["targets"]
    fails = sorted(
        f"{c['check_id']}[{c['transport'] or '-'}] ({', '.join(c['basis'])})"
        + (" known" if c.get("known_issue") else "")
        for c in document["checks"]
        if c["verdict"] == "FAIL"
    )
    return {
        "version": version,
        "exit": done.returncode,
        "held_to": target.get("spec_version_evaluated"),
        "bcrypt": ((target.get("synapse_resolved") or {}).get("packages") or {}).get("bcrypt"),
        "counts": document["summary"]["sweep"]["counts"],
        "known_fail": document["summary"]["sweep"]["known_fail"],
        "must": "{must_passed}/{must_applicable}".format(**document["summary"]["sweep"]),
        "skipped": document["summary"]["sweep"]["skipped"],
        "known_now_passing": document["summary"]["sweep"]["known_now_passing"],
        "fails": fails,
        "errors": [c["check_id"] for c in document["checks"] if c["verdict"] == "ERROR"],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--cache", help="the release cache (MXCONFORM_CACHE_DIR)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.cache:
        env["MXCONFORM_CACHE_DIR"] = args.cache
    with tempfile.TemporaryDirectory(prefix="mxconform-sweep-") as tmp:
        rows = [run(v, Path(tmp), env) for v in args.versions]
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
