"""The run's ledger: every account written down *before* it is created, and crossed off once
it is deactivated, so that a run killed at any moment (SIGKILL included) leaves a record that
`mxconform cleanup` can finish from.

One JSON object a line, appended and flushed to disk line by line (a torn last line is
ignored when read). The file holds the accounts' passwords (the only way into an account on a
server without an admin API), so it lives outside the report folder, is readable by its owner
alone, and is removed once nothing in it is left active.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def ledger_dir() -> Path:
    """Where ledgers are kept: `$MXCONFORM_STATE_DIR`, else `$XDG_STATE_HOME/mxconform`, else
    `~/.local/state/mxconform` (state that outlives a report folder)."""
    given = os.environ.get("MXCONFORM_STATE_DIR")
    if given:
        return Path(given) / "ledgers"
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "mxconform" / "ledgers"


class Ledger:
    """The append-only record of one run's accounts on one target."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._header = header
        self._open = False

    @classmethod
    def for_run(cls, run_id: str, target: str, header: dict[str, Any]) -> Ledger:
        return cls(ledger_dir() / f"{run_id}-{target}.jsonl", {"target": target, **header})

    @classmethod
    def resume(cls, state: LedgerState) -> Ledger:
        """An existing ledger, appended to (`mxconform cleanup`)."""
        ledger = cls(state.path, state.header)
        ledger._open = True
        return ledger

    def _write(self, entry: dict[str, Any]) -> None:
        if not self._open:  # made at the first account: a run that creates none leaves none
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)
            self._open = True
            self._append({"event": "run", **self._header})
        self._append(entry)

    def _append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def account(self, user_id: str, password: str, *, admin: bool = False) -> None:
        """Before the account is asked for: it may exist from here on."""
        self._write({"event": "account", "user_id": user_id, "password": password, "admin": admin})

    def password(self, user_id: str, password: str) -> None:
        """A password a check may be about to give the account."""
        self._write({"event": "password", "user_id": user_id, "password": password})

    def gone(self, user_id: str) -> None:
        """Deactivated (or never created): nothing left to do for it."""
        if self._open:
            self._write({"event": "gone", "user_id": user_id})

    def finish(self) -> LedgerState | None:
        """Remove the file when nothing in it is left active; else what is left."""
        if not self._open:
            return None
        state = read_ledger(self.path)
        if not state.active:
            self.path.unlink(missing_ok=True)
            return None
        return state


@dataclass
class LedgerState:
    """What a ledger says: the run it belongs to, and the accounts not crossed off."""

    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    # user ID -> every password it may have (the first is the one it was created with)
    passwords: dict[str, list[str]] = field(default_factory=dict)
    admins: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)

    @property
    def active(self) -> list[str]:
        return [u for u in self.passwords if u not in self.gone]


def read_ledger(path: Path) -> LedgerState:
    state = LedgerState(path)
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill: the account it names was never asked for
        if not isinstance(entry, dict):
            continue
        event, user = entry.get("event"), entry.get("user_id")
        if event == "run":
            state.header = {k: v for k, v in entry.items() if k != "event"}
        elif event in ("account", "password") and isinstance(user, str):
            known = state.passwords.setdefault(user, [])
            if isinstance(entry.get("password"), str) and entry["password"] not in known:
                known.append(entry["password"])
            if entry.get("admin"):
                state.admins.add(user)
        elif event == "gone" and isinstance(user, str):
            state.gone.add(user)
    return state


def find_ledgers(where: Path) -> list[Path]:
    """The ledgers a path names: the file itself, a report folder's (results.json names
    them), or every ledger in a folder of ledgers."""
    if where.is_file() and where.suffix == ".jsonl":
        return [where]
    results = where / "results.json"
    if results.is_file():
        document = json.loads(results.read_text(encoding="utf-8"))
        named = [
            Path(path)
            for t in document.get("targets", [])
            for path in (t.get("housekeeping") or {}).get("ledgers", [])
        ]
        return [p for p in named if p.is_file()]
    if where.is_dir():
        return sorted(where.glob("*.jsonl"))
    return []
