"""mastercard-us webhooks and report requests, without I/O: signatures, what each Connect and report event means
(consent, accounts added, connection problems, report status), event ids, and the report bodies sent upstream."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from adapters.base import CreateReportInput
from adapters.mastercard import webhooks as platform
from adapters.mastercard.reports import constraints, epoch_day, report_status
from adapters.mastercard.sandbox_webhooks import signed_request
from adapters.mastercard_us import webhooks as us
from adapters.mastercard_us.adapter import MastercardUSAdapter
from gateway.config import parse_config
from gateway.connectivity.client import UpstreamFactory
from gateway.errors import MalformedRequest, Unauthenticated, ValidationFailed
from gateway.models import ConsentStatus, ReportStatus
from gateway.observability import Metrics
from gateway.secrets import Secret
from gateway.store.records import CustomerRecord
from tests.conftest import local_raw_config

SECRET = "sandbox-partner-secret"
CUSTOMER = "1005061300"


def connect_body(event_type: str, payload: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"customerId": CUSTOMER, "eventType": event_type, "eventId": f"1700000000000-{event_type}",
            "payload": payload or {}, **extra}


def signed(body: dict[str, Any], mode: str = "compact", header: str = "X-Signature") -> tuple[bytes, CIMultiDict]:
    raw, headers = signed_request(body, SECRET, mode)
    return raw, CIMultiDict({header: headers["X-Signature"]})


@pytest.fixture
def adapter() -> MastercardUSAdapter:
    config = parse_config(local_raw_config(), source="test").adapters["mastercard-us"]
    return MastercardUSAdapter(config, UpstreamFactory(Metrics()), None, base_url="http://127.0.0.1:9",
                               public_url="https://gw.example")


def receipt(receipt_id: str, accounts: list[str], status: str = "ACTIVE", created: str = "2026-11-01T00:00:00Z",
            end: str = "2027-11-01T00:00:00Z") -> dict[str, Any]:
    return {"consentReceiptId": receipt_id, "createdDate": created, "statusDetails": {"status": status},
            "accessPeriod": {"startDate": created, "endDate": end},
            "institutions": [{"accounts": [{"id": a} for a in accounts]}]}


# --- signatures ---------------------------------------------------------------------------------------------------
def test_signatures_over_raw_bytes_or_the_compact_reserialisation():
    body = connect_body("started")
    for mode in ("compact", "raw"):
        raw, headers = signed(body, mode)
        platform.verify_partner_signature(Secret(SECRET), headers, raw)
    raw, headers = signed(body, header="X-Finicity-Signature")  # the older documentation's header name
    platform.verify_partner_signature(Secret(SECRET), headers, raw, header_names=("X-Signature",
                                                                                  "X-Finicity-Signature"))
    with pytest.raises(Unauthenticated):
        platform.verify_partner_signature(Secret(SECRET), headers, raw)  # AU reads X-Signature only
    with pytest.raises(Unauthenticated):
        platform.verify_partner_signature(Secret("another-secret"), signed(body)[1], raw)
    tampered = raw.replace(CUSTOMER.encode(), b"1005061301")
    with pytest.raises(Unauthenticated):
        platform.verify_partner_signature(Secret(SECRET), signed(body)[1], tampered)
    with pytest.raises(Unauthenticated):
        platform.verify_partner_signature(Secret(SECRET), CIMultiDict(), raw)
    garbage = b"not json"
    with pytest.raises(Unauthenticated):
        platform.verify_partner_signature(Secret(SECRET), CIMultiDict({"X-Signature": "00" * 32}), garbage)
    good = hmac.new(SECRET.encode(), garbage, hashlib.sha256).hexdigest().upper()  # case does not matter
    platform.verify_partner_signature(Secret(SECRET), CIMultiDict({"X-Signature": good}), garbage)


# --- reading Connect events -----------------------------------------------------------------------------------------
def test_event_ids_are_the_platforms_or_a_stable_content_hash():
    assert us.read_connect_event(connect_body("started")).event_id == "1700000000000-started"
    ping = {"eventType": "ping", "payload": {}}
    first, again = us.read_connect_event(ping), us.read_connect_event(json.loads(json.dumps(ping, indent=2)))
    assert first.event_id == again.event_id and first.event_id.startswith("ping:")  # a replay is a duplicate
    assert us.read_connect_event({"eventType": "ping", "payload": {"x": 1}}).event_id != first.event_id
    for bad in ([], {"payload": {}}, {"eventType": ""}, {"eventType": 7}):
        with pytest.raises(MalformedRequest):
            us.read_connect_event(bad)


def test_added_with_a_covering_receipt_authorises_and_announces_the_accounts():
    event = us.read_connect_event(connect_body("added", {"institutionId": "102105", "accounts": [
        {"id": "5011700000", "type": "checking"}, {"id": 5011700001}, {"id": "5011700000"}]}))
    assert event.adds_accounts and event.account_refs == ("5011700000", "5011700001")
    found = us.covering_receipt([receipt("old", ["5011700000", "5011700001"], created="2026-01-01T00:00:00Z"),
                                 receipt("partial", ["5011700000"], created="2026-11-20T00:00:00Z"),
                                 receipt("revoked", ["5011700000", "5011700001"], status="INACTIVE",
                                         created="2026-11-21T00:00:00Z"),
                                 receipt("new", ["5011700000", "5011700001", "9"], created="2026-11-02T00:00:00Z")],
                                event.account_refs)
    assert found is not None and found["consentReceiptId"] == "new"
    assert us.covering_receipt([receipt("partial", ["5011700000"])], event.account_refs) is None
    from adapters.base import ConsentUpdate

    update = ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref="new")
    inbound = us.inbound_event(event, update)
    assert (inbound.ref_kind, inbound.provider_ref, inbound.type) == ("customer", CUSTOMER, "added")
    assert inbound.consent_update == update and inbound.consent_status is None
    assert inbound.accounts_added and inbound.added_account_refs == ("5011700000", "5011700001")
    assert inbound.connection_error is None and inbound.payload["eventType"] == "added"
    unmatched = us.inbound_event(event)  # no receipt covers them (yet): accounts added, the consent waits
    assert unmatched.accounts_added and unmatched.consent_update is None


@pytest.mark.parametrize("event_type", ["ping", "started", "adding", "processing", "institutionSupported", "done"])
def test_progress_events_change_nothing(event_type):
    inbound = us.inbound_event(us.read_connect_event(connect_body(event_type, {"institutionId": "102105"})))
    assert inbound.consent_update is None and inbound.consent_status is None and not inbound.accounts_added
    assert inbound.connection_error is None and inbound.report_ref is None


@pytest.mark.parametrize("event_type, payload, code, retryable, words", [
    ("unableToConnect", {"institutionId": "102105", "code": 915}, "915", True, "repairing"),
    ("unableToConnect", {"code": "916"}, "916", True, "repairing"),
    ("unableToConnect", {"code": 102}, "102", True, "could not be reached"),
    ("unableToConnect", {"code": 500}, "500", True, "unexpectedly"),
    ("unableToConnect", {"code": 903}, "903", False, "support must repair"),
    ("unableToConnect", {"code": 920}, "920", False, "not supported"),
    ("unableToConnect", {"code": 929}, "929", False, "not supported"),
    ("unableToConnect", {"code": 4242}, "4242", False, "(code 4242)"),
    ("unableToConnect", {}, "unableToConnect", False, "not possible"),
    ("institutionNotFound", {"query": "not a real institution"}, "institutionNotFound", False, "does not know"),
    ("invalidCredentials", {}, "103", False, "credentials"),
    ("started", {"code": 108}, "108", False, "must act"),
])
def test_connection_problems(event_type, payload, code, retryable, words):
    inbound = us.inbound_event(us.read_connect_event(connect_body(event_type, payload)))
    problem = inbound.connection_error
    assert problem is not None and (problem.code, problem.retryable) == (code, retryable)
    assert words in problem.message
    # A failure during a Connect session leaves the consent with the end user (see the module's table).
    assert inbound.consent_status is None and inbound.consent_update is None


# --- report events ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, status, expected", [
    ("inProgress", "inProgress", ReportStatus.PENDING), ("generating", None, ReportStatus.PENDING),
    ("done", "success", ReportStatus.READY), ("failed", "failure", ReportStatus.FAILED),
])
def test_report_events(name, status, expected):
    body = {"eventName": name, "id": "u4hstnnak45g", "consumerId": "c0ffee", "type": "voa", "customerId": 1005061300}
    if status:
        body["status"] = status
    inbound = platform.report_event(body)
    assert (inbound.report_ref, inbound.report_status, inbound.event_id) == ("u4hstnnak45g", expected,
                                                                            f"report:u4hstnnak45g:{name}")
    assert (inbound.ref_kind, inbound.provider_ref) == ("customer", "1005061300")
    with pytest.raises(MalformedRequest):
        platform.report_event({"eventName": name})
    assert report_status("SUCCESS") is ReportStatus.READY and report_status("nonsense") is None


# --- receive_webhook ---------------------------------------------------------------------------------------------
async def test_receive_webhook_reads_what_the_simulator_sends(adapter):
    raw, headers = signed(connect_body("unableToConnect", {"institutionId": "102105", "code": 915},
                                       webhookData={"ref": "x"}))
    inbound = await adapter.receive_webhook("connect", headers, raw)
    assert inbound.connection_error is not None and inbound.connection_error.code == "915"
    assert inbound.connection_error.retryable and inbound.provider_ref == CUSTOMER
    with pytest.raises(Unauthenticated):
        await adapter.receive_webhook("connect", CIMultiDict({"X-Signature": "00" * 32}), raw)
    bad = b'{"eventType": '
    with pytest.raises(MalformedRequest):
        await adapter.receive_webhook("connect", CIMultiDict({"X-Signature": hmac.new(
            SECRET.encode(), bad, hashlib.sha256).hexdigest()}), bad)

    report = {"eventName": "done", "id": "r1", "consumerId": "c", "type": "voa", "status": "success",
              "customerId": int(CUSTOMER)}
    for channel in ("reports", "connect"):  # Connect sends the reports it generates to its own webhook
        inbound = await adapter.receive_webhook(channel, signed(report)[1], signed(report)[0])
        assert (inbound.report_ref, inbound.report_status) == ("r1", ReportStatus.READY)


async def test_added_asks_the_platform_which_receipt_covers_the_accounts(adapter, monkeypatch):
    asked: list[str] = []

    async def receipts(customer_ref: str) -> list[dict[str, Any]]:
        asked.append(customer_ref)
        return [receipt("rcpt-1", ["5011700000"], end="2027-11-01T00:00:00Z")]

    monkeypatch.setattr(adapter, "_receipts", receipts)
    body = connect_body("added", {"accounts": [{"id": "5011700000"}], "institutionId": "102105"})
    inbound = await adapter.receive_webhook("connect", signed(body)[1], signed(body)[0])
    assert asked == [CUSTOMER]
    update = inbound.consent_update
    assert update is not None and (update.status, update.provider_ref) == (ConsentStatus.AUTHORISED, "rcpt-1")
    assert update.upstream["account_refs"] == ["5011700000"] and update.expires_at.year == 2027
    done = connect_body("done")
    await adapter.receive_webhook("connect", signed(done)[1], signed(done)[0])
    assert asked == [CUSTOMER]  # a plain `done` needs no upstream call


# --- report requests ----------------------------------------------------------------------------------------------
def test_report_bodies_and_paths(adapter):
    customer = CustomerRecord(id="cus_1", tenant="dev", provider="mastercard-us", provider_ref=CUSTOMER,
                              type="testing", external_ref="someone", created_at=None)  # type: ignore[arg-type]
    data = CreateReportInput(type="voi", from_date=date(2026, 1, 2), account_refs=("5011700000", "5011700001"))
    assert adapter.report_body(data) == {"accountIds": "5011700000 5011700001", "fromDate": 1767312000}
    assert epoch_day(date(2026, 1, 2)) == 1767312000 and constraints(account_refs=(), from_date=None) == {}
    assert [adapter.report_segment(customer, CreateReportInput(type=t)) for t in ("voa", "voi", "cash_flow")] == [
        "voa", "voi", "cashFlowPersonal"]
    assert adapter._report_path(customer, type("R", (), {"provider_ref": "ab/c"})()) == \
        f"/decisioning/v3/customers/{CUSTOMER}/reports/ab%2Fc"
    with pytest.raises(ValidationFailed) as refused:
        adapter.validate_report(customer, CreateReportInput(type="voi", interval_types=("MONTHLY_CALENDAR",)))
    assert refused.value.errors[0]["field"] == "interval_types"
    adapter.validate_report(customer, CreateReportInput(type="cash_flow", from_date=date(2026, 1, 2)))
    with pytest.raises(ValidationFailed) as refused:
        adapter.validate_report(customer, CreateReportInput(type="voa", from_date=date(2999, 1, 1)))
    assert refused.value.errors[0]["field"] == "from_date"
    assert adapter.connect_webhook() == "https://gw.example/webhooks/mastercard-us/connect"
    assert orjson.loads(orjson.dumps(adapter.report_body(CreateReportInput(type="voa")))) == {}
