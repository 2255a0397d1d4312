"""The Stripe UK simulator's state: registered clients, account-access consents, codes and tokens, seen JWT ids.

Two clocks, on purpose. Banking facts (consent dates, transactions, balances, consent expiry) use the injected `now`,
so tests can pin the data. Token lifetimes use the monotonic clock, and JWT `iat`/`exp` claims are checked against
the wall clock, because the gateway signs its assertions with the real time.
"""
from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from adapters.stripe_uk.sandbox_data import ACCOUNTS, PSUS, Txn, generate_transactions

CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"


@attrs.define
class Client:
    client_id: str
    issued_at: int
    software_id: str
    org_id: str
    jwks_endpoint: str
    auth_method: str  # private_key_jwt | tls_client_auth
    subject_dn: str | None  # tls_client_auth_subject_dn
    redirect_uris: list[str]
    grant_types: list[str]
    scopes: set[str]
    registration: dict[str, Any]  # the OBClientRegistration1 answer


@attrs.define
class Consent:
    consent_id: str
    client_id: str
    permissions: list[str]
    created: datetime
    status: str  # AwaitingAuthorisation | Authorised | Rejected | Revoked
    status_updated: datetime
    expiration: datetime | None = None
    transaction_from: datetime | None = None
    transaction_to: datetime | None = None
    account_ids: list[str] = attrs.Factory(list)
    psu_id: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expiration is not None and self.expiration <= now


@attrs.define
class AccessToken:
    value: str
    client_id: str
    grant: str  # client_credentials | authorization_code
    scope: str
    cert_thumbprint: str  # SHA-256 of the client certificate it is bound to (RFC 8705)
    expires_at: float  # monotonic
    consent_id: str | None = None


@attrs.define
class RefreshToken:
    value: str
    client_id: str
    consent_id: str
    scope: str
    expires_at: float  # monotonic


@attrs.define
class AuthCode:
    value: str
    client_id: str
    consent_id: str
    redirect_uri: str
    nonce: str
    scope: str
    expires_at: float  # monotonic
    used: bool = False
    tokens: list[str] = attrs.Factory(list)  # access and refresh tokens issued for it


class World:
    def __init__(self, *, seed: int, now: Callable[[], datetime], access_token_ttl: float,
                 refresh_token_ttl: float, code_ttl: float) -> None:
        self.seed = seed
        self.now = now
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.code_ttl = code_ttl
        self.clients: dict[str, Client] = {}
        self.consents: dict[str, Consent] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self._jtis: dict[str, float] = {}  # "<what>:<iss>:<jti>" -> wall-clock time it may be forgotten
        self._transactions: dict[str, list[Txn]] = {}

    # --- data ----------------------------------------------------------------------------------------------
    def transactions(self, account_id: str) -> list[Txn]:
        if account_id not in self._transactions:
            self._transactions[account_id] = generate_transactions(ACCOUNTS[account_id], self.seed, self.now())
        return self._transactions[account_id]

    @staticmethod
    def psu_accounts(psu_id: str) -> list[str]:
        return list(PSUS[psu_id].account_ids)

    # --- replay protection -------------------------------------------------------------------------------------
    def first_use(self, what: str, issuer: str, jti: str, exp: float) -> bool:
        """True the first time (what, issuer, jti) is seen while it could still be valid."""
        wall = time.time()
        self._jtis = {k: v for k, v in self._jtis.items() if v > wall}
        key = f"{what}:{issuer}:{jti}"
        if key in self._jtis:
            return False
        self._jtis[key] = max(float(exp), wall) + 60.0
        return True

    # --- consents ------------------------------------------------------------------------------------------------
    def add_consent(self, client_id: str, permissions: list[str], expiration: datetime | None,
                    transaction_from: datetime | None, transaction_to: datetime | None) -> Consent:
        now = self.now()
        consent = Consent(f"aac-{uuid.uuid4()}", client_id, permissions, now, "AwaitingAuthorisation", now,
                          expiration, transaction_from, transaction_to)
        self.consents[consent.consent_id] = consent
        return consent

    def set_status(self, consent: Consent, status: str) -> None:
        consent.status = status
        consent.status_updated = self.now()

    # --- tokens --------------------------------------------------------------------------------------------------
    def issue_access_token(self, client_id: str, grant: str, scope: str, cert_thumbprint: str,
                           consent_id: str | None = None) -> AccessToken:
        token = AccessToken(secrets.token_urlsafe(32), client_id, grant, scope, cert_thumbprint,
                            time.monotonic() + self.access_token_ttl, consent_id)
        self.access_tokens[token.value] = token
        return token

    def issue_refresh_token(self, client_id: str, consent_id: str, scope: str) -> RefreshToken:
        token = RefreshToken(secrets.token_urlsafe(40), client_id, consent_id, scope,
                             time.monotonic() + self.refresh_token_ttl)
        self.refresh_tokens[token.value] = token
        return token

    def issue_code(self, client_id: str, consent_id: str, redirect_uri: str, nonce: str, scope: str) -> AuthCode:
        code = AuthCode(secrets.token_urlsafe(24), client_id, consent_id, redirect_uri, nonce, scope,
                        time.monotonic() + self.code_ttl)
        self.codes[code.value] = code
        return code

    def revoke(self, values: list[str]) -> None:
        for value in values:
            self.access_tokens.pop(value, None)
            self.refresh_tokens.pop(value, None)

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens.values():
            token.expires_at = float("-inf")

    def remove_client(self, client_id: str) -> None:
        """The client and everything issued to it: tokens, codes and consents."""
        self.clients.pop(client_id, None)
        for table in (self.access_tokens, self.refresh_tokens, self.codes, self.consents):
            for key in [k for k, v in table.items() if v.client_id == client_id]:
                del table[key]
