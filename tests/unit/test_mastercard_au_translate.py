"""adapters.mastercard_au.translate and the pure parts of adapters.mastercard_au.adapter (the ABN check and the
X-Signature verification).

Payloads are shaped like the provider's documentation (Consent Notifications Structure, Consent Fields, Connect and
report webhooks) and like what the embedded simulator sends (`sandbox_views.receipt_json`,
`sandbox_events.Notifier`, `sandbox_webhooks.signed_request`).
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import date, datetime, timezone
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from adapters.mastercard_au import translate as au
from adapters.mastercard_au.adapter import MastercardAUAdapter, abn_is_valid
from gateway.errors import MalformedRequest, Unauthenticated
from gateway.models import ConsentStatus, ReportStatus
from gateway.secrets import Secret

UTC = timezone.utc
TODAY = date(2025, 6, 15)

BASIC, DETAIL, TRANSACTIONS, CUSTOMER = ("bank:accounts.basic:read", "bank:accounts.detail:read",
                                         "bank:transactions:read", "common:customer.basic:read")


def _scope(scope_id: str) -> dict[str, str]:
    return {"id": scope_id, "name": {BASIC: "Account name, type and balance", DETAIL: "Account numbers and features",
                                     TRANSACTIONS: "Transaction details", CUSTOMER: "Name and occupation"}[scope_id]}


def _arrangement(institution_id: str, login_id: str, name: str, status: str, account_ids: list[str]) -> dict[str, Any]:
    account_status = "ACTIVE" if status == "ACTIVE" else "INACTIVE"
    return {
        "institutionId": institution_id, "institutionLoginId": login_id, "institutionName": name,
        "accounts": [{"id": a, "realAccountNumberLast4": a[-4:], "type": "transaction", "name": "Everyday",
                      "status": account_status} for a in account_ids],
        "createdDate": "2025-03-01T02:15:00Z",
        "statusDetails": {"status": status, "statusDate": "2025-03-01T02:15:00Z"},
        "accessPeriod": {"type": "timeframe", "startDate": "2025-03-01T02:15:00Z", "endDate": "2026-03-01T02:15:00Z"},
        "dataScopes": [_scope(BASIC), _scope(TRANSACTIONS)],
        "dataHandling": {"postUsageStorage": "deletion", "statement": "Your data is deleted when you stop sharing it"},
        "accountOwnerCategory": "INDIVIDUAL", "isBusinessConsumerStatement": "false",
    }


def receipt(**overrides: Any) -> dict[str, Any]:
    """A consent receipt as `sandbox_views.receipt_json` renders it (the provider's Consent Fields)."""
    body: dict[str, Any] = {
        "consentReceiptId": "9f3c2a51-7b64-4c1e-a0d2-5be1f0c4d8aa", "receiptVersion": 1,
        "customerId": "1035061300", "customerCategory": "INDIVIDUAL",
        "purpose": "Personal financial management",
        "purposeStatement": "to show your accounts and transactions in one place and help you budget",
        "partnerId": "2445583946651", "context": "partner",
        "allowedTrnxHistoryInDays": 365, "allowedTrnxHistorySinceDate": "2024-03-01T02:15:00Z",
        "createdDate": "2025-03-01T02:15:00Z",
        "statusDetails": {"status": "ACTIVE", "statusDate": "2025-03-01T02:15:00Z"},
        "dataScopes": [_scope(BASIC), _scope(DETAIL), _scope(TRANSACTIONS), _scope(CUSTOMER)],
        "accessPeriod": {"type": "timeframe", "startDate": "2025-03-01T02:15:00Z",
                         "endDate": "2026-03-01T02:15:00Z"},
        "institutions": [
            _arrangement("200003", "1687001", "FinBank Aus OAuth", "ACTIVE", ["11470001", "11470002"]),
            _arrangement("200010", "1687002", "Commonwealth Bank of Australia", "REVOKED", ["11470003"]),
        ],
    }
    body.update(overrides)
    return body


def notification(event_type: str = "INSTITUTIONS_REVOKED", **overrides: Any) -> dict[str, Any]:
    """A consent notification (the provider's Consent Notifications Structure, as `sandbox_events` builds it)."""
    body: dict[str, Any] = {
        "eventId": "ac7e616b-8bf1-43a9-9ed4-11d9da2550c8", "eventType": event_type, "eventContext": "CONSENT",
        "eventTime": "2025-06-15T03:04:05.678Z", "customerId": "1035061300",
        "payload": {
            "changes": {
                "summary": "Institutions revoked from the consent: Commonwealth Bank of Australia",
                "details": [{"consentReceiptId": "9f3c2a51-7b64-4c1e-a0d2-5be1f0c4d8aa", "institutionId": "200010",
                             "institutionLoginId": "1687002", "accountIds": ["11470003"]}],
            },
            "consent": receipt(),
        },
    }
    body.update(overrides)
    return body


# --- consent_terms --------------------------------------------------------------------------------------------------
def test_consent_terms_of_a_receipt() -> None:
    terms = au.consent_terms(receipt(), today=TODAY)
    assert terms == {
        "purpose": "Personal financial management",
        "data_scopes": [BASIC, DETAIL, TRANSACTIONS, CUSTOMER],
        "access_from": "2025-03-01T02:15:00+00:00",
        "access_until": "2026-03-01T02:15:00+00:00",
        "transactions_from": "2024-03-01",
        "institutions": [
            {"institution_id": "200003", "login_ref": "1687001", "status": "active", "name": "FinBank Aus OAuth"},
            {"institution_id": "200010", "login_ref": "1687002", "status": "revoked",
             "name": "Commonwealth Bank of Australia"},
        ],
    }


def test_consent_terms_scopes_are_deduplicated_in_order_and_junk_skipped() -> None:
    scopes = [_scope(TRANSACTIONS), _scope(BASIC), _scope(TRANSACTIONS), {"name": "no id"}, {"id": 7}, "bank:x",
              None, _scope(BASIC), _scope(CUSTOMER)]
    assert au.consent_terms(receipt(dataScopes=scopes), today=TODAY)["data_scopes"] == [TRANSACTIONS, BASIC, CUSTOMER]


def test_consent_terms_without_scopes() -> None:
    assert au.consent_terms(receipt(dataScopes=None), today=TODAY)["data_scopes"] == []
    body = receipt()
    del body["dataScopes"]
    assert au.consent_terms(body, today=TODAY)["data_scopes"] == []


def test_history_window_prefers_the_since_date() -> None:
    terms = au.consent_terms(receipt(allowedTrnxHistorySinceDate="2024-01-10T00:00:00Z",
                                     allowedTrnxHistoryInDays=30), today=TODAY)
    assert terms["transactions_from"] == "2024-01-10"


def test_history_window_since_date_with_an_offset_is_read_in_utc() -> None:
    # 08:00 in Sydney (+10:00) on 1 March is 22:00 UTC on 28 February.
    terms = au.consent_terms(receipt(allowedTrnxHistorySinceDate="2024-03-01T08:00:00+10:00"), today=TODAY)
    assert terms["transactions_from"] == "2024-02-29"


def test_history_window_from_days_when_no_since_date() -> None:
    body = receipt(allowedTrnxHistoryInDays=365)
    del body["allowedTrnxHistorySinceDate"]
    assert au.consent_terms(body, today=TODAY)["transactions_from"] == "2024-06-15"
    assert au.consent_terms(receipt(allowedTrnxHistorySinceDate=None, allowedTrnxHistoryInDays=0),
                            today=TODAY)["transactions_from"] == "2025-06-15"


def test_history_window_from_days_when_the_since_date_is_unreadable() -> None:
    terms = au.consent_terms(receipt(allowedTrnxHistorySinceDate="not a date", allowedTrnxHistoryInDays=90),
                             today=TODAY)
    assert terms["transactions_from"] == "2025-03-17"


@pytest.mark.parametrize("days", [None, -1, "365", 365.0, True, False])
def test_history_window_ignores_days_that_are_not_a_non_negative_integer(days: Any) -> None:
    terms = au.consent_terms(receipt(allowedTrnxHistorySinceDate=None, allowedTrnxHistoryInDays=days), today=TODAY)
    assert terms["transactions_from"] is None


@pytest.mark.parametrize("start, end, access_from, access_until", [
    ("2025-03-01T02:15:00Z", "2026-03-01T02:15:00Z", "2025-03-01T02:15:00+00:00", "2026-03-01T02:15:00+00:00"),
    ("2025-03-01T12:15:00+10:00", "2026-03-01T13:15:00+11:00", "2025-03-01T02:15:00+00:00",
     "2026-03-01T02:15:00+00:00"),
    ("2025-03-01T02:15:00.250Z", "2026-02-28T21:15:00-05:00", "2025-03-01T02:15:00.250000+00:00",
     "2026-03-01T02:15:00+00:00"),
    ("2025-03-01T02:15:00", None, "2025-03-01T02:15:00+00:00", None),  # naive: read as UTC
    (None, "garbage", None, None),
])
def test_access_period_is_read_as_utc(start: Any, end: Any, access_from: Any, access_until: Any) -> None:
    terms = au.consent_terms(receipt(accessPeriod={"type": "timeframe", "startDate": start, "endDate": end}),
                             today=TODAY)
    assert (terms["access_from"], terms["access_until"]) == (access_from, access_until)
    for value in (terms["access_from"], terms["access_until"]):
        if value is not None:
            assert datetime.fromisoformat(value).utcoffset().total_seconds() == 0


def test_access_period_missing() -> None:
    for body in (receipt(accessPeriod=None), {k: v for k, v in receipt().items() if k != "accessPeriod"}):
        terms = au.consent_terms(body, today=TODAY)
        assert terms["access_from"] is None and terms["access_until"] is None


def test_institutions_need_a_login_ref_and_default_to_active() -> None:
    bare = {"institutionId": 200012, "institutionLoginId": 1687005}  # ids as numbers, no status, no name
    no_login = {"institutionId": "200014", "institutionName": "ANZ", "statusDetails": {"status": "ACTIVE"}}
    expired = _arrangement("200014", "1687006", "ANZ", "EXPIRED", ["11470009"])
    terms = au.consent_terms(receipt(institutions=[bare, no_login, "junk", None, expired]), today=TODAY)
    assert terms["institutions"] == [
        {"institution_id": "200012", "login_ref": "1687005", "status": "active", "name": None},
        {"institution_id": "200014", "login_ref": "1687006", "status": "expired", "name": "ANZ"},
    ]


def test_consent_terms_of_an_empty_receipt() -> None:
    assert au.consent_terms({}, today=TODAY) == {"purpose": None, "data_scopes": [], "access_from": None,
                                                 "access_until": None, "transactions_from": None,
                                                 "institutions": []}


def test_consent_terms_does_not_change_the_receipt() -> None:
    body = receipt()
    before = copy.deepcopy(body)
    au.consent_terms(body, today=TODAY)
    au.active_account_refs(body)
    assert body == before


# --- active_account_refs, receipt_status ----------------------------------------------------------------------------
def test_active_account_refs_only_from_active_arrangements() -> None:
    assert au.active_account_refs(receipt()) == ["11470001", "11470002"]


def test_active_account_refs_across_arrangements_and_statuses() -> None:
    arrangements = [
        _arrangement("200003", "1", "A", "ACTIVE", ["1"]),
        _arrangement("200010", "2", "B", "EXPIRED", ["2"]),
        _arrangement("200012", "3", "C", "active", ["3"]),  # status read case-insensitively
        _arrangement("200014", "4", "D", "INACTIVE", ["4"]),
        {"institutionLoginId": "5", "accounts": [{"id": 5}, {"name": "no id"}, "junk"]},  # no status: active
        "junk",
    ]
    assert au.active_account_refs(receipt(institutions=arrangements)) == ["1", "3", "5"]


def test_active_account_refs_empty() -> None:
    assert au.active_account_refs({}) == []
    assert au.active_account_refs(receipt(institutions=None)) == []
    assert au.active_account_refs(receipt(institutions=[_arrangement("1", "1", "A", "REVOKED", ["9"])])) == []


@pytest.mark.parametrize("status, expected", [
    ("ACTIVE", ConsentStatus.AUTHORISED),
    ("active", ConsentStatus.AUTHORISED),
    ("EXPIRED", ConsentStatus.EXPIRED),
    ("expired", ConsentStatus.EXPIRED),
    ("REVOKED", ConsentStatus.REVOKED),
    ("INACTIVE", ConsentStatus.REVOKED),
    ("DELETED", ConsentStatus.REVOKED),
    ("Revoked", ConsentStatus.REVOKED),
    ("DRAFT", ConsentStatus.AWAITING_AUTHORISATION),
    ("SOMETHING_NEW", ConsentStatus.REVOKED),  # a status it does not know never allows data
])
def test_receipt_status(status: str, expected: ConsentStatus) -> None:
    assert au.receipt_status(receipt(statusDetails={"status": status, "statusDate": "2025-06-01T00:00:00Z"})) \
        is expected


def test_receipt_status_without_status_details_does_not_allow_data() -> None:
    assert au.receipt_status({}) is ConsentStatus.REVOKED
    assert au.receipt_status(receipt(statusDetails=None)) is ConsentStatus.REVOKED


# --- consent notifications ------------------------------------------------------------------------------------------
def test_notification_parts_of_a_revocation() -> None:
    body = notification()
    event_id, event_type, customer, details, consent = au.notification_parts(body)
    assert (event_id, event_type, customer) == ("ac7e616b-8bf1-43a9-9ed4-11d9da2550c8", "INSTITUTIONS_REVOKED",
                                                "1035061300")
    assert details == body["payload"]["changes"]["details"]
    assert consent == receipt()


@pytest.mark.parametrize("event_type", sorted(au.CONSENT_EVENT_TYPES))
def test_notification_parts_accepts_every_documented_type(event_type: str) -> None:
    assert au.notification_parts(notification(event_type))[1] == event_type


def test_notification_parts_of_a_draft_consent_created() -> None:
    # CONSENT_CREATED: no institution yet, details empty (as the simulator sends it).
    body = notification("CONSENT_CREATED", payload={
        "changes": {"summary": "Consent created", "details": []},
        "consent": receipt(statusDetails={"status": "DRAFT"}, institutions=[])})
    _, _, _, details, consent = au.notification_parts(body)
    assert details == [] and consent["statusDetails"]["status"] == "DRAFT"


def test_notification_parts_tolerates_missing_optional_parts() -> None:
    body = {"eventId": "e-1", "eventType": "INSTITUTIONS_EXPIRED", "payload": {}}
    assert au.notification_parts(body) == ("e-1", "INSTITUTIONS_EXPIRED", "", [], {})
    body = {"eventId": "e-2", "eventType": "INSTITUTIONS_EXPIRED", "customerId": 1035061300,
            "payload": {"changes": {"details": None}, "consent": "not an object"}}
    assert au.notification_parts(body) == ("e-2", "INSTITUTIONS_EXPIRED", "1035061300", [], {})


def test_notification_parts_drops_details_that_are_not_objects() -> None:
    detail = {"institutionLoginId": "1687002", "accountIds": ["11470003"]}
    body = notification(payload={"changes": {"details": [detail, "junk", 3, None]}, "consent": receipt()})
    assert au.notification_parts(body)[3] == [detail]


@pytest.mark.parametrize("body", [None, [], "a string", 42, b"{}"])
def test_notification_must_be_an_object(body: Any) -> None:
    with pytest.raises(MalformedRequest, match="must be a JSON object"):
        au.notification_parts(body)


@pytest.mark.parametrize("change", [
    {"eventId": None}, {"eventId": ""}, {"eventId": 123}, {"eventType": None}, {"eventType": 5},
    {"payload": None}, {"payload": []}, {"payload": "x"},
])
def test_notification_needs_id_type_and_payload(change: dict[str, Any]) -> None:
    with pytest.raises(MalformedRequest, match="needs eventId, eventType and payload"):
        au.notification_parts(notification(**change))


@pytest.mark.parametrize("missing", ["eventId", "eventType", "payload"])
def test_notification_missing_a_field(missing: str) -> None:
    body = notification()
    del body[missing]
    with pytest.raises(MalformedRequest, match="needs eventId, eventType and payload"):
        au.notification_parts(body)


@pytest.mark.parametrize("event_type", ["CONSENT_REVOKED", "institutions_revoked", "", "added"])
def test_notification_of_an_unknown_type(event_type: str) -> None:
    with pytest.raises(MalformedRequest, match="unknown consent notification type") as caught:
        au.notification_parts(notification(event_type))
    assert repr(event_type) in str(caught.value)
    assert caught.value.status == 400


@pytest.mark.parametrize("details", [{"accountIds": ["1"]}, "11470003", 7])
def test_notification_details_must_be_a_list(details: Any) -> None:
    with pytest.raises(MalformedRequest, match=r"payload\.changes\.details must be a list"):
        au.notification_parts(notification(payload={"changes": {"details": details}, "consent": receipt()}))


@pytest.mark.parametrize("changes", ["revoked", ["11470003"]])
def test_notification_changes_must_be_an_object(changes: Any) -> None:
    with pytest.raises(MalformedRequest):
        au.notification_parts(notification(payload={"changes": changes, "consent": receipt()}))


def test_notification_null_customer_id_is_empty() -> None:
    assert au.notification_parts(notification(customerId=None))[2] == ""


def test_changed_account_refs_dedupes_keeping_order_and_accepts_ints() -> None:
    details = [
        {"institutionLoginId": "1687002", "accountIds": ["11470003", 11470004]},
        {"institutionLoginId": "1687003", "accountIds": [11470005, "11470003", "11470004", None, {"id": 1}, 2.5]},
        {"institutionLoginId": "1687004"},
        {"institutionLoginId": "1687005", "accountIds": None},
    ]
    assert au.changed_account_refs(details) == ("11470003", "11470004", "11470005")


def test_changed_account_refs_of_no_details() -> None:
    assert au.changed_account_refs([]) == ()


def test_changed_account_refs_from_a_parsed_notification() -> None:
    _, _, _, details, _ = au.notification_parts(notification())
    assert au.changed_account_refs(details) == ("11470003",)


def test_changed_account_refs_does_not_split_a_string() -> None:
    assert au.changed_account_refs([{"accountIds": "5011"}]) in ((), ("5011",))


def test_changed_account_refs_with_a_scalar_account_ids() -> None:
    assert au.changed_account_refs([{"accountIds": 5011}]) in ((), ("5011",))


# --- reports --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("inProgress", ReportStatus.PENDING), ("in_progress", ReportStatus.PENDING), ("IN_PROGRESS", ReportStatus.PENDING),
    ("inprogress", ReportStatus.PENDING), ("generating", ReportStatus.PENDING), ("Generating", ReportStatus.PENDING),
    ("pending", ReportStatus.PENDING), ("PENDING", ReportStatus.PENDING),
    ("success", ReportStatus.READY), ("SUCCESS", ReportStatus.READY), ("done", ReportStatus.READY),
    ("Done", ReportStatus.READY), ("complete", ReportStatus.READY), ("COMPLETE", ReportStatus.READY),
    ("failure", ReportStatus.FAILED), ("FAILURE", ReportStatus.FAILED), ("failed", ReportStatus.FAILED),
    ("Failed", ReportStatus.FAILED), ("error", ReportStatus.FAILED), ("ERROR", ReportStatus.FAILED),
])
def test_report_status(value: str, expected: ReportStatus) -> None:
    assert au.report_status(value) is expected


