"""Seeded data of the Mastercard Open Banking Australia simulator: institutions, FinBank test profiles, seeded
customers, and the numbers and clocks they need (BSB, ABN checksum, Sydney time).

Everything derives from the seed; the only clock is the injected `now`. The test profiles are the ones the provider
documents for its FinBank institutions (profile_4110…profile_4118, profile_voi_001…004); their accounts, owners and
income streams are invented but plausible for Australia.
"""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs

D = Decimal
DEPOSIT_TYPES = frozenset({"transactionAndSavings", "savings", "termDeposit"})
ACCESS_MODELS = ("ADR_OSP", "CDR_REPRESENTATIVE", "BCDC")
# CDR data scopes, as the consent receipts name them.
SCOPE_NAMES = {
    "bank:accounts.basic:read": "Account name, type and balance",
    "bank:accounts.detail:read": "Account numbers and features",
    "bank:transactions:read": "Transaction details",
    "common:customer.basic:read": "Name and occupation",
}
ALL_SCOPES = tuple(SCOPE_NAMES)
OWNER_SCOPE = "common:customer.basic:read"


def money(value: Decimal) -> float:
    """An amount as the platform sends it: a JSON float with at most two decimals."""
    return float(value.quantize(D("0.01")))


# --- institutions -----------------------------------------------------------------------------------------------
@attrs.frozen
class Institution:
    id: int
    name: str
    url: str
    phone: str
    city: str
    state: str
    postcode: str
    address: str
    bsb_prefix: str  # the "XX" of its BSBs
    test: bool = False

    def to_json(self) -> dict[str, Any]:
        support = "online"
        return {
            "id": self.id, "name": self.name, "transAgg": True, "ach": True, "stateAgg": False, "voi": True,
            "voa": True, "aha": True, "availBalance": True, "accountOwner": True, "studentLoanData": False,
            "loanPaymentDetails": False, "displayName": self.name, "liabilityData": False, "billPayData": False,
            "accountTypeDescription": "Banking", "phone": self.phone, "urlHomeApp": self.url,
            "urlLogonApp": self.url + "/login", "oauthEnabled": True, "urlForgotPassword": self.url + "/forgot",
            "urlOnlineRegistration": self.url + "/register", "class": "testfi" if self.test else "banking",
            "timeZone": "Australia/Sydney", "specialText": f"You will be redirected to {self.name} to sign in.",
            "address": {"city": self.city, "state": self.state, "country": "Australia", "postalCode": self.postcode,
                        "addressLine1": self.address},
            "currency": "AUD", "email": f"cdr@{self.url.split('//')[1]}", "status": support,
            "branding": {"primaryColor": "#CF4500", "logo": f"{self.url}/brand/logo.svg",
                         "icon": f"{self.url}/brand/icon.svg", "tile": f"{self.url}/brand/tile.svg"},
            "productionStatus": {k: support for k in
                                 ("overallStatus", "transAgg", "voa", "voi", "stateAgg", "ach", "aha")},
        }


_FINBANK = ("https://www.finbank.example.com.au", "1300 346 226", "Sydney", "NSW", "2000", "1 Martin Place")
FINBANK_A, FINBANK_B, FINBANK_C = 200003, 2002119, 2002120
TEST_INSTITUTION_IDS = (FINBANK_A, FINBANK_B, FINBANK_C)
INSTITUTIONS: dict[int, Institution] = {i.id: i for i in (
    Institution(FINBANK_A, "FinBank Aus OAuth", *_FINBANK, "80", test=True),
    Institution(FINBANK_B, "FinBank Aus B OAuth", *_FINBANK, "81", test=True),
    Institution(FINBANK_C, "FinBank OAuth Aus C", *_FINBANK, "82", test=True),
    Institution(200010, "Commonwealth Bank of Australia", "https://www.commbank.example.com.au", "13 22 21",
                "Sydney", "NSW", "2000", "Commonwealth Bank Place, 11 Harbour St", "06"),
    Institution(200012, "Westpac", "https://www.westpac.example.com.au", "132 032", "Sydney", "NSW", "2000",
                "275 Kent St", "03"),
    Institution(200014, "ANZ", "https://www.anz.example.com.au", "13 13 14", "Melbourne", "VIC", "3008",
                "833 Collins St, Docklands", "01"),
    Institution(200016, "NAB", "https://www.nab.example.com.au", "13 22 65", "Melbourne", "VIC", "3008",
                "395 Bourke St", "08"),
    Institution(2001457, "Macquarie Bank", "https://www.macquarie.example.com.au", "133 275", "Sydney", "NSW",
                "2000", "50 Martin Place", "18"),
)}
# Institution ids the simulated end user can pick to make Connect fail with "institution not supported" (920–929).
UNSUPPORTED_INSTITUTION_CODES = range(920, 930)


