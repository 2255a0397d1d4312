"""gateway.payments.service (applying a provider's report, when to look again, licence and provider rules, the
canonical view) and gateway.payments.locks. Records are built directly; no store, no app, no network."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.base import PaymentInput, PaymentUpdate
from adapters.stripe_uk.adapter import StripeUKAdapter
from gateway.config import LicenceConfig, PaymentsConfig
from gateway.errors import LicenceNotPermitted, ValidationFailed
from gateway.models.payments import Creditor, PaymentAccount, PaymentStatus, PaymentTransition
from gateway.payments import service
from gateway.validation.licence import require_licence
from gateway.payments.locks import KeyedLocks
from gateway.store.records import PaymentRecord

S = PaymentStatus
UTC = timezone.utc
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)

SORT_CODE = PaymentAccount(scheme="uk_sort_code", sort_code="040004", account_number="12345678")
IBAN = PaymentAccount(scheme="iban", iban="GB82WEST12345698765432")
ORDER = {"creditor": {"name": "Acme Ltd", "account": {"scheme": "uk_sort_code", "sort_code": "040004",
                                                      "account_number": "12345678"}},
         "reference": "INV-123456", "end_to_end_id": "E2E-0001"}


def _record(status: S = S.AWAITING_AUTHORISATION, **over: Any) -> PaymentRecord:
    fields: dict[str, Any] = dict(
        id="pay_1", tenant="acme", provider="stripe-uk", type="domestic", status=status, amount=Decimal("10.50"),
        currency="GBP", request=dict(ORDER), created_at=T0, updated_at=T0)
    fields.update(over)
    return PaymentRecord(**fields)


def _input(**over: Any) -> PaymentInput:
    fields: dict[str, Any] = dict(
        type="domestic", amount=Decimal("10.50"), currency="GBP", creditor=Creditor("Acme Ltd", SORT_CODE),
        reference="INV-123456", end_to_end_id="E2E-0001", instruction_id="INSTR-0001",
        redirect_uri="https://app.example.com/cb")
    fields.update(over)
    return PaymentInput(**fields)


# --- apply_update ----------------------------------------------------------------------------------------------
def test_apply_update_moves_status_and_records_one_transition():
    record = _record(S.AUTHORISED, upstream_status="Authorised")
    update = PaymentUpdate(status=S.SUBMITTED, upstream_status="Pending", provider_ref="pmt-123",
                           reason="the bank says Pending")
    moves = service.apply_update(record, update, NOW)
    assert moves == [PaymentTransition(status=S.SUBMITTED, at=NOW, previous=S.AUTHORISED, upstream_status="Pending",
                                       reason="the bank says Pending")]
    assert record.status is S.SUBMITTED
    assert record.status_reason == "the bank says Pending"
    assert record.upstream_status == "Pending"
    assert record.provider_ref == "pmt-123"
    assert record.updated_at == NOW
    assert record.created_at == T0  # untouched


def test_apply_update_may_skip_ahead_in_one_transition():
    record = _record(S.AUTHORISED)
    update = PaymentUpdate(status=S.COMPLETED, upstream_status="AcceptedSettlementCompleted")
    moves = service.apply_update(record, update, NOW)
    assert [(m.previous, m.status) for m in moves] == [(S.AUTHORISED, S.COMPLETED)]
    assert record.status is S.COMPLETED


def test_apply_update_merges_upstream_facts_and_keeps_the_rest():
    record = _record(upstream={"state": "st-1", "nonce": "n-1", "initiation": {"Amount": "10.50"}})
    update = PaymentUpdate(status=S.AUTHORISED, upstream_status="Authorised",
                           upstream={"tokens": "sealed", "state": None, "nonce": None})
    service.apply_update(record, update, NOW)
    assert record.upstream == {"state": None, "nonce": None, "initiation": {"Amount": "10.50"}, "tokens": "sealed"}
    update.upstream["tokens"] = "changed later"  # the record holds its own dict
    assert record.upstream["tokens"] == "sealed"


def test_apply_update_without_provider_ref_keeps_the_known_one():
    record = _record(S.SUBMITTED, provider_ref="pmt-123", upstream={"a": 1})
    service.apply_update(record, PaymentUpdate(status=S.PENDING, upstream_status="AcceptedSettlementInProcess"), NOW)
    assert record.provider_ref == "pmt-123"
    assert record.upstream == {"a": 1}


def test_apply_update_ignores_a_stale_backwards_status():
    record = _record(S.COMPLETED, upstream_status="AcceptedSettlementCompleted", status_reason="settled",
                     updated_at=T0 + timedelta(minutes=1))
    late = PaymentUpdate(status=S.PENDING, upstream_status="AcceptedSettlementInProcess", reason="late read")
    assert service.apply_update(record, late, NOW) == []
    assert record.status is S.COMPLETED
    assert record.status_reason == "settled"
    assert record.upstream_status == "AcceptedSettlementCompleted"  # the stale report's status is not kept either
    assert record.updated_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(("current", "reported"), [
    (S.PENDING, S.SUBMITTED), (S.SUBMITTED, S.AUTHORISED), (S.REJECTED, S.COMPLETED),
    (S.AWAITING_AUTHORISATION, S.SUBMITTED), (S.CANCELLED, S.AUTHORISED),
])
def test_apply_update_never_moves_along_a_forbidden_edge(current, reported):
    record = _record(current)
    assert service.apply_update(record, PaymentUpdate(status=reported, upstream_status="X"), NOW) == []
    assert record.status is current
    assert record.upstream_status is None


def test_apply_update_same_status_updates_upstream_status_without_a_transition():
    record = _record(S.PENDING, upstream_status="AcceptedSettlementInProcess", status_reason="accepted")
    update = PaymentUpdate(status=S.PENDING, upstream_status="AcceptedWithoutPosting", reason="still on its way")
    assert service.apply_update(record, update, NOW) == []
    assert record.status is S.PENDING
    assert record.upstream_status == "AcceptedWithoutPosting"
    assert record.status_reason == "accepted"  # the reason belongs to the last move
    assert record.updated_at == NOW


def test_apply_update_same_status_without_upstream_status_keeps_the_old_one():
    record = _record(S.PENDING, upstream_status="AcceptedSettlementInProcess")
    assert service.apply_update(record, PaymentUpdate(status=S.PENDING), NOW) == []
    assert record.upstream_status == "AcceptedSettlementInProcess"


def test_apply_update_from_unknown_resolves_with_the_banks_answer():
    record = _record(S.UNKNOWN, status_reason="the submission's outcome was not learned")
    update = PaymentUpdate(status=S.AUTHORISED, upstream_status="Authorised",
                           reason="the submission never took effect (the bank shows its consent unused); "
                                  "submit it again")
    (move,) = service.apply_update(record, update, NOW)
    assert (move.previous, move.status, move.upstream_status) == (S.UNKNOWN, S.AUTHORISED, "Authorised")
    assert record.status_reason == update.reason


def test_first_transition_opens_the_history():
    first = service.first_transition(T0, "AwaitingAuthorisation")
    assert first == PaymentTransition(status=S.AWAITING_AUTHORISATION, at=T0, previous=None,
                                      upstream_status="AwaitingAuthorisation", reason="payment consent created")


# --- backoff and schedule --------------------------------------------------------------------------------------
CONFIG = PaymentsConfig(reconcile_backoff_base_seconds=2.0, reconcile_backoff_max_seconds=300.0,
                        reconcile_horizon_hours=1.0)


def test_backoff_doubles_per_attempt_and_is_capped():
    seconds = [service.backoff(CONFIG, n).total_seconds() for n in range(11)]
    assert seconds == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


@pytest.mark.parametrize("attempts", [30, 31, 64, 10_000])
def test_backoff_of_many_attempts_is_the_cap_without_overflow(attempts):
    assert service.backoff(CONFIG, attempts) == timedelta(seconds=300)


def test_backoff_with_a_fractional_base():
    config = PaymentsConfig(reconcile_backoff_base_seconds=0.25, reconcile_backoff_max_seconds=1.0)
    assert [service.backoff(config, n) for n in range(4)] == [
        timedelta(seconds=0.25), timedelta(seconds=0.5), timedelta(seconds=1), timedelta(seconds=1)]


@pytest.mark.parametrize("final", [S.COMPLETED, S.REJECTED, S.CANCELLED, S.EXPIRED])
def test_schedule_final_payment_is_never_looked_at_again(final):
    record = _record(final, next_check_at=NOW)
    service.schedule(record, CONFIG, NOW)
    assert record.next_check_at is None


@pytest.mark.parametrize(("attempts", "seconds"), [(0, 2), (1, 4), (3, 16), (7, 256), (8, 300), (20, 300)])
def test_schedule_backs_off_by_check_attempts(attempts, seconds):
    record = _record(S.PENDING, check_attempts=attempts)
    service.schedule(record, CONFIG, NOW)
    assert record.next_check_at == NOW + timedelta(seconds=seconds)
    assert record.check_attempts == attempts  # counting attempts is the worker's business


@pytest.mark.parametrize("status", [S.AWAITING_AUTHORISATION, S.AUTHORISED, S.SUBMITTED, S.PENDING, S.UNKNOWN])
def test_schedule_every_non_final_status(status):
    record = _record(status)
    service.schedule(record, CONFIG, NOW)
    assert record.next_check_at == NOW + timedelta(seconds=2)


def test_schedule_never_beyond_the_horizon():
    horizon = T0 + timedelta(hours=1)
    now = horizon - timedelta(seconds=10)
    record = _record(S.PENDING, check_attempts=5)  # 64 s would be past the horizon
    service.schedule(record, CONFIG, now)
    assert record.next_check_at == horizon


def test_schedule_just_inside_the_horizon_is_the_backoff():
    horizon = T0 + timedelta(hours=1)
    now = horizon - timedelta(seconds=3)
    record = _record(S.PENDING, check_attempts=0)
    service.schedule(record, CONFIG, now)
    assert record.next_check_at == now + timedelta(seconds=2)


@pytest.mark.parametrize("past", [timedelta(0), timedelta(microseconds=1), timedelta(days=3)])
def test_schedule_at_or_past_the_horizon_stops(past):
    record = _record(S.UNKNOWN, next_check_at=NOW)
    service.schedule(record, CONFIG, T0 + timedelta(hours=1) + past)
    assert record.next_check_at is None


def test_schedule_with_reconciliation_disabled_stops():
    record = _record(S.PENDING, next_check_at=NOW)
    service.schedule(record, PaymentsConfig(reconcile=False), NOW)
    assert record.next_check_at is None


def test_schedule_default_horizon_is_72_hours():
    config = PaymentsConfig()
    record = _record(S.PENDING, check_attempts=100)
    service.schedule(record, config, T0 + timedelta(hours=71, minutes=59))
    assert record.next_check_at == T0 + timedelta(hours=72)
    service.schedule(record, config, T0 + timedelta(hours=72))
    assert record.next_check_at is None


# --- require_licence (gateway.validation.licence) ------------------------------------------------------------------
class Hub:
    """A provider of many banks: the licence is checked against the named bank's country."""
    provider_id = "hub"
    regions = frozenset({"GB", "DE", "PL"})

    async def institution_country(self, institution_id: str, ctx: Any = None) -> str | None:
        return {"bank-de": "DE", "bank-pl": "PL"}.get(institution_id)


