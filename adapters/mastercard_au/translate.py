"""mastercard-au payloads ⇄ canonical: CDR consent terms, consent notifications, reports, applications. No I/O.

What the platform shares with the US deployment (accounts, transactions, balances, details, owner) is translated in
`adapters.mastercard.translate`; this module holds what only the Australian deployment has.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from gateway.errors import MalformedRequest
from gateway.models import ConsentStatus, ReportStatus
from gateway.models.time import UTC, parse_upstream_time

# The CDR data scope each canonical data operation needs (CDR data language standards).
SCOPE_FOR_OPERATION: dict[str, str] = {
    "list_accounts": "bank:accounts.basic:read",
    "get_balances": "bank:accounts.basic:read",
    "get_live_balances": "bank:accounts.basic:read",
    "get_account_details": "bank:accounts.detail:read",
    "list_transactions": "bank:transactions:read",
    "get_account_owner": "common:customer.basic:read",
}

# canonical report type -> (generation path segment, the type the platform reports it as)
REPORT_TYPES: dict[str, tuple[str, str]] = {
    "voa": ("voa", "voa"),
    "voi": ("voi", "voi"),
    "cash_flow": ("cashFlowBusiness", "cfrb"),
}
# Report types the platform renders as PDF as well as JSON.
PDF_REPORT_TYPES = frozenset({"voa", "cash_flow"})
INTERVAL_TYPES = (
    "DAILY", "WEEKLY_CALENDAR", "WEEKLY_ROLLING_7", "BI_WEEKLY_CALENDAR", "BI_WEEKLY_ROLLING_14",
    "SEMI_MONTHLY_CALENDAR", "MONTHLY_CALENDAR", "MONTHLY_ROLLING_30", "QUARTERLY_CALENDAR", "QUARTERLY_ROLLING_90",
    "ANNUALLY", "HISTORICALLY",
)
DEFAULT_INTERVAL_TYPES = ("MONTHLY_CALENDAR",)
MAX_INTERVAL_TYPES = 2

_REPORT_STATUS = {
    "inprogress": ReportStatus.PENDING, "generating": ReportStatus.PENDING, "pending": ReportStatus.PENDING,
    "success": ReportStatus.READY, "done": ReportStatus.READY, "complete": ReportStatus.READY,
    "failure": ReportStatus.FAILED, "failed": ReportStatus.FAILED, "error": ReportStatus.FAILED,
}

# Connect's status codes in a redirect result: why the end user came back without a consent.
CONNECT_CODES: dict[str, str] = {
    "100": "the end user left Connect",
    "401": "Connect refused the session as unauthorised",
    "500": "Connect failed unexpectedly",
    "1403": "the institution's sign-in popup was blocked",
    "1412": "Connect was embedded incorrectly",
    "1440": "the end user was signed out of Connect after 5 minutes of inactivity",
    "10039": "the Connect link was tampered with",
}

# canonical application field -> the platform's
APPLICATION_FIELDS: dict[str, str] = {
    "name": "appName", "description": "appDescription", "image": "image", "legal_entity_name": "legalEntityName",
    "url": "appUrl", "policy_url": "policyUrl", "data_complaints_email": "dataComplaintsEmailAddress",
    "copyright_logo": "copyrightLogo", "business_name": "businessName", "from_email": "fromEmail",
    "reply_to_email": "replyToEmail", "organisation_id": "orgId", "software_id": "softwareId",
    "disclosure_type": "disclosureType",
}


def _status(node: Any) -> str:
    return str(((node or {}).get("statusDetails") or {}).get("status", "")).upper()


def consent_terms(receipt: dict[str, Any], *, today: date) -> dict[str, Any]:
    """The terms of a CDR consent receipt, as stored with the consent and shown to callers (ConsentTerms)."""
    access = receipt.get("accessPeriod") or {}
    history_from: date | None = None
    since = parse_upstream_time(receipt.get("allowedTrnxHistorySinceDate"))
    if since is not None:
        history_from = since.date()
    else:
        days = receipt.get("allowedTrnxHistoryInDays")
        if isinstance(days, int) and not isinstance(days, bool) and days >= 0:
            history_from = date.fromordinal(today.toordinal() - days)
    scopes: list[str] = []
    for scope in receipt.get("dataScopes") or []:
        if isinstance(scope, dict) and isinstance(scope.get("id"), str) and scope["id"] not in scopes:
            scopes.append(scope["id"])
    institutions = []
    for arrangement in receipt.get("institutions") or []:
        if not isinstance(arrangement, dict) or "institutionLoginId" not in arrangement:
            continue
        institutions.append({
            "institution_id": str(arrangement.get("institutionId", "")),
            "login_ref": str(arrangement["institutionLoginId"]),
            "status": _status(arrangement).lower() or "active",
            "name": arrangement.get("institutionName"),
        })
    start, end = parse_upstream_time(access.get("startDate")), parse_upstream_time(access.get("endDate"))
    return {
        "purpose": receipt.get("purpose"),
        "data_scopes": scopes,
        "access_from": start.isoformat() if start else None,
        "access_until": end.isoformat() if end else None,
        "transactions_from": history_from.isoformat() if history_from else None,
        "institutions": institutions,
    }


def active_account_refs(receipt: dict[str, Any]) -> list[str]:
    """Upstream ids of the accounts under the receipt's arrangements that are still active."""
    refs: list[str] = []
    for arrangement in receipt.get("institutions") or []:
        if isinstance(arrangement, dict) and _status(arrangement) in ("", "ACTIVE"):
            refs.extend(str(a["id"]) for a in arrangement.get("accounts") or [] if isinstance(a, dict) and "id" in a)
    return refs


