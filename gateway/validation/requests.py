"""Canonical request objects: the shape of every write, checked field by field before anything happens."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

import attrs

from gateway.models import CustomerCategory, CustomerType
from gateway.models.resources import PostalAddress
from gateway.validation.body import FieldValueError, plain_text

PERMISSIONS = ("accounts", "balances", "transactions", "details", "owner")
# Asked for by name only (not in the default set): not every provider offers them.
OPTIONAL_PERMISSIONS = ("standing_orders",)
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
    unknown = [p for p in value if p not in PERMISSIONS + OPTIONAL_PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(PERMISSIONS + OPTIONAL_PERMISSIONS)}")
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
    category: CustomerCategory = CustomerCategory.INDIVIDUAL
    # Australian Business Number (business customers in AU): 11 digits, spaces allowed as printed.
    abn: str | None = attrs.field(default=None, converter=lambda v: v.replace(" ", "") if isinstance(v, str) else v,
                                  validator=_optional(_matches(re.compile(r"^[0-9]{11}$"), "11 digits")))

    def __attrs_post_init__(self) -> None:
        if self.abn is not None and self.category is not CustomerCategory.BUSINESS:
            raise FieldValueError("abn", "only business customers have an ABN")


_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SSN = re.compile(r"^[0-9]{9}$")
_OLDEST_BIRTH_YEARS = 130


def _address_lines(_inst, attr, value: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    if not 1 <= len(value) <= 3:
        raise FieldValueError(attr.name, "must be 1 to 3 lines")
    for line in value:
        plain_text(1, 70)(_inst, attr, line)


@attrs.frozen
class ConsumerAddressRequest:
    """Where the consumer lives, as the provider records it (the US platform needs at least the state)."""
    lines: tuple[str, ...] = attrs.field(validator=_address_lines)
    city: str = attrs.field(validator=plain_text(1, 70))
    region: str = attrs.field(validator=plain_text(1, 35))  # state or territory: "UT", "NSW"
    postal_code: str | None = attrs.field(default=None, validator=_optional(plain_text(1, 16)))
    country: str | None = attrs.field(default=None, validator=_optional(_matches(_COUNTRY, "an ISO 3166 alpha-2 code")))

    def to_address(self) -> PostalAddress:
        return PostalAddress(lines=self.lines, city=self.city, region=self.region, postal_code=self.postal_code,
                             country=self.country)


def _birth_date(_inst, attr, value: date) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(timezone.utc).date()
    if value > today:
        raise FieldValueError(attr.name, "must not be in the future")
    if value.year < today.year - _OLDEST_BIRTH_YEARS:
        raise FieldValueError(attr.name, f"must be within the last {_OLDEST_BIRTH_YEARS} years")


def _digits_only(value: object) -> object:
    """An SSN as written (`123-45-6789`, `123 45 6789`) becomes its nine digits."""
    return value.replace("-", "").replace(" ", "") if isinstance(value, str) else value


@attrs.frozen
class CreateConsumerRequest:
    """The person a customer's reports are about. The identity fields are personal data: the gateway sends them
    to the provider and keeps none of them."""
    first_name: str = attrs.field(validator=_length(1, 100))
    last_name: str = attrs.field(validator=_length(1, 100))
    email: str | None = attrs.field(default=None, validator=_optional(_matches(_EMAIL, "an email address")))
    phone: str | None = attrs.field(default=None, validator=_optional(_matches(_PHONE, "a phone number")))
    birth_date: date | None = attrs.field(default=None, validator=_optional(_birth_date), repr=False)
    # A US Social Security number; never shown in a repr, a log line or an error message.
    ssn: str | None = attrs.field(default=None, converter=_digits_only, repr=False,
                                  validator=_optional(_matches(_SSN, "nine digits (hyphens allowed)")))
    address: ConsumerAddressRequest | None = attrs.field(default=None, repr=False)


@attrs.frozen
class DashboardRequest:
    redirect_uri: str | None = attrs.field(default=None, validator=_optional(_redirect_uri))


REPORT_TYPES = ("voa", "voi", "cash_flow")


def _report_type(_inst, attr, value: str) -> None:
    if value not in REPORT_TYPES:
        raise FieldValueError(attr.name, f"must be one of {', '.join(REPORT_TYPES)}")


def _unique(_inst, attr, value: tuple[str, ...]) -> None:
    if len(set(value)) != len(value):
        raise FieldValueError(attr.name, "must not repeat")


@attrs.frozen
class CreateReportRequest:
    customer_id: str = attrs.field(validator=_length(4, 64))
    type: str = attrs.field(validator=_report_type)
    # The consent whose accounts the report reads; default: the customer's newest authorised consent.
    consent_id: str | None = attrs.field(default=None, validator=_optional(_length(4, 64)))
    interval_types: tuple[str, ...] = attrs.field(default=(), validator=_unique)
    from_date: date | None = None
    account_ids: tuple[str, ...] = attrs.field(default=(), validator=_unique)


@attrs.frozen
class RegisterApplicationRequest:
    provider: str = attrs.field(validator=_matches(_PROVIDER, "a provider id"))
    access_model: str = attrs.field(validator=_length(1, 40))
    name: str | None = None
    description: str | None = None
    url: str | None = None
    image: str | None = None
    legal_entity_name: str | None = None
    policy_url: str | None = None
    data_complaints_email: str | None = None
    copyright_logo: str | None = None
    business_name: str | None = None
    from_email: str | None = None
    reply_to_email: str | None = None
    organisation_id: str | None = None
    software_id: str | None = None
    disclosure_type: str | None = None


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
    # The consent's own limits, for providers that record them: when it ends, and which transactions it reaches.
    expires_at: datetime | None = None
    transactions_from: date | None = None
    transactions_to: date | None = None

    def __attrs_post_init__(self) -> None:
        if self.expires_at is not None and self.expires_at <= datetime.now(timezone.utc):
            raise FieldValueError("expires_at", "must be in the future")
        if self.transactions_from and self.transactions_to and self.transactions_from > self.transactions_to:
            raise FieldValueError("transactions_to", "must not be before transactions_from")


@attrs.frozen
class CompleteConsentRequest:
    # The full redirect URL the end user came back on, or just its query string.
    redirect_result: str = attrs.field(validator=_length(1, 4000))