class Single:
    provider_id = "stripe-uk"
    regions = StripeUKAdapter.regions

    async def institution_country(self, institution_id: str, ctx: Any = None) -> str | None:
        return None


async def test_require_licence_without_the_role_is_refused_naming_it():
    with pytest.raises(LicenceNotPermitted) as caught:
        await require_licence(LicenceConfig(roles=("AISP",)), Single(), "PISP")
    err = caught.value
    assert (err.status, err.code) == (403, "licence_not_permitted")
    assert "no PISP role" in err.detail and "(it has: AISP)" in err.detail
    assert err.errors == [{"location": "licence", "field": "roles", "message": "PISP missing"}]
    with pytest.raises(LicenceNotPermitted, match="no AISP role"):
        await require_licence(LicenceConfig(roles=("PISP",)), Single(), "AISP")
    with pytest.raises(LicenceNotPermitted, match=r"it has: none"):
        await require_licence(LicenceConfig(roles=()), Single(), "AISP")


async def test_require_licence_countries_of_the_provider():
    with pytest.raises(LicenceNotPermitted) as caught:
        await require_licence(LicenceConfig(countries=("DE", "FR")), Single(), "PISP")
    assert "stripe-uk serves GB" in caught.value.detail and "licensed countries: DE, FR" in caught.value.detail
    for countries in [(), ("GB",), ("IE", "GB")]:
        assert await require_licence(LicenceConfig(countries=countries), Single(), "PISP") is None


