"""The suites ship inside the wheel: install it in a fresh venv, run in an empty folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def sh(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


def test_installed_wheel_runs_outside_the_checkout(tmp_path):
    built = sh(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("mxconform-*.whl"))
    venv = tmp_path / "venv"
    # Without a pip of its own (seeding one took 4 of this test's CPU seconds): this
    # environment's pip installs into it and checks it (`pip --python`).
    assert sh(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python")
    # The dependencies come from this environment (a .pth line after the venv's own
    # packages: the wheel's mxconform is the one imported), not from a 60-second install;
    # `pip check` proves the wheel's declared requirements are met by what it finds.
    installed = sh(*pip, "install", "-q", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr
    ours = sh(
        venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    )
    here = sysconfig.get_path("purelib")
    (Path(ours.stdout.strip()) / "zz-deps.pth").write_text(here + "\n")
    checked = sh(*pip, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    origin = sh(venv / "bin" / "python", "-c", "import mxconform; print(mxconform.__file__)")
    assert origin.stdout.startswith(str(venv)), origin.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    run = sh(venv / "bin" / "mxconform", "run", "-k", "whoami", cwd=empty)
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((empty / "reports" / "latest" / "results.json").read_text())
    assert {c["verdict"] for c in document["checks"]} <= {"PASS", "INFO", "SKIP"}
    assert any(c["check_id"] == "tokens.valid.accepted.whoami" for c in document["checks"])
    listed = sh(venv / "bin" / "mxconform", "targets", cwd=empty)
    assert "synapse-legacy (default)" in listed.stdout


def test_the_sdist_carries_the_suites_and_builds_a_wheel_that_lists_them(tmp_path):
    """`python -m build` as a user runs it: an sdist with the suites, catalogue, templates and
    known issues, its version from git (or the fallback without git), and the wheel built
    from that sdist alone lists the checks and names its version outside any checkout."""
    built = sh(sys.executable, "-m", "build", "--sdist", "--outdir", tmp_path / "dist", ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    sdist = next((tmp_path / "dist").glob("mxconform-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    for needed in (
        "suites/legacy/check_login.py",
        "src/mxconform/data/requirements.yaml",
        "src/mxconform/report/templates",
        "known-issues/synapse.yaml",
        "PKG-INFO",
    ):
        assert any(n.startswith(f"{top}/{needed}") for n in names), needed
    wheel = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "w", sdist)
    assert wheel.returncode == 0, wheel.stderr
    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python")
    assert (
        sh(*pip, "install", "-q", "--no-deps", next((tmp_path / "w").glob("*.whl"))).returncode == 0
    )
    ours = sh(
        venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    )
    (Path(ours.stdout.strip()) / "zz-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = sh(venv / "bin" / "mxconform", "list", "--json", cwd=empty)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) > 200
    version = sh(venv / "bin" / "mxconform", "--version", cwd=empty).stdout
    assert version.startswith("mxconform ") and top.removeprefix("mxconform-") in version
