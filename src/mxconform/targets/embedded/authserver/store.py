"""The authorisation server's state: one SQLite file in a private temp folder.

Tokens, codes and device codes are kept only as SHA-256 digests, and passwords as bcrypt hashes,
so the file holds nothing that could be replayed. One connection, guarded by a lock: the server
is threaded, and every operation that reads then writes runs under the lock as one unit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALNUM = string.ascii_letters + string.digits
BCRYPT_ROUNDS = 4  # test accounts on loopback: fast hashing, as the embedded Synapse does

SCHEMA = """
CREATE TABLE users (
    id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, password_hash BLOB,
    created_at REAL NOT NULL, deactivated_at REAL
);
CREATE TABLE clients (client_id TEXT PRIMARY KEY, metadata TEXT NOT NULL, created_at REAL);
CREATE TABLE auth_grants (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    response_mode TEXT NOT NULL, scope TEXT NOT NULL, state TEXT, code_challenge TEXT NOT NULL,
    created_at REAL NOT NULL, status TEXT NOT NULL, user_id TEXT, code_hash TEXT UNIQUE,
    fulfilled_at REAL, exchanged_at REAL, session_id TEXT, nonce TEXT, auth_time REAL
);
CREATE TABLE device_grants (
    id TEXT PRIMARY KEY, device_code_hash TEXT UNIQUE NOT NULL, user_code TEXT UNIQUE NOT NULL,
    client_id TEXT NOT NULL, scope TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, interval REAL NOT NULL, last_poll_at REAL,
    status TEXT NOT NULL, user_id TEXT, session_id TEXT
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT, user_id TEXT, scope TEXT NOT NULL,
    device_id TEXT, human_name TEXT, created_at REAL NOT NULL, finished_at REAL,
    expires_at REAL
);
CREATE TABLE access_tokens (
    hash TEXT PRIMARY KEY, session_id TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL, revoked_at REAL, first_used_at REAL
);
CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL, session_id TEXT NOT NULL,
    access_hash TEXT NOT NULL, created_at REAL NOT NULL, consumed_at REAL, revoked_at REAL,
    next_id TEXT
);
CREATE INDEX access_by_session ON access_tokens (session_id);
CREATE INDEX refresh_by_session ON refresh_tokens (session_id);
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_id() -> str:
    """A ULID-shaped identifier (time-ordered, 26 Crockford base-32 characters), as MAS uses."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def new_token(prefix: str) -> str:
    """A random token with MAS's type prefix (mat_, mar_, mpt_), so logs show what it is."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(32))


def hash_password(password: str) -> bytes:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS))


@dataclass(frozen=True)
class User:
    id: str
    username: str
    created_at: float
    deactivated_at: float | None


@dataclass(frozen=True)
class Session:
    id: str
    kind: str  # "oauth" (a grant), "personal" (admin-minted), "client" (client credentials)
    client_id: str | None
    user_id: str | None
    scope: str
    device_id: str | None
    human_name: str | None
    created_at: float
    finished_at: float | None
    expires_at: float | None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str | None
    expires_in: int | None


