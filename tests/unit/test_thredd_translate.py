"""Thredd translation: request bodies, Finicity-shaped answers, the error table, webhook events."""
from __future__ import annotations

import orjson
import pytest

from adapters.thredd import translate
from gateway.errors import (
    AccountUnavailable,
    ConsentEndedUpstream,
    GatewayCredentialsRejected,
    GatewayRequestRejected,
    InstitutionNotSupported,
    MalformedRequest,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.ids import IdMinter
from gateway.models import AccountType, ConsentStatus


def test_register_body_sends_only_documented_fields() -> None:
    body = translate.register_body(redirect_uri="https://a.example/cb", hosted_in_mobile_app=False,
                                   application_id="app-1", customer_ref=None)
    assert body == {"redirect_uri": "https://a.example/cb", "is_hosted_in_mobile_app": False, "application_id": "app-1"}
    again = translate.register_body(redirect_uri="https://a.example/cb", hosted_in_mobile_app=True,
                                    application_id="app-1", customer_ref="1005")
    assert again["openbanking_customer_id"] == "1005" and again["is_hosted_in_mobile_app"] is True


def test_registration_answer() -> None:
    assert translate.registration({"openbanking_customer_id": "77", "link": "https://c.example/x", "request_id": "r"}) \
        == ("77", "https://c.example/x")
    for bad in (None, [], {"link": "https://x"}, {"openbanking_customer_id": "77", "link": "javascript:x"}):
        with pytest.raises(ProviderBadResponse):
            translate.registration(bad)


def test_accounts_and_details_read_as_finicity_shapes() -> None:
    body = {"request_id": "r", "count": 1, "accounts": [{
        "id": "5011700001", "number": "xx4321", "accountNumberDisplay": "4321", "name": "Checking", "type": "checking",
        "status": "active", "customerId": "77", "institutionId": "102105", "balance": 10.5, "currency": "USD"}]}
    [account] = translate.accounts(body, consent_id="con_1", ids=IdMinter(b"k", "t", "con_1"))
    assert account.provider == "thredd" and account.type is AccountType.CHECKING and account.masked_number.endswith("4321")
    details = translate.details({"request_id": "r", "paymentInstruction": {
        "type": "ach", "accountNumber": "9988776655", "descriptors": [{"type": "routingNumber", "value": "021000021"}]}},
        account_id="acc_1")
    [ach] = details.coordinates
    assert (ach.scheme, ach.account_number, ach.routing_number) == ("us_ach", "9988776655", "021000021")
    with pytest.raises(ProviderBadResponse):  # a routing number failing the ABA checksum is not passed on
        translate.details({"paymentInstruction": {"type": "ach", "accountNumber": "1", "descriptors": [
            {"type": "routingNumber", "value": "123456789"}]}}, account_id="acc_1")
    with pytest.raises(ProviderBadResponse):
        translate.accounts({"count": 0}, consent_id="con_1", ids=IdMinter(b"k", "t", "con_1"))


@pytest.mark.parametrize("status, code, cls, source", [
    (400, "INVALID_REQUEST", GatewayRequestRejected, "gateway"),
    (400, "MASTERCARD_REJECTED", ProviderRejected, "provider"),
    (401, "UNAUTHORISED", GatewayCredentialsRejected, "gateway"),
    (404, "CUSTOMER_NOT_FOUND", ConsentEndedUpstream, "caller"),
    (404, "ACCOUNT_NOT_FOUND", AccountUnavailable, "institution"),
    (404, "INSTITUTION_NOT_FOUND", InstitutionNotSupported, "institution"),
    (500, "INTERNAL_ERROR", ProviderUnavailable, "provider"),
    (503, None, ProviderUnavailable, "provider"),
    (401, None, GatewayCredentialsRejected, "gateway"),
    (429, None, ProviderRateLimited, "provider"),
    (418, None, ProviderRejected, "provider"),
])
def test_error_table(status: int, code: str | None, cls: type, source: str) -> None:
    body = orjson.dumps({"request_id": "r", "status": status, "code": code, "message": "x"}) if code else b"oops"
    error = translate.error_from_response(status, body, retry_after=3.0)
    assert type(error) is cls and error.source == source
    assert error.provider_code == (code or f"http_{status}")
    assert "x" != error.detail  # the caller sees our explanation, not the upstream's text
    assert error.retryable is (cls in (ProviderUnavailable, ProviderRateLimited))


def _event(**over: object) -> bytes:
    body = {"event_id": "e1", "event_code": 117, "event_name": "Open Banking Registration",
            "openbanking_customer_id": "77", "event_type": "done", "timestamp": "2026-01-01T00:00:00Z", "payload": {}}
    body.update(over)
    return orjson.dumps(body)


@pytest.mark.parametrize("kind, status", [("started", None), ("added", ConsentStatus.AUTHORISED),
                                          ("done", ConsentStatus.AUTHORISED),
                                          ("invalidCredentials", ConsentStatus.REAUTHENTICATION_REQUIRED),
                                          ("unableToConnect", None), ("somethingNew", None)])
def test_webhook_events(kind: str, status: ConsentStatus | None) -> None:
    event = translate.inbound_event(_event(event_type=kind))
    assert (event.event_id, event.provider_ref, event.type, event.consent_status) == ("e1", "77", kind, status)


@pytest.mark.parametrize("raw", [b"nope", b"[]", _event(event_code=118), _event(event_id=""),
                                 _event(openbanking_customer_id=None), _event(event_type=5)])
def test_unreadable_webhooks(raw: bytes) -> None:
    with pytest.raises(MalformedRequest):
        translate.inbound_event(raw)
