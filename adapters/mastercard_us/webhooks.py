"""mastercard-us Connect webhooks, read into what they mean for the gateway. No I/O.

| Connect event                               | InboundEvent                                                        |
|---------------------------------------------|---------------------------------------------------------------------|
| added (or done) listing accounts            | accounts_added + added_account_refs; with the ACTIVE consent receipt |
|                                             | that covers those accounts, the awaiting consent becomes authorised |
| unableToConnect, institutionNotFound,       | connection_error: the aggregation status code's meaning and whether |
| invalidCredentials, any event with a `code` | retrying later may help (102, 500, 915, 916 may; the rest not)      |
| ping, started, adding, processing, …        | recorded, nothing else                                              |

Every event names the upstream customer (`ref_kind="customer"`): the gateway applies it to that customer's consent
awaiting the end user. A credentials problem (103, 108, 109) during a Connect session does not make a consent
`reauthentication_required`: the consent is still with the end user, who may try again in the same session, and an
authorised consent's lapse is learned from its receipt (refresh) or a data call's error, not from Connect.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from adapters.base import ConsentUpdate, InboundEvent
from adapters.mastercard.webhooks import added_account_refs, connect_event_id, connection_problem
from gateway.errors import MalformedRequest
from gateway.models.time import UTC, parse_upstream_time

# Events that may carry the accounts the end user shared (`done` normally carries none).
ACCOUNT_EVENTS = frozenset({"added", "done"})
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


@attrs.frozen
class ConnectEvent:
    event_id: str
    type: str
    customer_ref: str
    payload: dict[str, Any]
    body: dict[str, Any]
    account_refs: tuple[str, ...]  # the accounts an `added` (or `done`) event lists

    @property
    def adds_accounts(self) -> bool:
        return self.type in ACCOUNT_EVENTS and bool(self.account_refs)


def read_connect_event(body: Any) -> ConnectEvent:
    if not isinstance(body, dict):
        raise MalformedRequest("a Connect webhook must be a JSON object")
    event_type = body.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedRequest("a Connect webhook needs eventType")
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
    customer = body.get("customerId")
    customer_ref = "" if customer is None or isinstance(customer, (dict, list, bool)) else str(customer).strip()
    refs = added_account_refs(payload) if event_type in ACCOUNT_EVENTS else ()
    return ConnectEvent(event_id=connect_event_id(body, event_type), type=event_type, customer_ref=customer_ref,
                        payload=payload, body=body, account_refs=refs)


def _receipt_status(receipt: dict[str, Any]) -> str:
    return str((receipt.get("statusDetails") or {}).get("status", "")).upper()


def _receipt_accounts(receipt: dict[str, Any]) -> set[str]:
    return {str(account["id"]) for arrangement in receipt.get("institutions") or () if isinstance(arrangement, dict)
            for account in arrangement.get("accounts") or () if isinstance(account, dict) and "id" in account}


def covering_receipt(receipts: list[dict[str, Any]], account_refs: tuple[str, ...]) -> dict[str, Any] | None:
    """The newest ACTIVE consent receipt that covers every account the event lists, or None."""
    wanted = set(account_refs)
    found = [r for r in receipts if _receipt_status(r) == "ACTIVE" and r.get("consentReceiptId")
             and wanted <= _receipt_accounts(r)]
    return max(found, key=lambda r: parse_upstream_time(r.get("createdDate")) or _LONG_AGO, default=None)


def inbound_event(event: ConnectEvent, authorisation: ConsentUpdate | None = None) -> InboundEvent:
    """The event for the gateway; `authorisation` is what the covering receipt says, when there is one."""
    return InboundEvent(
        event_id=event.event_id, type=event.type, provider_ref=event.customer_ref, payload=event.body,
        ref_kind="customer", consent_update=authorisation if event.adds_accounts else None,
        accounts_added=event.adds_accounts, added_account_refs=event.account_refs,
        connection_error=connection_problem(event.type, event.payload),
    )
