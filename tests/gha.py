"""A small local stand-in for the GitHub Actions runner, enough to execute every `run:` step
of `action.yml`, `.github/actions/harness/action.yml` and the reusable workflow as a runner
would: inputs and `${{ }}` expressions evaluated, `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`,
`GITHUB_PATH` and `RUNNER_TEMP` set, each step's outputs passed on, `if:` conditions with the
status functions, composite actions run step by step.

The marketplace actions are replaced by what they leave behind here: `setup-python` gives a
prepared interpreter, `checkout` and `setup-go` nothing (the workspace and Go are there),
`cache` only checks its key, the artifact actions copy folders. Anything else is an error,
so a new action in a workflow needs a line here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][\w.\-]*))"
)


class StepFailed(Exception):
    """A `run:` step exited non-zero (its output is in the message)."""


@dataclass
class Uploaded:
    name: str
    path: Path


@dataclass
class Runner:
    """One emulated runner: a workspace, the harness repository (`$/`), the interpreter
    `setup-python` hands out, and what the steps left (artifacts, summaries, annotations)."""

    workspace: Path
    self_repo: Path
    python: Path
    temp: Path
    env: dict[str, str] = field(default_factory=dict)
    github: dict[str, Any] = field(default_factory=dict)
    uploads: list[Uploaded] = field(default_factory=list)
    cache_keys: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    summary: Path = field(init=False)

    def __post_init__(self) -> None:
        self.summary = self.temp / "step_summary.md"
        self.summary.touch()

    # ---- expressions --------------------------------------------------------------------

    def evaluate(self, expr: str, ctx: dict[str, Any]) -> Any:
        out, pos = [], 0
        while (m := TOKEN.match(expr, pos)) is not None and m.end() > pos:
            pos = m.end()
            if m["str"]:
                out.append(repr(m["str"][1:-1].replace("''", "'")))
            elif m["num"]:
                out.append(m["num"])
            elif m["op"]:
                out.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
            elif expr[pos:].lstrip().startswith("("):
                out.append(f"_fn_{m['name'].replace('-', '_')}")
            else:
                out.append(f"_get({m['name']!r})")
        if expr[pos:].strip():
            raise ValueError(f"cannot read the expression {expr!r} at {expr[pos:]!r}")

        def get(path: str) -> Any:
            value: Any = ctx
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value

        names = {
            "_get": get,
            "_fn_success": lambda: not ctx["_failed"],
            "_fn_failure": lambda: ctx["_failed"],
            "_fn_always": lambda: True,
            "_fn_cancelled": lambda: False,
            "_fn_fromJSON": json.loads,
            "_fn_hashFiles": lambda *p: "hash-" + "-".join(x for x in p if x) if any(p) else "",
        }
        return eval("".join(out), {"__builtins__": {}}, names)  # our own workflow files only

    def render(self, value: Any, ctx: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, ctx) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        whole = EXPR.fullmatch(value.strip())
        if whole:
            return self.evaluate(whole[1], ctx)
        return EXPR.sub(lambda m: _text(self.evaluate(m[1], ctx)), value)

    def condition(self, step: dict[str, Any], ctx: dict[str, Any]) -> bool:
        cond = step.get("if")
        if cond is None:
            return not ctx["_failed"]
        if isinstance(cond, bool):
            return cond
        whole = EXPR.fullmatch(str(cond).strip())
        expr = whole[1] if whole else str(cond)
        uses_status = re.search(r"\b(success|failure|always|cancelled)\(", expr)
        return bool(self.evaluate(expr if uses_status else f"success() && ({expr})", ctx))

    # ---- steps --------------------------------------------------------------------------

    def run_steps(
        self, steps: list[dict[str, Any]], ctx: dict[str, Any], action_path: Path | None = None
    ) -> None:
        ctx.setdefault("steps", {})
        ctx.setdefault("_failed", False)
        for step in steps:
            if not self.condition(step, ctx):
                continue
            outputs: dict[str, Any] = {}
            try:
                if "run" in step:
                    outputs = self._run(step, ctx, action_path)
                else:
                    outputs = self._uses(step, ctx, action_path)
            except StepFailed:
                ctx["_failed"] = True
                if not step.get("continue-on-error"):
                    ctx.setdefault("_errors", []).append(step.get("name") or step.get("uses"))
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": outputs}

    def _run(self, step: dict[str, Any], ctx: dict[str, Any], action_path: Path | None) -> dict:
        env = {**os.environ, **self.env}
        env.update({k: _text(self.render(v, ctx)) for k, v in (ctx.get("env") or {}).items()})
        env.update({k: _text(self.render(v, ctx)) for k, v in (step.get("env") or {}).items()})
        output = self.temp / "output"
        output.write_text("")
        env |= {
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_PATH": str(self.temp / "path"),
            "GITHUB_ENV": str(self.temp / "env"),
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "RUNNER_OS": "Linux",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
        }
        if action_path is not None:
            env["GITHUB_ACTION_PATH"] = str(action_path)
        script = self.render(step["run"], ctx)
        assert "${{" not in script, f"an expression left in a run: step: {script}"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        self.stdout.append(done.stdout)
        self.stderr.append(done.stderr)
        if done.returncode != 0:
            raise StepFailed(
                f"{step.get('name')}: exit {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return _outputs(output.read_text())

    def _uses(self, step: dict[str, Any], ctx: dict[str, Any], action_path: Path | None) -> dict:
        uses: str = step["uses"]
        given = self.render(step.get("with") or {}, ctx)
        name = uses.split("@", 1)[0]
        if uses.startswith("$/./"):  # this repository, at the ref the workflow runs at
            return self.run_action(self.self_repo / uses[4:], given)
        if re.fullmatch(r"[\w.-]+/mxconform(/[\w./-]+)?", name):  # a caller's pinned use
            sub = name.split("/", 2)[2] if name.count("/") > 1 else ""
            return self.run_action(self.self_repo / sub, given)
        if name == "actions/setup-python":
            version = subprocess.run(
                [self.python, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            return {"python-path": str(self.python), "python-version": version}
        if name in ("actions/checkout", "actions/setup-go", "actions/deploy-pages"):
            return {}
        if name == "actions/cache":
            key = _text(given["key"])
            assert key and "None" not in key, key
            self.cache_keys.append(key)
            return {"cache-hit": "false"}
        if name in ("actions/upload-artifact", "actions/upload-pages-artifact"):
            path = self.workspace / _text(given["path"])
            assert path.exists(), f"nothing to upload at {path}"
            self.uploads.append(Uploaded(_text(given.get("name") or "github-pages"), path))
            return {}
        if name == "actions/download-artifact":
            target = self.workspace / _text(given["path"])
            pattern = re.compile(_text(given["pattern"]).replace("*", ".*"))
            for up in self.uploads:
                if pattern.fullmatch(up.name):
                    shutil.copytree(up.path, target / up.name, dirs_exist_ok=True)
            return {}
        raise AssertionError(f"the emulator has no stand-in for {uses}")

    def run_action(self, path: Path, inputs: dict[str, Any]) -> dict[str, Any]:
        """A composite action: its inputs with their defaults, its steps, its outputs."""
        action = yaml.safe_load((path / "action.yml").read_text())
        assert action["runs"]["using"] == "composite"
        declared = action.get("inputs") or {}
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs the action does not declare: {unknown}"
        values = {k: _text(inputs.get(k, spec.get("default", ""))) for k, spec in declared.items()}
        ctx = {"inputs": values, "github": {**self.github, "action_path": str(path)}}
        ctx |= {"runner": {"os": "Linux", "temp": str(self.temp)}}
        self.run_steps(action["runs"]["steps"], ctx, action_path=path)
        outputs = {
            k: self.render(v["value"], ctx) for k, v in (action.get("outputs") or {}).items()
        }
        if ctx["_failed"]:
            raise StepFailed(f"{path.name}: {ctx.get('_errors')}")
        return outputs


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _outputs(text: str) -> dict[str, str]:
    """`key=value` lines and `key<<DELIM` blocks, as the runner reads GITHUB_OUTPUT."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            key, delim = line.split("<<", 1)
            block = []
            for more in lines:
                if more == delim:
                    break
                block.append(more)
            out[key] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def run_workflow(
    runner: Runner, workflow: Path, inputs: dict[str, Any], secrets: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """A `workflow_call` workflow's jobs in their `needs` order, each matrix leg in turn;
    what each job ended as (`result`, `outputs`)."""
    document = yaml.safe_load(workflow.read_text())
    declared = document[True]["workflow_call"]["inputs"]  # PyYAML reads `on:` as True
    values = {k: inputs.get(k, spec.get("default")) for k, spec in declared.items()}
    results: dict[str, dict[str, Any]] = {}
    jobs: dict[str, Any] = document["jobs"]
    while len(results) < len(jobs):
        for job_id, job in jobs.items():
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if job_id in results or any(n not in results for n in needs):
                continue
            ctx: dict[str, Any] = {
                "inputs": values,
                "secrets": secrets,
                "github": runner.github,
                "needs": {n: results[n] for n in needs},
                "runner": {"os": "Linux", "temp": str(runner.temp)},
                "_failed": any(results[n]["result"] == "failure" for n in needs),
            }
            if not runner.condition(job, ctx):
                results[job_id] = {"result": "skipped", "outputs": {}}
                continue
            legs = [{}]
            if "strategy" in job:
                legs = runner.render(job["strategy"]["matrix"], ctx)["include"]
            result = "success"
            for leg in legs:
                leg_ctx = {**ctx, "matrix": leg, "steps": {}, "_failed": False}
                runner.run_steps(job["steps"], leg_ctx)
                if leg_ctx["_failed"]:
                    result = "failure"
            outs = {k: runner.render(v, leg_ctx) for k, v in (job.get("outputs") or {}).items()}
            results[job_id] = {"result": result, "outputs": outs}
    return results
