"""`mxconform cleanup [LEDGER | REPORT_DIR | LEDGER_DIR]`: finish what a run left behind.

A run writes every account into its ledger before creating it (legacy/ledger.py); one that
was killed, or whose cleanup ran out of time or was refused, leaves that ledger. This command
deactivates (and erases, where the server allows) every account in it not yet crossed off,
with the same means a run's own cleanup uses: the admin API where the target has one, else a
login with the passwords the ledger holds.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from mxconform.http.client import MatrixClient, Pacer, new_http_client
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.ledger import Ledger, LedgerState, find_ledgers, ledger_dir, read_ledger
from mxconform.legacy.users import LegacyUsers, UserNames
from mxconform.paths import servers_file
from mxconform.targets.config import Target
from mxconform.targets.lifecycle import start_target
from mxconform.targets.loading import load_servers

EXIT_OK, EXIT_LEFT, EXIT_ERROR = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "cleanup",
        help="deactivate the test accounts a stopped or killed run left (from its ledger)",
    )
    c.add_argument(
        "where",
        nargs="?",
        help="a ledger (.jsonl), a run's report folder, or a folder of ledgers "
        f"(default: every ledger in {ledger_dir()})",
    )
    c.add_argument("--servers", help="targets file (default: the one the run used)")


def cleanup_command(args: argparse.Namespace) -> int:
    where = Path(args.where) if args.where else ledger_dir()
    ledgers = find_ledgers(where)
    if not ledgers:
        print(f"mxconform cleanup: no ledger at {where}: nothing left to clean up")
        return EXIT_OK
    status = EXIT_OK
    for path in ledgers:
        status = max(status, _one(read_ledger(path), args.servers))
    return status


def _one(state: LedgerState, servers_arg: str | None) -> int:
    name = str(state.header.get("target", "?"))
    if not state.active:
        state.path.unlink(missing_ok=True)
        print(f"{name}: nothing left active ({state.path} removed)")
        return EXIT_OK
    servers_path = servers_file(servers_arg or state.header.get("servers"))
    (target,) = load_servers(servers_path).select([name])
    if target.embedded is not None:
        state.path.unlink(missing_ok=True)
        print(f"{name}: an embedded server goes with its run; {state.path} removed")
        return EXIT_OK
    running = start_target(target, Path("."))
    secrets = SecretRegistry()
    users = LegacyUsers(
        target,
        running.shared_secret,
        secrets,
        UserNames(),
        running.server_name,
        ledger=Ledger.resume(state),
        admin_url=running.admin_url,
    )
    for user_id in state.active:
        users.take_over(user_id, state.passwords[user_id])
    print(f"{name}: {len(state.active)} accounts left by the run in {state.path} ...")
    asyncio.run(_clean(users, running.base_url, target, secrets))
    for problem in users.housekeeping.problems:
        print(f"  problem: {problem}")
    left = users.ledger.finish() if users.ledger is not None else None
    if left is None:
        print(f"{name}: every account deactivated; ledger removed")
        return EXIT_OK
    print(f"{name}: {len(left.active)} accounts still active, kept in {left.path}:")
    for user_id in left.active:
        print(f"  {user_id}")
    return EXIT_LEFT


async def _clean(
    users: LegacyUsers, base_url: str, target: Target, secrets: SecretRegistry
) -> None:
    tls = target.ssl_context()
    async with new_http_client(tls) as http:
        client = MatrixClient(
            http,
            base_url,
            Recorder(),
            secrets,
            Pacer(target.request_rate),
            target.policy(),
            tls=tls,
        )
        await users.cleanup(client)
