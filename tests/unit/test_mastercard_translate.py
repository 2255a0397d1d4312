"""adapters.mastercard.translate and region: payloads shaped like the platform's OpenAPI schemas (v1.42.0), built
from the spec's own examples, into canonical models; and request bodies holding only what the spec allows."""
from __future__ import annotations

import calendar
import copy
import random
from datetime import date, datetime, timezone

import orjson
import pytest

from adapters.base import CreateCustomerInput
from adapters.mastercard import bodies, details, translate
from adapters.mastercard.region import AU, US, region_for
from gateway.errors import ProviderBadResponse, ValidationFailed
from gateway.ids import IdMinter
from gateway.models import (
    AccountType,
    BalanceType,
    CustomerType,
    Money,
    PaymentCoordinates,
    PostalAddress,
    Transaction,
    TransactionStatus,
)

UTC = timezone.utc

# --- spec examples (components.schemas.*.example, assembled) ------------------------------------------------------
SPEC_TRANSACTION = {
    "id": 21284820852, "amount": -828.9, "uniqueTransactionId": "87529-543210", "accountId": 5011648377,
    "customerId": 1005061234, "status": "active", "description": "Buy Stock",
    "memo": "UWM HOLDINGS CORPORATION - CLASS A COMMON STOCK", "type": "atm", "transactionDate": 1607450357,
    "postedDate": 1607450357, "createdDate": 1607450357, "firstEffectiveDate": 1607450357,
    "effectiveDate": 1607450357, "optionExpireDate": 1607450357, "checkNum": 299, "escrowAmount": 2534,
    "feeAmount": 0.51, "suspenseAmount": 0.25, "interestAmount": 132, "principalAmount": 32560,
    "optionStrikePrice": 32560, "unitQuantity": 150.42, "unitPrice": 5.53,
    "categorization": {"normalizedPayeeName": "Mad Science Research", "category": "Streaming Service",
                       "city": "Murray", "state": "UT", "postalCode": "84123", "country": "CAN",
                       "bestRepresentation": "VERIZON WIRELESS PAYMENTS",
                       "entityStandardizationConfidenceScore": 18.95},
    "runningBalanceAmount": 1000, "subaccountSecurityType": "MARGIN", "commissionAmount": 0, "ticker": "UWMC",
    "investmentTransactionType": "transfer", "taxesAmount": 0, "currencySymbol": "USD", "incomeType": "DIV",
    "splitDenominator": 152, "splitNumerator": 20, "sharesPerContract": 100, "subAccountFund": "MARGIN",
    "securityId": "91823B109", "securityIdType": "CUSIP",
}


def transactions_body(*rows: dict, more: object = "false") -> dict:
    return {"found": 200, "displaying": len(rows), "moreAvailable": more, "fromDate": "1607450357",
            "toDate": "1607450357", "sort": "desc", "transactions": list(rows)}


SPEC_ACCOUNT = {
    "id": "5011648377", "number": "201940541", "accountNumberDisplay": "7528", "realAccountNumberLast4": "5678",
    "name": "Super Checking", "balance": 401.26, "type": "checking", "aggregationStatusCode": 0, "status": "active",
    "customerId": "1005061234", "institutionId": "4222", "balanceDate": 1607450357,
    "aggregationSuccessDate": 1607450357, "aggregationAttemptDate": 1607450357, "createdDate": 1607450357,
    "lastUpdatedDate": 1607450357, "marketSegment": "personal", "currency": "USD",
    "lastTransactionDate": 1607450357, "oldestTransactionDate": 1607450357, "institutionLoginId": 1007302745,
    "accountNickname": "Super Checking", "displayPosition": 2, "linkedAccountDate": 1607450357,
}
# From the AU docs ("added" Connect event, accounts as the platform returns them)
AU_ACCOUNT = {
    "id": "11468417", "number": "xxxx-xxxx-xxxx-0101", "accountNumberDisplay": "xxxx-xxxx-xxxx-0101",
    "name": "Transaction", "balance": 22327.3, "type": "transactionAndSavings", "status": "active",
    "customerId": "1463546", "institutionId": "200003", "balanceDate": 1704384285, "createdDate": 1704384285,
    "lastUpdatedDate": 1704423887, "currency": "AUD", "institutionLoginId": 1686094,
    "accountNickname": "Transaction", "marketSegment": "personal",
}
SPEC_AVAILABLE_BALANCE = {
    "id": 1005061234, "realAccountNumberLast4": "5678", "availableBalance": 173.47,
    "availableBalanceDate": 1607450357, "clearedBalance": 222.25, "clearedBalanceDate": 1607450300,
    "aggregationStatusCode": 0, "currency": "USD",
}
SPEC_ACH_DETAILS = {"routingNumber": "123456789", "realAccountNumber": "002345678901"}  # fails the ABA checksum
SPEC_ACH_DETAILS_V3 = {"paymentInstruction": [  # examples ACHDetailsV3Example
    {"type": "ach", "accountNumber": "1000001111", "tanEnabled": True,
     "descriptors": [{"type": "routingNumber", "value": "091000019"}]},
    {"type": "rtp", "accountNumber": "1000001112", "tanEnabled": False,
     "descriptors": [{"type": "routingNumber", "value": "091000019"}], "transferInEnabled": True,
     "transferOutEnabled": True},
    {"type": "fedNow", "accountNumber": "1000001111", "tanEnabled": False,
     "descriptors": [{"type": "routingNumber", "value": "091009919"}], "transferInEnabled": True,
     "transferOutEnabled": True},
]}
AU_DETAILS = {"paymentInstructions": [{"type": "moneyTransfer", "accountNumber": "002343534556",
                                       "descriptors": [{"type": "bsbNumber", "value": "033-547"}]}]}