@pytest.mark.parametrize("value", [None, "", "unknown", "ready", 0, "in progress"])
def test_report_status_unknown(value: Any) -> None:
    assert au.report_status(value) is None


def _utc_midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def test_report_body_voa() -> None:
    body = au.report_body(account_refs=("11470001", "11470002"), from_date=date(2025, 1, 1), interval_types=(),
                          report_type="voa")
    assert body == {"accountIds": "11470001 11470002", "fromDate": 1735689600}
    assert body["fromDate"] == _utc_midnight(date(2025, 1, 1))
    assert datetime.fromtimestamp(body["fromDate"], UTC) == datetime(2025, 1, 1, tzinfo=UTC)


def test_report_body_single_account_and_leap_day() -> None:
    body = au.report_body(account_refs=("11470001",), from_date=date(2024, 2, 29), interval_types=(),
                          report_type="cash_flow")
    assert body == {"accountIds": "11470001", "fromDate": 1709164800}


def test_report_body_without_accounts_or_from_date() -> None:
    assert au.report_body(account_refs=(), from_date=None, interval_types=(), report_type="voa") == {}
    assert au.report_body(account_refs=(), from_date=None, interval_types=(), report_type="cash_flow") == {}


def test_report_body_voi_defaults_interval_types() -> None:
    body = au.report_body(account_refs=(), from_date=None, interval_types=(), report_type="voi")
    assert body == {"intervalTypes": ["MONTHLY_CALENDAR"]}
    assert isinstance(body["intervalTypes"], list)