async def test_require_licence_country_of_the_named_bank():
    await require_licence(LicenceConfig(countries=("DE",)), Hub(), "PISP", "bank-de")
    with pytest.raises(LicenceNotPermitted) as caught:
        await require_licence(LicenceConfig(countries=("DE",)), Hub(), "PISP", "bank-pl")
    assert "the bank bank-pl is in PL" in caught.value.detail
    assert caught.value.errors[0] == {"location": "licence", "field": "countries", "message": "PL missing"}


# --- check_provider_rules --------------------------------------------------------------------------------------
class StripeLike:
    """The real stripe-uk capability table on a stand-in that records whether the provider's own rules ran."""
    provider_id = StripeUKAdapter.provider_id
    payment_types = StripeUKAdapter.payment_types
    payment_currencies = StripeUKAdapter.payment_currencies
    payment_schemes = StripeUKAdapter.payment_schemes
    end_to_end_id_max = StripeUKAdapter.end_to_end_id_max

    def __init__(self) -> None:
        self.validated: list[PaymentInput] = []

    def validate_payment(self, data: PaymentInput) -> None:
        self.validated.append(data)


def test_stripe_uk_capability_table():
    assert StripeUKAdapter.payment_types == frozenset({"domestic"})
    assert StripeUKAdapter.payment_currencies == frozenset({"GBP"})
    assert StripeUKAdapter.payment_schemes == frozenset({"uk_sort_code", "wallet"})


