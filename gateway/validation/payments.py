"""Canonical payment requests: the order's shape and the rules that hold for every provider (amount format and
precision, account identifications with their check digits). Provider rules come after, from the adapter."""
from __future__ import annotations

import re
from decimal import Decimal

import attrs

from gateway.models.money import minor_units, parse_amount
from gateway.models.payments import ACCOUNT_SCHEMES, PAYMENT_TYPES, PaymentAccount
from gateway.models.resources import PostalAddress
from gateway.validation.body import FieldValueError, plain_text
from gateway.validation.requests import _check_redirect_uri

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SORT_CODE = re.compile(r"^[0-9]{6}$")
_UK_ACCOUNT = re.compile(r"^[0-9]{8}$")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
_WALLET = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_IDENTIFICATION = re.compile(r"^[A-Za-z0-9/?:().,'+ -]{1,35}$")  # what payment schemes carry


_text = plain_text  # never in text a bank shows a payer: control, invisible or direction-changing characters


def _optional(check):  # type: ignore[no-untyped-def]
    def run(inst, attr, value):  # type: ignore[no-untyped-def]
        if value is not None:
            check(inst, attr, value)
    return run


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, letters as numbers, mod 97 = 1."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@attrs.frozen
class AmountRequest:
    amount: str
    currency: str

    def __attrs_post_init__(self) -> None:
        if not _CURRENCY.fullmatch(self.currency):
            raise FieldValueError("currency", "must be an ISO 4217 code such as GBP")
        try:
            value = parse_amount(self.amount)
        except ValueError as exc:
            raise FieldValueError("amount", str(exc)) from None
        if value <= 0:
            raise FieldValueError("amount", "must be greater than zero")
        places = minor_units(self.currency)
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise FieldValueError("amount", f"{self.currency} has {places} decimal places; "
                                            f"{self.amount} has {-exponent}")
        if value >= Decimal("1e13"):
            raise FieldValueError("amount", "is too large for payment schemes (at most 13 integer digits)")

    @property
    def value(self) -> Decimal:
        return parse_amount(self.amount)