def test_report_body_voi_keeps_given_interval_types() -> None:
    body = au.report_body(account_refs=("1",), from_date=date(2024, 12, 31),
                          interval_types=("WEEKLY_CALENDAR", "ANNUALLY"), report_type="voi")
    assert body == {"accountIds": "1", "fromDate": 1735603200, "intervalTypes": ["WEEKLY_CALENDAR", "ANNUALLY"]}


@pytest.mark.parametrize("report_type", ["voa", "cash_flow"])
def test_report_body_interval_types_only_for_voi(report_type: str) -> None:
    body = au.report_body(account_refs=(), from_date=None, interval_types=("DAILY",), report_type=report_type)
    assert "intervalTypes" not in body


def test_report_tables() -> None:
    assert set(au.REPORT_TYPES) == {"voa", "voi", "cash_flow"}
    assert au.DEFAULT_INTERVAL_TYPES[0] in au.INTERVAL_TYPES
    assert au.PDF_REPORT_TYPES <= set(au.REPORT_TYPES)


# --- applications ---------------------------------------------------------------------------------------------------
def test_application_body_maps_every_canonical_field() -> None:
    fields = {name: f"value of {name}" for name in au.APPLICATION_FIELDS}
    body = au.application_body(fields)
    assert body == {
        "appName": "value of name", "appDescription": "value of description", "image": "value of image",
        "legalEntityName": "value of legal_entity_name", "appUrl": "value of url",
        "policyUrl": "value of policy_url", "dataComplaintsEmailAddress": "value of data_complaints_email",
        "copyrightLogo": "value of copyright_logo", "businessName": "value of business_name",
        "fromEmail": "value of from_email", "replyToEmail": "value of reply_to_email",
        "orgId": "value of organisation_id", "softwareId": "value of software_id",
        "disclosureType": "value of disclosure_type",
    }