def test_check_provider_rules_accepts_and_then_runs_the_providers_own_rules():
    adapter, data = StripeLike(), _input()
    service.check_provider_rules(adapter, data)
    assert adapter.validated == [data]


def test_check_provider_rules_names_every_problem_at_once():
    adapter = StripeLike()
    data = _input(type="sepa", currency="EUR", creditor=Creditor("Acme GmbH", IBAN))
    with pytest.raises(ValidationFailed) as caught:
        service.check_provider_rules(adapter, data)
    assert caught.value.errors == [
        {"location": "body", "field": "type", "message": "stripe-uk initiates domestic payments"},
        {"location": "body", "field": "amount.currency", "message": "stripe-uk pays in GBP only"},
        {"location": "body", "field": "creditor.account.scheme",
         "message": "stripe-uk pays to uk_sort_code, wallet accounts"},
    ]
    assert caught.value.detail == ("type: stripe-uk initiates domestic payments; "
                                   "amount.currency: stripe-uk pays in GBP only; "
                                   "creditor.account.scheme: stripe-uk pays to uk_sort_code, wallet accounts")
    assert adapter.validated == [data]  # the provider's own rules were asked too: every problem at once


@pytest.mark.parametrize(("over", "field"), [
    ({"type": "international"}, "type"),
    ({"currency": "EUR"}, "amount.currency"),
    ({"creditor": Creditor("Acme", IBAN)}, "creditor.account.scheme"),
    ({"debtor_account": IBAN}, "debtor_account.scheme"),
])
def test_check_provider_rules_each_refusal_alone(over, field):
    adapter = StripeLike()
    with pytest.raises(ValidationFailed) as caught:
        service.check_provider_rules(adapter, _input(**over))
    assert [e["field"] for e in caught.value.errors] == [field]
    assert len(adapter.validated) == 1


