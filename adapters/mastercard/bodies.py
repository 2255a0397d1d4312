"""What the gateway sends the platform: request bodies and query parameters, only with fields its spec allows.

Caller input that the platform would refuse is refused here first, as a caller error naming the field.
"""
from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Any

from adapters.base import CreateCustomerInput
from adapters.mastercard.region import MastercardRegion
from gateway.errors import ValidationFailed

USERNAME_RE = re.compile(r"[A-Za-z0-9!@.#$%&*_+\-]{6,255}")


def transactions_params(*, from_date: date, to_date: date, start: int, limit: int, include_pending: bool,
                        sort: str) -> dict[str, str]:
    """Query parameters for the transactions call: the whole of both days, in UTC epoch seconds."""
    if from_date > to_date:
        raise ValueError("from_date is after to_date")
    if start < 1 or not 1 <= limit <= 1000:
        raise ValueError("start must be ≥ 1 and limit within 1..1000")
    if sort not in ("asc", "desc"):
        raise ValueError("sort must be asc or desc")
    return {
        "fromDate": str(calendar.timegm(from_date.timetuple())),
        "toDate": str(calendar.timegm(to_date.timetuple()) + 86399),
        "start": str(start),
        "limit": str(limit),
        "sort": sort,
        "includePending": "true" if include_pending else "false",
    }


def validate_username(value: Any) -> str | None:
    """Why `value` cannot be a platform customer username, or None when it can."""
    if not isinstance(value, str):
        return "must be a string"
    if not 6 <= len(value) <= 255:
        return "must be 6 to 255 characters long"
    if not USERNAME_RE.fullmatch(value):
        return "may contain only letters, digits and ! @ . # $ % & * _ - +"
    return None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors=[{"location": "body", "field": field, "message": message}])


def customer_body(data: CreateCustomerInput, application_id: str | None) -> dict[str, Any]:
    """The NewCustomer body: username (the caller's external_ref) and the optional fields that are set."""
    reason = validate_username(data.external_ref)
    if reason is not None:
        raise _invalid("external_ref", reason)
    body: dict[str, Any] = {"username": data.external_ref}
    for key, value in (("firstName", data.first_name), ("lastName", data.last_name), ("email", data.email)):
        if value:
            body[key] = value
    if data.phone:
        phone = re.sub(r"[\s()]", "", data.phone)
        if len(phone) > 15:
            raise _invalid("phone", "must be at most 15 characters without spaces and brackets for this provider")
        body["phone"] = phone
    if application_id:
        body["applicationId"] = application_id
    return body


def connect_body(*, partner_id: str, customer_ref: str, redirect_uri: str | None, webhook_url: str | None,
                 institution_id: str | None, language: str | None, from_date_epoch: int | None,
                 region: MastercardRegion | None = None) -> dict[str, Any]:
    """The Connect URL body. With `institution_id` it is the Lite body (`/connect/v2/generate/lite`), which
    has no `fromDate`; without, the full one (`/connect/v2/generate`)."""
    body: dict[str, Any] = {"partnerId": partner_id, "customerId": customer_ref}
    if institution_id is not None:
        if not (isinstance(institution_id, str) and institution_id.isascii() and institution_id.isdigit()):
            raise _invalid("institution_id", "is not an institution of this provider")
        body["institutionId"] = int(institution_id)
    if redirect_uri:
        body["redirectUri"] = redirect_uri
    if webhook_url:
        body["webhook"] = webhook_url
        body["webhookContentType"] = "application/json"
    if language:
        primary = language.split("-", 1)[0].lower()
        supported = region.connect_languages if region is not None else frozenset({"es", "fr"})
        if primary != "en":
            if primary not in supported:
                raise _invalid("language", f"must be one of {', '.join(['en', *sorted(supported)])} for this provider")
            body["language"] = primary
    if from_date_epoch is not None and institution_id is None:
        if isinstance(from_date_epoch, bool) or not 10**9 <= int(from_date_epoch) < 10**10:
            raise ValueError("fromDate must be epoch seconds with 10 digits")
        body["fromDate"] = int(from_date_epoch)
    return body