@attrs.frozen
class AccountRequest:
    scheme: str
    sort_code: str | None = attrs.field(default=None, converter=lambda v: v.replace("-", "") if isinstance(v, str) else v)
    account_number: str | None = None
    iban: str | None = attrs.field(default=None, converter=lambda v: v.replace(" ", "").upper() if isinstance(v, str) else v)
    bic: str | None = None
    wallet_id: str | None = None
    secondary_identification: str | None = attrs.field(default=None, validator=_optional(_text(1, 34)))

    def __attrs_post_init__(self) -> None:
        if self.scheme not in ACCOUNT_SCHEMES:
            raise FieldValueError("scheme", f"must be one of {', '.join(ACCOUNT_SCHEMES)}")
        needs = {"uk_sort_code": ("sort_code", "account_number"), "iban": ("iban",), "wallet": ("wallet_id",)}
        allowed = {"uk_sort_code": {"sort_code", "account_number", "secondary_identification"},
                   "iban": {"iban", "bic"}, "wallet": {"wallet_id"}}[self.scheme]
        for name in needs[self.scheme]:
            if getattr(self, name) is None:
                raise FieldValueError(name, f"required for scheme {self.scheme}")
        for name in ("sort_code", "account_number", "iban", "bic", "wallet_id", "secondary_identification"):
            if name not in allowed and getattr(self, name) is not None:
                raise FieldValueError(name, f"not used by scheme {self.scheme}")
        if self.sort_code is not None and not _SORT_CODE.fullmatch(self.sort_code):
            raise FieldValueError("sort_code", "must be 6 digits (dashes allowed: 04-00-04)")
        if self.account_number is not None and not _UK_ACCOUNT.fullmatch(self.account_number):
            raise FieldValueError("account_number", "must be 8 digits")
        if self.iban is not None and not (_IBAN.fullmatch(self.iban) and iban_valid(self.iban)):
            raise FieldValueError("iban", "is not a valid IBAN (format or check digits)")
        if self.bic is not None and not _BIC.fullmatch(self.bic):
            raise FieldValueError("bic", "must be a BIC of 8 or 11 characters")
        if self.wallet_id is not None and not _WALLET.fullmatch(self.wallet_id):
            raise FieldValueError("wallet_id", "must be 1 to 64 letters, digits or underscores")

    def to_account(self) -> PaymentAccount:
        return PaymentAccount(scheme=self.scheme, sort_code=self.sort_code, account_number=self.account_number,
                              iban=self.iban, bic=self.bic, wallet_id=self.wallet_id,
                              secondary_identification=self.secondary_identification)


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _lines(_inst, attr, value: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    if len(value) > 4 or any(not 1 <= len(line) <= 70 or line.strip() != line for line in value):
        raise FieldValueError(attr.name, "at most 4 lines of 1 to 70 characters")


def _country(_inst, attr, value: str) -> None:  # type: ignore[no-untyped-def]
    if not _COUNTRY.fullmatch(value):
        raise FieldValueError(attr.name, "must be an ISO 3166 alpha-2 code such as DE")


@attrs.frozen
class AddressRequest:
    country: str = attrs.field(validator=_country)
    lines: tuple[str, ...] = attrs.field(default=(), validator=_lines)
    city: str | None = attrs.field(default=None, validator=_optional(_text(1, 35)))
    postal_code: str | None = attrs.field(default=None, validator=_optional(_text(1, 16)))

    def to_address(self) -> PostalAddress:
        return PostalAddress(lines=self.lines, city=self.city, postal_code=self.postal_code, country=self.country)


@attrs.frozen
class CreditorRequest:
    name: str = attrs.field(validator=_text(1, 70))
    account: AccountRequest
    address: AddressRequest | None = None


def _payment_type(_inst, attr, value: str) -> None:  # type: ignore[no-untyped-def]
    if value not in PAYMENT_TYPES:
        raise FieldValueError(attr.name, f"must be one of {', '.join(PAYMENT_TYPES)}")


def _redirect(_inst, attr, value: str) -> None:  # type: ignore[no-untyped-def]
    try:
        _check_redirect_uri(value)
    except ValueError as exc:
        raise FieldValueError(attr.name, str(exc)) from None


def _identification(_inst, attr, value: str) -> None:  # type: ignore[no-untyped-def]
    if not _IDENTIFICATION.fullmatch(value):
        raise FieldValueError(attr.name, "must be 1 to 35 letters, digits, spaces or / ? : ( ) . , ' + -")


@attrs.frozen
class CreatePaymentRequest:
    type: str = attrs.field(validator=_payment_type)
    amount: AmountRequest
    creditor: CreditorRequest
    reference: str = attrs.field(validator=_text(1, 140))
    redirect_uri: str = attrs.field(validator=_redirect)
    provider: str | None = None
    region: str | None = None
    debtor_account: AccountRequest | None = None
    end_to_end_id: str | None = attrs.field(default=None, validator=_optional(_identification))
    customer_id: str | None = attrs.field(default=None, validator=_optional(_text(4, 64)))
    # The payer's name, where the scheme carries it (SEPA credit transfers through ob-connect need it).
    debtor_name: str | None = attrs.field(default=None, validator=_optional(_text(1, 70)))
    # The payer's bank, for providers that reach many (see GET /v1/institutions).
    institution_id: str | None = attrs.field(default=None, validator=_optional(_text(1, 64)))


@attrs.frozen
class CompletePaymentRequest:
    # The full redirect URL the payer came back on, or just its query string / fragment.
    redirect_result: str = attrs.field(validator=_text(1, 4000))
    # false: only record the authorisation (confirm funds first, then POST .../submit).
    submit: bool = True