def test_check_provider_rules_debtor_account_message():
    with pytest.raises(ValidationFailed) as caught:
        service.check_provider_rules(StripeLike(), _input(debtor_account=IBAN))
    assert caught.value.errors[0]["message"] == "stripe-uk takes uk_sort_code, wallet accounts"


def test_check_provider_rules_accepts_a_wallet_creditor_and_a_sort_code_debtor():
    adapter = StripeLike()
    data = _input(creditor=Creditor("Shop", PaymentAccount(scheme="wallet", wallet_id="acct_1Abc")),
                  debtor_account=SORT_CODE)
    service.check_provider_rules(adapter, data)
    assert adapter.validated == [data]


def _stripe_with_settings() -> Any:
    stand_in = StripeLike()
    stand_in.settings = SimpleNamespace(redirect_uris=("https://app.example.com/cb",))
    stand_in.validate_payment = StripeUKAdapter.validate_payment.__get__(stand_in)  # the real provider rules
    return stand_in


def test_check_provider_rules_then_stripes_reference_rules():
    with pytest.raises(ValidationFailed) as caught:
        service.check_provider_rules(_stripe_with_settings(), _input(reference="AAAAAA"))
    assert [e["field"] for e in caught.value.errors] == ["reference"]
    assert "one repeated character" in caught.value.errors[0]["message"]


def test_check_provider_rules_then_stripes_redirect_uri_rule():
    with pytest.raises(ValidationFailed) as caught:
        service.check_provider_rules(_stripe_with_settings(), _input(redirect_uri="https://elsewhere.example/cb"))
    assert [e["field"] for e in caught.value.errors] == ["redirect_uri"]
    assert "https://app.example.com/cb" in caught.value.errors[0]["message"]


def test_check_provider_rules_with_the_real_rules_accepts_a_good_order():
    service.check_provider_rules(_stripe_with_settings(), _input())


# --- payment_view ----------------------------------------------------------------------------------------------
def test_payment_view_shape():
    record = _record(S.SUBMITTED, consent_ref="pcon-1", provider_ref="pmt-1", authorisation_url="https://bank/auth",
                     redirect_uri="https://app.example.com/cb", upstream_status="Pending", status_reason="sent",
                     customer_id="cus_1", live=True, updated_at=NOW,
                     upstream={"tokens": "sealed-secret", "initiation": {}}, check_attempts=3, next_check_at=NOW,
                     version=7)
    history = [service.first_transition(T0, "AwaitingAuthorisation"),
               PaymentTransition(status=S.AUTHORISED, at=T0 + timedelta(minutes=1), previous=S.AWAITING_AUTHORISATION,
                                 upstream_status="Authorised", reason="the payer authorised it")]
    view = service.payment_view(record, history)
    assert view == {
        "id": "pay_1", "provider": "stripe-uk", "type": "domestic", "status": "submitted",
        "amount": {"amount": "10.50", "currency": "GBP"},
        "creditor": {"name": "Acme Ltd", "account": {
            "scheme": "uk_sort_code", "sort_code": "040004", "account_number": "12345678", "iban": None, "bic": None,
            "wallet_id": None, "secondary_identification": None}, "address": None},
        "reference": "INV-123456", "end_to_end_id": "E2E-0001", "created_at": T0, "updated_at": NOW,
        "debtor_account": None, "redirect_uri": "https://app.example.com/cb", "authorisation_url": "https://bank/auth",
        "consent_ref": "pcon-1", "provider_ref": "pmt-1", "upstream_status": "Pending", "status_reason": "sent",
        "customer_id": "cus_1", "institution_id": None, "debtor_name": None, "live": True,
        "history": [
            {"status": "awaiting_authorisation", "at": T0, "previous": None,
             "upstream_status": "AwaitingAuthorisation", "reason": "payment consent created"},
            {"status": "authorised", "at": T0 + timedelta(minutes=1), "previous": "awaiting_authorisation",
             "upstream_status": "Authorised", "reason": "the payer authorised it"},
        ],
    }
    assert isinstance(view["amount"]["amount"], str)
    assert isinstance(view["history"], list)


