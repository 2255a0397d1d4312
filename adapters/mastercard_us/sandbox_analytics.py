"""The contents of the Finicity simulator's reports, computed from the accounts' transactions (the fields the spec's
VOAReport, VOIReport and CashFlowReport add to a report acknowledgement), and the small PDF it renders of them.

- VOA: per account its balance, daily-balance averages (two and six months), its beginning balance and its
  transactions; and the same summed over the accounts.
- VOI: income streams of the deposit accounts: recurring credits from one payee categorised as pay or interest,
  with their cadence, monthly net and annual estimates. The simulated deposits carry no withholding, so the gross
  estimates equal the net ones.
- Cash flow (personal): credits, debits and their net per calendar month, transfers counted apart, and daily-balance
  statistics over the deposit accounts.

Only settled transactions count (no pending, no shadow). Days and months are UTC. Amounts are Decimals until they
become JSON numbers (`json_number`).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from adapters.mastercard_us.sandbox_data import DEPOSIT_TYPES, INSTITUTIONS, PROFILES, json_number
from adapters.mastercard_us.sandbox_world import Account, World

D = Decimal
DAY = 86_400
Row = dict[str, Any]
INCOME_CATEGORIES = frozenset({"Paycheck", "Interest Income"})
TRANSFER_CATEGORIES = frozenset({"Transfer", "Credit Card Payment"})


def _amount(row: Row) -> Decimal:
    return D(repr(row["amount"])) if isinstance(row["amount"], float) else D(row["amount"])


def _posted(row: Row) -> int:
    return int(row.get("postedDate", row.get("transactionDate", 0)))


def _money(value: Decimal) -> int | float:
    return json_number(value.quantize(D("0.01")))


def settled(world: World, account: Account, low: int, high: int) -> list[Row]:
    return [r for r in world.book(account).between(low, high, pending=False) if r["status"] == "active"]


def daily_balances(world: World, account: Account, low: int, high: int) -> list[Decimal]:
    """The account's balance at the end of each UTC day from `low` to `high`, oldest first, worked back from its
    balance now through the settled transactions."""
    after: dict[int, Decimal] = defaultdict(D)
    for row in settled(world, account, low, world.now_epoch()):
        after[_posted(row) // DAY] += _amount(row)
    balance, out = account.template.balance, []
    for day in range(high // DAY, low // DAY - 1, -1):
        out.append(balance)
        balance -= after.get(day, D(0))
    return out[::-1]


def _average(values: list[Decimal]) -> Decimal:
    return sum(values, D(0)) / len(values) if values else D(0)


def _month_start(epoch: int) -> int:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return int(datetime(moment.year, moment.month, 1, tzinfo=timezone.utc).timestamp())


def _owner(account: Account) -> dict[str, Any]:
    owner = PROFILES[account.profile].owner
    return {"ownerName": " ".join(p for p in (owner.first, owner.middle, owner.last) if p).upper(),
            "ownerAddress": f"{owner.line1} {owner.city}, {owner.state} {owner.postal_code}".upper()}


def _transaction(row: Row) -> dict[str, Any]:
    category = row.get("categorization") or {}
    return {"id": row["id"], "amount": row["amount"], "postedDate": _posted(row), "description": row["description"],
            "memo": row.get("memo", ""), "normalizedPayee": category.get("normalizedPayeeName", ""),
            "institutionTransactionId": str(row["id"]), "category": category.get("category", "")}


def _account_base(world: World, account: Account) -> dict[str, Any]:
    return {"id": int(account.id), "number": account.last4, **_owner(account), "ownerAsOfDate": world.now_epoch(),
            "name": account.template.name, "type": account.template.type, "currency": "USD",
            "aggregationStatusCode": 0, "balance": _money(account.template.balance), "balanceDate": world.now_epoch()}


def _institutions(accounts: list[Account], render: Any) -> list[dict[str, Any]]:
    by_institution: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for account in accounts:
        by_institution[account.institution_id].append(render(account))
    return [{"id": i, "name": INSTITUTIONS[i].name, "urlHomeApp": INSTITUTIONS[i].url, "accounts": rendered}
            for i, rendered in by_institution.items()]


def _period(world: World, accounts: list[Account], low: int, high: int) -> dict[str, Any]:
    first = min((_posted(r) for a in accounts for r in settled(world, a, low, high)), default=low)
    days = max(1, (high - first) // DAY)
    return {"startDate": first, "endDate": high, "days": days, "seasoned": days > 180}


# --- verification of assets -----------------------------------------------------------------------------------------
def voa(world: World, accounts: list[Account], low: int, high: int) -> dict[str, Any]:
    summary = {"currentBalance": D(0), "twoMonthAverage": D(0), "sixMonthAverage": D(0), "beginningBalance": D(0)}

    def render(account: Account) -> dict[str, Any]:
        balances = daily_balances(world, account, low, high)
        asset = {"currentBalance": account.template.balance, "twoMonthAverage": _average(balances[-60:]),
                 "sixMonthAverage": _average(balances[-180:]), "beginningBalance": balances[0]}
        for key, value in asset.items():
            summary[key] += value
        rows = settled(world, account, low, high)
        return {**_account_base(world, account), "availableBalance": _money(account.template.balance),
                "averageMonthlyBalance": _money(_average(balances)),
                "oldestTransactionDate": min((_posted(r) for r in rows), default=low),
                "transactions": [_transaction(r) for r in rows],
                "asset": {"type": account.template.type, **{k: _money(v) for k, v in asset.items()}}}

    institutions = _institutions(accounts, render)
    return {**_period(world, accounts, low, high), "consolidatedAvailableBalance": _money(summary["currentBalance"]),
            "institutions": institutions, "assets": {k: _money(v) for k, v in summary.items()}}


# --- verification of income -----------------------------------------------------------------------------------------
def _income_streams(report_id: str, rows: list[Row], now: int) -> list[dict[str, Any]]:
    by_payee: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        category = row.get("categorization") or {}
        if _amount(row) > 0 and category.get("category") in INCOME_CATEGORIES:
            by_payee[category.get("normalizedPayeeName") or row["description"]].append(row)
    streams = []
    for number, (payee, found) in enumerate(sorted(by_payee.items()), start=1):
        if len(found) < 3:
            continue  # one or two credits are no stream
        found.sort(key=_posted)
        dates = [_posted(r) for r in found]
        cadence = int(statistics.median(b - a for a, b in zip(dates, dates[1:])) // DAY) or 1
        monthly: dict[int, Decimal] = defaultdict(D)
        for row in found:
            monthly[_month_start(_posted(row))] += _amount(row)
        year = sum((_amount(r) for r in found if _posted(r) > now - 365 * DAY), D(0))
        projected = _average([_amount(r) for r in found[-6:]]) * 365 / cadence
        regular = len(found) >= 6 and now - dates[-1] <= 2 * cadence * DAY
        streams.append({
            "id": f"{report_id}{number}", "name": payee.upper(), "status": "ACTIVE" if regular else "INACTIVE",
            "estimateInclusion": "HIGH" if regular else "LOW", "confidence": 90 if regular else 40,
            "cadence": {"startDate": dates[0], "stopDate": dates[-1], "days": cadence},
            "netMonthly": [{"month": m, "net": _money(v)} for m, v in sorted(monthly.items())],
            "netAnnual": _money(year), "projectedNetAnnual": _money(projected),
            "estimatedGrossAnnual": _money(year), "projectedGrossAnnual": _money(projected),
            "averageMonthlyIncomeNet": _money(_average(list(monthly.values()))),
            "incomeStreamMonths": len(monthly), "transactions": [_transaction(r) for r in found],
        })
    return streams


def voi(world: World, report_id: str, accounts: list[Account], low: int, high: int) -> dict[str, Any]:
    streams: list[dict[str, Any]] = []

    def render(account: Account) -> dict[str, Any]:
        rows = settled(world, account, low, high)
        found = _income_streams(f"{report_id}-{account.id}-", rows, high)
        streams.extend(found)
        balances = daily_balances(world, account, low, high)
        return {**_account_base(world, account), "incomeStreams": found,
                "averageMonthlyBalance": _money(_average(balances)), "beginningBalance": _money(balances[0]),
                "currentBalance": _money(account.template.balance), "transactions": [_transaction(r) for r in rows]}

    institutions = _institutions(accounts, render)
    monthly: dict[int, Decimal] = defaultdict(D)
    for stream in streams:
        for month in stream["netMonthly"]:
            monthly[month["month"]] += D(repr(month["net"]))
    net = sum((D(repr(s["netAnnual"])) for s in streams), D(0))
    projected = sum((D(repr(s["projectedNetAnnual"])) for s in streams if s["status"] == "ACTIVE"), D(0))
    income = [{"confidenceType": "HIGH" if any(s["status"] == "ACTIVE" for s in streams) else "LOW",
               "netMonthly": [{"month": m, "net": _money(v)} for m, v in sorted(monthly.items())],
               "averageMonthlyIncomeNet": _money(_average(list(monthly.values()))),
               "incomeEstimate": {"netAnnual": _money(net), "projectedNetAnnual": _money(projected),
                                  "estimatedGrossAnnual": _money(net), "projectedGrossAnnual": _money(projected)}}]
    return {**_period(world, accounts, low, high), "institutions": institutions, "income": income}


# --- cash flow (personal) -------------------------------------------------------------------------------------------
def _is_transfer(row: Row) -> bool:
    return (row.get("categorization") or {}).get("category") in TRANSFER_CATEGORIES or row.get("type") == "transfer"


def _flow_totals(rows: list[Row], low: int) -> dict[str, Any]:
    credits = [r for r in rows if _amount(r) > 0 and _posted(r) >= low]
    debits = [r for r in rows if _amount(r) < 0 and _posted(r) >= low]
    total = lambda found: sum((_amount(r) for r in found), D(0))  # noqa: E731
    return {"credits": total(credits), "credits_less": total([r for r in credits if not _is_transfer(r)]),
            "debits": total(debits), "debits_less": total([r for r in debits if not _is_transfer(r)])}


def cash_flow(world: World, accounts: list[Account], low: int, high: int) -> dict[str, Any]:
    rows = sorted((r for a in accounts for r in settled(world, a, low, high)), key=_posted)
    by_month: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_month[_month_start(_posted(row))].append(row)
    deposits = [a for a in accounts if a.template.type in DEPOSIT_TYPES]
    daily = [sum(day, D(0)) for day in zip(*(daily_balances(world, a, low, high) for a in deposits))] or [D(0)]
    daily_by_month: dict[int, list[Decimal]] = defaultdict(list)
    for offset, balance in enumerate(daily):
        daily_by_month[_month_start((low // DAY + offset) * DAY)].append(balance)
    months = sorted(by_month)
    credits, debits, characteristics, balances = [], [], [], []
    monthly_net: list[Decimal] = []
    monthly_net_less: list[Decimal] = []
    for month in months:
        found = by_month[month]
        t = _flow_totals(found, month)
        ins = [_amount(r) for r in found if _amount(r) > 0]
        outs = [_amount(r) for r in found if _amount(r) < 0]
        credits.append({"month": month, "numberOfCredits": str(len(ins)), "totalCreditsAmount": _money(t["credits"]),
                        "largestCredit": _money(max(ins, default=D(0))),
                        "numberOfCreditsLessTransfers": str(sum(1 for r in found if _amount(r) > 0
                                                                and not _is_transfer(r))),
                        "totalCreditsAmountLessTransfers": _money(t["credits_less"]),
                        "averageCreditAmount": _money(_average(ins)), "estimatedNumberOfLoanDeposits": "0",
                        "estimatedLoanDepositAmount": 0})
        debits.append({"month": month, "numberOfDebits": str(len(outs)), "totalDebitsAmount": _money(t["debits"]),
                       "largestDebit": _money(min(outs, default=D(0))),
                       "numberOfDebitsLessTransfers": str(sum(1 for r in found if _amount(r) < 0
                                                              and not _is_transfer(r))),
                       "totalDebitsAmountLessTransfers": _money(t["debits_less"]),
                       "averageDebitAmount": _money(_average(outs))})
        monthly_net.append(t["credits"] + t["debits"])
        monthly_net_less.append(t["credits_less"] + t["debits_less"])
        characteristics.append({"month": month, "totalCreditsLessTotalDebits": _money(monthly_net[-1]),
                                "totalCreditsLessTotalDebitsLessTransfers": _money(monthly_net_less[-1]),
                                "averageTransactionAmount": _money(_average(ins + outs))})
        in_month = daily_by_month.get(month) or [D(0)]
        balances.append({"month": month, "minDailyBalance": _money(min(in_month)),
                         "maxDailyBalance": _money(max(in_month)), "averageDailyBalance": _money(_average(in_month)),
                         "numberOfDaysNegativeBalance": str(sum(1 for b in in_month if b < 0)),
                         "numberOfDaysPositiveBalance": str(sum(1 for b in in_month if b >= 0))})
    spans = {label: _flow_totals(rows, high - days * DAY) for label, days in (("twelve", 365), ("six", 182),
                                                                                ("two", 61))}
    deviation = lambda values: str(round(statistics.pstdev([float(v) for v in values]), 2))  # noqa: E731

    def net(label: str, less_transfers: bool = False) -> Decimal:
        totals = spans[label]
        if less_transfers:
            return totals["credits_less"] + totals["debits_less"]
        return totals["credits"] + totals["debits"]

    return {
        **_period(world, accounts, low, high),
        "institutions": _institutions(accounts, lambda a: {
            **_account_base(world, a), "currentBalance": _money(a.template.balance),
            "availableBalance": _money(a.template.balance)}),
        "cashFlowBalanceSummary": {
            "monthlyCashFlowBalanceSummaries": balances, "minDailyBalance": _money(min(daily)),
            "maxDailyBalance": _money(max(daily)), "twelveMonthAverageDailyBalance": _money(_average(daily[-365:])),
            "sixMonthAverageDailyBalance": _money(_average(daily[-182:])),
            "twoMonthAverageDailyBalance": _money(_average(daily[-61:])),
            "twelveMonthStandardDeviationOfDailyBalance": deviation(daily[-365:]),
            "sixMonthStandardDeviationOfDailyBalance": deviation(daily[-182:]),
            "twoMonthStandardDeviationOfDailyBalance": deviation(daily[-61:]),
            "numberOfDaysNegativeBalance": str(sum(1 for b in daily if b < 0)),
            "numberOfDaysPositiveBalance": str(sum(1 for b in daily if b >= 0))},
        "cashFlowCreditSummary": {"monthlyCashFlowCreditSummaries": credits, **{
            f"{label}MonthCreditTotal{suffix}": _money(spans[label][key])
            for label in spans for suffix, key in (("", "credits"), ("LessTransfers", "credits_less"))}},
        "cashFlowDebitSummary": {"monthlyCashFlowDebitSummaries": debits, **{
            f"{label}MonthDebitTotal{suffix}": _money(spans[label][key])
            for label in spans for suffix, key in (("", "debits"), ("LessTransfers", "debits_less"))}},
        "cashFlowCharacteristicsSummary": {
            "monthlyCashFlowCharacteristicsSummaries": characteristics,
            "averageMonthlyNet": _money(_average(monthly_net)),
            "averageMonthlyNetLessTransfers": _money(_average(monthly_net_less)),
            "twelveMonthTotalNet": _money(net("twelve")),
            "twelveMonthTotalNetLessTransfers": _money(net("twelve", True)),
            "sixMonthAverageTotalCreditsLessTotalDebits": _money(net("six") / 6),
            "sixMonthAverageTotalCreditsLessTotalDebitsLessTransfers": _money(net("six", True) / 6),
            "twoMonthAverageTotalCreditsLessTotalDebits": _money(net("two") / 2),
            "twoMonthAverageTotalCreditsLessTotalDebitsLessTransfers": _money(net("two", True) / 2)},
        "possibleLoanDeposits": [],
    }


# --- the PDF rendering ----------------------------------------------------------------------------------------------
def pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, one line per entry) with a correct cross-reference table."""
    def escape(text: str) -> str:
        return text.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\").replace("(", "\\(") \
            .replace(")", "\\)")

    content = "BT /F1 11 Tf 50 800 Td 14 TL " + " ".join(f"({escape(line)}) '" for line in [title, "", *lines]) \
        + " ET"
    objects = ("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               "/Resources << /Font << /F1 5 0 R >> >> >>",
               f"<< /Length {len(content.encode('latin-1'))} >>\nstream\n{content}\nendstream",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