def test_application_body_only_what_is_given() -> None:
    body = au.application_body({"name": "Budget Buddy", "description": "Budgeting", "url": "https://bb.example.com.au",
                                "image": "iVBORw0KGgo="})
    assert body == {"appName": "Budget Buddy", "appDescription": "Budgeting", "appUrl": "https://bb.example.com.au",
                    "image": "iVBORw0KGgo="}
    assert au.application_body({}) == {}


def test_scope_for_every_consent_checked_operation() -> None:
    assert set(au.SCOPE_FOR_OPERATION.values()) <= {BASIC, DETAIL, TRANSACTIONS, CUSTOMER}
    assert au.SCOPE_FOR_OPERATION["list_transactions"] == TRANSACTIONS


# --- ABN ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("abn", ["51824753556", "53004085616", "33102417032", "83914571673"])
def test_valid_abns(abn: str) -> None:
    assert abn_is_valid(abn)


@pytest.mark.parametrize("abn", [
    "51824753557", "51824753555", "61824753556", "53004085615", "15824753556",  # check digits wrong / swapped
    "5182475355", "518247535561", "", "5",  # wrong lengths
    "5182475355a", "51 824 753 556", "51-824-753-55", "+5182475355", " 51824753556", "51824753556\n", "5182475355.",
])
def test_invalid_abns(abn: str) -> None:
    assert not abn_is_valid(abn)