SPEC_OWNER_V3 = {"holders": [{
    "relationship": "AUTHORIZED_USER", "ownerName": "John Smith, PhD", "firstName": "John", "middleName": "L",
    "lastName": "Smith", "suffix": "PhD", "nameClassification": "person", "nameClassificationconfidencescore": 0.9,
    "addresses": [{"ownerAddress": "434 W Ascension Way Suite #200 Murray UT 84123", "type": "Home",
                   "line1": "434 W Ascension Way", "line2": "Suite #200", "line3": "UT 84123", "city": "Murray",
                   "state": "UT", "postalCode": "84123", "country": "CAN"}],
    "emails": [{"isPrimary": True, "email": "myname@mycompany.com", "emailType": "Personal"}],
    "phones": [{"type": "HOME", "country": "61", "phone": "1-801-984-4200"}],
    "documentations": [{"taxId": "123-45-7890", "taxIdCountry": "CAN", "governmentId": "123456789"}],
}]}
SPEC_OWNER_V1 = {"ownerName": "John Smith", "ownerAddress": "434 W Ascension Way Suite #200 Murray UT 84123",
                 "asOfDate": 1607450357}
SPEC_INSTITUTION = {
    "id": 4222, "name": "FinBank", "transAgg": True, "ach": True, "stateAgg": False, "voi": True, "voa": True,
    "aha": False, "availBalance": False, "accountOwner": True, "studentLoanData": True, "loanPaymentDetails": True,
    "displayName": "Finbank", "liabilityData": True, "billPayData": True,
    "accountTypeDescription": "Workplace Retirement",
    "phone": "1-801-984-4200", "urlHomeApp": "https://www.example.com/home",
    "urlLogonApp": "https://www.example.com/login", "oauthEnabled": True,
    "urlForgotPassword": "https://www.example.com/forgotPassword.do",
    "urlOnlineRegistration": "https://www.example.com/signup", "class": "retirement",
    "specialText": "Please enter your Principal Financial - Retirement (Personal) Username and Password.",
    "timeZone": "America/Denver", "specialInstructions": ["Account details", "Balances and transactions"],
    "specialInstructionsTitle": "Special OAuth Login Instructions",
    "address": {"city": "Murray", "state": "UT", "country": "CAN", "postalCode": "84123",
                "addressLine1": "434 W Ascension Way", "addressLine2": "Suite #200"},
    "currency": "USD", "email": "myname@mycompany.com", "status": "online", "newInstitutionId": 4222,
    "oauthInstitutionId": 4222,
}

# --- what the spec allows in requests (hard-coded from its schemas, so the repo stays self-contained) -------------
NEW_CUSTOMER_KEYS = {"username", "firstName", "lastName", "applicationId", "phone", "email"}
CONNECT_KEYS = {"language", "partnerId", "customerId", "consumerId", "redirectUri", "webhook", "webhookContentType",
                "webhookData", "webhookHeaders", "optionalConsumerInfo", "singleUseUrl", "experience",
                "institutionSettings", "fromDate", "reportCustomFields", "isHostedInMobileApp", "isWebView"}
LITE_CONNECT_KEYS = {"language", "partnerId", "customerId", "institutionId", "redirectUri", "webhook",
                     "webhookContentType", "webhookData", "webhookHeaders", "experience", "singleUseUrl",
                     "isHostedInMobileApp", "isWebView"}
TRANSACTIONS_QUERY_KEYS = {"fromDate", "toDate", "start", "limit", "sort", "includePending", "showDailyBalance"}


@pytest.fixture
def ids() -> IdMinter:
    return IdMinter(b"k" * 32, "tenant-a", "con_test")


def page(body: dict, ids: IdMinter, *, region=US, pending: bool = True, removed: bool = False,
         **kw: object) -> translate.TransactionsPage:
    return translate.transactions(body, region=region, account_id="acc_1", ids=ids, include_pending=pending,
                                  include_removed=removed, **kw)  # type: ignore[arg-type]


# --- regions ------------------------------------------------------------------------------------------------------
def test_regions_hold_the_differences() -> None:
    assert (US.provider_id, US.currency, US.country, US.details_scheme) == ("mastercard-us", "USD", "US", "us_ach")
    assert (AU.provider_id, AU.currency, AU.country, AU.details_scheme) == ("mastercard-au", "AUD", "AU", "au_bsb")
    assert (US.app_key_header, US.app_token_header) == ("Finicity-App-Key", "Finicity-App-Token")
    assert (AU.app_key_header, AU.app_token_header) == ("App-Key", "App-Token")
    assert US.transactions_path == "/aggregation/v4/customers/{customer}/accounts/{account}/transactions"
    assert AU.transactions_path == "/aggregation/v3/customers/{customer}/accounts/{account}/transactions"
    assert region_for("mastercard-au") is AU
    with pytest.raises(LookupError):
        region_for("stripe-uk")


def test_region_path_encodes_ids() -> None:
    assert US.path(US.transactions_path, customer="1005061234", account="5011648377") == \
        "/aggregation/v4/customers/1005061234/accounts/5011648377/transactions"
    assert US.path(US.details_path, customer="1/../x", account="a?b") == \
        "/aggregation/v1/customers/1%2F..%2Fx/accounts/a%3Fb/details"