# --- test profiles ----------------------------------------------------------------------------------------------
@attrs.frozen
class AccountTemplate:
    key: str  # stable within its profile: seeds the account's numbers and transactions
    type: str
    name: str
    balance: Decimal  # negative for money owed (cards, loans), as the platform reports it
    transactions: int
    segment: str = "personal"


@attrs.frozen
class Income:
    """A regular credit into the profile's first account: what VOI reports find as an income stream."""
    payor: str
    category: str
    attribute: str  # the VOI attribute it counts towards
    amount: Decimal
    every: int  # days between payments


@attrs.frozen
class Owner:
    first: str
    last: str
    line1: str
    city: str
    state: str
    postcode: str
    email: str
    phone: str
    business: str | None = None  # the registered business name, for business profiles


@attrs.frozen
class Profile:
    username: str
    owner: Owner
    accounts: tuple[AccountTemplate, ...]
    incomes: tuple[Income, ...]
    scopes: tuple[str, ...] = ALL_SCOPES

    @property
    def password(self) -> str:
        return self.username  # FinBank test profiles use the username as the password


def _salary(employer: str, amount: str, every: int = 14) -> Income:
    return Income(employer, "Paycheck", "PAYCHECK_INCOME", D(amount), every)


_PERSONAL_OWNERS = (
    ("Olivia", "Nguyen", "12 Wattle St", "Parramatta", "NSW", "2150", "0412 345 678"),
    ("Jack", "Thompson", "7 Banksia Ave", "Carlton", "VIC", "3053", "0423 118 904"),
    ("Charlotte", "Wilson", "45 Jacaranda Rd", "Paddington", "QLD", "4064", "0434 776 215"),
    ("William", "Smith", "3/18 Grevillea Ct", "Glenelg", "SA", "5045", "0408 552 317"),
    ("Amelia", "Brown", "90 Karri Way", "Subiaco", "WA", "6008", "0449 203 661"),
    ("Noah", "Taylor", "5 Huon Pl", "Sandy Bay", "TAS", "7005", "0417 880 452"),
    ("Isla", "Martin", "27 Mulga St", "Braddon", "ACT", "2612", "0455 309 128"),
)
_EMPLOYERS = ("Bluegum Health Pty Ltd", "Southern Cross Logistics", "Harbourside Council", "Koala Software Pty Ltd",
              "Red Centre Mining Ltd", "Tasman Education", "Capital Consulting Group")


def _personal(number: int) -> Profile:
    first, last, line1, city, state, postcode, phone = _PERSONAL_OWNERS[number - 4110]
    owner = Owner(first, last, line1, city, state, postcode, f"{first.lower()}.{last.lower()}@example.com.au", phone)
    step = D(number - 4110)
    return Profile(f"profile_{number}", owner, (
        AccountTemplate("transaction", "transactionAndSavings", "Everyday Transaction", D("3254.18") + step * 411, 240),
        AccountTemplate("savings", "savings", "Goal Saver", D("15620.40") + step * 1250, 40),
        AccountTemplate("loan", "loan", "Personal Loan", D("-8450.00") - step * 310, 12),
        AccountTemplate("mortgage", "mortgage", "Home Loan", D("-512340.77") - step * 9100, 12),
        AccountTemplate("card", "creditCard", "Low Rate Credit Card", D("-1952.71") - step * 95, 90),
    ), (_salary(_EMPLOYERS[number - 4110], str(D("2650.00") + step * 175)),))


