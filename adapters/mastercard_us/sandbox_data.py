"""Seeded data for the Finicity simulator: institutions, FinBank test profiles, pre-existing customers, transactions.

Everything derives from the seed; the one clock is the injected `now`, which anchors transaction dates (the last 365
days). Transactions are generated lazily per account, on first use, and cached by the caller. Amounts are Decimals
here and become JSON numbers only in `json_number`, the way the upstream sends them: a float, or an int when the
amount has no fractional digits. Some amounts are chosen to trip careless float handling (0.30000000000000004, -0.0,
1234567890.12), and posting times cluster around the US daylight-saving changes, where local dates and UTC dates
disagree differently before and after.
"""
from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs

D = Decimal
TEST_INSTITUTION_IDS = frozenset({101732, 102105, 102224})
DEPOSIT_TYPES = frozenset({"checking", "savings", "moneyMarket", "cd"})
INVESTMENT_TYPES = frozenset({"investment", "ira", "401k"})
LOAN_TYPES = frozenset({"mortgage", "loan", "studentLoan"})
BIG_ACCOUNT_ID = "5011648377"  # profile_03 checking of customer 1005061234: 1,200+ transactions


def json_number(value: Decimal) -> int | float:
    """The JSON number the upstream sends for an amount (the spec says `number`)."""
    return int(value) if value.as_tuple().exponent >= 0 else float(value)  # type: ignore[operator]


# --- institutions ----------------------------------------------------------------------------------------------
@attrs.frozen
class Institution:
    id: int
    name: str
    url: str
    phone: str
    city: str
    state: str
    postal_code: str
    address: str
    color: str
    oauth: bool = False

    @property
    def test(self) -> bool:
        return self.id in TEST_INSTITUTION_IDS

    def to_json(self) -> dict[str, Any]:
        support = "online"
        return {
            "id": self.id, "name": self.name, "transAgg": True, "ach": True, "stateAgg": False, "voi": True,
            "voa": True, "aha": False, "availBalance": True, "accountOwner": True, "studentLoanData": self.test,
            "loanPaymentDetails": self.test, "displayName": self.name, "liabilityData": False, "billPayData": False,
            "accountTypeDescription": "Banking", "phone": self.phone, "urlHomeApp": self.url,
            "urlLogonApp": self.url + "/login", "oauthEnabled": self.oauth,
            "urlForgotPassword": self.url + "/forgot-password", "urlOnlineRegistration": self.url + "/enroll",
            "class": "testfi" if self.test else "banking", "timeZone": "America/Denver",
            "specialText": f"Please enter your {self.name} Username and Password.",
            "address": {"city": self.city, "state": self.state, "country": "USA", "postalCode": self.postal_code,
                        "addressLine1": self.address},
            "currency": "USD", "email": f"support@{self.url.split('//')[1]}", "status": support,
            "branding": {"primaryColor": self.color, "logo": f"{self.url}/brand/logo.svg",
                         "icon": f"{self.url}/brand/icon.svg", "tile": f"{self.url}/brand/tile.svg"},
            "productionStatus": {k: support for k in
                                 ("overallStatus", "transAgg", "voa", "voi", "stateAgg", "ach", "aha")},
        }


_FINBANK = ("https://www.finbank.example", "1-801-984-4200", "Murray", "UT", "84123", "434 W Ascension Way", "#1B5E20")
INSTITUTIONS: dict[int, Institution] = {i.id: i for i in (
    Institution(101732, "FinBank", *_FINBANK),
    Institution(102105, "FinBank Profiles - A", *_FINBANK),
    Institution(102224, "FinBank Profiles - B", *_FINBANK),
    Institution(16441, "Chase", "https://www.chase.example", "1-800-935-9935", "New York", "NY", "10017",
                "383 Madison Ave", "#117ACA", oauth=True),
    Institution(1453, "Wells Fargo", "https://www.wellsfargo.example", "1-800-869-3557", "San Francisco", "CA",
                "94104", "420 Montgomery St", "#D71E28", oauth=True),
    Institution(170778, "Bank of America", "https://www.bankofamerica.example", "1-800-432-1000", "Charlotte",
                "NC", "28255", "100 N Tryon St", "#012169", oauth=True),
    Institution(4907, "Navy Federal Credit Union", "https://www.navyfederal.example", "1-888-842-6328", "Vienna",
                "VA", "22180", "820 Follin Ln SE", "#003B71"),
    Institution(19345, "Mountain America Credit Union", "https://www.macu.example", "1-800-748-4302", "Sandy",
                "UT", "84070", "9800 S Monroe St", "#005EB8"),
)}