@pytest.mark.parametrize("abn", ["٥١٨٢٤٧٥٣٥٥٦", "²1824753556"], ids=["arabic-indic-digits", "superscript-two"])
def test_non_ascii_digits_are_not_an_abn(abn: str) -> None:
    assert abn_is_valid(abn) is False


def test_leading_zero_is_not_an_abn() -> None:
    assert not abn_is_valid("00000000019")


# --- X-Signature (Connect and report webhooks) ----------------------------------------------------------------------
PARTNER_SECRET = "au-partner-secret-for-unit-tests"


def _stub(secret: str = PARTNER_SECRET) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(partner_secret=Secret(secret)))


def _verify(headers: Any, body: bytes, secret: str = PARTNER_SECRET) -> None:
    MastercardAUAdapter._verify_partner_signature(_stub(secret), headers, body)


def _sign(data: bytes, secret: str = PARTNER_SECRET) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


CONNECT_EVENT = {"customerId": "1035061300", "eventType": "added", "eventId": "1704386596208-48edeceaf8f1169f7ea6dee2",
                 "payload": {"institutionId": 200003, "oauth": True, "receiptId": "9f3c2a51", "accounts": []},
                 "webhookData": {"loanId": "L-123"}}
REPORT_EVENT = {"eventName": "done", "id": "u7xg05hbybc4", "consumerId": "515909541562f11486e572f073ef5dce",
                "type": "voa", "status": "success", "customerId": 1035061300}


