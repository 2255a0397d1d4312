"""Canonical request objects: the shape of every write, checked field by field before anything happens."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from gateway.models import CustomerType
from gateway.validation.body import FieldValueError

PERMISSIONS = ("accounts", "balances", "transactions", "details", "owner")
_PROVIDER = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,20}$")


def _optional(check):  # type: ignore[no-untyped-def]
    def run(inst, attribute, value):  # type: ignore[no-untyped-def]
        if value is not None:
            check(inst, attribute, value)
    return run


def _length(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def check(_inst, _attr, value: str) -> None:
        if not lo <= len(value) <= hi:
            raise FieldValueError(_attr.name, f"must be {lo} to {hi} characters long")
    return check


def _matches(pattern: re.Pattern[str], what: str):  # type: ignore[no-untyped-def]
    def check(_inst, attr, value: str) -> None:
        if not pattern.fullmatch(value):
            raise FieldValueError(attr.name, f"must be {what}")
    return check


def _redirect_uri(_inst, attr, value: str) -> None:
    try:
        _check_redirect_uri(value)
    except ValueError as exc:
        raise FieldValueError(attr.name, str(exc)) from None


def _check_redirect_uri(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("must use https (plain http is accepted for localhost only)")
    if parts.fragment:
        raise ValueError("must not contain a fragment")
    if len(value) > 2000:
        raise ValueError("must be at most 2000 characters long")


def _permissions(_inst, attr, value: tuple[str, ...]) -> None:
    try:
        _check_permissions(value)
    except ValueError as exc:
        raise FieldValueError(attr.name, str(exc)) from None


def _check_permissions(value: tuple[str, ...]) -> None:
    unknown = [p for p in value if p not in PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission(s) {', '.join(unknown)}; allowed: {', '.join(PERMISSIONS)}")
    if not value:
        raise ValueError("at least one permission is required")
    if len(set(value)) != len(value):
        raise ValueError("permissions must not repeat")


@attrs.frozen
class CreateCustomerRequest:
    external_ref: str = attrs.field(validator=_length(1, 255))
    provider: str | None = attrs.field(default=None, validator=_optional(_matches(_PROVIDER, "a provider id")))
    region: str | None = attrs.field(default=None, validator=_optional(_length(2, 8)))
    type: CustomerType = CustomerType.TESTING
    first_name: str | None = attrs.field(default=None, validator=_optional(_length(1, 100)))
    last_name: str | None = attrs.field(default=None, validator=_optional(_length(1, 100)))
    email: str | None = attrs.field(default=None, validator=_optional(_matches(_EMAIL, "an email address")))
    phone: str | None = attrs.field(default=None, validator=_optional(_matches(_PHONE, "a phone number")))


@attrs.frozen
class CreateConsentRequest:
    redirect_uri: str = attrs.field(validator=_redirect_uri)
    customer_id: str | None = attrs.field(default=None, validator=_optional(_length(4, 64)))
    provider: str | None = attrs.field(default=None, validator=_optional(_matches(_PROVIDER, "a provider id")))
    institution_id: str | None = attrs.field(default=None, validator=_optional(_length(1, 64)))
    permissions: tuple[str, ...] = attrs.field(default=PERMISSIONS, validator=_permissions)
    language: str | None = attrs.field(default=None, validator=_optional(_matches(re.compile(r"^[a-z]{2}(-[A-Z]{2})?$"),
                                                                                 "a language tag such as en or en-US")))
    # Connect the same end user again (e.g. after reauthentication_required) under a new consent.
    previous_consent_id: str | None = attrs.field(default=None, validator=_optional(_length(4, 64)))


@attrs.frozen
class CompleteConsentRequest:
    # The full redirect URL the end user came back on, or just its query string.
    redirect_result: str = attrs.field(validator=_length(1, 4000))
