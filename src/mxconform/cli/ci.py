"""`mxconform ci plan|servers|summary`: what the GitHub Action (`action.yml`) and the reusable
workflow (`.github/workflows/conformance.yml`) ask of the harness, in Python rather than in
their shell steps, so it is tested like the rest and a workflow step stays one line.

- `plan`: the job matrix of a servers file (its default targets, and any named), one list of
  targets for the workflow and the harness alike;
- `servers`: a servers file from the action's inputs (a URL and a secret, or an embedded
  release);
- `summary`: a report's job summary in Markdown and one `::error` annotation per FAIL that is
  not a known issue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mxconform.paths import servers_file
from mxconform.results import gating_failures, record_key
from mxconform.targets.config import ConfigError
from mxconform.targets.loading import load_servers

from .summary import headline, selection_words

EXIT_OK = 0
SECRET_ENV = "MXCONFORM_REGISTRATION_SECRET"
MAX_ANNOTATIONS = 50  # GitHub shows at most 10 per step and 50 per job


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ci = sub.add_parser("ci", help="for CI: a matrix, a servers file from inputs, a job summary")
    ci_sub = ci.add_subparsers(dest="action", required=True, metavar="ACTION")
    plan = ci_sub.add_parser("plan", help="the job matrix of a servers file's targets (JSON)")
    plan.add_argument("--servers", metavar="FILE", help="targets file (default: ./servers.yaml)")
    plan.add_argument("--extra", default="", help="more targets by name (space or comma separated)")
    sv = ci_sub.add_parser("servers", help="write a servers file from the action's inputs")
    sv.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it")
    sv.add_argument("--name", default="homeserver", help="the target's name (default homeserver)")
    sv.add_argument("--base-url", default="", help="a homeserver to test (legacy API)")
    sv.add_argument("--server-name", default="", help="its server name (default: the URL's host)")
    sv.add_argument("--secret-env", default=SECRET_ENV, help="where its shared secret is")
    sv.add_argument("--synapse-version", default="", help="an embedded Synapse release or line")
    sv.add_argument("--dendrite-version", default="", help="an embedded Dendrite release")
    sv.add_argument("--known-issues", default="", metavar="FILE", help="the target's known issues")
    sm = ci_sub.add_parser("summary", help="a report's job summary and FAIL annotations")
    sm.add_argument("report", metavar="REPORT_DIR", help="a report folder (or its results.json)")
    sm.add_argument(
        "--summary-file",
        default=os.environ.get("GITHUB_STEP_SUMMARY", ""),
        help="append the Markdown here (default: $GITHUB_STEP_SUMMARY)",
    )


def ci_command(args: argparse.Namespace) -> int:
    if args.action == "plan":
        print(json.dumps(plan(args.servers, args.extra)))
    elif args.action == "servers":
        Path(args.output).write_text(yaml.safe_dump(servers_document(args), sort_keys=False))
        print(args.name)
    else:
        document = _results(Path(args.report))
        for line in fail_annotations(document):
            print(line)
        if args.summary_file:
            with open(args.summary_file, "a", encoding="utf-8") as out:
                out.write(summary_markdown(document))
    return EXIT_OK


def plan(servers: str | None, extra: str) -> dict[str, list[dict[str, str]]]:
    """`{"include": [{"target", "synapse", "dendrite"}, ...]}`: the default targets, then
    the extra ones; `synapse` and `dendrite` name the release a leg builds (its cache key)."""
    loaded = load_servers(servers_file(servers))
    by_name = {t.name: t for t in loaded.targets}
    names = list(dict.fromkeys([*loaded.defaults, *re.split(r"[\s,]+", extra.strip())]))
    unknown = [n for n in names if n and n not in by_name]
    if unknown:
        raise ConfigError(f"no such target in the servers file: {', '.join(unknown)}")
    legs = []
    for name in filter(None, names):
        t = by_name[name]
        synapse = t.synapse_version or ""
        legs.append({"target": name, "synapse": synapse, "dendrite": t.dendrite_version or ""})
    return {"include": legs}


def servers_document(args: argparse.Namespace) -> dict[str, Any]:
    """One target from the action's inputs: a remote homeserver provisioned through Synapse's
    shared-secret registration (the secret stays `${VAR}`, read at run time), or an embedded
    Synapse or Dendrite release."""
    chosen = [x for x in (args.base_url, args.synapse_version, args.dendrite_version) if x]
    if len(chosen) > 1:
        raise ConfigError("give one of base-url, synapse-version and dendrite-version")
    target: dict[str, Any] = {"name": args.name}
    if args.base_url:
        host = urlsplit(args.base_url).hostname
        if not host or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.secret_env):
            raise ConfigError("base-url needs an http(s) URL and secret-env a variable name")
        target |= {"base_url": args.base_url, "server_name": args.server_name or host}
        secret: dict[str, str] = {"shared_secret": f"${{{args.secret_env}}}"}
    elif args.dendrite_version:
        target |= {"embedded": "dendrite", "dendrite_version": args.dendrite_version}
        secret = {}
    else:
        target["embedded"] = "synapse-legacy"
        if args.synapse_version:
            target["synapse_version"] = args.synapse_version
        secret = {}
    if "server_name" not in target:
        target["server_name"] = "localhost"
    target["auth"] = ["legacy"]
    target["provisioning"] = {"method": "synapse-shared-secret", **secret}
    if args.known_issues:
        target["known_issues"] = str(Path(args.known_issues).resolve())
    return {"defaults": [args.name], "targets": [target]}


def _results(path: Path) -> dict[str, Any]:
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"no results.json at {path}: did the run write a report?")
    document: dict[str, Any] = json.loads(file.read_text())
    return document


def _escape(text: str, prop: bool = False) -> str:
    """GitHub's workflow-command escapes (data; a property also escapes : and ,)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def fail_annotations(document: dict[str, Any]) -> list[str]:
    """One `::error` per FAIL that is not a known issue, on the check's source file."""
    lines = []
    for check in gating_failures(document["checks"])[:MAX_ANNOTATIONS]:
        source = "suites/" + str(check.get("nodeid") or "").split("::", 1)[0]
        title = f"mxconform {check['target']}: {record_key(check)} FAIL"
        rules = ", ".join(check.get("basis") or check.get("requirements") or [])
        message = f"{check.get('message') or ''} (rules: {rules})"
        lines.append(
            f"::error file={_escape(source, True)},title={_escape(title, True)}::{_escape(message)}"
        )
    return lines


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")[:300]


def summary_markdown(document: dict[str, Any]) -> str:
    """The headline of each target and its FAILs that count, as a job summary shows them."""
    targets = {t["name"]: t for t in document["targets"]}
    out = ["## mxconform", ""]
    selection = selection_words(document)  # a partial run says so here too
    for name, s in document["summary"].items():
        out.append(f"- **{headline(name, s, targets.get(name), selection)}**")
    failing = gating_failures(document["checks"])
    out.append("")
    if not failing:
        out.append("No FAIL beyond the known issues.")
    else:
        out += ["| target | check | rules | observed |", "|---|---|---|---|"]
        for c in failing:
            rules = ", ".join(c.get("basis") or c.get("requirements") or [])
            observed = c.get("observed") or c.get("message")
            out.append(f"| {c['target']} | `{record_key(c)}` | {rules} | {_cell(observed)} |")
    return "\n".join(out) + "\n\n"
