"""Thredd payloads ⇄ canonical. Accounts and ACH details are Finicity-shaped, so the Mastercard translation reads
them; what is Thredd's own is the request bodies, the error body and the webhook events."""
from __future__ import annotations

from typing import Any

import orjson

from adapters.base import ConnectionProblem, InboundEvent
from adapters.mastercard import details as finicity_details
from adapters.mastercard import translate as finicity
from adapters.mastercard.region import MastercardRegion
from gateway.errors import (
    AccountUnavailable,
    ConsentEndedUpstream,
    GatewayCredentialsRejected,
    GatewayError,
    GatewayRequestRejected,
    InstitutionNotSupported,
    MalformedRequest,
    ProviderBadResponse,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.ids import IdMinter
from gateway.models import Account, AccountDetails, ConsentStatus

PROVIDER = "thredd"
# How the Finicity-shaped parts of Thredd's answers read: US accounts, USD, ACH details. The header and path
# fields describe Mastercard's own API and are not used for Thredd.
SHAPES = MastercardRegion(provider_id=PROVIDER, country="US", currency="USD", app_key_header="client-id",
                          app_token_header="", transactions_path="", details_path="", details_scheme="us_ach")

# Thredd error code → (canonical error, message). Anything else falls back on the HTTP status.
ERRORS: dict[str, tuple[type[GatewayError], str]] = {
    "INVALID_REQUEST": (GatewayRequestRejected, "Thredd found the gateway's request invalid; this is a gateway "
                                                "defect and retrying will not help."),
    "MASTERCARD_REJECTED": (ProviderRejected, "Mastercard, behind Thredd, refused the request; retrying it "
                                              "unchanged will not help."),
    "UNAUTHORISED": (GatewayCredentialsRejected, "Thredd refused the gateway's client id; an operator must fix the "
                                                 "configuration. Retrying will not help."),
    "CUSTOMER_NOT_FOUND": (ConsentEndedUpstream, "Thredd no longer knows this customer: the end user revoked the "
                                                 "consent or it was removed. Connect the customer again."),
    "ACCOUNT_NOT_FOUND": (AccountUnavailable, "Thredd no longer has this account; the end user may need to "
                                              "connect it again."),
    "INSTITUTION_NOT_FOUND": (InstitutionNotSupported, "Thredd does not know this institution."),
    "INTERNAL_ERROR": (ProviderUnavailable, "Thredd failed; retry later."),
}

# Connect events (webhook code 117) and what each means for the consent.
EVENT_STATUS: dict[str, ConsentStatus | None] = {
    "started": None,
    "adding": None,
    "added": ConsentStatus.AUTHORISED,
    "done": ConsentStatus.AUTHORISED,
    "invalidCredentials": ConsentStatus.REAUTHENTICATION_REQUIRED,
    "institutionNotFound": None,
    "unableToConnect": None,
}


def register_body(*, redirect_uri: str, hosted_in_mobile_app: bool, application_id: str,
                  customer_ref: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"redirect_uri": redirect_uri, "is_hosted_in_mobile_app": hosted_in_mobile_app,
                            "application_id": application_id}
    if customer_ref is not None:
        body["openbanking_customer_id"] = customer_ref
    return body


def registration(body: Any) -> tuple[str, str]:
    """(customer id, Connect link) from a /register answer."""
    if not isinstance(body, dict):
        raise ProviderBadResponse("Thredd answered the registration with something other than an object")
    customer, link = body.get("openbanking_customer_id"), body.get("link")
    if not isinstance(customer, str) or not customer or not isinstance(link, str) or \
            not link.startswith(("https://", "http://")):
        raise ProviderBadResponse("Thredd answered the registration without a customer id or Connect link")
    return customer, link


def accounts(body: Any, *, consent_id: str, ids: IdMinter) -> list[Account]:
    if not isinstance(body, dict) or not isinstance(body.get("accounts"), list):
        raise ProviderBadResponse("Thredd sent an account list the gateway cannot read")
    return finicity.accounts(body, region=SHAPES, consent_id=consent_id, ids=ids)


def details(body: Any, *, account_id: str) -> AccountDetails:
    return finicity_details.payment_coordinates(body, region=SHAPES, account_id=account_id)


def error_from_response(status: int, body: bytes, *, retry_after: float | None = None) -> GatewayError:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    code = parsed.get("code") if isinstance(parsed, dict) and isinstance(parsed.get("code"), str) else None
    if code in ERRORS:
        cls, message = ERRORS[code]
        return cls(message, provider_code=code, provider_body=parsed)
    provider_code = code or f"http_{status}"
    if status >= 500:
        return ProviderUnavailable(f"Thredd failed (HTTP {status}); retry later.", provider_code=provider_code,
                                   provider_body=parsed, retry_after=retry_after)
    if status == 401:
        return GatewayCredentialsRejected(ERRORS["UNAUTHORISED"][1], provider_code=provider_code)
    if status == 404:
        return ConsentEndedUpstream(ERRORS["CUSTOMER_NOT_FOUND"][1], provider_code=provider_code)
    if status == 429:
        from gateway.errors import ProviderRateLimited

        return ProviderRateLimited("Thredd is rate limiting the gateway; retry later.", provider_code=provider_code,
                                   retry_after=retry_after)
    return ProviderRejected(f"Thredd refused the request (HTTP {status}).", provider_code=provider_code,
                            provider_body=parsed)


def inbound_event(body: bytes) -> InboundEvent:
    """A Connect webhook (event code 117, Open Banking Registration)."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("the webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise MalformedRequest("the webhook body is not an object")
    event_id, customer, kind = event.get("event_id"), event.get("openbanking_customer_id"), event.get("event_type")
    if event.get("event_code") != 117:
        raise MalformedRequest(f"unexpected event code {event.get('event_code')!r}; only 117 is sent by Thredd")
    if not (isinstance(event_id, str) and event_id and isinstance(customer, str) and customer and isinstance(kind, str)):
        raise MalformedRequest("the webhook lacks event_id, openbanking_customer_id or event_type")
    status = EVENT_STATUS.get(kind)
    reason = None
    if status is ConsentStatus.REAUTHENTICATION_REQUIRED:
        reason = "the institution refused the end user's credentials; connect again"
    return InboundEvent(event_id=event_id, type=kind, provider_ref=customer, payload=event, consent_status=status,
                        reason=reason, accounts_added=kind == "added", connection_error=CONNECTION_PROBLEMS.get(kind))


# Connect events that mean the end user's institution could not be connected (canonical `connection.error`).
CONNECTION_PROBLEMS: dict[str, ConnectionProblem] = {
    "unableToConnect": ConnectionProblem(
        "unableToConnect", "the institution could not be reached; the end user may try again later", True),
    "institutionNotFound": ConnectionProblem(
        "institutionNotFound", "the end user's institution is not supported; it cannot be connected", False),
    "invalidCredentials": ConnectionProblem(
        "invalidCredentials", "the institution refused the end user's credentials; they must connect again", False),
}
