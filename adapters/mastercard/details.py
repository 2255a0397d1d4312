"""Account details and owners: payment coordinates (US ACH, AU BSB) and the account holder, from platform answers.

Coordinates are checked (ABA checksum, BSB format) before anyone could send money with them; a doubtful value is
a ProviderBadResponse, never passed on.
"""
from __future__ import annotations

import re
from typing import Any

from adapters.mastercard.region import MastercardRegion
from adapters.mastercard.translate import _bad, _text, _country
from gateway.errors import ProviderBadResponse
from gateway.models import AccountDetails, Owner, PaymentCoordinates, PostalAddress

_BSB_RE = re.compile(r"[0-9]{3}-[0-9]{3}")  # ASCII digits: \d also matches other scripts' digits
_ABA_RE = re.compile(r"[0-9]{9}")
_ACCOUNT_NUMBER_RE = re.compile(r"[0-9A-Za-z\-]{1,34}")


def is_valid_aba(routing: str) -> bool:
    """An ABA routing number: nine ASCII digits whose 3-7-1 weighted sum is a multiple of ten."""
    if not isinstance(routing, str) or not _ABA_RE.fullmatch(routing):
        return False
    digits = [ord(c) - 48 for c in routing]
    return sum(w * d for w, d in zip((3, 7, 1) * 3, digits)) % 10 == 0


def _account_number(region: MastercardRegion, value: Any) -> str:
    text = value.strip() if isinstance(value, str) else None
    if not text or not _ACCOUNT_NUMBER_RE.fullmatch(text):
        raise _bad(region, "an account number")
    return text


def _instructions(body: dict[str, Any]) -> list[dict[str, Any]]:
    rows = body.get("paymentInstructions", body.get("paymentInstruction"))
    if isinstance(rows, dict):
        rows = [rows]  # Thredd answers one instruction as an object
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _descriptor(instruction: dict[str, Any], kind: str) -> Any:
    for d in instruction.get("descriptors") or ():
        if isinstance(d, dict) and d.get("type") == kind:
            return d.get("value")
    return None


def _ach(region: MastercardRegion, account_number: Any, routing: Any) -> PaymentCoordinates:
    if not isinstance(routing, str) or not is_valid_aba(routing.strip()):
        raise ProviderBadResponse(f"{region.provider_id} sent a routing number that fails the ABA checksum; the "
                                  "gateway will not pass on doubtful payment details. Retrying will not help.")
    return PaymentCoordinates(scheme="us_ach", account_number=_account_number(region, account_number),
                              routing_number=routing.strip())


def _bsb(region: MastercardRegion, account_number: Any, bsb: Any) -> PaymentCoordinates:
    if not isinstance(bsb, str) or not _BSB_RE.fullmatch(bsb.strip()):
        raise ProviderBadResponse(f"{region.provider_id} sent a BSB that is not of the form 123-456; the gateway "
                                  "will not pass on doubtful payment details. Retrying will not help.")
    return PaymentCoordinates(scheme="au_bsb", account_number=_account_number(region, account_number),
                              bsb=bsb.strip())


def payment_coordinates(body: dict[str, Any], *, region: MastercardRegion, account_id: str) -> AccountDetails:
    """The account details answer: US ACH (v1 `{realAccountNumber, routingNumber}` or v3 `paymentInstruction`
    entries of type ach) or AU BSB (`paymentInstructions` of type moneyTransfer with a bsbNumber descriptor)."""
    if not isinstance(body, dict):
        raise _bad(region, "account details")
    found: list[PaymentCoordinates] = []
    if region.details_scheme == "us_ach":
        if "routingNumber" in body or "realAccountNumber" in body:
            found.append(_ach(region, body.get("realAccountNumber"), body.get("routingNumber")))
        for row in _instructions(body):
            if str(row.get("type", "")).lower() == "ach":
                found.append(_ach(region, row.get("accountNumber"), _descriptor(row, "routingNumber")))
    elif region.details_scheme == "au_bsb":
        for row in _instructions(body):
            if row.get("type") == "moneyTransfer":
                found.append(_bsb(region, row.get("accountNumber"), _descriptor(row, "bsbNumber")))
    unique = tuple(dict.fromkeys(found))
    if not unique:
        raise ProviderBadResponse(f"{region.provider_id} sent account details without payment coordinates; "
                                  "retrying will not help.")
    return AccountDetails(account_id=account_id, coordinates=unique)


# --- owner --------------------------------------------------------------------------------------------------------
def _address(raw: dict[str, Any]) -> PostalAddress:
    lines = tuple(t for t in (_text(raw.get(k)) for k in ("line1", "line2", "line3")) if t)
    if not lines and _text(raw.get("ownerAddress")):
        lines = (raw["ownerAddress"].strip(),)
    return PostalAddress(lines=lines, city=_text(raw.get("city")), region=_text(raw.get("state")),
                         postal_code=_text(raw.get("postalCode")), country=_country(raw.get("country"), None))


def _holder_name(holder: dict[str, Any]) -> str | None:
    name = _text(holder.get("ownerName"))
    if name:
        return name
    parts = [_text(holder.get(k)) for k in ("firstName", "middleName", "lastName", "suffix")]
    return " ".join(p for p in parts if p) or None


def owner(body: dict[str, Any], *, account_id: str) -> Owner:
    """The v3 owner answer (`holders` with names, addresses, emails, phones) or the v1 one (`ownerName`,
    `ownerAddress`)."""
    if not isinstance(body, dict):
        raise ProviderBadResponse("the provider sent an account owner the gateway cannot read")
    names: dict[str, None] = {}
    addresses: dict[PostalAddress, None] = {}
    emails: dict[str, None] = {}
    phones: dict[str, None] = {}
    holders = body.get("holders")
    if isinstance(holders, list):
        for holder in holders:
            if not isinstance(holder, dict):
                continue
            name = _holder_name(holder)
            if name:
                names[name] = None
            for raw in holder.get("addresses") or ():
                if isinstance(raw, dict):
                    address = _address(raw)
                    if address.lines or address.city or address.postal_code:
                        addresses[address] = None
            for raw in holder.get("emails") or ():
                email = _text(raw.get("email")) if isinstance(raw, dict) else None
                if email:
                    emails[email] = None
            for raw in holder.get("phones") or ():
                phone = _text(raw.get("phone")) if isinstance(raw, dict) else None
                if phone:
                    phones[phone] = None
    elif _text(body.get("ownerName")):
        names[body["ownerName"].strip()] = None
        if _text(body.get("ownerAddress")):
            addresses[PostalAddress(lines=(body["ownerAddress"].strip(),))] = None
    else:
        raise ProviderBadResponse("the provider sent an account owner the gateway cannot read; retrying will not "
                                  "help.")
    return Owner(account_id=account_id, names=tuple(names), addresses=tuple(addresses), emails=tuple(emails),
                 phones=tuple(phones))
