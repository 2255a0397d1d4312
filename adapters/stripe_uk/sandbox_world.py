"""The Stripe UK simulator's state: registered clients, account-access and payment consents, payments, codes and
tokens, seen JWT ids, the answers remembered for idempotency keys, and event subscriptions.

Two clocks, on purpose. Banking facts (consent dates, transactions, balances, consent expiry, payment dates) use the
injected `now`, so tests can pin the data. Token lifetimes, idempotency records and a payment's progress use the
monotonic clock (a test's short timeline must not depend on a pinned `now`), and JWT `iat`/`exp` claims are checked
against the wall clock, because the gateway signs its assertions with the real time.
"""
from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs

from adapters.stripe_uk.sandbox_data import ACCOUNTS, PSUS, Txn, generate_transactions

CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"
IDEMPOTENCY_TTL = 24 * 3600.0  # seconds an x-idempotency-key answer is kept


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
class PaymentConsent:
    """A domestic payment consent: the Initiation and Risk exactly as the TPP sent them (a payment must repeat them),
    and, once the PSU approved it, whose account pays."""
    consent_id: str
    client_id: str
    initiation: dict[str, Any]
    risk: dict[str, Any]
    created: datetime
    status: str  # AwaitingAuthorisation | Authorised | Consumed | Rejected
    status_updated: datetime
    authorisation: dict[str, Any] | None = None  # Data.Authorisation, echoed
    sca_support: dict[str, Any] | None = None  # Data.SCASupportData, echoed
    debtor_account_id: str | None = None
    psu_id: str | None = None

    def expired(self, now: datetime) -> bool:
        """Payment consents carry no ExpirationDateTime: they end by being consumed or rejected."""
        return False


Intent = Consent | PaymentConsent  # what an authorisation request's openbanking_intent_id names

PENDING = "Pending"
IN_PROCESS = "AcceptedSettlementInProcess"
COMPLETED = "AcceptedSettlementCompleted"
REJECTED = "Rejected"


@attrs.define
class Payment:
    """A submitted domestic payment. Its status is not stored but read off the timeline it was submitted with, so a
    test sees it move without anything running in the background: Pending until t1, then AcceptedSettlementInProcess
    until t2, then AcceptedSettlementCompleted; or Pending until t1 and then Rejected."""
    payment_id: str
    consent_id: str
    client_id: str
    initiation: dict[str, Any]
    created: datetime  # banking clock
    submitted_at: float  # monotonic
    timeline: tuple[float, float]
    rejected: bool

    def stage(self, age: float) -> tuple[str, float]:
        """The status `age` seconds after submission, and how many seconds after submission it began."""
        first, second = self.timeline
        if age < first:
            return PENDING, 0.0
        if self.rejected:
            return REJECTED, first
        return (IN_PROCESS, first) if age < second else (COMPLETED, second)

    def age(self) -> float:
        return time.monotonic() - self.submitted_at

    @property
    def status(self) -> str:
        return self.stage(self.age())[0]

    def status_since(self, age: float) -> datetime:
        """StatusUpdateDateTime: when the status of that moment began, on the banking clock."""
        return self.created + timedelta(seconds=self.stage(age)[1])


@attrs.define
class EventSubscription:
    """Where a TPP (one registered client) wants real-time event notifications, and which (None: every type the bank
    sends)."""
    subscription_id: str
    client_id: str
    callback_url: str
    version: str
    event_types: tuple[str, ...] | None


@attrs.define
class RememberedAnswer:
    """The first 201 answer given for an idempotency key, and the request body (as parsed JSON) it answered."""
    request: Any
    status: int
    body: bytes
    expires_at: float  # monotonic


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
        self.idempotency_ttl = IDEMPOTENCY_TTL
        self.clients: dict[str, Client] = {}
        self.consents: dict[str, Consent] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.payment_consents: dict[str, PaymentConsent] = {}
        self.payments: dict[str, Payment] = {}
        self.event_subscriptions: dict[str, EventSubscription] = {}
        # (client_id, operation, x-idempotency-key) -> the answer; insertion order is expiry order (one TTL)
        self.idempotency: dict[tuple[str, str, str], RememberedAnswer] = {}
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

    def set_status(self, consent: Intent, status: str) -> None:
        consent.status = status
        consent.status_updated = self.now()

    def intent(self, consent_id: Any) -> Intent | None:
        """The account-access or payment consent with this id (the two kinds share the authorisation flow); None for
        anything else, including a value that is not a string (a request object may carry any JSON there)."""
        if not isinstance(consent_id, str):
            return None
        return self.consents.get(consent_id) or self.payment_consents.get(consent_id)

    # --- payments ------------------------------------------------------------------------------------------------
    def add_payment_consent(self, client_id: str, data: dict[str, Any], risk: dict[str, Any]) -> PaymentConsent:
        now = self.now()
        consent = PaymentConsent(f"pdc-{uuid.uuid4().hex}", client_id, data["Initiation"], risk, now,
                                 "AwaitingAuthorisation", now, data.get("Authorisation"), data.get("SCASupportData"))
        self.payment_consents[consent.consent_id] = consent
        return consent

    def add_payment(self, consent: PaymentConsent, timeline: tuple[float, float], rejected: bool) -> Payment:
        """Submit the consent's payment: the consent is Consumed, the payment starts its timeline."""
        payment = Payment(f"dp-{uuid.uuid4().hex}", consent.consent_id, consent.client_id, consent.initiation,
                          self.now(), time.monotonic(), timeline, rejected)
        self.payments[payment.payment_id] = payment
        self.set_status(consent, "Consumed")
        return payment

    # --- event subscriptions -----------------------------------------------------------------------------------
    def add_event_subscription(self, client_id: str, callback_url: str, version: str,
                               event_types: tuple[str, ...] | None) -> EventSubscription:
        subscription = EventSubscription(f"es-{uuid.uuid4().hex}", client_id, callback_url, version, event_types)
        self.event_subscriptions[subscription.subscription_id] = subscription
        return subscription

    def subscriptions_of(self, client_id: str) -> list[EventSubscription]:
        return [s for s in self.event_subscriptions.values() if s.client_id == client_id]

    # --- idempotency ---------------------------------------------------------------------------------------------
    def remembered(self, scope: tuple[str, str, str]) -> RememberedAnswer | None:
        """The live answer remembered for (client_id, operation, key), forgetting those past their lifetime."""
        clock = time.monotonic()
        while self.idempotency:
            oldest = next(iter(self.idempotency))
            if self.idempotency[oldest].expires_at > clock:
                break
            del self.idempotency[oldest]
        found = self.idempotency.get(scope)
        if found is not None and found.expires_at <= clock:  # the TTL was shortened after it was stored
            del self.idempotency[scope]
            return None
        return found

    def remember(self, scope: tuple[str, str, str], request: Any, status: int, body: bytes) -> None:
        self.idempotency[scope] = RememberedAnswer(request, status, body, time.monotonic() + self.idempotency_ttl)

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
        """The client and everything issued to it: tokens, codes, account-access consents and event subscriptions.
        Its payment consents and payments stay, as a bank keeps its record of money moved (nobody can reach them
        without the client)."""
        self.clients.pop(client_id, None)
        for table in (self.access_tokens, self.refresh_tokens, self.codes, self.consents, self.event_subscriptions):
            for key in [k for k, v in table.items() if v.client_id == client_id]:
                del table[key]