# --- test profiles ---------------------------------------------------------------------------------------------
@attrs.frozen
class AccountTemplate:
    key: str
    type: str
    name: str
    balance: Decimal  # negative for money owed (cards, loans), as the upstream reports it
    transactions: int


@attrs.frozen
class Owner:
    first: str
    middle: str
    last: str
    line1: str
    city: str
    state: str
    postal_code: str
    email: str
    phone: str


@attrs.frozen
class Profile:
    username: str
    owner: Owner
    accounts: tuple[AccountTemplate, ...]

    @property
    def password(self) -> str:
        return self.username  # FinBank test profiles use the username as the password


PROFILES: dict[str, Profile] = {p.username: p for p in (
    Profile("profile_02", Owner("Marisol", "A", "Reyes", "1480 E 3300 S", "Salt Lake City", "UT", "84106",
                                "marisol.reyes@example.com", "1-801-555-0142"), (
        AccountTemplate("checking", "checking", "Checking", D("2156.34"), 90),
        AccountTemplate("savings", "savings", "Savings", D("9800.00"), 30),
        AccountTemplate("card", "creditCard", "Cash Back Mastercard", D("-523.40"), 60),
        AccountTemplate("moneyMarket", "moneyMarket", "Money Market", D("15000.75"), 12),
        AccountTemplate("auto", "loan", "Auto Loan", D("-14210.06"), 12),
    )),
    Profile("profile_03", Owner("Jordan", "L", "Whitaker", "434 W Ascension Way", "Murray", "UT", "84123",
                                "jordan.whitaker@example.com", "1-801-555-0173"), (
        AccountTemplate("checking", "checking", "Everyday Checking", D("12345.67"), 1260),
        AccountTemplate("savings", "savings", "High Yield Savings", D("25000.10"), 40),
        AccountTemplate("card", "creditCard", "Rewards Visa", D("-1432.19"), 120),
        AccountTemplate("brokerage", "investment", "Brokerage", D("58210.44"), 24),
        AccountTemplate("ira", "ira", "Traditional IRA", D("104233.50"), 12),
        AccountTemplate("mortgage", "mortgage", "Home Mortgage", D("-245310.77"), 12),
    )),
    Profile("profile_04", Owner("Priya", "", "Natarajan", "77 Harbor View Rd", "Annapolis", "MD", "21401",
                                "priya.n@example.com", "1-410-555-0110"), (
        AccountTemplate("checking", "checking", "Student Checking", D("873.21"), 60),
        AccountTemplate("cd", "cd", "12 Month CD", D("10000.00"), 4),
        AccountTemplate("card", "creditCard", "Platinum Card", D("-2210.88"), 80),
        AccountTemplate("401k", "401k", "Employer 401(k)", D("65432.10"), 24),
        AccountTemplate("student", "studentLoan", "Federal Student Loan", D("-21000.00"), 12),
    )),
)}


@attrs.frozen
class SeedLink:
    institution_id: int
    profile: str
    login_id: int
    first_account_id: int


@attrs.frozen
class SeedCustomer:
    id: str
    username: str
    type: str
    first_name: str
    last_name: str
    links: tuple[SeedLink, ...] = ()


SEEDED_CUSTOMERS: tuple[SeedCustomer, ...] = (
    SeedCustomer("1005061234", "sandbox_alice_01", "testing", "Alice", "Hart",
                 (SeedLink(102105, "profile_03", 1007302745, int(BIG_ACCOUNT_ID)),)),
    SeedCustomer("1005061235", "sandbox_bob_02", "testing", "Bob", "Okafor",
                 (SeedLink(102224, "profile_02", 1007302746, 5011648390),)),
    SeedCustomer("1005061236", "sandbox_carol_03", "testing", "Carol", "Nguyen"),
    SeedCustomer("1005061237", "dave.active-04", "active", "Dave", "Kowalski",
                 (SeedLink(16441, "profile_04", 1007302747, 5011648400),)),
)


# --- numbers ---------------------------------------------------------------------------------------------------
def aba_check_digit(first8: str) -> int:
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    return (10 - sum(int(d) * w for d, w in zip(first8, weights)) % 10) % 10


def routing_number(rng: random.Random) -> str:
    """A 9-digit ABA routing number with a valid check digit and a Federal Reserve district prefix."""
    prefix = rng.choice([*range(1, 13), *range(21, 33)])
    first8 = f"{prefix:02d}{rng.randrange(10**6):06d}"
    return first8 + str(aba_check_digit(first8))


