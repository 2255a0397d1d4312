"""The hub's state: AIS consents, payment consents, payments, SCA tickets and the codes the redirects carry.

Payment statuses move on the monotonic clock (a test's short timeline must not depend on a pinned `now`); consent
validity uses the injected `now`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import orjson

AIS = "ais"


@attrs.define
class AisConsent:
    consent_request_id: str
    aspsp_id: str
    permissions: list[str]
    requested_accounts: list[str] | None  # resource ids the TPP named, or None (all)
    valid_until: datetime
    tpp_redirect_uri: str
    ticket: str
    state: str
    created_at: datetime
    status: str = "awaitingAuthorisation"  # -> authorised (PSU) -> valid (exchanged) | rejected | terminatedByTpp
    consent_id: str | None = None
    account_ids: list[str] = attrs.Factory(list)

    def allows(self, permission: str) -> bool:
        return permission == "accounts" or "allPSD2" in self.permissions or permission in self.permissions


@attrs.define
class PaymentConsent:
    consent_request_id: str
    consent_id: str
    aspsp_id: str
    type: str  # domestic | sepa | cross-border
    payments: dict[str, Any]
    tpp_redirect_uri: str
    ticket: str
    state: str
    debtor_account_id: str | None  # named by the TPP, or chosen by the PSU
    status: str = "awaitingAuthorisation"  # -> authorised | rejected; -> consumed when its payment exists
    payment_id: str | None = None


@attrs.define
class Payment:
    payment_id: str
    consent_request_id: str
    consent_id: str
    aspsp_id: str
    type: str
    submitted_at: float  # monotonic
    timeline: tuple[float, float, float]
    rejected: bool

    def status(self, clock: float | None = None) -> tuple[str, str | None]:
        """(ISO 20022 status, statusReasonCode) now."""
        elapsed = (time.monotonic() if clock is None else clock) - self.submitted_at
        t1, t2, t3 = self.timeline
        if self.rejected:
            return ("RJCT", "AM04") if elapsed >= t1 else ("RCVD", None)
        if elapsed >= t3:
            return "ACSC", None
        if elapsed >= t2:
            return "ACSP", None
        if elapsed >= t1:
            return "ACTC", None
        return "RCVD", None


@attrs.frozen
class Grant:
    """What an approve redirect's `code` stands for."""
    flow: str  # "ais" or the payment type
    consent_request_id: str
    aspsp_id: str


@attrs.frozen
class Redirect:
    """What the authorization string said."""
    code: str | None
    state: str | None
    error: str | None


def parse_authorization(text: str) -> Redirect:
    text = text.strip()
    if "://" in text:
        text = urlsplit(text).query
    text = text.lstrip("?")
    params = dict(parse_qsl(text, keep_blank_values=True))
    return Redirect(params.get("code") or None, params.get("state") or None, params.get("error") or None)


class World:
    def __init__(self, *, now: Callable[[], datetime]) -> None:
        self.now = now
        self.consents: dict[str, AisConsent] = {}  # by consentRequestId
        self.ais_by_consent_id: dict[str, AisConsent] = {}
        self.payment_consents: dict[str, PaymentConsent] = {}  # by consentRequestId
        self.pis_by_consent_id: dict[str, PaymentConsent] = {}
        self.payments: dict[str, Payment] = {}
        self.tickets: dict[str, tuple[str, str]] = {}  # ticket -> (flow, consentRequestId)
        self.used_tickets: set[str] = set()
        self.states: dict[str, tuple[str, str]] = {}  # state -> (flow, consentRequestId)
        self.codes: dict[str, Grant] = {}
        self._offset_key = secrets.token_bytes(32)

    # --- consents --------------------------------------------------------------------------------------------
    def new_ais_consent(self, **fields: Any) -> AisConsent:
        consent = AisConsent(consent_request_id=str(uuid.uuid4()), ticket=secrets.token_urlsafe(18),
                             state=secrets.token_urlsafe(12), created_at=self.now(), **fields)
        self.consents[consent.consent_request_id] = consent
        self.tickets[consent.ticket] = (AIS, consent.consent_request_id)
        self.states[consent.state] = (AIS, consent.consent_request_id)
        return consent

    def new_payment_consent(self, **fields: Any) -> PaymentConsent:
        consent = PaymentConsent(consent_request_id=str(uuid.uuid4()), consent_id="pc-" + secrets.token_hex(12),
                                 ticket=secrets.token_urlsafe(18), state=secrets.token_urlsafe(12), **fields)
        self.payment_consents[consent.consent_request_id] = consent
        self.pis_by_consent_id[consent.consent_id] = consent
        self.tickets[consent.ticket] = (consent.type, consent.consent_request_id)
        self.states[consent.state] = (consent.type, consent.consent_request_id)
        return consent

    def issue_code(self, flow: str, consent_request_id: str, aspsp_id: str) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(flow, consent_request_id, aspsp_id)
        return code

    def validate_ais(self, consent: AisConsent) -> str:
        """The consent's id once exchanged (made on the first exchange)."""
        if consent.consent_id is None:
            consent.consent_id = "aisc-" + secrets.token_hex(12)
            consent.status = "valid"
            self.ais_by_consent_id[consent.consent_id] = consent
        return consent.consent_id

    def ais_status(self, consent: AisConsent) -> str:
        if consent.status == "valid" and consent.valid_until <= self.now():
            return "expired"
        return consent.status

    # --- payments --------------------------------------------------------------------------------------------
    def new_payment(self, consent: PaymentConsent, timeline: tuple[float, float, float], rejected: bool) -> Payment:
        payment = Payment("pay-" + secrets.token_hex(12), consent.consent_request_id, consent.consent_id,
                          consent.aspsp_id, consent.type, time.monotonic(), timeline, rejected)
        self.payments[payment.payment_id] = payment
        consent.payment_id = payment.payment_id
        consent.status = "consumed"
        return payment

    # --- transaction paging ----------------------------------------------------------------------------------
    def make_offset(self, cursor: dict[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps(cursor)).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.new(self._offset_key, payload, hashlib.sha256).digest()[:12])
        return (payload + b"." + mac).decode("ascii")

    def read_offset(self, offset: str) -> dict[str, Any] | None:
        payload, _, mac = offset.encode("ascii", "replace").partition(b".")
        expected = base64.urlsafe_b64encode(hmac.new(self._offset_key, payload, hashlib.sha256).digest()[:12])
        if not payload or not hmac.compare_digest(mac, expected):
            return None
        try:
            cursor = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            return None
        return cursor if isinstance(cursor, dict) else None
