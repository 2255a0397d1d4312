"""The contents of the AU simulator's decisioning reports, computed from the accounts' transactions: Verification of
Assets (balances and a six-month transaction summary per account), Verification of Income (income streams and
per-period attributes for the requested interval types) and Cash Flow Business (inflow and outflow streams, monthly
totals); plus the small PDF the platform offers for VOA and cash flow reports.

Only settled transactions count (no pending, no shadow). Streams group transactions by normalized payee.
"""
from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from adapters.mastercard_au.sandbox_data import D, INSTITUTIONS, PROFILES, money
from adapters.mastercard_au.sandbox_world import Account, World

INTERVAL_TYPES = ("DAILY", "WEEKLY_CALENDAR", "WEEKLY_ROLLING_7", "BI_WEEKLY_CALENDAR", "BI_WEEKLY_ROLLING_14",
                  "SEMI_MONTHLY_CALENDAR", "MONTHLY_CALENDAR", "MONTHLY_ROLLING_30", "QUARTERLY_CALENDAR",
                  "QUARTERLY_ROLLING_90", "ANNUALLY", "HISTORICALLY")
_ROLLING = {"WEEKLY_ROLLING_7": 7, "BI_WEEKLY_ROLLING_14": 14, "MONTHLY_ROLLING_30": 30, "QUARTERLY_ROLLING_90": 90,
            "ANNUALLY": 365}
_INCOME_ATTRIBUTES = {"Interest Income": "INTEREST_INCOME"}  # besides the profiles' own income categories
Row = dict[str, Any]


def _day(row: Row) -> date:
    return datetime.fromtimestamp(row.get("postedDate", row["transactionDate"]), timezone.utc).date()


def settled_rows(world: World, account: Account, low: int, high: int) -> list[Row]:
    return [r for r in world.book(account).between(low, high, pending=False) if r["status"] == "active"]


# --- periods and statistics ---------------------------------------------------------------------------------------
def _calendar_key(kind: str, start: date) -> Callable[[date], Any]:
    first_monday = start - timedelta(days=start.weekday())
    return {
        "DAILY": lambda d: d,
        "WEEKLY_CALENDAR": lambda d: d - timedelta(days=d.weekday()),
        "BI_WEEKLY_CALENDAR": lambda d: (d - first_monday).days // 14,
        "SEMI_MONTHLY_CALENDAR": lambda d: (d.year, d.month, d.day > 15),
        "MONTHLY_CALENDAR": lambda d: (d.year, d.month),
        "QUARTERLY_CALENDAR": lambda d: (d.year, (d.month - 1) // 3),
        "HISTORICALLY": lambda d: 0,
    }[kind]


def periods(kind: str, start: date, end: date) -> list[tuple[date, date]]:
    """The periods of an interval type over [start, end], oldest first; rolling types count back from `end`."""
    if kind in _ROLLING:
        out, high = [], end
        while high >= start:
            low = max(start, high - timedelta(days=_ROLLING[kind] - 1))
            out.append((low, high))
            high = low - timedelta(days=1)
        return out[::-1]
    key, groups = _calendar_key(kind, start), {}
    day = start
    while day <= end:
        first, _ = groups.get(key(day), (day, day))
        groups[key(day)] = (first, day)
        day += timedelta(days=1)
    return list(groups.values())


def stats(amounts: list[Decimal]) -> dict[str, Any]:
    if not amounts:
        return {"count": 0, "sum": 0.0, "min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "standardDeviation": 0.0}
    values = [float(a) for a in amounts]
    return {"count": len(values), "sum": money(sum(amounts, D(0))), "min": min(values), "max": max(values),
            "mean": round(statistics.fmean(values), 6), "median": statistics.median(values),
            "standardDeviation": round(statistics.pstdev(values), 6)}


def _stream(report_id: str, name: str, payee: str, rows: list[Row], today: date) -> dict[str, Any]:
    days = sorted(_day(r) for r in rows)
    gaps = [(b - a).days for a, b in zip(days, days[1:])] or [0]
    cadence = statistics.median(gaps)
    recency = (today - days[-1]).days
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{report_id}/{name}")), "payor": name, "payee": payee,
            "cadence": cadence, "recency": recency, "earliestObservedDate": f"{days[0].isoformat()}T00:00:00",
            "latestObservedDate": f"{days[-1].isoformat()}T00:00:00",
            "status": "active" if recency <= max(2 * cadence, 7) else "inactive",
            **stats([abs(D(str(r["amount"]))) for r in rows]), "minimumCadence": min(gaps),
            "maximumCadence": max(gaps), "medianCadence": cadence, "modeCadence": statistics.mode(gaps),
            "standardDeviationCadence": round(statistics.pstdev(gaps), 6),
            "transactionIds": [str(r["id"]) for r in rows]}


def _streams(report_id: str, rows: list[Row], payee: str, today: date, minimum: int = 2) -> list[dict[str, Any]]:
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row["categorization"]["normalizedPayeeName"]].append(row)
    return [_stream(report_id, name, payee, found, today) for name, found in sorted(grouped.items())
            if len(found) >= minimum]