class Store:
    """Every read and write of the server's state."""

    def __init__(self, path: Path, access_token_lifetime_s: int) -> None:
        self.lifetime = access_token_lifetime_s
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self.lock:
            row: sqlite3.Row | None = self.db.execute(sql, args).fetchone()
            return row

    def all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.db.execute(sql, args).fetchall())

    def run(self, sql: str, *args: Any) -> int:
        with self.lock:
            return self.db.execute(sql, args).rowcount

    # Users

    def add_user(self, username: str, password: str | None) -> User:
        hashed = hash_password(password) if password is not None else None
        user = User(new_id(), username, time.time(), None)
        self.run(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
            user.id,
            username,
            hashed,
            user.created_at,
        )
        return user

    @staticmethod
    def _user(row: sqlite3.Row | None) -> User | None:
        if row is None:
            return None
        return User(row["id"], row["username"], row["created_at"], row["deactivated_at"])

    def user(self, user_id: str) -> User | None:
        return self._user(self.one("SELECT * FROM users WHERE id = ?", user_id))

    def user_by_name(self, username: str) -> User | None:
        return self._user(self.one("SELECT * FROM users WHERE username = ?", username))

    def check_password(self, username: str, password: str) -> User | None:
        row = self.one("SELECT * FROM users WHERE username = ?", username)
        if row is None or row["password_hash"] is None or row["deactivated_at"] is not None:
            bcrypt.checkpw(b"x", hash_password("y"))  # the same work either way
            return None
        if not bcrypt.checkpw(password.encode(), row["password_hash"]):
            return None
        return self._user(row)

    def set_password(self, user_id: str, password: str) -> None:
        self.run(
            "UPDATE users SET password_hash = ? WHERE id = ?", hash_password(password), user_id
        )

    def deactivate_user(self, user_id: str) -> None:
        self.run(
            "UPDATE users SET deactivated_at = ? WHERE id = ? AND deactivated_at IS NULL",
            time.time(),
            user_id,
        )

    # Clients (registered dynamically; the admin client lives in memory only)

    def add_client(self, client_id: str, metadata: dict[str, Any]) -> None:
        self.run(
            "INSERT INTO clients (client_id, metadata, created_at) VALUES (?, ?, ?)",
            client_id,
            json.dumps(metadata),
            time.time(),
        )

    def client_metadata(self, client_id: str) -> dict[str, Any] | None:
        row = self.one("SELECT metadata FROM clients WHERE client_id = ?", client_id)
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row["metadata"])
        return data

    # Sessions and tokens

    @staticmethod
    def _session(row: sqlite3.Row | None) -> Session | None:
        if row is None:
            return None
        return Session(
            row["id"],
            row["kind"],
            row["client_id"],
            row["user_id"],
            row["scope"],
            row["device_id"],
            row["human_name"],
            row["created_at"],
            row["finished_at"],
            row["expires_at"],
        )

    def session(self, session_id: str) -> Session | None:
        return self._session(self.one("SELECT * FROM sessions WHERE id = ?", session_id))

    def sessions_of(self, user_id: str, active_only: bool = True) -> list[Session]:
        where = " AND finished_at IS NULL" if active_only else ""
        rows = self.all(
            f"SELECT * FROM sessions WHERE user_id = ?{where} ORDER BY created_at", user_id
        )
        return [s for s in (self._session(r) for r in rows) if s is not None]

    def add_session(
        self,
        kind: str,
        *,
        client_id: str | None,
        user_id: str | None,
        scope: str,
        device_id: str | None,
        human_name: str | None = None,
        expires_at: float | None = None,
    ) -> Session:
        session = Session(
            new_id(),
            kind,
            client_id,
            user_id,
            scope,
            device_id,
            human_name,
            time.time(),
            None,
            expires_at,
        )
        self.run(
            "INSERT INTO sessions (id, kind, client_id, user_id, scope, device_id, human_name, "
            "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            session.id,
            kind,
            client_id,
            user_id,
            scope,
            device_id,
            human_name,
            session.created_at,
            expires_at,
        )
        return session

    def add_access_token(self, session: Session, prefix: str, lifetime: float | None) -> str:
        token = new_token(prefix)
        now = time.time()
        self.run(
            "INSERT INTO access_tokens (hash, session_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            digest(token),
            session.id,
            now,
            None if lifetime is None else now + lifetime,
        )
        return token

    def issue_pair(self, session: Session, with_refresh: bool = True) -> TokenPair:
        """A fresh access token (and refresh token) for an OAuth session."""
        with self.lock:
            access = self.add_access_token(session, "mat_", self.lifetime)
            refresh = None
            if with_refresh:
                refresh = new_token("mar_")
                self.run(
                    "INSERT INTO refresh_tokens (hash, id, session_id, access_hash, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    digest(refresh),
                    new_id(),
                    session.id,
                    digest(access),
                    time.time(),
                )
        return TokenPair(access, refresh, self.lifetime)

    def access_token(self, token: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM access_tokens WHERE hash = ?", digest(token))

    def refresh_token(self, token: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM refresh_tokens WHERE hash = ?", digest(token))

    def mark_used(self, access_hash: str) -> None:
        self.run(
            "UPDATE access_tokens SET first_used_at = ? WHERE hash = ? AND first_used_at IS NULL",
            time.time(),
            access_hash,
        )

    def finish_session(self, session_id: str) -> Session | None:
        """End a session and every token in it; the session as it was, if it was active."""
        now = time.time()
        with self.transaction() as db:
            changed = db.execute(
                "UPDATE sessions SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                (now, session_id),
            ).rowcount
            db.execute(
                "UPDATE access_tokens SET revoked_at = ? WHERE session_id = ? "
                "AND revoked_at IS NULL",
                (now, session_id),
            )
            db.execute(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE session_id = ? "
                "AND revoked_at IS NULL",
                (now, session_id),
            )
        return self.session(session_id) if changed else None

    def device_still_used(self, user_id: str, device_id: str) -> bool:
        """Whether another active session of this user holds the same device."""
        row = self.one(
            "SELECT 1 FROM sessions WHERE user_id = ? AND device_id = ? AND finished_at IS NULL",
            user_id,
            device_id,
        )
        return row is not None