# --- transactions -------------------------------------------------------------------------------------------------
def test_spec_transaction(ids: IdMinter) -> None:
    result = page(transactions_body(SPEC_TRANSACTION), ids)
    assert (result.found, result.displaying, result.more_available) == (200, 1, False)
    [txn] = result.items
    assert txn == Transaction(
        id=ids.transactions_of("acc_1")("21284820852"), account_id="acc_1", provider_ref="21284820852",
        amount=Money.of(-828.9, "USD"), status=TransactionStatus.BOOKED, description="Buy Stock",
        booked_at=datetime(2020, 12, 8, 17, 59, 17, tzinfo=UTC), transaction_date=date(2020, 12, 8),
        category="Streaming Service", memo="UWM HOLDINGS CORPORATION - CLASS A COMMON STOCK", check_number="299",
    )
    assert txn.amount.to_json() == {"amount": "-828.90", "currency": "USD"}
    assert txn.booked_at.tzinfo is UTC


def test_from_upstream_bytes_amounts_are_exact(ids: IdMinter) -> None:
    raw = b'{"found":2,"displaying":2,"moreAvailable":"true","transactions":[' \
          b'{"id":1,"amount":0.30000000000000004,"status":"active","description":"a","postedDate":1607450357},' \
          b'{"id":2,"amount":-0.0,"status":"active","description":"b","postedDate":1607450357}]}'
    result = page(orjson.loads(raw), ids)
    assert [t.amount.to_json()["amount"] for t in result.items] == ["0.30000000000000004", "0.00"]
    assert result.more_available is True


@pytest.mark.parametrize(("upstream", "canonical"), [
    ("active", TransactionStatus.BOOKED), ("pending", TransactionStatus.PENDING),
    ("shadow", TransactionStatus.REMOVED),
])
def test_status_table(upstream: str, canonical: TransactionStatus, ids: IdMinter) -> None:
    assert translate.TRANSACTION_STATUSES[upstream] is canonical
    [txn] = page(transactions_body({**SPEC_TRANSACTION, "status": upstream}), ids, pending=True, removed=True).items
    assert txn.status is canonical


def _mixed() -> dict:
    return transactions_body(*({**SPEC_TRANSACTION, "id": i, "status": s}
                               for i, s in enumerate(["active", "shadow", "pending", "active"])))


def test_shadow_excluded_unless_asked(ids: IdMinter) -> None:
    assert [t.provider_ref for t in page(_mixed(), ids).items] == ["0", "2", "3"]
    assert [t.provider_ref for t in page(_mixed(), ids, removed=True).items] == ["0", "1", "2", "3"]


def test_pending_included_only_when_asked(ids: IdMinter) -> None:
    assert [t.provider_ref for t in page(_mixed(), ids, pending=False).items] == ["0", "3"]
    pending = [t for t in page(_mixed(), ids).items if t.status is TransactionStatus.PENDING]
    assert pending and pending[0].booked_at is None  # not booked yet, whatever postedDate says
    assert pending[0].transaction_date == date(2020, 12, 8)


def test_counts_are_upstream_counts_before_filtering(ids: IdMinter) -> None:
    result = page(_mixed(), ids, pending=False)
    assert (result.found, result.displaying, len(result.items)) == (200, 4, 2)


@pytest.mark.parametrize(("more", "expected"), [("true", True), ("false", False), (True, True), (False, False),
                                                (None, False), ("TRUE", True)])
def test_more_available_string_or_boolean(more: object, expected: bool, ids: IdMinter) -> None:
    assert page(transactions_body(SPEC_TRANSACTION, more=more), ids).more_available is expected


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "Buy Stock"),
    ({"description": ""}, "UWM HOLDINGS CORPORATION - CLASS A COMMON STOCK"),
    ({"description": "No description provided by institution"}, "UWM HOLDINGS CORPORATION - CLASS A COMMON STOCK"),
    ({"description": "No description provided by institution", "memo": None}, "No description provided by institution"),
    ({"description": None, "memo": None}, ""),
])
def test_description_prefers_description_then_memo(changes: dict, expected: str, ids: IdMinter) -> None:
    [txn] = page(transactions_body({**SPEC_TRANSACTION, **changes}), ids).items
    assert txn.description == expected


def test_optional_fields_absent(ids: IdMinter) -> None:
    row = {"id": 7, "amount": 12, "accountId": 1, "customerId": 2, "status": "active", "description": "Pay",
           "createdDate": 1607450357}
    [txn] = page(transactions_body(row), ids).items
    assert (txn.category, txn.memo, txn.check_number, txn.booked_at, txn.transaction_date) == (None,) * 5
    assert txn.amount.to_json()["amount"] == "12.00"


def test_ids_are_stable_scoped_and_from_the_upstream_id(ids: IdMinter) -> None:
    first = page(transactions_body(SPEC_TRANSACTION), ids).items[0]
    again = page(transactions_body(SPEC_TRANSACTION), IdMinter(b"k" * 32, "tenant-a", "con_test")).items[0]
    other = page(transactions_body(SPEC_TRANSACTION), IdMinter(b"k" * 32, "tenant-b", "con_test")).items[0]
    assert first.id == again.id == ids.transactions_of("acc_1")("21284820852") and first.id.startswith("txn_")
    assert other.id != first.id
    assert ids.transactions_of("acc_2")("21284820852") != first.id  # unique across accounts too
    string_id = page(transactions_body({**SPEC_TRANSACTION, "id": "21284820852"}), ids).items[0]
    assert string_id.id == first.id


