"""Connect and report webhooks of the Mastercard platform (US and AU): who may send them, and what they say. No I/O.

Both regions sign Connect and report webhooks with the partner secret: `X-Signature` (the US platform's older
documentation names it `X-Finicity-Signature`), hex HMAC-SHA256. Comparisons are constant-time.

A Connect event is `{customerId, eventType, eventId, payload, webhookData?}`; a report event sent to a report's
`callbackUrl` is `{eventName, id, consumerId, type, status, customerId}`. This module reads both into the parts an
`InboundEvent` needs; which consent an event authorises is the adapter's business (it may ask the platform).
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from adapters.base import ConnectionProblem, InboundEvent
from adapters.mastercard.reports import report_status
from gateway.errors import MalformedRequest, Unauthenticated
from gateway.secrets import Secret

SIGNATURE_HEADER = "X-Signature"
# What a signature covers: the bytes sent ("raw") or their compact re-serialisation ("compact", the provider's sample).
SIGNATURE_MODES = ("raw", "compact")


def verify_partner_signature(partner_secret: Secret, headers: Any, body: bytes, *,
                             header_names: tuple[str, ...] = (SIGNATURE_HEADER,)) -> None:
    """X-Signature is HMAC-SHA256 keyed with the partner secret. The provider's published sample hashes the
    re-serialised JSON (JSON.stringify of the parsed body), not the bytes on the wire; the raw bytes are checked
    first and the compact re-serialisation second, so either way a forged body fails. (A re-serialisation can differ
    from the provider's in corner cases, e.g. 1.0 where JSON.stringify writes 1; the raw check covers a provider
    that signs what it sends.) The first of `header_names` present is the signature."""
    given = next((str(headers.get(name, "")).strip().lower() for name in header_names if headers.get(name)), "")
    if not given:
        raise Unauthenticated("the webhook carries no X-Signature")
    key = partner_secret.reveal().encode()
    if hmac.compare_digest(given, hmac.new(key, body, hashlib.sha256).hexdigest()):
        return
    try:
        compact = orjson.dumps(orjson.loads(body))
    except orjson.JSONDecodeError:
        compact = b""
    if compact and hmac.compare_digest(given, hmac.new(key, compact, hashlib.sha256).hexdigest()):
        return
    raise Unauthenticated("the webhook's X-Signature does not match its body")


def json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("the webhook body is not JSON") from None


def connect_event_id(body: dict[str, Any], event_type: str) -> str:
    """The Connect event's id; `ping` has none, so it is named by its content (a replay is still a duplicate)."""
    raw_id = body.get("eventId")
    return str(raw_id) if raw_id else f"{event_type}:{hashlib.sha256(orjson.dumps(body)).hexdigest()[:32]}"


def report_event(body: Any) -> InboundEvent:
    """A report's progress, as its `callbackUrl` (or the Connect webhook, for reports Connect generated) hears it."""
    if not isinstance(body, dict) or not body.get("id") or not body.get("eventName"):
        raise MalformedRequest("a report webhook needs id and eventName")
    name = str(body["eventName"])
    status = report_status(body.get("status")) or report_status(name)
    return InboundEvent(event_id=f"report:{body['id']}:{name}", type=name, provider_ref=str(body.get("customerId", "")),
                        payload=body, ref_kind="customer", report_ref=str(body["id"]), report_status=status)


# --- Connect events: what went wrong connecting ---------------------------------------------------------------------
_UNAVAILABLE = "the institution is unavailable"
_BROKEN = "the provider's connection to the institution is broken and its support must repair it"
_REPAIRING = "the provider is repairing its connection to the institution; try again later"
_NOT_SUPPORTED = "the institution is not supported for this data"
# aggregation status code -> (what went wrong, whether trying again later may work without the end user acting)
CONNECTION_CODES: dict[str, tuple[str, bool]] = {
    "102": ("the institution's website could not be reached", True),
    "103": ("the institution refused the end user's credentials", False),
    "108": ("the end user must act at the institution (accept terms, answer prompts) before connecting", False),
    "109": ("the end user must update their password or security details at the institution", False),
    "500": ("the provider failed unexpectedly while connecting", True),
    **{str(code): (_BROKEN if code in (900, 901, 902, 903, 904, 905, 906, 907, 910) else _UNAVAILABLE, False)
       for code in range(900, 913)},
    "913": ("the institution reports the account closed", False),
    "914": ("the institution no longer finds the account", False),
    "915": (_REPAIRING, True),
    "916": (_REPAIRING, True),
    **{str(code): (_NOT_SUPPORTED, False) for code in range(920, 930)},
    "931": ("the institution asks the end user for a one-time passcode", False),
}
# Connect event types that mean connecting failed, with their own code when the payload carries none.
FAILURE_EVENTS: dict[str, tuple[str, str, bool]] = {
    "unableToConnect": ("unableToConnect", "the institution is unavailable and a connection is not possible", False),
    "institutionNotFound": ("institutionNotFound", "the end user looked for an institution the provider does not "
                                                   "know", False),
    "invalidCredentials": ("103", CONNECTION_CODES["103"][0], False),
}


def _code(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text if text.isascii() and text.isdigit() else None


def connection_problem(event_type: str, payload: dict[str, Any]) -> ConnectionProblem | None:
    """What a Connect event says went wrong connecting to the institution, or None. The payload's `code` (an
    aggregation status code) decides the message and whether retrying may help; the event type decides when the
    payload has no code the gateway knows."""
    code = _code(payload.get("code"))
    known = CONNECTION_CODES.get(code) if code is not None else None
    if event_type not in FAILURE_EVENTS and known is None:
        return None
    if known is not None:
        assert code is not None
        return ConnectionProblem(code=code, message=known[0], retryable=known[1])
    name, message, retryable = FAILURE_EVENTS[event_type]
    return ConnectionProblem(code=code or name, message=message if code is None else f"{message} (code {code})",
                             retryable=retryable)


def added_account_refs(payload: dict[str, Any]) -> tuple[str, ...]:
    """The upstream ids of the accounts an `added` (or `done`) event lists, in order, without repeats."""
    refs: list[str] = []
    for account in payload.get("accounts") or ():
        raw = account.get("id") if isinstance(account, dict) else account
        if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw).strip():
            refs.append(str(raw).strip())
    return tuple(dict.fromkeys(refs))