# --- the reports --------------------------------------------------------------------------------------------------
def _owner_name(account: Account) -> str:
    owner = PROFILES[account.profile].owner
    return owner.business or f"{owner.first} {owner.last}"


def _by_institution(world: World, accounts: list[Account],
                    render: Callable[[Account], dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for account in accounts:
        institution = INSTITUTIONS[account.institution_id]
        entry = out.setdefault(institution.id, {"id": institution.id, "name": institution.name,
                                                "urlHomeApp": institution.url, "accounts": []})
        entry["accounts"].append({"id": int(account.id), "number": f"xxxx{account.last4}",
                                  "ownerName": _owner_name(account), "name": account.template.name,
                                  "type": account.template.type, "currency": "AUD", **render(account)})
    return list(out.values())


def voa(world: World, accounts: list[Account], low: int, high: int) -> dict[str, Any]:
    balances = [a.template.balance for a in accounts]

    def render(account: Account) -> dict[str, Any]:
        rows = settled_rows(world, account, low, high)
        credits = [D(str(r["amount"])) for r in rows if r["amount"] > 0]
        debits = [D(str(r["amount"])) for r in rows if r["amount"] < 0]
        months: dict[str, list[Decimal]] = defaultdict(list)
        for row in rows:
            months[_day(row).strftime("%Y-%m")].append(D(str(row["amount"])))
        return {"balance": money(account.template.balance), "availableBalance": money(account.template.balance),
                "balanceDate": world.now_epoch(), "aggregationStatusCode": 0,
                "transactionSummary": {"count": len(rows), "totalCredits": money(sum(credits, D(0))),
                                       "totalDebits": money(sum(debits, D(0))), "fromDate": low, "toDate": high},
                "monthlySummaries": [{"month": m, "count": len(v), "net": money(sum(v, D(0)))}
                                     for m, v in sorted(months.items())]}

    return {"startDate": low, "endDate": high, "days": (high - low) // 86_400, "seasoned": high - low > 180 * 86_400,
            "consolidatedAvailableBalance": money(sum(balances, D(0))),
            "institutions": _by_institution(world, accounts, render),
            "assets": {"currentBalance": money(sum(balances, D(0))), "accountCount": len(accounts)}}


def _income_attribute(account: Account, row: Row) -> str | None:
    category = row["categorization"]["category"]
    for income in PROFILES[account.profile].incomes:
        if income.category == category:
            return income.attribute
    return _INCOME_ATTRIBUTES.get(category)


def _income_analytics(report_id: str, rows: list[tuple[str, Row]], payee: str, intervals: list[str],
                      start: date, end: date) -> dict[str, Any]:
    streams = _streams(report_id, [r for _, r in rows], payee, end)
    stream_of = {tid: s["id"] for s in streams for tid in s["transactionIds"]}
    groups: dict[str, list[Row]] = defaultdict(list)
    for attribute, row in rows:
        groups["NET_INCOME"].append(row)
        groups["PAYCHECK_INCOME" if attribute == "PAYCHECK_INCOME" else "NON_PAYCHECK_INCOME"].append(row)
        if attribute != "PAYCHECK_INCOME":
            groups[attribute].append(row)
    attributes = []
    for name, found in groups.items():
        ids = [str(r["id"]) for r in found]
        stream_ids = sorted({stream_of[i] for i in ids if i in stream_of})
        attributes.append({
            "attributeName": name, "transactionIds": ids, "streamIds": stream_ids, "projectedValues": [],
            "streamConfidences": [{"streamId": s, "confidence": "100.0"} for s in stream_ids],
            "aggregatedByTimePeriods": [{
                "timeIntervalType": kind, "cohortBenchmarkPeriods": [],
                "periods": [{"startDate": lo.isoformat(), "endDate": hi.isoformat(), "comparedToCohorts": [],
                             **stats([D(str(r["amount"])) for r in found if lo <= _day(r) <= hi])}
                            for lo, hi in periods(kind, start, end)]} for kind in intervals]})
    return {"transactionalAttributes": attributes, "stateAttributes": [], "streams": streams}


def voi(world: World, report_id: str, accounts: list[Account], low: int, high: int,
        intervals: list[str]) -> dict[str, Any]:
    start = datetime.fromtimestamp(low, timezone.utc).date()
    end = datetime.fromtimestamp(high, timezone.utc).date()
    income: dict[str, list[tuple[str, Row]]] = {}
    for account in accounts:
        rows = [r for r in settled_rows(world, account, low, high) if r["amount"] > 0]
        income[account.id] = [(a, r) for r in rows if (a := _income_attribute(account, r))]
    payee = _owner_name(accounts[0])

    def render(account: Account) -> dict[str, Any]:
        return {"balance": money(account.template.balance),
                "analytics": _income_analytics(report_id, income[account.id], payee, intervals, start, end)}

    everything = [pair for pairs in income.values() for pair in pairs]
    return {"startDate": low, "endDate": high, "days": (end - start).days,
            "institutions": _by_institution(world, accounts, render),
            "customerAnalytics": _income_analytics(report_id, everything, payee, intervals, start, end)}


def cash_flow(world: World, report_id: str, accounts: list[Account], low: int, high: int) -> dict[str, Any]:
    rows = [r for a in accounts for r in settled_rows(world, a, low, high)]
    months: dict[str, list[Decimal]] = defaultdict(list)
    for row in rows:
        months[_day(row).strftime("%Y-%m")].append(D(str(row["amount"])))
    today = datetime.fromtimestamp(high, timezone.utc).date()
    payee = _owner_name(accounts[0])
    return {"startDate": low, "endDate": high, "institutions": _by_institution(
                world, accounts, lambda a: {"balance": money(a.template.balance)}),
            "cashFlowAnalytics": {
                "inflowStreams": _streams(report_id, [r for r in rows if r["amount"] > 0], payee, today, 3),
                "outflowStreams": _streams(report_id, [r for r in rows if r["amount"] < 0], payee, today, 3),
                "monthly": [{"month": m, "credits": money(sum((v for v in vs if v > 0), D(0))),
                             "debits": money(sum((v for v in vs if v < 0), D(0))), "net": money(sum(vs, D(0)))}
                            for m, vs in sorted(months.items())]}}


# --- PDF ----------------------------------------------------------------------------------------------------------
def tiny_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, one line per entry) with a correct cross-reference table."""
    def escape(text: str) -> str:
        return text.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\").replace("(", "\\(") \
            .replace(")", "\\)")

    text = "BT /F1 11 Tf 50 800 Td 14 TL " + " ".join(f"({escape(line)}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text.encode('latin-1'))} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