def test_currency_is_the_accounts_or_the_regions(ids: IdMinter) -> None:
    assert page(transactions_body(SPEC_TRANSACTION), ids, region=AU).items[0].amount.currency == "AUD"
    assert page(transactions_body(SPEC_TRANSACTION), ids, currency="CAD").items[0].amount.currency == "CAD"


@pytest.mark.parametrize("breakage", [
    {"status": "deleted"}, {"status": None}, {"amount": None}, {"amount": True}, {"amount": "NaN"},
    {"id": None}, {"id": True}, {"postedDate": "soon"}, {"transactionDate": [1]}, {"categorization": "food"},
    {"postedDate": 10**20},
])
def test_unreadable_transaction_is_a_bad_response(breakage: dict, ids: IdMinter) -> None:
    with pytest.raises(ProviderBadResponse):
        page(transactions_body({**SPEC_TRANSACTION, **breakage}), ids)


@pytest.mark.parametrize("body", [{}, {"transactions": None}, {"transactions": {}}, [], None,
                                  {"transactions": [1]}, {"transactions": [], "found": "many"}])
def test_unreadable_page_is_a_bad_response(body: object, ids: IdMinter) -> None:
    with pytest.raises(ProviderBadResponse):
        page(body, ids)  # type: ignore[arg-type]


def test_missing_field_in_one_row_is_a_bad_response(ids: IdMinter) -> None:
    row = dict(SPEC_TRANSACTION)
    del row["amount"]
    with pytest.raises(ProviderBadResponse):
        page(transactions_body(SPEC_TRANSACTION, row), ids)


def test_epochs_across_dst_changes_are_utc(ids: IdMinter) -> None:
    rows = [
        {**SPEC_TRANSACTION, "id": 1, "postedDate": 1710054000, "transactionDate": 1710035999},  # 2024-03-10 US
        {**SPEC_TRANSACTION, "id": 2, "postedDate": 1730611800, "transactionDate": 1730592000},  # 2024-11-03 US
        {**SPEC_TRANSACTION, "id": 3, "postedDate": 1712415600, "transactionDate": 1712448000},  # 2024-04-07 AU
        {**SPEC_TRANSACTION, "id": 4, "postedDate": "1710054000", "transactionDate": 1710035999.5},
    ]
    items = page(transactions_body(*rows), ids).items
    assert [t.booked_at for t in items] == [
        datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
        datetime(2024, 4, 6, 15, tzinfo=UTC), datetime(2024, 3, 10, 7, tzinfo=UTC)]
    assert [t.transaction_date for t in items] == [date(2024, 3, 10), date(2024, 11, 3), date(2024, 4, 7),
                                                   date(2024, 3, 10)]


@pytest.mark.parametrize("currency", ["USD", "AUD", "JPY", "BHD"])
def test_fast_money_reader_equals_money_of(currency: str) -> None:
    read = translate.money_reader(currency)
    rnd = random.Random(7)
    values = [0.0, -0.0, 1e-7, 5e-324, 1e16, 1e22, -1e16, 0.1 + 0.2, 19.99, 100.0, 123456789012345.67, 0.5, 7, -3,
              10**16, 2.5e-5, 1234567890.12]
    values += [round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 4)) for _ in range(3000)]
    values += [rnd.uniform(-1e3, 1e3) for _ in range(1000)]
    for value in values:
        fast, reference = read(value), Money.of(value, currency)
        assert fast == reference and fast.to_json() == reference.to_json(), value
        assert read(value) == reference  # second time from its cache


def test_transactions_params_whole_days_in_utc() -> None:
    params = bodies.transactions_params(from_date=date(2024, 3, 10), to_date=date(2024, 3, 10), start=1,
                                           limit=25, include_pending=True, sort="desc")
    assert params == {"fromDate": "1710028800", "toDate": "1710115199", "start": "1", "limit": "25", "sort": "desc",
                      "includePending": "true"}
    assert set(params) <= TRANSACTIONS_QUERY_KEYS


@pytest.mark.parametrize(("start_day", "end_day"), [
    (date(2024, 3, 9), date(2024, 3, 11)), (date(2024, 11, 2), date(2024, 11, 4)),
    (date(2024, 4, 6), date(2024, 4, 8)), (date(2024, 10, 5), date(2024, 10, 7)),
    (date(2023, 12, 31), date(2024, 1, 1)),
])
def test_transactions_params_across_dst_changes(start_day: date, end_day: date) -> None:
    params = bodies.transactions_params(from_date=start_day, to_date=end_day, start=26, limit=1000,
                                           include_pending=False, sort="asc")
    start, end = int(params["fromDate"]), int(params["toDate"])
    assert start == calendar.timegm(start_day.timetuple())
    assert datetime.fromtimestamp(start, UTC) == datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
    assert end - start + 1 == ((end_day - start_day).days + 1) * 86400  # every day is 24 h long in UTC
    assert datetime.fromtimestamp(end, UTC) == datetime(end_day.year, end_day.month, end_day.day, 23, 59, 59,
                                                        tzinfo=UTC)
    assert (params["start"], params["limit"], params["sort"], params["includePending"]) == ("26", "1000", "asc",
                                                                                            "false")


@pytest.mark.parametrize("kwargs", [
    {"from_date": date(2024, 1, 2), "to_date": date(2024, 1, 1)}, {"start": 0}, {"limit": 0}, {"limit": 1001},
    {"sort": "newest"},
])
def test_transactions_params_refuses_what_the_spec_does_not_allow(kwargs: dict) -> None:
    args = {"from_date": date(2024, 1, 1), "to_date": date(2024, 1, 2), "start": 1, "limit": 25,
            "include_pending": False, "sort": "desc", **kwargs}
    with pytest.raises(ValueError):
        bodies.transactions_params(**args)