def test_payment_view_never_shows_internal_fields():
    view = service.payment_view(_record(upstream={"tokens": "sealed-secret"}, check_attempts=2, next_check_at=NOW), [])
    assert not {"tenant", "upstream", "request", "check_attempts", "next_check_at", "version", "currency"} & set(view)
    assert "sealed-secret" not in repr(view)
    assert view["history"] == []


def test_payment_view_with_a_debtor_account():
    request = {**ORDER, "debtor_account": {"scheme": "uk_sort_code", "sort_code": "202020",
                                           "account_number": "87654321", "secondary_identification": "ROLL-1"}}
    view = service.payment_view(_record(request=request), [])
    assert view["debtor_account"] == {"scheme": "uk_sort_code", "sort_code": "202020", "account_number": "87654321",
                                      "iban": None, "bic": None, "wallet_id": None,
                                      "secondary_identification": "ROLL-1"}


def test_payment_view_debtor_account_none_when_empty_or_absent():
    assert service.payment_view(_record(request={**ORDER, "debtor_account": None}), [])["debtor_account"] is None
    assert service.payment_view(_record(request=dict(ORDER)), [])["debtor_account"] is None


def test_payment_view_amount_is_exact_text_never_a_float():
    view = service.payment_view(_record(amount=Decimal("1234567.89")), [])
    assert view["amount"] == {"amount": "1234567.89", "currency": "GBP"}
    view = service.payment_view(_record(amount=Decimal("1E+3")), [])
    assert view["amount"]["amount"] == "1000.00"  # never exponent notation; in the currency's minor units


# --- save ------------------------------------------------------------------------------------------------------
class _Store:
    def __init__(self, accept: bool) -> None:
        self.accept, self.calls = accept, []

    async def update_payment(self, record: PaymentRecord, moves: list[PaymentTransition], *,
                             response: Any = None) -> bool:
        self.calls.append((record, list(moves), response))
        return self.accept


class _Metrics:
    payment_transitions = "payment_transitions"

    def __init__(self) -> None:
        self.counted: list[tuple[Any, ...]] = []

    def count(self, *labels: Any) -> None:
        self.counted.append(labels)


async def test_save_writes_and_counts_each_transition():
    store, metrics, record = _Store(True), _Metrics(), _record(S.AUTHORISED)
    moves = [PaymentTransition(status=S.SUBMITTED, at=NOW, previous=S.AUTHORISED),
             PaymentTransition(status=S.COMPLETED, at=NOW, previous=S.SUBMITTED)]
    assert await service.save(store, metrics, record, moves, response="kept") is True
    assert store.calls == [(record, moves, "kept")]
    assert metrics.counted == [("payment_transitions", "stripe-uk", "submitted"),
                               ("payment_transitions", "stripe-uk", "completed")]