PROFILES: dict[str, Profile] = {p.username: p for p in (
    *(_personal(n) for n in range(4110, 4117)),
    Profile("profile_4117", Owner("Lucas", "White", "14 Boronia St", "Newtown", "NSW", "2042",
                                  "lucas.white@example.com.au", "0421 667 093"), (
        AccountTemplate("transaction", "transactionAndSavings", "Smart Access", D("1820.55"), 120),
        AccountTemplate("savings", "savings", "NetBank Saver", D("7400.00"), 24),
    ), (_salary("Harbour City Cafe Pty Ltd", "1240.00", 7),),
        scopes=tuple(s for s in ALL_SCOPES if s != OWNER_SCOPE)),
    Profile("profile_4118", Owner("Grace", "Kelly", "Unit 4, 220 Pacific Hwy", "North Sydney", "NSW", "2060",
                                  "accounts@kellyjoinery.example.com.au", "02 9955 1820",
                                  business="Kelly Joinery Pty Ltd"), (
        AccountTemplate("transaction", "transactionAndSavings", "Business Transaction", D("48210.35"), 3200,
                        "business"),
        AccountTemplate("card", "creditCard", "Business Platinum Card", D("-6240.18"), 400, "business"),
    ), ()),
    Profile("profile_voi_001", Owner("Ethan", "Walker", "8 Acacia Dr", "Penrith", "NSW", "2750",
                                     "ethan.walker@example.com.au", "0402 118 776"), (
        AccountTemplate("transaction", "transactionAndSavings", "Everyday Account", D("5410.22"), 180),
        AccountTemplate("savings", "savings", "Bonus Saver", D("22800.00"), 30),
    ), (_salary("Metro Rail Services Pty Ltd", "3120.45"),
        Income("Metro Rail Services Pty Ltd Bonus", "Bonus", "BONUS_INCOME", D("4500.00"), 182))),
    Profile("profile_voi_002", Owner("Sophie", "Harris", "31 Lilly Pilly Cres", "Frankston", "VIC", "3199",
                                     "sophie.harris@example.com.au", "0413 902 554"), (
        AccountTemplate("transaction", "transactionAndSavings", "Everyday Account", D("8902.61"), 160),
        AccountTemplate("savings", "savings", "Online Saver", D("41250.90"), 24),
        AccountTemplate("term", "termDeposit", "12 Month Term Deposit", D("50000.00"), 2),
    ), (_salary("Peninsula Health", "7350.00", 30),
        Income("Ray White Frankston Rent", "Rental Income", "RESIDENTIAL_RENTAL_INCOME", D("2340.00"), 30))),
    Profile("profile_voi_003", Owner("Ruby", "Clarke", "2/9 Bottlebrush Ln", "Logan Central", "QLD", "4114",
                                     "ruby.clarke@example.com.au", "0438 220 971"), (
        AccountTemplate("transaction", "transactionAndSavings", "Everyday Account", D("1204.30"), 140),
        AccountTemplate("savings", "savings", "Rainy Day Saver", D("3100.00"), 18),
    ), (Income("Centrelink", "Government Benefits", "OTHER_GOVERNMENT_BENEFIT_INCOME", D("812.50"), 14),
        _salary("Coles Supermarkets Australia", "655.80", 7))),
    Profile("profile_voi_004", Owner("Oscar", "Lewis", "66 Banyan St", "Darwin City", "NT", "0800",
                                     "oscar.lewis@example.com.au", "0447 661 208"), (
        AccountTemplate("transaction", "transactionAndSavings", "Everyday Account", D("12480.05"), 200),
        AccountTemplate("savings", "savings", "High Interest Saver", D("68020.44"), 36),
    ), (Income("Lewis Electrical ABN 33051775556", "Business Income", "SELF_EMPLOYMENT_INCOME", D("4820.00"), 21),
        Income("BHP Group Dividend", "Dividends", "DIVIDEND_INCOME", D("610.35"), 182),
        Income("Interest Credit", "Interest Income", "INTEREST_INCOME", D("148.20"), 30))),
)}
DEFAULT_PROFILE = "profile_4110"