# --- accounts -----------------------------------------------------------------------------------------------------
def test_spec_account(ids: IdMinter) -> None:
    acc = translate.account(SPEC_ACCOUNT, region=US, consent_id="con_test", ids=ids)
    assert acc.id == ids.account("5011648377") and acc.id.startswith("acc_")
    assert (acc.provider, acc.provider_ref, acc.consent_id) == ("mastercard-us", "5011648377", "con_test")
    assert (acc.name, acc.type, acc.currency, acc.status) == ("Super Checking", AccountType.CHECKING, "USD", "active")
    assert acc.masked_number == "****7528"
    assert acc.institution_id == "4222"
    assert acc.extra == {"provider_type": "checking", "institution_login_id": "1007302745",
                         "nickname": "Super Checking", "market_segment": "personal", "aggregation_status_code": 0}


def test_au_account(ids: IdMinter) -> None:
    acc = translate.account(AU_ACCOUNT, region=AU, consent_id="con_test", ids=ids)
    assert (acc.provider, acc.type, acc.currency, acc.masked_number) == ("mastercard-au", AccountType.CHECKING,
                                                                         "AUD", "****0101")


def test_accounts_list(ids: IdMinter) -> None:
    result = translate.accounts({"accounts": [SPEC_ACCOUNT, {**SPEC_ACCOUNT, "id": "5011648378", "type": "ira"}]},
                                region=US, consent_id="con_test", ids=ids)
    assert [a.type for a in result] == [AccountType.CHECKING, AccountType.RETIREMENT]
    assert result[0].id != result[1].id
    assert translate.accounts({"accounts": []}, region=US, consent_id="c", ids=ids) == []


@pytest.mark.parametrize(("upstream", "canonical"), [
    ("checking", AccountType.CHECKING), ("savings", AccountType.SAVINGS), ("cd", AccountType.SAVINGS),
    ("moneyMarket", AccountType.SAVINGS), ("creditCard", AccountType.CREDIT_CARD), ("lineOfCredit", AccountType.LOAN),
    ("investment", AccountType.INVESTMENT), ("investmentTaxDeferred", AccountType.RETIREMENT),
    ("employeeStockPurchasePlan", AccountType.INVESTMENT), ("ira", AccountType.RETIREMENT),
    ("401k", AccountType.RETIREMENT), ("roth", AccountType.RETIREMENT), ("403b", AccountType.RETIREMENT),
    ("529", AccountType.INVESTMENT), ("529plan", AccountType.INVESTMENT), ("rollover", AccountType.RETIREMENT),
    ("ugma", AccountType.INVESTMENT), ("utma", AccountType.INVESTMENT), ("keogh", AccountType.RETIREMENT),
    ("457", AccountType.RETIREMENT), ("457plan", AccountType.RETIREMENT), ("401a", AccountType.RETIREMENT),
    ("mortgage", AccountType.MORTGAGE), ("loan", AccountType.LOAN), ("autoLoan", AccountType.LOAN),
    ("studentLoan", AccountType.LOAN), ("brokerageAccount", AccountType.INVESTMENT),
    ("transactionAndSavings", AccountType.CHECKING), ("somethingNew", AccountType.OTHER), ("", AccountType.OTHER),
    (None, AccountType.OTHER), ("Checking", AccountType.OTHER),
])
def test_account_types(upstream: object, canonical: AccountType, ids: IdMinter) -> None:
    acc = translate.account({**SPEC_ACCOUNT, "type": upstream}, region=US, consent_id="c", ids=ids)
    assert acc.type is canonical
    assert acc.extra["provider_type"] == upstream


@pytest.mark.parametrize(("fields", "expected"), [
    ({"accountNumberDisplay": "7528"}, "****7528"),
    ({"accountNumberDisplay": "xxxx-xxxx-xxxx-0101"}, "****0101"),
    ({"accountNumberDisplay": "...12"}, "****12"),
    ({"accountNumberDisplay": None, "realAccountNumberLast4": "5678"}, "****5678"),
    ({"accountNumberDisplay": None, "realAccountNumberLast4": None, "number": "201940541"}, "****0541"),
    ({"accountNumberDisplay": "xxxx", "realAccountNumberLast4": None, "number": None}, None),
    ({"accountNumberDisplay": None, "realAccountNumberLast4": None, "number": None}, None),
])
def test_masked_number_shows_at_most_four_digits(fields: dict, expected: str | None, ids: IdMinter) -> None:
    acc = translate.account({**SPEC_ACCOUNT, **fields}, region=US, consent_id="c", ids=ids)
    assert acc.masked_number == expected
    assert sum(c.isdigit() for c in acc.masked_number or "") <= 4


def test_full_account_number_never_leaks(ids: IdMinter) -> None:
    raw = {**SPEC_ACCOUNT, "accountNumberDisplay": "002345678901", "number": "002345678901"}
    acc = translate.account(raw, region=US, consent_id="c", ids=ids)
    assert acc.masked_number == "****8901"
    assert "002345678901" not in repr(acc)