async def test_save_refused_by_the_version_check_counts_nothing():
    store, metrics = _Store(False), _Metrics()
    moves = [PaymentTransition(status=S.SUBMITTED, at=NOW, previous=S.AUTHORISED)]
    assert await service.save(store, metrics, _record(S.AUTHORISED), moves) is False
    assert metrics.counted == []
    assert store.calls[0][2] is None


# --- KeyedLocks ------------------------------------------------------------------------------------------------
async def _holder(locks: KeyedLocks, key: str, name: str, log: list[str], release: asyncio.Event | None = None,
                  entered: asyncio.Event | None = None) -> None:
    async with locks.hold(key):
        log.append(f"{name}-in")
        if entered is not None:
            entered.set()
        if release is not None:
            await release.wait()
        else:
            await asyncio.sleep(0)
        log.append(f"{name}-out")


async def _spin(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_keyed_locks_serialize_holders_of_the_same_key():
    locks, log = KeyedLocks(), []
    release, entered = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_holder(locks, "pay_1", "a", log, release, entered))
    await entered.wait()
    second = asyncio.create_task(_holder(locks, "pay_1", "b", log))
    await _spin()
    assert log == ["a-in"]  # b waits while a holds the key
    assert locks._locks["pay_1"][1] == 2
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    assert log == ["a-in", "a-out", "b-in", "b-out"]
    assert locks._locks == {}


async def test_keyed_locks_different_keys_run_concurrently():
    locks, log = KeyedLocks(), []
    release, entered = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_holder(locks, "pay_1", "a", log, release, entered))
    await entered.wait()
    await asyncio.wait_for(_holder(locks, "pay_2", "b", log), 1)  # finishes while pay_1 is still held
    assert log == ["a-in", "b-in", "b-out"]
    release.set()
    await asyncio.wait_for(first, 1)
    assert log[-1] == "a-out"
    assert locks._locks == {}


async def test_keyed_locks_many_holders_run_one_at_a_time_and_leave_nothing():
    locks, active, most = KeyedLocks(), 0, 0

    async def body() -> None:
        nonlocal active, most
        async with locks.hold("k"):
            active += 1
            most = max(most, active)
            await asyncio.sleep(0)
            active -= 1

    await asyncio.wait_for(asyncio.gather(*(body() for _ in range(20))), 2)
    assert most == 1
    assert locks._locks == {}


async def test_keyed_locks_released_and_forgotten_when_the_body_raises():
    locks = KeyedLocks()
    with pytest.raises(RuntimeError, match="boom"):
        async with locks.hold("pay_1"):
            raise RuntimeError("boom")
    assert locks._locks == {}
    async with locks.hold("pay_1"):  # and the key is usable again
        assert locks._locks["pay_1"][1] == 1
    assert locks._locks == {}


async def test_keyed_locks_a_raising_holder_lets_the_waiter_in():
    locks, log = KeyedLocks(), []
    entered, release = asyncio.Event(), asyncio.Event()

    async def failing() -> None:
        async with locks.hold("k"):
            entered.set()
            await release.wait()
            raise ValueError("upstream broke")

    first = asyncio.create_task(failing())
    await entered.wait()
    second = asyncio.create_task(_holder(locks, "k", "b", log))
    await _spin()
    assert log == []
    release.set()
    with pytest.raises(ValueError):
        await first
    await asyncio.wait_for(second, 1)
    assert log == ["b-in", "b-out"]
    assert locks._locks == {}


async def test_keyed_locks_a_cancelled_waiter_leaves_no_trace():
    locks, log = KeyedLocks(), []
    release, entered = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_holder(locks, "k", "a", log, release, entered))
    await entered.wait()
    waiter = asyncio.create_task(_holder(locks, "k", "b", log))
    await _spin()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert locks._locks["k"][1] == 1
    release.set()
    await asyncio.wait_for(first, 1)
    assert log == ["a-in", "a-out"]
    assert locks._locks == {}
