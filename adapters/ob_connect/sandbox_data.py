"""The simulated hub's banks and the simulated end user's (PSU's) accounts, transactions and standing orders.

Everything is derived from the seed, so a seed always gives the same ids, account numbers and transactions; dates are
counted back from the `now` the world is made with.
"""
from __future__ import annotations

import random
import string
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs

DOMESTIC, SEPA, CROSS_BORDER = "domestic", "sepa", "cross-border"
PAYMENT_TYPES = (DOMESTIC, SEPA, CROSS_BORDER)
IBAN, SORT_CODE = "IBAN", "SortCodeAccountNumber"
CENT = Decimal("0.01")
HOLDER = "Alex Morgan"  # the simulated PSU, one person with accounts at every bank
CURRENT_TRANSACTIONS, SAVINGS_TRANSACTIONS, HISTORY_DAYS = 150, 12, 180


@attrs.define
class Aspsp:
    id: str
    name: str
    country: str
    profile: str
    currency: str
    scheme: str  # how its accounts are identified
    bic: str
    services: tuple[str, ...]
    payment_types: frozenset[str]
    latency: float = 0.0  # seconds every call naming this bank waits
    rejects_payments: bool = False

    @property
    def pis(self) -> bool:
        return "PIS" in self.services

    def capabilities(self) -> dict[str, bool]:
        ais = "AIS" in self.services
        return {
            "obtain_ais_consent": ais, "delete_ais_consent": ais, "retrieve_accounts": ais,
            "retrieve_balances": ais, "retrieve_transactions": ais, "retrieve_standing_orders": ais,
            "domestic_credit_transfer": self.pis and DOMESTIC in self.payment_types,
            "sepa_credit_transfer": self.pis and SEPA in self.payment_types,
            "cross_border_credit_transfer": self.pis and CROSS_BORDER in self.payment_types,
        }

    def to_json(self, additional: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "country": self.country, "profile": self.profile,
                               "aspspServices": list(self.services)}
        if "capabilities" in additional:
            out["capabilities"] = self.capabilities()
        if "logo" in additional:
            out["logo"] = {"logoUrl": f"https://logos.example.invalid/{self.id}.png", "fileType": "png"}
        return out


ALBION = "c058ee30-0239-5401-a3a7-6f0aec2ea477"
RHEINUFER = "2d5a7e23-1711-5059-8e3c-3a4471941b8c"
WISLA = "7ed56ade-eaf3-5460-b1dc-77bf9a7c6a13"
POLDER = "402f12c6-97b0-5f55-8e5c-4ef3ab61557d"
LENTO = "9edacef9-2104-543a-af67-0d3188cad2db"
LIFFEY = "86b156a1-4710-5d84-857e-63c224d2c99a"
SLOW_LATENCY = 0.5


def make_aspsps() -> dict[str, Aspsp]:
    """A fresh set (each simulator may change latency on its own copies)."""
    both = ("AIS", "PIS")
    banks = [
        Aspsp(ALBION, "Albion Savings Bank", "GB", "CMA9", "GBP", SORT_CODE, "ALBNGB2L", both,
              frozenset({DOMESTIC, CROSS_BORDER})),
        Aspsp(RHEINUFER, "Rheinufer Bank", "DE", "NextGenPSD2", "EUR", IBAN, "RHUFDEFF", both,
              frozenset({SEPA, CROSS_BORDER})),
        Aspsp(WISLA, "Bank Wiślany", "PL", "PolishAPI", "PLN", IBAN, "WISLPLPW", both, frozenset({DOMESTIC})),
        Aspsp(POLDER, "Polder Data Bank", "NL", "NextGenPSD2", "EUR", IBAN, "PLDRNL2A", ("AIS",), frozenset()),
        Aspsp(LENTO, "Banco Lento", "ES", "NextGenPSD2", "EUR", IBAN, "LENTESMM", both,
              frozenset({SEPA, CROSS_BORDER}), latency=SLOW_LATENCY),
        Aspsp(LIFFEY, "Liffey Credit Union", "IE", "NextGenPSD2", "EUR", IBAN, "LIFFIE2D", both,
              frozenset({SEPA, CROSS_BORDER}), rejects_payments=True),
    ]
    return {bank.id: bank for bank in banks}