def test_account_defaults(ids: IdMinter) -> None:
    raw = {"id": 77, "type": "savings"}
    acc = translate.account(raw, region=AU, consent_id="c", ids=ids)
    assert (acc.provider_ref, acc.name, acc.currency, acc.status, acc.institution_id, acc.masked_number) == \
        ("77", "", "AUD", "active", None, None)
    assert translate.account({**SPEC_ACCOUNT, "currency": "usd"}, region=AU, consent_id="c", ids=ids).currency == "AUD"
    assert translate.account({**SPEC_ACCOUNT, "name": ""}, region=US, consent_id="c", ids=ids).name == "Super Checking"


@pytest.mark.parametrize("raw", [{}, {"id": None}, {"id": True}, {"id": ""}, {"id": "1", "institutionLoginId": []}])
def test_unreadable_account_is_a_bad_response(raw: dict, ids: IdMinter) -> None:
    with pytest.raises(ProviderBadResponse):
        translate.account(raw, region=US, consent_id="c", ids=ids)


@pytest.mark.parametrize("body", [{}, {"accounts": None}, [], {"accounts": [None]}])
def test_unreadable_account_list_is_a_bad_response(body: object, ids: IdMinter) -> None:
    with pytest.raises(ProviderBadResponse):
        translate.accounts(body, region=US, consent_id="c", ids=ids)  # type: ignore[arg-type]


# --- balances -----------------------------------------------------------------------------------------------------
def test_spec_available_balance() -> None:
    available, current = translate.balances(SPEC_AVAILABLE_BALANCE, region=US, account_id="acc_1", live=False)
    assert (available.type, available.amount.to_json(), available.as_of, available.live) == (
        BalanceType.AVAILABLE, {"amount": "173.47", "currency": "USD"}, datetime(2020, 12, 8, 17, 59, 17, tzinfo=UTC),
        False)
    assert (current.type, current.amount.to_json(), current.as_of) == (
        BalanceType.CURRENT, {"amount": "222.25", "currency": "USD"}, datetime(2020, 12, 8, 17, 58, 20, tzinfo=UTC))
    assert current.account_id == available.account_id == "acc_1"


def test_live_balance() -> None:
    balances = translate.balances(SPEC_AVAILABLE_BALANCE, region=US, account_id="acc_1", live=True)
    assert all(b.live for b in balances)
    # the live refresh failed upstream: the figures are the cached ones
    stale = translate.balances({**SPEC_AVAILABLE_BALANCE, "aggregationStatusCode": 103}, region=US,
                               account_id="acc_1", live=True)
    assert [b.live for b in stale] == [False, False]


def test_balances_where_present() -> None:
    only = {"availableBalance": -12.5, "currency": "AUD"}
    [balance] = translate.balances(only, region=AU, account_id="a", live=False)
    assert (balance.type, balance.amount.to_json(), balance.as_of) == (
        BalanceType.AVAILABLE, {"amount": "-12.50", "currency": "AUD"}, None)
    assert translate.balances({"availableBalance": None, "clearedBalance": 0.1 + 0.2}, region=AU, account_id="a",
                              live=False)[0].amount.to_json() == {"amount": "0.30000000000000004", "currency": "AUD"}
    assert translate.balances({}, region=US, account_id="a", live=False) == []


@pytest.mark.parametrize("body", [None, [], {"availableBalance": "lots"}, {"availableBalance": True},
                                  {"availableBalance": 1.0, "availableBalanceDate": "yesterday"}])
def test_unreadable_balance_is_a_bad_response(body: object) -> None:
    with pytest.raises(ProviderBadResponse):
        translate.balances(body, region=US, account_id="a", live=False)  # type: ignore[arg-type]


# --- payment coordinates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("routing", ["091000019", "011000015", "021000021", "121000358", "026009593"])
def test_aba_valid(routing: str) -> None:
    assert details.is_valid_aba(routing)


@pytest.mark.parametrize("routing", ["123456789", "091000018", "12345678", "0910000190", "09100001a", "",
                                     " 091000019", "٠٩١٠٠٠٠١٩", None, 91000019])
def test_aba_invalid(routing: object) -> None:
    assert not details.is_valid_aba(routing)  # type: ignore[arg-type]


def test_us_ach_details() -> None:
    result = details.payment_coordinates({"routingNumber": "091000019", "realAccountNumber": "002345678901"},
                                            region=US, account_id="acc_1")
    assert result.account_id == "acc_1"
    assert result.coordinates == (PaymentCoordinates(scheme="us_ach", account_number="002345678901",
                                                      routing_number="091000019"),)


def test_spec_ach_example_fails_the_checksum_and_is_not_passed_on() -> None:
    with pytest.raises(ProviderBadResponse, match="ABA"):
        details.payment_coordinates(SPEC_ACH_DETAILS, region=US, account_id="acc_1")


def test_us_v3_payment_instructions_keep_ach() -> None:
    result = details.payment_coordinates(SPEC_ACH_DETAILS_V3, region=US, account_id="acc_1")
    assert result.coordinates == (PaymentCoordinates(scheme="us_ach", account_number="1000001111",
                                                      routing_number="091000019"),)


def test_us_v3_with_a_bad_routing_number() -> None:
    body = copy.deepcopy(SPEC_ACH_DETAILS_V3)
    body["paymentInstruction"][0]["descriptors"][0]["value"] = "2434345"  # the spec's descriptor example
    with pytest.raises(ProviderBadResponse):
        details.payment_coordinates(body, region=US, account_id="acc_1")


def test_au_bsb_details() -> None:
    result = details.payment_coordinates(AU_DETAILS, region=AU, account_id="acc_1")
    assert result.coordinates == (PaymentCoordinates(scheme="au_bsb", account_number="002343534556", bsb="033-547"),)
    singular = {"paymentInstruction": AU_DETAILS["paymentInstructions"]}
    assert details.payment_coordinates(singular, region=AU, account_id="acc_1") == result