@pytest.mark.parametrize("event", [CONNECT_EVENT, REPORT_EVENT])
def test_signature_over_the_raw_bytes(event: dict[str, Any]) -> None:
    raw = json.dumps(event, indent=2).encode()  # what the simulator sends in "raw" mode
    _verify({"X-Signature": _sign(raw)}, raw)


@pytest.mark.parametrize("event", [CONNECT_EVENT, REPORT_EVENT])
def test_signature_over_the_compact_reserialisation(event: dict[str, Any]) -> None:
    # The provider's sample signs JSON.stringify(body): compact, keys in order, while the wire bytes are pretty.
    raw = json.dumps(event, indent=2).encode()
    compact = json.dumps(event, separators=(",", ":")).encode()
    assert raw != compact
    _verify({"X-Signature": _sign(compact)}, raw)


def test_signature_compact_with_non_ascii_like_json_stringify() -> None:
    event = {**CONNECT_EVENT, "webhookData": {"note": "Café – Sydney"}}
    raw = json.dumps(event, indent=2, ensure_ascii=False).encode()
    stringified = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()  # JSON.stringify, UTF-8
    _verify({"X-Signature": _sign(stringified)}, raw)


def test_signature_header_is_read_case_insensitively_and_trimmed() -> None:
    raw = orjson.dumps(REPORT_EVENT)
    _verify(CIMultiDict({"x-signature": _sign(raw)}), raw)
    _verify({"X-Signature": f"  {_sign(raw).upper()}  "}, raw)