@attrs.frozen
class Account:
    resource_id: str
    aspsp_id: str
    name: str
    account_type: str  # CACC | SVGS
    currency: str
    scheme: str
    number: str  # IBAN, or 14 digits: sort code + account number

    def to_json(self) -> dict[str, Any]:
        return {"resourceId": self.resource_id, "name": self.name, "accountType": self.account_type,
                "currency": self.currency, "accountNumber": self.number, "schemeName": self.scheme,
                "holderName": HOLDER, "accountHolderType": "INDIVIDUAL"}

    def page_entry(self) -> dict[str, Any]:
        return {"resourceId": self.resource_id, "name": self.name, "accountNumber": self.number,
                "schemeName": self.scheme, "currency": self.currency}

    def domestic_number(self) -> str:
        """What a domestic payment names as the debtor account: the 8-digit UK number, or the PL NRB digits."""
        if self.scheme == SORT_CODE:
            return self.number[6:]
        return self.number[2:] if self.number.startswith("PL") else self.number


@attrs.frozen
class Transaction:
    transaction_id: str
    booked_at: datetime
    value_date: date
    pending: bool
    credit: bool
    amount: Decimal
    currency: str
    text: str
    counterparty: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "transactionId": self.transaction_id, "bookingDateTime": self.booked_at.isoformat(),
            "valueDate": self.value_date.isoformat(), "status": "PDNG" if self.pending else "BOOK",
            "creditDebitIndicator": "CRDT" if self.credit else "DBIT",
            "transactionAmount": {"amount": money(self.amount), "currency": self.currency},
            "remittanceInformationUnstructured": self.text, "transactionType": self.kind}
        out["senderName" if self.credit else "recipientName"] = self.counterparty
        return out


def money(amount: Decimal) -> float:
    """An amount as the JSON number the hub sends (2 decimals: the float's shortest repr prints exactly those)."""
    return float(amount.quantize(CENT))


_MERCHANTS = {
    "GB": ["Tesco Stores", "Pret A Manger", "Transport for London", "Boots", "Sainsbury's", "Waterstones"],
    "DE": ["REWE Markt", "Deutsche Bahn", "dm-drogerie", "Lidl", "Rossmann", "Thalia"],
    "PL": ["Biedronka", "Żabka", "PKP Intercity", "Rossmann PL", "Empik", "Orlen"],
    "NL": ["Albert Heijn", "NS Reizen", "Jumbo", "HEMA", "Kruidvat", "Bol.com"],
    "ES": ["Mercadona", "Renfe", "El Corte Inglés", "Carrefour ES", "Zara", "Repsol"],
    "IE": ["Dunnes Stores", "Irish Rail", "Tesco Ireland", "Centra", "Boots Ireland", "Easons"],
}


def iban(country: str, bban: str) -> str:
    """An IBAN with valid check digits (ISO 13616 mod 97)."""
    digits = "".join(str(int(c, 36)) for c in (bban + country + "00").upper())
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