@pytest.mark.parametrize("bsb", ["033547", "03-3547", "033-5470", "033 547", "abc-def", "", None, "٠٣٣-٥٤٧"])
def test_au_bsb_format_is_checked(bsb: object) -> None:
    body = copy.deepcopy(AU_DETAILS)
    body["paymentInstructions"][0]["descriptors"][0]["value"] = bsb
    with pytest.raises(ProviderBadResponse):
        details.payment_coordinates(body, region=AU, account_id="acc_1")


@pytest.mark.parametrize(("region", "body"), [
    (US, {}), (US, AU_DETAILS), (AU, {"routingNumber": "091000019", "realAccountNumber": "1"}), (AU, {}),
    (US, {"routingNumber": "091000019", "realAccountNumber": ""}),
    (US, {"routingNumber": "091000019", "realAccountNumber": "12 34"}),
    (AU, {"paymentInstructions": [{"type": "moneyTransfer", "accountNumber": None,
                                   "descriptors": [{"type": "bsbNumber", "value": "033-547"}]}]}),
    (US, None),
])
def test_missing_or_unreadable_details_are_a_bad_response(region, body) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProviderBadResponse):
        details.payment_coordinates(body, region=region, account_id="acc_1")


# --- owner --------------------------------------------------------------------------------------------------------
def test_spec_owner_v3() -> None:
    result = details.owner(SPEC_OWNER_V3, account_id="acc_1")
    assert result.account_id == "acc_1"
    assert result.names == ("John Smith, PhD",)
    assert result.addresses == (PostalAddress(lines=("434 W Ascension Way", "Suite #200", "UT 84123"), city="Murray",
                                              region="UT", postal_code="84123", country="CA"),)
    assert result.emails == ("myname@mycompany.com",)
    assert result.phones == ("1-801-984-4200",)
    assert "123-45-7890" not in repr(result)  # documentations are not passed on


def test_owner_v3_several_holders_deduplicated() -> None:
    second = {"firstName": "Jane", "lastName": "Smith", "nameClassification": "person",
              "addresses": [{"ownerAddress": "1 Main St Springfield"}, SPEC_OWNER_V3["holders"][0]["addresses"][0]],
              "emails": [{"email": "myname@mycompany.com"}, {"email": "jane@example.com"}], "phones": []}
    result = details.owner({"holders": [SPEC_OWNER_V3["holders"][0], second]}, account_id="a")
    assert result.names == ("John Smith, PhD", "Jane Smith")
    assert len(result.addresses) == 2 and result.addresses[1].lines == ("1 Main St Springfield",)
    assert result.emails == ("myname@mycompany.com", "jane@example.com")


def test_owner_v3_without_holders() -> None:
    assert details.owner({"holders": []}, account_id="a").names == ()


def test_spec_owner_v1() -> None:
    result = details.owner(SPEC_OWNER_V1, account_id="acc_1")
    assert result.names == ("John Smith",)
    assert result.addresses == (PostalAddress(lines=("434 W Ascension Way Suite #200 Murray UT 84123",)),)
    assert (result.emails, result.phones) == ((), ())


@pytest.mark.parametrize("body", [None, [], {}, {"ownerName": ""}, {"holders": "John"}])
def test_unreadable_owner_is_a_bad_response(body: object) -> None:
    with pytest.raises(ProviderBadResponse):
        details.owner(body, account_id="a")  # type: ignore[arg-type]


# --- institutions -------------------------------------------------------------------------------------------------
def test_spec_institution() -> None:
    inst = translate.institution(SPEC_INSTITUTION, provider="mastercard-us")
    assert (inst.id, inst.provider, inst.provider_ref, inst.name) == ("4222", "mastercard-us", "4222", "Finbank")
    assert inst.country == "CA"  # the example's address says CAN
    assert inst.url == "https://www.example.com/home"
    assert inst.capabilities == ("accounts", "transactions", "details", "owner", "voa", "voi")


def test_institution_country_defaults_to_the_region() -> None:
    raw = {k: v for k, v in SPEC_INSTITUTION.items() if k != "address"}
    assert translate.institution(raw, provider="mastercard-us").country == "US"
    assert translate.institution(raw, provider="mastercard-au").country == "AU"
    assert translate.institution({**raw, "address": {"country": "au"}}, provider="mastercard-us").country == "AU"


def test_institutions_page() -> None:
    body = {"found": 2, "displaying": 1, "moreAvailable": True, "createdDate": 1607450357,
            "institutions": [SPEC_INSTITUTION]}
    items, found, more = translate.institutions(body, provider="mastercard-us")
    assert [i.id for i in items] == ["4222"] and found == 2 and more is True
    assert translate.institutions({**body, "moreAvailable": False, "institutions": []},
                                  provider="mastercard-us") == ([], 2, False)


@pytest.mark.parametrize("body", [None, {}, {"institutions": None}, {"institutions": [{}]},
                                  {"institutions": [], "found": "x"}])
def test_unreadable_institutions_are_a_bad_response(body: object) -> None:
    with pytest.raises(ProviderBadResponse):
        translate.institutions(body, provider="mastercard-us")  # type: ignore[arg-type]


# --- requests -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["customerusername1", "abcdef", "a!@.#$%&*_-+", "user@example.com", "x" * 255,
                                   "User-4711_ok"])