def account_number(rng: random.Random) -> str:
    return str(rng.randrange(10**9, 10**12))


# --- time --------------------------------------------------------------------------------------------------------
def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


@functools.lru_cache(maxsize=64)
def dst_changes(year: int) -> tuple[date, date]:
    """US daylight saving time (since 2007): second Sunday of March to first Sunday of November."""
    return _nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def eastern_epoch(day: date, minute: int) -> int:
    """Epoch seconds of a US Eastern wall-clock time (the change happens at 02:00 local)."""
    start, end = dst_changes(day.year)
    in_dst = (start, 120) <= (day, minute) < (end, 120)
    return (day.toordinal() - _EPOCH_ORDINAL) * 86_400 + (minute + (240 if in_dst else 300)) * 60


def eastern_date(moment: datetime) -> date:
    start, end = dst_changes(moment.year)
    utc = moment.astimezone(timezone.utc)
    in_dst = datetime(start.year, start.month, start.day, 7, tzinfo=timezone.utc) <= utc < \
        datetime(end.year, end.month, end.day, 6, tzinfo=timezone.utc)
    return (utc - timedelta(hours=4 if in_dst else 5)).date()


# --- transactions ------------------------------------------------------------------------------------------------
# (payee, category, type, smallest, largest, sign) per kind of account
_SPENDING = (
    ("Starbucks", "Coffee Shops", "pointOfSale", 3, 14, -1),
    ("Smith's Food & Drug", "Groceries", "debit", 18, 210, -1),
    ("Shell Oil", "Gas & Fuel", "pointOfSale", 25, 80, -1),
    ("Amazon", "Shopping", "debit", 6, 250, -1),
    ("Netflix", "Entertainment", "directDebit", 15, 23, -1),
    ("Rocky Mountain Power", "Utilities", "directDebit", 40, 180, -1),
    ("Chipotle", "Fast Food", "pointOfSale", 9, 32, -1),
    ("ATM Withdrawal", "Cash & ATM", "atm", 20, 200, -1),
    ("Venmo", "Transfer", "transfer", 5, 150, -1),
    ("Zelle From J Smith", "Transfer", "transfer", 10, 300, 1),
    ("Check Paid", "Check", "check", 40, 900, -1),
)
_INCOME = (("ACME Corp Payroll", "Paycheck", "directDeposit", 1800, 2600, 1),)
_KINDS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "deposit": _SPENDING,
    "saving": (("Interest Paid", "Interest Income", "interest", 1, 40, 1),
               ("Transfer From Checking", "Transfer", "transfer", 50, 800, 1),
               ("Transfer To Checking", "Transfer", "transfer", 50, 500, -1)),
    "credit": (("Delta Air Lines", "Air Travel", "pointOfSale", 120, 640, -1),
               ("Whole Foods", "Groceries", "pointOfSale", 20, 180, -1),
               ("Uber", "Rental Car & Taxi", "pointOfSale", 8, 60, -1),
               ("Payment - Thank You", "Credit Card Payment", "payment", 200, 900, 1)),
    "investment": (("Dividend VTI", "Dividend & Cap Gains", "dividend", 12, 240, 1),
                   ("Buy VTI", "Buy", "debit", 500, 3000, -1),
                   ("Sell AAPL", "Sell", "credit", 300, 2500, 1)),
    "loan": (("Payment Received", "Loan Payment", "payment", 350, 2100, 1),),
}
# Amounts a float-careless translator gets wrong; each appears once in the big account, with these descriptions.
TRICKY_AMOUNTS: tuple[tuple[Decimal, str], ...] = (
    (D("0.30000000000000004"), "Round-up Savings Sweep"), (D("-0.0"), "Card Verification Reversal"),
    (D("1234567890.12"), "Incoming Wire - Escrow Settlement"), (D("19.99"), "Refund - Online Purchase"),
    (D("-7.1"), "Foreign Transaction Fee"), (D("2500"), "Mobile Check Deposit"), (D("-0.01"), "Rounding Adjustment"),
)


def _kind(account_type: str) -> str:
    if account_type == "checking":
        return "deposit"
    if account_type in DEPOSIT_TYPES:
        return "saving"
    if account_type in INVESTMENT_TYPES:
        return "investment"
    return "loan" if account_type in LOAN_TYPES else "credit"


