"""gateway.models.money and gateway.models.time: exact amounts from floats, strict caller amounts, UTC epochs."""
from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from gateway.models import Money, date_from_epoch, decimal_from_float, parse_amount, parse_rfc3339, utc_from_epoch
from gateway.models.time import rfc3339, to_epoch

UTC = timezone.utc


# --- Money from upstream numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (0.1 + 0.2, "0.30000000000000004"),  # kept exactly as printed upstream, not rounded to cents
    (19.99, "19.99"),
    (-828.9, "-828.90"),
    (-0.0, "0.00"),  # no negative zero
    (0.0, "0.00"),
    (1e-7, "0.0000001"),  # never exponent notation
    (1234567890.12, "1234567890.12"),
    (10**16, "10000000000000000.00"),
    (1e16, "10000000000000000.00"),
    (5, "5.00"),
    (0.005, "0.005"),  # more precision than the currency: kept, not rounded
    (100.0, "100.00"),
    ("12.5", "12.50"),
    (Decimal("-3"), "-3.00"),
])
def test_money_of_is_exact(value: object, expected: str) -> None:
    assert Money.of(value, "USD").to_json() == {"amount": expected, "currency": "USD"}  # type: ignore[arg-type]


def test_money_from_json_bytes_keeps_what_the_upstream_printed() -> None:
    amounts = orjson.loads(b"[0.30000000000000004, 19.99, -0.0, 1e-7, 1234567890.12, 10000000000000000]")
    assert [Money.of(a, "USD").to_json()["amount"] for a in amounts] == [
        "0.30000000000000004", "19.99", "0.00", "0.0000001", "1234567890.12", "10000000000000000.00"]


def test_money_uses_the_currency_minor_unit() -> None:
    assert Money.of(5, "JPY").to_json()["amount"] == "5"
    assert Money.of(1.5, "BHD").to_json()["amount"] == "1.500"
    assert Money.of(1.5, "XXX").to_json()["amount"] == "1.50"  # unknown currency: two places


def test_decimal_from_float_goes_through_the_shortest_repr() -> None:
    assert decimal_from_float(0.1) == Decimal("0.1")  # not 0.1000000000000000055511151231257827…
    assert decimal_from_float(0.1 + 0.2) == Decimal("0.30000000000000004")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, False])
def test_money_refuses_non_numbers(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        Money.of(value, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["NaN", "Infinity", Decimal("NaN")])
def test_money_refuses_non_finite_strings(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        Money.of(value, "USD")  # type: ignore[arg-type]


# --- caller amounts -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("12.50", Decimal("12.50")), ("-3", Decimal("-3")), ("+5", Decimal("5")), ("0.001", Decimal("0.001")),
    (".5", Decimal("0.5")),
])
def test_parse_amount_accepts_plain_decimals(text: str, expected: Decimal) -> None:
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text", [
    "1e3", "1E3", " 1", "1 ", "NaN", "nan", "Infinity", "inf", "", ".", "-", "+", "1.2.3", "1_000", "0x10",
    "12,50", "--1", "1-", "€5", "\t1",
])
def test_parse_amount_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)


@pytest.mark.parametrize("value", [12.5, 12, None, b"12", Decimal("1")])
def test_parse_amount_wants_a_string(value: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(value)  # type: ignore[arg-type]


def test_parse_amount_refuses_non_ascii_digits() -> None:
    with pytest.raises(ValueError):
        parse_amount("١٢")


# --- epoch seconds ------------------------------------------------------------------------------------------------
def test_epoch_int_numeric_string_and_fraction() -> None:
    assert utc_from_epoch(1607450357) == datetime(2020, 12, 8, 17, 59, 17, tzinfo=UTC)
    assert utc_from_epoch("1607450357") == datetime(2020, 12, 8, 17, 59, 17, tzinfo=UTC)
    assert utc_from_epoch(1607450357.25) == datetime(2020, 12, 8, 17, 59, 17, 250000, tzinfo=UTC)
    assert utc_from_epoch("1607450357.5") == datetime(2020, 12, 8, 17, 59, 17, 500000, tzinfo=UTC)
    assert utc_from_epoch(1607450357.0) == datetime(2020, 12, 8, 17, 59, 17, tzinfo=UTC)
    assert utc_from_epoch(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert utc_from_epoch(-1) == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert utc_from_epoch(1607450357).tzinfo is UTC


@pytest.mark.parametrize("value", [True, False])
def test_epoch_refuses_booleans(value: bool) -> None:
    with pytest.raises(TypeError):
        utc_from_epoch(value)


@pytest.mark.parametrize("value", ["", "yesterday", "12:00"])
def test_epoch_refuses_non_numbers(value: str) -> None:
    with pytest.raises(ValueError):
        utc_from_epoch(value)


@pytest.mark.parametrize(("day", "label"), [
    (date(2024, 3, 10), "US DST starts"), (date(2024, 11, 3), "US DST ends"),
    (date(2024, 4, 7), "AU (Sydney) DST ends"), (date(2024, 10, 6), "AU (Sydney) DST starts"),
])
def test_dst_changes_do_not_exist_in_utc(day: date, label: str) -> None:
    midnight = calendar.timegm(day.timetuple())
    assert utc_from_epoch(midnight) == datetime(day.year, day.month, day.day, tzinfo=UTC), label
    assert utc_from_epoch(midnight + 86400) - utc_from_epoch(midnight) == timedelta(hours=24), label
    # 02:30 local time on the US change day does not exist in New York; in UTC it is an ordinary instant
    assert date_from_epoch(midnight + 2 * 3600 + 1800) == day
    assert date_from_epoch(midnight + 86399) == day
    assert date_from_epoch(midnight + 86400) == day + timedelta(days=1)
    assert to_epoch(utc_from_epoch(midnight)) == midnight


def test_known_instants_around_the_us_change() -> None:
    # 2024-03-10 07:00:00Z is 03:00 EDT, an hour after the clocks went forward
    assert utc_from_epoch(1710054000) == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)
    # 2024-11-03 05:30:00Z is 01:30 EST (the repeated hour in New York): one unambiguous UTC instant
    assert utc_from_epoch(1730611800) == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)
    assert date_from_epoch(1730611800) == date(2024, 11, 3)


def test_to_epoch_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        to_epoch(datetime(2024, 1, 1))


# --- RFC 3339 -----------------------------------------------------------------------------------------------------
def test_parse_rfc3339_needs_an_offset_and_returns_utc() -> None:
    assert parse_rfc3339("2026-01-31T12:00:00Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_rfc3339("2026-01-31T12:00:00z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    moved = parse_rfc3339("2026-01-31T12:00:00+02:00")
    assert moved == datetime(2026, 1, 31, 10, tzinfo=UTC) and moved.utcoffset() == timedelta(0)
    assert parse_rfc3339("2026-01-31T12:00:00.123456-05:00") == datetime(2026, 1, 31, 17, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-01-31T12:00:00", "2026-01-31", "yesterday", ""])
def test_parse_rfc3339_refuses_local_or_broken_times(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_rfc3339_output_is_utc_with_z() -> None:
    moment = datetime(2026, 1, 31, 12, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-01-31T10:00:00Z"