class HubData:
    """The PSU's accounts at every bank and their history, fixed at construction."""

    def __init__(self, seed: int, aspsps: dict[str, Aspsp], now: datetime) -> None:
        self.seed = seed
        self.now = now
        self.accounts: dict[str, Account] = {}
        self.by_bank: dict[str, list[Account]] = {}
        self.transactions: dict[str, list[Transaction]] = {}  # newest first
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}  # booked, available
        self.standing_orders: dict[str, list[dict[str, Any]]] = {}
        for bank in aspsps.values():
            rng = random.Random(f"{seed}:{bank.id}")
            own = [self._account(rng, bank, "CACC", "Current Account"),
                   self._account(rng, bank, "SVGS", "Savings Account")]
            self.by_bank[bank.id] = own
            for account in own:
                self.accounts[account.resource_id] = account
                self._history(rng, bank, account)
                self.standing_orders[account.resource_id] = (
                    self._standing_orders(rng, bank, account) if account.account_type == "CACC" else [])

    def _account(self, rng: random.Random, bank: Aspsp, kind: str, name: str) -> Account:
        resource_id = "acc-" + "".join(rng.choices("0123456789abcdef", k=20))
        return Account(resource_id, bank.id, name, kind, bank.currency, bank.scheme, _number(rng, bank))

    def _history(self, rng: random.Random, bank: Aspsp, account: Account) -> None:
        count = CURRENT_TRANSACTIONS if account.account_type == "CACC" else SAVINGS_TRANSACTIONS
        start = datetime.combine(self.now.date(), time(0, tzinfo=timezone.utc)) - timedelta(days=HISTORY_DAYS)
        span = int((self.now - start).total_seconds()) - 3600
        moments = sorted(start + timedelta(seconds=rng.randrange(span)) for _ in range(count))
        merchants = _MERCHANTS[bank.country]
        items: list[Transaction] = []
        for n, booked_at in enumerate(moments):
            pending = account.account_type == "CACC" and n >= count - 3
            if account.account_type == "SVGS":
                credit, kind, party = True, "TRANSFER", HOLDER
                amount, text = Decimal(rng.randrange(5000, 50000)) / 100, "Monthly saving"
            elif n % 15 == 0:
                credit, kind, party = True, "SALARY", "Northwind Consulting Ltd"
                amount, text = Decimal(rng.randrange(250000, 320000)) / 100, "Salary"
            else:
                credit, party = False, rng.choice(merchants)
                kind = rng.choice(["CARD", "CARD", "CARD", "DIRECT_DEBIT", "TRANSFER"])
                amount, text = Decimal(rng.randrange(150, 12000)) / 100, f"{party} {booked_at:%d/%m}"
            items.append(Transaction(f"tx-{account.resource_id[4:12]}-{n:04d}", booked_at, booked_at.date(),
                                     pending, credit, amount, account.currency, text, party, kind))
        booked = Decimal(rng.randrange(100000, 400000)) / 100
        for tx in items:
            if not tx.pending:
                booked += tx.amount if tx.credit else -tx.amount
        available = booked - sum((tx.amount for tx in items if tx.pending and not tx.credit), Decimal(0))
        self.transactions[account.resource_id] = list(reversed(items))
        self.balances[account.resource_id] = (booked, available)

    def _standing_orders(self, rng: random.Random, bank: Aspsp, account: Account) -> list[dict[str, Any]]:
        today = self.now.date()
        orders = []
        for n, (reference, frequency, low, high) in enumerate(
                [("Rent", "MNTH", 60000, 150000), ("Gym membership", "MNTH", 2500, 6000)]):
            amount = money(Decimal(rng.randrange(low, high)) / 100)
            first = today - timedelta(days=rng.randrange(60, 400))
            nxt = today + timedelta(days=rng.randrange(1, 28))
            order: dict[str, Any] = {
                "standingOrderId": f"so-{account.resource_id[4:12]}-{n}", "status": "ACTIVE", "reference": reference,
                "schedule": {"frequency": frequency},
                "firstPayment": {"date": first.isoformat(), "amount": amount, "currency": account.currency},
                "nextPayment": {"date": nxt.isoformat(), "amount": amount, "currency": account.currency},
                "recipientAccount": {"identification": _number(rng, bank), "schemeName": bank.scheme,
                                     "name": "Harbour Lettings" if n == 0 else "FitLife Clubs"}}
            if n == 1:
                order["finalPayment"] = {"date": (nxt + timedelta(days=365)).isoformat(), "amount": amount,
                                         "currency": account.currency}
            orders.append(order)
        return orders


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.digits, k=n))


def _number(rng: random.Random, bank: Aspsp) -> str:
    if bank.scheme == SORT_CODE:
        return "20" + _digits(rng, 4) + _digits(rng, 8)
    bban = {"DE": lambda: _digits(rng, 18), "PL": lambda: _digits(rng, 24),
            "NL": lambda: bank.bic[:4] + _digits(rng, 10), "ES": lambda: _digits(rng, 20),
            "IE": lambda: bank.bic[:4] + _digits(rng, 14)}[bank.country]()
    return iban(bank.country, bban)