@attrs.define
class _Draft:
    day: date
    amount: Decimal
    payee: str
    category: str
    type: str
    minute: int
    status: str = "active"


def _draft(rng: random.Random, row: tuple[Any, ...], day: date, minute: int) -> _Draft:
    payee, category, type_, low, high, sign = row
    return _Draft(day, D(rng.randint(low * 100, high * 100)) / 100 * sign, payee, category, type_, minute)


def _drafts(rng: random.Random, template: AccountTemplate, today: date) -> Iterator[_Draft]:
    kind = _kind(template.type)
    rows = _KINDS[kind]
    count = template.transactions
    if kind == "deposit":  # payday every other Friday
        last_friday = today - timedelta(days=(today.weekday() - 4) % 7)
        for back in range(0, 365, 14):
            yield _draft(rng, _INCOME[0], last_friday - timedelta(days=back), 6 * 60)
            count -= 1
    if count >= 200:
        for amount, payee in TRICKY_AMOUNTS:
            day = today - timedelta(days=rng.randint(8, 300))
            yield _Draft(day, amount, payee, "Uncategorized", "other", rng.randint(6 * 60, 20 * 60))
            count -= 1
        for change in (*dst_changes(today.year - 1), *dst_changes(today.year)):
            if 0 < (today - change).days < 365:
                for offset in (-1, 0, 1):  # just after and just before local midnight, around the change
                    for minute in (30, 23 * 60 + 30):
                        yield _draft(rng, rows[1], change + timedelta(days=offset), minute)
                        count -= 1
    for _ in range(max(count, 0)):
        row = rows[rng.randrange(len(rows))]
        yield _draft(rng, row, today - timedelta(days=rng.randrange(365)), rng.randint(7 * 60, 22 * 60))


def generate_transactions(*, seed: int, profile: str, template: AccountTemplate, account_id: str,
                          customer_id: str, now: datetime) -> tuple[list[dict[str, Any]], Decimal]:
    """The account's transactions in the upstream's JSON shape, oldest first (by transactionDate, else postedDate),
    and the sum of the pending ones.

    The last days' transactions are `pending` (no postedDate yet); about one in a hundred older ones is `shadow`,
    half of those with an `active` replacement that differs a little, as after an institution rewrote it.
    """
    rng = random.Random(f"{seed}:{profile}:{template.key}")
    today = eastern_date(now)
    now_epoch = int(now.timestamp())
    drafts = sorted(_drafts(rng, template, today), key=lambda d: (d.day, d.minute, d.payee))
    for draft in drafts[-8:] if len(drafts) >= 200 else drafts[-2:]:
        if (today - draft.day).days <= 3:
            draft.status = "pending"
    extra = []
    for index in range(50, len(drafts) - 20, 100):
        draft = drafts[index]
        draft.status = "shadow"
        if index % 200 == 50:
            corrected = draft.amount + (D("-0.50") if draft.amount < 0 else D("0.50"))
            extra.append(attrs.evolve(draft, status="active", amount=corrected, payee=draft.payee + " (corrected)"))
    drafts = sorted(drafts + extra, key=lambda d: (d.day, d.minute, d.payee))
    out = []
    for number, draft in enumerate(drafts, start=1):
        posted = min(eastern_epoch(draft.day, draft.minute), now_epoch - 60)
        txn: dict[str, Any] = {
            "id": int(account_id) * 10_000 + number,
            "amount": json_number(draft.amount),
            "accountId": int(account_id),
            "customerId": int(customer_id),
            "status": draft.status,
            "description": draft.payee.upper(),
            "memo": f"{draft.payee} {draft.day.month:02d}/{draft.day.day:02d}",
            "type": draft.type,
            "createdDate": min(posted + 3600, now_epoch),
            "categorization": {"normalizedPayeeName": draft.payee, "category": draft.category,
                               "bestRepresentation": draft.payee.upper(), "country": "USA"},
        }
        txn["uniqueTransactionId"] = f"{account_id}-{txn['id']}"
        if draft.type == "check":
            txn["checkNum"] = str(1000 + number)
        if draft.status == "pending":  # not posted yet
            txn["transactionDate"] = posted
        else:
            if draft.type != "check":  # a cleared check carries only its posting date
                txn["transactionDate"] = posted - 86_400
            txn["postedDate"] = posted
        out.append(txn)
    out.sort(key=lambda t: (t["transactionDate"] if "transactionDate" in t else t["postedDate"], t["id"]))
    return out, sum((d.amount for d in drafts if d.status == "pending"), D(0))
