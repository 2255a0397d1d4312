"""Seeded banking data of the Stripe UK simulator: its PSUs, their GBP accounts and parties, and a year of transactions.

PSUs, accounts and parties are fixed (tests and the gateway may name them); the seed only drives transactions. The
one clock is the injected `now`: transactions fill the 365 days up to it, on the UK's local clock (BookingDateTime
carries +00:00 or +01:00), and an account's two latest card payments are still Pending. Amounts are Decimals here; they
become the spec's strings ("12.30") only when rendered.
"""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import attrs

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    LONDON = ZoneInfo("Europe/London")
except (ImportError, ZoneInfoNotFoundError):  # no tz database: UTC is still a valid offset
    LONDON = timezone.utc  # type: ignore[assignment]

D = Decimal
CENT = D("0.01")
BIC = "SRLGGB2L"
BANK_CODE = "SRLG"
SORT_CODE = "040075"
PENDING_CARD_PAYMENTS = 2  # an account's latest card payments are not yet booked


def iban(bank_code: str, sort_code: str, number: str) -> str:
    """A GB IBAN with valid ISO 13616 check digits."""
    bban = bank_code + sort_code + number
    digits = "".join(str(int(c, 36)) for c in bban + "GB00")
    return f"GB{98 - int(digits) % 97:02d}{bban}"


@attrs.frozen
class Party:
    party_id: str
    party_number: str
    name: str
    full_legal_name: str
    email: str
    mobile: str  # the spec's PhoneNumber pattern: +CC-number
    building: str
    street: str
    town: str
    post_code: str


@attrs.frozen
class AccountTemplate:
    account_id: str
    psu_id: str
    kind: str  # "current" | "savings" | "business": picks the transaction patterns
    account_type: str  # Personal | Business
    sub_type: str  # CurrentAccount | Savings
    nickname: str
    holder: str  # Account[].Name
    scheme: str  # UK.OBIE.SortCodeAccountNumber | UK.OBIE.IBAN
    identification: str
    opening_balance: Decimal
    status_since: datetime


@attrs.frozen
class PSU:
    psu_id: str
    name: str
    party: Party
    account_ids: tuple[str, ...]


_OPENED = datetime(2021, 3, 15, 9, 30, tzinfo=timezone.utc)
PSU_OLIVIA = "psu-olivia-bennett"
PSU_RAHUL = "psu-rahul-mistry"
ACC_OLIVIA_CURRENT = "acc-1001-current"
ACC_OLIVIA_SAVINGS = "acc-1002-savings"
ACC_OLIVIA_BUSINESS = "acc-1003-business"
ACC_RAHUL_CURRENT = "acc-2001-current"
ACC_RAHUL_SAVINGS = "acc-2002-savings"

ACCOUNTS: dict[str, AccountTemplate] = {a.account_id: a for a in (
    AccountTemplate(ACC_OLIVIA_CURRENT, PSU_OLIVIA, "current", "Personal", "CurrentAccount", "Everyday",
                    "Olivia Bennett", "UK.OBIE.SortCodeAccountNumber", SORT_CODE + "31926819", D("1250.40"), _OPENED),
    AccountTemplate(ACC_OLIVIA_SAVINGS, PSU_OLIVIA, "savings", "Personal", "Savings", "Rainy Day Saver",
                    "Olivia Bennett", "UK.OBIE.SortCodeAccountNumber", SORT_CODE + "31926827", D("4200.00"), _OPENED),
    AccountTemplate(ACC_OLIVIA_BUSINESS, PSU_OLIVIA, "business", "Business", "CurrentAccount", "Studio",
                    "Bennett Ceramics Ltd", "UK.OBIE.IBAN", iban(BANK_CODE, SORT_CODE, "55501234"), D("6310.75"),
                    _OPENED + timedelta(days=400)),
    AccountTemplate(ACC_RAHUL_CURRENT, PSU_RAHUL, "current", "Personal", "CurrentAccount", "Main account",
                    "Rahul Mistry", "UK.OBIE.SortCodeAccountNumber", SORT_CODE + "40718253", D("802.13"),
                    _OPENED + timedelta(days=90)),
    AccountTemplate(ACC_RAHUL_SAVINGS, PSU_RAHUL, "savings", "Personal", "Savings", "House deposit",
                    "Rahul Mistry", "UK.OBIE.IBAN", iban(BANK_CODE, SORT_CODE, "40718261"), D("15020.00"),
                    _OPENED + timedelta(days=95)),
)}