def test_username_accepted(value: str) -> None:
    assert bodies.validate_username(value) is None
    assert bodies.USERNAME_RE.fullmatch(value)


@pytest.mark.parametrize("value", ["abcde", "x" * 256, "has space", "émilie1", "abcdef\n", "abc/def", "abc^def",
                                   "", "user4711?", None, 123456])
def test_username_refused_with_a_reason(value: object) -> None:
    reason = bodies.validate_username(value)
    assert isinstance(reason, str) and reason


def test_customer_body_sends_only_spec_fields() -> None:
    data = CreateCustomerInput(external_ref="user-4711", type=CustomerType.TESTING, first_name="John",
                               last_name="Smith", email="john@example.com", phone="+1 (801) 984-4200")
    body = bodies.customer_body(data, "00278431-b712-4f30-a044-b611f25e533d")
    assert set(body) <= NEW_CUSTOMER_KEYS
    assert body == {"username": "user-4711", "firstName": "John", "lastName": "Smith", "email": "john@example.com",
                    "phone": "+1801984-4200", "applicationId": "00278431-b712-4f30-a044-b611f25e533d"}
    minimal = bodies.customer_body(CreateCustomerInput(external_ref="user-4711", type=CustomerType.ACTIVE), None)
    assert minimal == {"username": "user-4711"}


def test_customer_body_refuses_what_the_platform_would() -> None:
    with pytest.raises(ValidationFailed) as caught:
        bodies.customer_body(CreateCustomerInput(external_ref="bad ref", type=CustomerType.TESTING), None)
    assert caught.value.errors[0]["field"] == "external_ref"
    with pytest.raises(ValidationFailed) as caught:
        bodies.customer_body(CreateCustomerInput(external_ref="user-4711", type=CustomerType.TESTING,
                                                    phone="+44 20 7946 0958 123"), None)
    assert caught.value.errors[0]["field"] == "phone"


def _connect(**kw: object) -> dict:
    args: dict = {"partner_id": "1234583871234", "customer_ref": "1005061234",
                  "redirect_uri": "https://app.example.com/callback", "webhook_url": "https://gw.example.com/hooks",
                  "institution_id": None, "language": None, "from_date_epoch": None, **kw}
    return bodies.connect_body(**args)


def test_connect_full_body() -> None:
    body = _connect(from_date_epoch=1607450357, language="es-US")
    assert set(body) <= CONNECT_KEYS
    assert body == {"partnerId": "1234583871234", "customerId": "1005061234",
                    "redirectUri": "https://app.example.com/callback", "webhook": "https://gw.example.com/hooks",
                    "webhookContentType": "application/json", "language": "es", "fromDate": 1607450357}


def test_connect_lite_body() -> None:
    body = _connect(institution_id="102105", from_date_epoch=1607450357, language="en")
    assert set(body) <= LITE_CONNECT_KEYS
    assert body["institutionId"] == 102105  # a number in the spec
    assert "fromDate" not in body and "language" not in body  # lite has no fromDate; English is the default


def test_connect_minimal_body() -> None:
    assert _connect(redirect_uri=None, webhook_url=None) == {"partnerId": "1234583871234", "customerId": "1005061234"}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"language": "de"}, "language"), ({"language": "es", "region": AU}, "language"),
    ({"institution_id": "abc"}, "institution_id"), ({"institution_id": "١٢"}, "institution_id"),
])
def test_connect_body_refuses_what_the_platform_cannot_do(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        _connect(**kwargs)
    assert caught.value.errors[0]["field"] == field


def test_connect_languages_per_region() -> None:
    assert _connect(language="fr-CA", region=US)["language"] == "fr"
    assert "language" not in _connect(language="en-AU", region=AU)


@pytest.mark.parametrize("epoch", [123, 10**10, 1607450357000])
def test_connect_from_date_must_be_ten_digits(epoch: int) -> None:
    with pytest.raises(ValueError):
        _connect(from_date_epoch=epoch)


def test_json_ready_request_bodies() -> None:
    # bodies go to orjson as they are
    orjson.dumps(_connect(institution_id="4222"))
    orjson.dumps(bodies.customer_body(CreateCustomerInput(external_ref="user-4711", type=CustomerType.TESTING),
                                         None))


def test_translation_outputs_serialise_to_canonical_json(ids: IdMinter) -> None:
    from gateway.models.serialize import dumps, to_plain
    [txn] = page(transactions_body(SPEC_TRANSACTION), ids).items
    plain = orjson.loads(dumps(to_plain(txn)))
    assert plain["amount"] == {"amount": "-828.90", "currency": "USD"}
    assert plain["booked_at"] == "2020-12-08T17:59:17Z" and plain["transaction_date"] == "2020-12-08"
    assert plain["status"] == "booked"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"description": 42, "memo": "Coffee"}, ("Coffee", "Coffee", "Streaming Service", "299")),
    ({"description": 42, "memo": 7}, ("", None, "Streaming Service", "299")),
    ({"categorization": {"category": 5}, "checkNum": {"n": 1}}, ("Buy Stock", SPEC_TRANSACTION["memo"], None, None)),
    ({"checkNum": "A-17"}, ("Buy Stock", SPEC_TRANSACTION["memo"], "Streaming Service", "A-17")),
])
def test_text_fields_are_text(changes: dict, expected: tuple, ids: IdMinter) -> None:
    [txn] = page(transactions_body({**SPEC_TRANSACTION, **changes}), ids).items
    assert (txn.description, txn.memo, txn.category, txn.check_number) == expected