def receipt_status(receipt: dict[str, Any]) -> ConsentStatus:
    """ACTIVE allows data; DRAFT is still with the end user; anything else (REVOKED, EXPIRED, a status the gateway
    does not know) does not allow data."""
    status = _status(receipt)
    if status == "ACTIVE":
        return ConsentStatus.AUTHORISED
    if status in ("DRAFT", "PENDING"):
        return ConsentStatus.AWAITING_AUTHORISATION
    if status == "EXPIRED":
        return ConsentStatus.EXPIRED
    return ConsentStatus.REVOKED


# --- consent notifications ------------------------------------------------------------------------------------------
CONSENT_EVENT_TYPES = frozenset({"CONSENT_CREATED", "INSTITUTIONS_ADDED", "INSTITUTIONS_REVOKED",
                                 "INSTITUTIONS_EXPIRED"})
ENDING_EVENT_TYPES = {"INSTITUTIONS_REVOKED": ConsentStatus.REVOKED, "INSTITUTIONS_EXPIRED": ConsentStatus.EXPIRED}


def notification_parts(body: Any) -> tuple[str, str, str, list[dict[str, Any]], dict[str, Any]]:
    """(event id, event type, customer id, change details, consent receipt) of a consent notification."""
    if not isinstance(body, dict):
        raise MalformedRequest("a consent notification must be a JSON object")
    event_id, event_type = body.get("eventId"), body.get("eventType")
    payload = body.get("payload")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not isinstance(payload,
                                                                                                          dict):
        raise MalformedRequest("a consent notification needs eventId, eventType and payload")
    if event_type not in CONSENT_EVENT_TYPES:
        raise MalformedRequest(f"unknown consent notification type {event_type!r}")
    changes = payload.get("changes") or {}
    if not isinstance(changes, dict):
        raise MalformedRequest("payload.changes must be an object")
    details = changes.get("details") or []
    if not isinstance(details, list):
        raise MalformedRequest("payload.changes.details must be a list")
    consent = payload.get("consent") if isinstance(payload.get("consent"), dict) else {}
    customer = body.get("customerId")
    return (event_id, event_type, "" if customer is None else str(customer),
            [d for d in details if isinstance(d, dict)], consent)


def changed_account_refs(details: list[dict[str, Any]]) -> tuple[str, ...]:
    refs: list[str] = []
    for detail in details:
        ids = detail.get("accountIds")
        if isinstance(ids, (str, int)) and not isinstance(ids, bool):
            ids = [ids]  # one id given bare
        if isinstance(ids, list):
            refs.extend(str(a) for a in ids if isinstance(a, (str, int)) and not isinstance(a, bool))
    return tuple(dict.fromkeys(refs))


# --- reports --------------------------------------------------------------------------------------------------------
def report_status(value: Any) -> ReportStatus | None:
    return _REPORT_STATUS.get(str(value or "").replace("_", "").lower())


def report_body(*, account_refs: tuple[str, ...], from_date: date | None, interval_types: tuple[str, ...],
                report_type: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if account_refs:
        body["accountIds"] = " ".join(account_refs)
    if from_date is not None:
        body["fromDate"] = int(datetime(from_date.year, from_date.month, from_date.day, tzinfo=UTC).timestamp())
    if report_type == "voi":
        body["intervalTypes"] = list(interval_types or DEFAULT_INTERVAL_TYPES)
    return body


def application_body(fields: dict[str, str]) -> dict[str, str]:
    return {APPLICATION_FIELDS[name]: value for name, value in fields.items()}