PSUS: dict[str, PSU] = {p.psu_id: p for p in (
    PSU(PSU_OLIVIA, "Olivia Bennett", Party("party-1001", "10010042", "Olivia Bennett", "Olivia Jane Bennett",
                                             "olivia.bennett@example.co.uk", "+44-7700900123", "14", "Albion Road",
                                             "Stoke-on-Trent", "ST4 7QP"),
        (ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS, ACC_OLIVIA_BUSINESS)),
    PSU(PSU_RAHUL, "Rahul Mistry", Party("party-1002", "10020077", "Rahul Mistry", "Rahul Anil Mistry",
                                         "rahul.mistry@example.co.uk", "+44-7700900456", "3", "Cranbrook Terrace",
                                         "Leicester", "LE2 1PR"),
        (ACC_RAHUL_CURRENT, ACC_RAHUL_SAVINGS)),
)}
DEFAULT_PSU = PSU_OLIVIA


# --- transactions --------------------------------------------------------------------------------------------
@attrs.frozen
class Pattern:
    """A recurring kind of transaction: who, how often, how much, and how the bank codes it."""
    merchants: tuple[tuple[str, str], ...]  # (name, merchant category code; "" for non-card)
    per_year: float  # expected count, or 12 with `day` for a monthly schedule
    low: Decimal
    high: Decimal
    credit: bool
    proprietary: str  # ProprietaryBankTransactionCode.Code
    bank_code: tuple[str, str]  # ISO 20022 BankTransactionCode (Code, SubCode)
    day: int | None = None  # fixed day of the month
    card: bool = False


_CARD = ("IssuedCreditTransfers", "CardPayment")
_DD = ("IssuedDirectDebits", "DirectDebitPayment")
_FPS_OUT = ("IssuedCreditTransfers", "DomesticCreditTransfer")
_FPS_IN = ("ReceivedCreditTransfers", "DomesticCreditTransfer")
_INTEREST = ("ReceivedCreditTransfers", "InterestPayment")


def _card(merchants: tuple[tuple[str, str], ...], per_year: float, low: str, high: str) -> Pattern:
    return Pattern(merchants, per_year, D(low), D(high), False, "CARD PAYMENT", _CARD, card=True)


PATTERNS: dict[str, tuple[Pattern, ...]] = {
    "current": (
        Pattern((("ACME LOGISTICS LTD SALARY", ""),), 12, D("2650.00"), D("2650.00"), True, "BACS CREDIT", _FPS_IN,
                day=25),
        Pattern((("HOMELET LETTINGS RENT", ""),), 12, D("1395.00"), D("1395.00"), False, "STANDING ORDER", _FPS_OUT,
                day=1),
        Pattern((("OCTOPUS ENERGY", ""),), 12, D("96.00"), D("142.00"), False, "DIRECT DEBIT", _DD, day=6),
        Pattern((("COUNCIL TAX", ""),), 12, D("148.00"), D("148.00"), False, "DIRECT DEBIT", _DD, day=15),
        Pattern((("THAMES WATER", ""), ("BT GROUP PLC", ""), ("VODAFONE LTD", "")), 24, D("18.00"), D("45.00"),
                False, "DIRECT DEBIT", _DD),
        _card((("TESCO STORES", "5411"), ("SAINSBURYS", "5411"), ("WAITROSE", "5411"), ("ALDI STORES", "5411"),
               ("CO-OP GROUP FOOD", "5411")), 60, "8.50", "96.00"),
        _card((("TFL TRAVEL CH", "4111"), ("TRAINLINE", "4112")), 50, "2.80", "48.00"),
        _card((("PRET A MANGER", "5814"), ("COSTA COFFEE", "5814"), ("GREGGS", "5814")), 45, "2.35", "9.80"),
        _card((("DISHOOM", "5812"), ("NANDOS", "5812"), ("WAGAMAMA", "5812"), ("DELIVEROO", "5814")), 20,
              "14.00", "68.00"),
        _card((("AMAZON.CO.UK", "5942"), ("BOOTS", "5912"), ("JOHN LEWIS", "5311"), ("ARGOS", "5311")), 18,
              "6.99", "129.00"),
        _card((("NETFLIX.COM", "4899"), ("SPOTIFY UK", "5815")), 24, "10.99", "15.99"),
        Pattern((("REFUND AMAZON.CO.UK", "5942"),), 3, D("6.99"), D("45.00"), True, "CARD REFUND", _FPS_IN),
    ),
    "savings": (
        Pattern((("TRANSFER FROM CURRENT ACCOUNT", ""),), 52, D("25.00"), D("150.00"), True, "FASTER PAYMENT",
                _FPS_IN),
        Pattern((("ROUND UP SAVINGS", ""),), 104, D("0.12"), D("9.80"), True, "INTERNAL TRANSFER", _FPS_IN),
        Pattern((("INTEREST PAID GROSS", ""),), 12, D("8.40"), D("19.75"), True, "INTEREST", _INTEREST, day=1),
        Pattern((("TRANSFER TO CURRENT ACCOUNT", ""),), 6, D("100.00"), D("600.00"), False, "FASTER PAYMENT",
                _FPS_OUT),
    ),
    "business": (
        Pattern((("STRIPE PAYMENTS UK LTD PAYOUT", ""),), 110, D("45.00"), D("880.00"), True, "FASTER PAYMENT",
                _FPS_IN),
        Pattern((("ETSY UK SALES", ""),), 26, D("30.00"), D("420.00"), True, "FASTER PAYMENT", _FPS_IN),
        _card((("POTCLAYS LTD", "5085"), ("ROYAL MAIL", "9402"), ("SCREWFIX", "5200"), ("VIKING PACKAGING", "5111")),
              60, "9.40", "380.00"),
        Pattern((("HMRC VAT", ""),), 4, D("640.00"), D("1480.00"), False, "FASTER PAYMENT", _FPS_OUT),
        Pattern((("O BENNETT DRAWINGS", ""),), 12, D("1500.00"), D("1500.00"), False, "STANDING ORDER", _FPS_OUT,
                day=28),
        Pattern((("XERO UK LTD", ""), ("SHOPIFY", "")), 24, D("26.00"), D("39.00"), False, "DIRECT DEBIT", _DD),
    ),
}