def test_signature_of_a_non_json_body_over_its_bytes() -> None:
    raw = b"not json at all"
    _verify({"X-Signature": _sign(raw)}, raw)


@pytest.mark.parametrize("headers", [{}, {"X-Signature": ""}, {"X-Signature": "   "}, {"Event-Signature": "abc"}])
def test_missing_signature(headers: dict[str, str]) -> None:
    raw = orjson.dumps(REPORT_EVENT)
    with pytest.raises(Unauthenticated, match="no X-Signature"):
        _verify(headers, raw)


def test_forged_body_fails() -> None:
    raw = json.dumps(REPORT_EVENT, indent=2).encode()
    signature = _sign(raw)
    forged = json.dumps({**REPORT_EVENT, "status": "failure"}, indent=2).encode()
    with pytest.raises(Unauthenticated, match="does not match"):
        _verify({"X-Signature": signature}, forged)
    compact_signature = _sign(json.dumps(REPORT_EVENT, separators=(",", ":")).encode())
    with pytest.raises(Unauthenticated, match="does not match"):
        _verify({"X-Signature": compact_signature}, forged)


def test_signature_with_another_key_fails() -> None:
    raw = orjson.dumps(CONNECT_EVENT)
    with pytest.raises(Unauthenticated):
        _verify({"X-Signature": _sign(raw, "someone-elses-secret")}, raw)


@pytest.mark.parametrize("signature", ["deadbeef", "0" * 64, "not hex", _sign(b"")])
def test_arbitrary_signatures_fail(signature: str) -> None:
    with pytest.raises(Unauthenticated):
        _verify({"X-Signature": signature}, orjson.dumps(CONNECT_EVENT))


def test_forged_non_json_body_fails_as_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        _verify({"X-Signature": _sign(b"{}")}, b"\xff\xfe not json")


def test_signature_over_a_reordered_body_fails() -> None:
    # The compact form keeps the body's key order: a signature over another order is not the same body's.
    raw = orjson.dumps(REPORT_EVENT)
    reordered = orjson.dumps(dict(reversed(list(REPORT_EVENT.items()))))
    with pytest.raises(Unauthenticated):
        _verify({"X-Signature": _sign(reordered)}, raw)