# --- seeded customers and applications ---------------------------------------------------------------------------
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
    category: str = "INDIVIDUAL"
    abn: str | None = None
    links: tuple[SeedLink, ...] = ()


SEEDED_APPLICATION_ID = "3000001"  # an Approved application the seeded customers belong to
BIG_ACCOUNT_ID = "11468410"  # profile_4118's business account: 3,200 transactions
SEEDED_CUSTOMERS: tuple[SeedCustomer, ...] = (
    SeedCustomer("1035061234", "sandbox_olivia_01", "testing", "Olivia", "Nguyen",
                 links=(SeedLink(FINBANK_A, "profile_4110", 1686001, 11468401),)),
    SeedCustomer("1035061235", "sandbox_kelly_joinery_02", "testing", "Grace", "Kelly", "BUSINESS", "51824753556",
                 (SeedLink(FINBANK_B, "profile_4118", 1686002, int(BIG_ACCOUNT_ID)),)),
    SeedCustomer("1035061236", "sandbox_mia_03", "testing", "Mia", "Roberts"),
    SeedCustomer("1035061237", "liam.active-04", "active", "Liam", "Jones",
                 links=(SeedLink(200010, "profile_voi_001", 1686003, 11468420),)),
)
FIRST_NEW_CUSTOMER, FIRST_NEW_ACCOUNT, FIRST_NEW_LOGIN = 1035061300, 11470000, 1687000


# --- numbers -----------------------------------------------------------------------------------------------------
_ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)
_STATE_DIGITS = {"NSW": "2", "ACT": "2", "VIC": "3", "QLD": "4", "SA": "5", "NT": "5", "WA": "6", "TAS": "7"}


def abn_is_valid(abn: str) -> bool:
    """The ABN checksum: subtract 1 from the first digit, weight the digits, the sum divides by 89."""
    if len(abn) != 11 or not abn.isascii() or not abn.isdigit() or abn[0] == "0":
        return False
    digits = [int(abn[0]) - 1, *map(int, abn[1:])]
    return sum(d * w for d, w in zip(digits, _ABN_WEIGHTS)) % 89 == 0


def bsb(institution: Institution, state: str, rng: random.Random) -> str:
    """A BSB in the form XXY-ZZZ: the institution, the branch's state, the branch."""
    return f"{institution.bsb_prefix}{_STATE_DIGITS.get(state, '2')}-{rng.randrange(1000):03d}"


def account_number(rng: random.Random) -> str:
    return str(rng.randrange(10**7, 10**9))


# --- Sydney time ---------------------------------------------------------------------------------------------------
def _first_sunday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def sydney_epoch(day: date, minute: int) -> int:
    """Epoch seconds of a Sydney wall-clock time: AEDT (+11) from the first Sunday of October to the first Sunday
    of April, AEST (+10) otherwise."""
    in_dst = (day, minute) < (_first_sunday(day.year, 4), 180) or (day, minute) >= (_first_sunday(day.year, 10), 120)
    return (day.toordinal() - _EPOCH_ORDINAL) * 86_400 + minute * 60 - (11 if in_dst else 10) * 3600


def sydney_date(moment: datetime) -> date:
    utc = moment.astimezone(timezone.utc)
    ends, starts = _first_sunday(utc.year, 4), _first_sunday(utc.year, 10)
    in_dst = utc < datetime(ends.year, ends.month, ends.day, tzinfo=timezone.utc) - timedelta(hours=8) or \
        utc >= datetime(starts.year, starts.month, starts.day, tzinfo=timezone.utc) - timedelta(hours=8)
    return (utc + timedelta(hours=11 if in_dst else 10)).date()
