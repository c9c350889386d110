"""Test users of the OAuth 2.0 API: accounts, logins through the target's driver, cleanup.

The OAuth counterpart of `auth.LegacyUsers`. Accounts come from MAS's admin API when the
target gives admin access (embedded targets always do), else from the accounts servers.yaml
names (never changed or destroyed), else from the server's own registration page
(`prompt=create`). Every token the run was issued is revoked (`tokens`) and every created
account deactivated at the end.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mxconform.errors import HarnessError, Unsupported
from mxconform.http.client import MatrixClient
from mxconform.http.limits import origin
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.api import Session
from mxconform.legacy.housekeeping import Housekeeping
from mxconform.legacy.users import UserNames
from mxconform.oauth.client import (
    AuthRequest,
    Metadata,
    OAuthApi,
    TokenSet,
    callback_params,
    new_device_id,
    scope_for,
    token_set,
)
from mxconform.oauth.drivers import make_driver
from mxconform.oauth.drivers.base import Account, DriverError, whoami
from mxconform.oauth.drivers.mas_admin import MasAdminApi, MasAdminDriver
from mxconform.oauth.revocation import end_personal_sessions, revoke_issued
from mxconform.oauth.tokens import IssuedTokens
from mxconform.targets.config import OAuthConfig, Target
from mxconform.targets.lifecycle import AdminAccess, RunningTarget


@dataclass
class CodeGrant:
    """One authorisation code grant as a check sees it: request, callback, exchange."""

    request: AuthRequest
    callback: str = field(repr=False)  # carries the code
    params: dict[str, str] = field(repr=False)
    exchange: httpx.Response | None = None
    login: OAuthLogin | None = None

    @property
    def code(self) -> str:
        if "code" not in self.params:
            raise DriverError(
                f"the authorisation ended without a code (error {self.params.get('error')!r})"
            )
        return self.params["code"]


@dataclass
class OAuthLogin:
    """One device logged in through the OAuth 2.0 API (or minted for it)."""

    account: Account
    tokens: TokenSet
    device_id: str | None
    client_id: str | None
    grant: str
    personal_session: str | None = None
    given: bool = False  # a token from servers.yaml: never revoked by the harness

    @property
    def session(self) -> Session:
        """The shape the legacy helpers (UIA operations, probes) take."""
        return Session(
            self.account.user_id,
            self.tokens.access_token,
            self.device_id or "",
            self.account.password or "",
        )


class OAuthUsers:
    """Creates accounts and logins on one target through its declared driver; cleans up."""

    def __init__(
        self,
        target: Target,
        running: RunningTarget,
        metadata: Metadata,
        template: MatrixClient,
        secrets_: SecretRegistry,
        names: UserNames,
        driver_override: str | None = None,
        artifacts_dir: Path | None = None,
        issued: IssuedTokens | None = None,
    ) -> None:
        config = target.oauth or OAuthConfig()
        if driver_override:
            config = config.model_copy(update={"driver": driver_override})
        self.config = config
        self.target = target
        self.server_name = running.server_name
        self.metadata = metadata
        self._secrets = secrets_
        self._names = names
        self.driver = make_driver(
            config,
            template,
            secrets_,
            artifacts_dir,
            metadata.origins,  # servers.yaml's, never the metadata's own
            # Chromium keeps its own trust store: a target whose CA the harness was given
            # (or made) is accepted by not checking certificates; origins stay bound.
            own_ca=running.ca_file is not None or target.tls.ca_file is not None,
        )
        self.admin = self._admin(running)
        self.housekeeping = Housekeeping()
        self.issued = issued if issued is not None else IssuedTokens()
        self._client_id: str | None = None
        self._accounts: list[Account] = []
        self._logins: list[OAuthLogin] = []
        self._given_turn = 0
        self._static_turn = 0

    def _admin(self, running: RunningTarget) -> MasAdminApi | None:
        where = f"target {self.target.name}: oauth.admin"
        access: AdminAccess | None = running.oauth_admin
        if access is None and self.config.admin is not None:
            secret = self.config.admin.client_secret.resolve(f"{where}.client_secret")
            url = self.config.admin.url or self.config.issuer or ""  # never the metadata's
            access = AdminAccess(url, self.config.admin.client_id, secret)
        if access is None:
            return None
        self._secrets.add_pair(access.client_id, access.client_secret)
        return MasAdminApi(access)  # its token endpoint: from access.url's own metadata

    @property
    def may_destroy(self) -> bool:
        """Checks may change or destroy accounts only when the harness created them."""
        return self.admin is not None or (
            not self.config.accounts and self.config.driver != "static"
        )

    def api(self, client: MatrixClient) -> OAuthApi:
        return OAuthApi(client, self.metadata, self.issued)

    async def client_id(self, client: MatrixClient) -> str:
        """The harness's own registered client on this target (registered once)."""
        if self._client_id is None:
            self._client_id = await self.api(client).register_client()
        return self._client_id

    def new_password(self) -> str:
        password = secrets.token_urlsafe(18)
        self._secrets.add(password, "password")
        return password

    async def account(self, client: MatrixClient, purpose: str) -> Account:
        """A user for a check: created by the harness, or one of the given accounts."""
        if self.config.driver == "static":
            return await self._static_account(client)
        if self.admin is not None:
            username = self._names.next(purpose)
            password = self.new_password()
            admin_id = await self.admin.create_user(client, username, password)
            account = Account(username, password, f"@{username}:{self.server_name}", admin_id)
            self._accounts.append(account)
            self.housekeeping.users_created.append(account.user_id)
            return account
        if self.config.accounts:
            given = self.config.accounts[self._given_turn % len(self.config.accounts)]
            self._given_turn += 1
            where = f"target {self.target.name}: oauth.accounts"
            password = given.password.resolve(where)
            self._secrets.add(password, "password")
            username = given.resolved_username(where)
            return Account(username, password, f"@{username}:{self.server_name}", given=True)
        raise Unsupported(
            "no way to get an account on this target: give oauth.admin (MAS admin API) "
            "or oauth.accounts in servers.yaml"
        )

    async def _static_account(self, client: MatrixClient) -> Account:
        if not self.config.tokens:
            raise Unsupported("the static driver needs oauth.tokens in servers.yaml")
        token = self.config.tokens[0].access_token.resolve(f"target {self.target.name}")
        self._secrets.add(token, "access_token")
        user_id, _ = await whoami(client, token)
        if user_id is None:
            raise DriverError("the first static token is not accepted by whoami")
        return Account(user_id[1:].split(":", 1)[0], None, user_id, given=True)

    async def login(
        self,
        client: MatrixClient,
        account: Account,
        purpose: str,
        device_id: str | None = None,
    ) -> OAuthLogin:
        """A new device for the account, through the driver's grant."""
        if self.config.driver == "static":
            return await self._static_login(client, account)
        if self.driver.interactive:
            request = self.api(client).authorization_request(
                await self.client_id(client), device_id=device_id
            )
            return await self.complete(client, account, request, purpose)
        if isinstance(self.driver, MasAdminDriver):
            if self.admin is None or account.admin_id is None:
                raise Unsupported("the mas-admin driver needs admin access (oauth.admin)")
            device = device_id or new_device_id()
            scope = scope_for(device)
            session_id, token = await self.admin.personal_session(
                client, account.admin_id, scope, f"mxconform {purpose}"
            )
            self._secrets.add(token, "access_token")
            login = OAuthLogin(
                account,
                TokenSet(token, None, None, scope),
                device,
                None,
                self.driver.grant,
                personal_session=session_id,
            )
            self._logins.append(login)
            return login
        raise Unsupported(f"the {self.driver.name} driver cannot log in")  # pragma: no cover

    async def _static_login(self, client: MatrixClient, account: Account) -> OAuthLogin:
        tokens = self.config.tokens  # taken in turn: a given token is never used up
        given = tokens[self._static_turn % len(tokens)]
        self._static_turn += 1
        where = f"target {self.target.name}: oauth.tokens"
        access = given.access_token.resolve(where)
        refresh = given.refresh_token.resolve(where) if given.refresh_token else None
        self._secrets.add(access, "access_token")
        self._secrets.add(refresh, "refresh_token")
        self.issued.spare(access, refresh)  # the operator's session: never revoked
        _, device = await whoami(client, access)
        return OAuthLogin(
            account, TokenSet(access, refresh, None, None), device, None, "static", given=True
        )

    async def callback(
        self, client: MatrixClient, account: Account, request: AuthRequest, create: bool = False
    ) -> str:
        """Drive the authorisation URL as the user; the redirect back to the client (its
        code joins the run's secrets before anything else records it)."""
        where = await self.driver.authorize(
            account, request.url, request.redirect_uri, client.recorder, create
        )
        self._secrets.add(callback_params(where).get("code"), "code")
        return where

    async def code_grant(
        self,
        client: MatrixClient,
        account: Account,
        *,
        exchange: bool = True,
        create: bool = False,
        **request: Any,
    ) -> CodeGrant:
        """Authorise as the user with the harness's client (request parameters varied as a
        check needs), then exchange the code unless told not to."""
        if not self.driver.interactive:
            raise Unsupported(
                f"the {self.driver.name} login driver does not drive authorisation pages"
            )
        client_id = request.pop("client_id", None) or await self.client_id(client)
        auth = self.api(client).authorization_request(client_id, **request)
        where = await self.callback(client, account, auth, create)
        grant = CodeGrant(auth, where, callback_params(where))
        if exchange and "code" in grant.params:
            grant.exchange = await self.api(client).exchange_code(auth, grant.params["code"])
            tokens = token_set(grant.exchange)
            if tokens is not None:
                self._secrets.add(tokens.access_token, "access_token")
                self._secrets.add(tokens.refresh_token, "refresh_token")
                grant.login = OAuthLogin(
                    account, tokens, auth.device_id, auth.client_id, self.driver.grant
                )
                self._logins.append(grant.login)
        return grant

    async def complete(
        self,
        client: MatrixClient,
        account: Account,
        request: AuthRequest,
        purpose: str,
        create: bool = False,
    ) -> OAuthLogin:
        """The whole code grant for a prepared request: pages, callback, token exchange."""
        where = await self.callback(client, account, request, create)
        params = callback_params(where)
        if "code" not in params:
            raise DriverError(
                f"{purpose}: the authorisation ended without a code (error {params.get('error')!r})"
            )
        resp = await self.api(client).exchange_code(request, params["code"])
        tokens = token_set(resp)
        if tokens is None:
            raise DriverError(f"{purpose}: the code exchange failed with HTTP {resp.status_code}")
        self._secrets.add(tokens.access_token, "access_token")
        self._secrets.add(tokens.refresh_token, "refresh_token")
        login = OAuthLogin(account, tokens, request.device_id, request.client_id, self.driver.grant)
        self._logins.append(login)
        return login

    def track(self, login: OAuthLogin, tokens: TokenSet) -> None:
        """A check refreshed a login: cleanup revokes the newest tokens."""
        self._secrets.add(tokens.access_token, "access_token")
        self._secrets.add(tokens.refresh_token, "refresh_token")
        login.tokens = tokens

    def unused_name(self, purpose: str) -> str:
        return self._names.next(purpose)

    def remember(
        self, account: Account, resp: httpx.Response, client_id: str, device_id: str | None
    ) -> None:
        """Tokens a check obtained by another grant (device code): revoked at cleanup."""
        tokens = token_set(resp)
        if tokens is None:
            return
        self._secrets.add(tokens.access_token, "access_token")
        self._secrets.add(tokens.refresh_token, "refresh_token")
        self._logins.append(OAuthLogin(account, tokens, device_id, client_id, "device_code"))

    def adopt(self, account: Account) -> None:
        """An account a check registered itself (prompt=create): cleaned up like ours."""
        self._accounts.append(account)
        self.housekeeping.users_created.append(account.user_id)

    async def discard(self, client: MatrixClient) -> None:
        """The accounts go with the server (`cleanup: discard`). The tokens are revoked all
        the same unless the server itself goes with the run (an embedded one); given
        accounts' logins always are."""
        if any(login.account.given and not login.given for login in self._logins):
            await self.cleanup(client)
            return
        if self.target.embedded is None:
            await self.revoke_all(client)
        self.housekeeping.discard_all()
        await self.driver.close()

    async def revoke_all(self, client: MatrixClient) -> None:
        """End every session the run opened: personal sessions through the admin API, and
        every token a token endpoint gave (`tokens.revoke_issued`)."""
        gate = asyncio.Semaphore(self.target.housekeeping_concurrency)
        personal = [lg.personal_session for lg in self._logins if lg.personal_session]
        if self.admin is not None:
            await end_personal_sessions(self.admin, client, personal, self.housekeeping, gate)
        endpoint = self.metadata.get("revocation_endpoint")
        await revoke_issued(
            self.issued,
            self.api(client).revoke_status,
            endpoint if isinstance(endpoint, str) else None,
            self.metadata.origins | {origin(client.base_url)},
            self.housekeeping,
            gate,
        )

    async def cleanup(self, client: MatrixClient) -> None:
        """Revoke every token the run was issued, then deactivate every account it
        created, a bounded number at a time."""
        await self.revoke_all(client)
        gate = asyncio.Semaphore(self.target.housekeeping_concurrency)

        async def deactivate(account: Account) -> None:
            async with gate:
                try:
                    if self.admin is not None and account.admin_id is None:
                        account.admin_id = await self.admin.find_user(client, account.username)
                    if self.admin is None or account.admin_id is None:
                        self.housekeeping.problems.append(
                            f"{account.user_id}: no admin access to deactivate it"
                        )
                        return
                    if await self.admin.deactivate(client, account.admin_id):
                        self.housekeeping.users_deactivated.append(account.user_id)
                    else:
                        self.housekeeping.problems.append(
                            f"{account.user_id}: deactivation refused"
                        )
                except HarnessError as exc:
                    self.housekeeping.problems.append(f"{account.user_id}: {exc}")

        await asyncio.gather(*(deactivate(account) for account in self._accounts))
        self.housekeeping.users_deactivated.sort()
        await self.driver.close()
