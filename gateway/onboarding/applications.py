"""Application registration under the Australian CDR access models: which fields each model requires.

A CDR application is registered once per product with the provider (and the ACCC). What the provider needs depends
on how the partner takes part in the CDR: as an accredited data recipient using Mastercard as its outsourced
service provider (ADR_OSP), as Mastercard's CDR representative (CDR_REPRESENTATIVE), or under a business consumer
disclosure consent (BCDC). The validation layer checks a registration against this table before any upstream call,
naming every missing or out-of-place field.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ValidationFailed

ACCESS_MODELS = ("ADR_OSP", "CDR_REPRESENTATIVE", "BCDC")

# access model -> (required fields, optional fields), in the canonical field names.
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ADR_OSP": (("name", "legal_entity_name", "policy_url", "data_complaints_email", "software_id",
                 "organisation_id", "copyright_logo", "business_name", "from_email", "image"),
                ("description", "url", "reply_to_email")),
    "CDR_REPRESENTATIVE": (("name", "description", "url", "image"), ()),
    "BCDC": (("name", "description", "url", "image", "disclosure_type", "policy_url", "data_complaints_email"), ()),
}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$")
_KINDS = {"policy_url": "url", "url": "url", "data_complaints_email": "email", "from_email": "email",
          "reply_to_email": "email", "image": "image", "copyright_logo": "image"}
MAX_IMAGE_CHARS = 200_000


def _decodes(value: str) -> bool:
    try:
        base64.b64decode(value, validate=False)
    except binascii.Error:
        return False
    return len(value.replace("\n", "").replace("\r", "")) % 4 == 0


def _problem(value: str, kind: str | None) -> str | None:
    if kind == "url":
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            return "must be an absolute https URL"
    elif kind == "email":
        if not _EMAIL.fullmatch(value):
            return "must be an email address"
    elif kind == "image":
        if len(value) > MAX_IMAGE_CHARS or not _BASE64.fullmatch(value) or not _decodes(value):
            return f"must be a base64-encoded image of at most {MAX_IMAGE_CHARS} characters"
    elif not 1 <= len(value) <= 255:
        return "must be 1 to 255 characters long"
    return None


def check_registration(access_model: str, fields: dict[str, Any], *, configured_model: str) -> dict[str, str]:
    """The registration's fields, checked against its access model; raises ValidationFailed naming each problem."""
    errors: list[dict[str, str]] = []
    if access_model != configured_model:
        errors.append({"location": "body", "field": "access_model",
                       "message": f"the gateway's partner account is registered under {configured_model}; "
                                  f"applications must use that access model"})
        raise ValidationFailed("access_model: not the partner's access model", errors=errors)
    required, optional = FIELDS[access_model]
    given = {k: v for k, v in fields.items() if v is not None}
    for name in required:
        if name not in given:
            errors.append({"location": "body", "field": name, "message": f"required under {access_model}"})
    for name, value in given.items():
        if name not in required and name not in optional:
            errors.append({"location": "body", "field": name, "message": f"not part of a {access_model} registration"})
            continue
        problem = _problem(value, _KINDS.get(name))
        if problem is not None:
            errors.append({"location": "body", "field": name, "message": problem})
    if errors:
        raise ValidationFailed.of(errors)
    return given