@attrs.frozen
class Txn:
    transaction_id: str
    account_id: str
    booked_at: datetime  # timezone-aware, London time
    amount: Decimal  # positive
    credit: bool
    pending: bool
    merchant: str
    mcc: str
    proprietary: str
    bank_code: tuple[str, str]
    reference: str | None
    balance_after: Decimal | None  # running booked balance (None while pending)


def _amount(rng: random.Random, pattern: Pattern) -> Decimal:
    low, high = int(pattern.low * 100), int(pattern.high * 100)
    return (D(rng.randint(low, high)) / 100).quantize(CENT)


def _moment(rng: random.Random, day: date, card: bool) -> datetime:
    minute = rng.randint(7 * 60, 22 * 60) if card else rng.randint(5 * 60, 9 * 60)
    return datetime.combine(day, time(minute // 60, minute % 60, rng.randint(0, 59)), LONDON)


def generate_transactions(account: AccountTemplate, seed: int, now: datetime) -> list[Txn]:
    """A year of transactions up to `now`, oldest first, each with the booked balance after it."""
    rng = random.Random(f"{seed}:{account.account_id}")
    today = now.astimezone(LONDON).date()
    drafts: list[tuple[datetime, Pattern, str, str, Decimal]] = []
    for offset in range(364, -1, -1):
        day = today - timedelta(days=offset)
        for pattern in PATTERNS[account.kind]:
            if pattern.day is not None:
                count = 1 if day.day == pattern.day else 0
            else:
                rate = pattern.per_year / 365
                count = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
            for _ in range(count):
                name, mcc = rng.choice(pattern.merchants)
                drafts.append((_moment(rng, day, pattern.card), pattern, name, mcc, _amount(rng, pattern)))
    drafts = sorted((d for d in drafts if d[0] <= now), key=lambda d: d[0])
    cards = [i for i, d in enumerate(drafts) if d[1].card]
    pending_at = set(cards[-PENDING_CARD_PAYMENTS:])
    balance = account.opening_balance
    out: list[Txn] = []
    for index, (moment, pattern, name, mcc, amount) in enumerate(drafts):
        pending = index in pending_at
        if not pending:
            balance += amount if pattern.credit else -amount
        reference = None if pattern.card else f"{name.split()[0][:10]}-{moment:%y%m%d}-{len(out) % 1000:03d}"
        out.append(Txn(f"{account.account_id[:8]}-tx-{len(out) + 1:05d}", account.account_id, moment, amount,
                       pattern.credit, pending, name, mcc, pattern.proprietary, pattern.bank_code, reference,
                       None if pending else balance))
    return out


def booked_balance(account: AccountTemplate, transactions: list[Txn]) -> Decimal:
    booked = [t.balance_after for t in transactions if t.balance_after is not None]
    return booked[-1] if booked else account.opening_balance


def available_balance(account: AccountTemplate, transactions: list[Txn]) -> Decimal:
    pending = sum(((t.amount if t.credit else -t.amount) for t in transactions if t.pending), D("0.00"))
    return booked_balance(account, transactions) + pending
