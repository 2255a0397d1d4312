"""What the API and the reconciliation worker share: applying what a provider said to a payment (through the state
machine, with a recorded transition), when to look again, and the canonical view of a payment."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import structlog

from adapters.base import Adapter, PaymentInput, PaymentUpdate
from gateway.config import PaymentsConfig
from gateway.errors import ValidationFailed
from gateway.models import Money
from gateway.models.payments import Creditor, Payment, PaymentAccount, PaymentStatus, PaymentTransition
from gateway.models.resources import PostalAddress
from gateway.models.serialize import to_plain
from gateway.payments import states
from gateway.store.records import PaymentRecord
from gateway.validation.body import field_error

log = structlog.get_logger("gateway.payments")


def check_provider_rules(adapter: Adapter, data: PaymentInput) -> None:
    """The provider's capability table, then its own rules: every problem named, before any upstream call."""
    errors = []
    if data.type not in adapter.payment_types:
        errors.append(field_error("type", f"{adapter.provider_id} initiates "
                                          f"{', '.join(sorted(adapter.payment_types)) or 'no'} payments"))
    if data.currency not in adapter.payment_currencies:
        errors.append(field_error("amount.currency", f"{adapter.provider_id} pays in "
                                                     f"{', '.join(sorted(adapter.payment_currencies))} only"))
    if data.creditor.account.scheme not in adapter.payment_schemes:
        errors.append(field_error("creditor.account.scheme", f"{adapter.provider_id} pays to "
                                                             f"{', '.join(sorted(adapter.payment_schemes))} accounts"))
    if len(data.end_to_end_id) > adapter.end_to_end_id_max:
        errors.append(field_error("end_to_end_id", f"{adapter.provider_id} carries at most "
                                                   f"{adapter.end_to_end_id_max} characters"))
    if data.debtor_account is not None and data.debtor_account.scheme not in adapter.payment_schemes:
        errors.append(field_error("debtor_account.scheme", f"{adapter.provider_id} takes "
                                                           f"{', '.join(sorted(adapter.payment_schemes))} accounts"))
    try:
        adapter.validate_payment(data)
    except ValidationFailed as exc:
        errors += exc.errors
    if errors:
        raise ValidationFailed.of(errors)


def backoff(config: PaymentsConfig, attempts: int) -> timedelta:
    seconds = min(config.reconcile_backoff_max_seconds, config.reconcile_backoff_base_seconds * (2 ** min(attempts, 30)))
    return timedelta(seconds=seconds)


def schedule(record: PaymentRecord, config: PaymentsConfig, now: datetime) -> None:
    """When the worker looks at the payment next: never once final, nor past the horizon."""
    horizon = record.created_at + timedelta(hours=config.reconcile_horizon_hours)
    if record.status.is_final or not config.reconcile:
        record.next_check_at = None
        return
    due = now + backoff(config, record.check_attempts)
    record.next_check_at = min(due, horizon) if now < horizon else None


def apply_update(record: PaymentRecord, update: PaymentUpdate, now: datetime, *,
                 observed: bool = False) -> list[PaymentTransition]:
    """Fold what the provider said into the record; the transitions it makes (none for old or repeated news).

    A status the state machine forbids from here (a late "Pending" after "completed") is not applied: the newer
    knowledge stands, and the stale report is logged. `observed` marks a status read from the provider (the
    worker, a refresh) rather than the outcome of the gateway's own step: such a read never makes a payment
    `authorised`, because only the redirect result carries what submitting needs (the payer's token)."""
    if update.provider_ref:
        record.provider_ref = update.provider_ref
    if update.upstream:
        record.upstream = {**record.upstream, **update.upstream}
    moves: list[PaymentTransition] = []
    if observed and update.status is PaymentStatus.AUTHORISED and record.status is PaymentStatus.AWAITING_AUTHORISATION:
        update = attrs.evolve(update, status=record.status,
                              reason="the payer approved at the bank; waiting for the redirect result")
    if update.status is not record.status:
        if states.can_move(record.status, update.status):
            moves.append(states.transition(record.status, update.status, at=now,
                                           upstream_status=update.upstream_status, reason=update.reason))
            record.status = update.status
            record.status_reason = update.reason
        else:
            log.info("payment_stale_status_ignored", payment_id=record.id, current=record.status.value,
                     reported=update.status.value, upstream_status=update.upstream_status)
            return moves
    if update.upstream_status:
        record.upstream_status = update.upstream_status
    record.updated_at = now
    return moves


def _account(data: dict[str, Any] | None) -> PaymentAccount | None:
    if not data:
        return None
    return PaymentAccount(**data)


def _address(data: dict[str, Any] | None) -> PostalAddress | None:
    if not data:
        return None
    return PostalAddress(lines=tuple(data.get("lines") or ()), city=data.get("city"),
                         postal_code=data.get("postal_code"), country=data.get("country"))


def payment_view(record: PaymentRecord, history: list[PaymentTransition]) -> dict[str, Any]:
    order = record.request
    return to_plain(Payment(
        id=record.id, provider=record.provider, type=record.type, status=record.status,
        amount=Money.of(record.amount, record.currency),
        creditor=Creditor(name=order["creditor"]["name"], account=PaymentAccount(**order["creditor"]["account"]),
                          address=_address(order["creditor"].get("address"))),
        reference=order["reference"], end_to_end_id=order["end_to_end_id"], created_at=record.created_at,
        updated_at=record.updated_at, debtor_account=_account(order.get("debtor_account")),
        redirect_uri=record.redirect_uri, authorisation_url=record.authorisation_url,
        consent_ref=record.consent_ref, provider_ref=record.provider_ref, upstream_status=record.upstream_status,
        status_reason=record.status_reason, customer_id=record.customer_id, live=record.live,
        institution_id=order.get("institution_id"), debtor_name=order.get("debtor_name"),
        history=tuple(history),
    ))


def first_transition(now: datetime, upstream_status: str | None) -> PaymentTransition:
    return PaymentTransition(status=PaymentStatus.AWAITING_AUTHORISATION, at=now, previous=None,
                             upstream_status=upstream_status, reason="payment consent created")


async def save(store: Any, metrics: Any, record: PaymentRecord, moves: list[PaymentTransition], *,
               response: Any = None) -> bool:
    """Write the payment with its transitions (version-checked) and count them; False if someone wrote first."""
    if not await store.update_payment(record, moves, response=response):
        return False
    for move in moves:
        metrics.count(metrics.payment_transitions, record.provider, move.status.value)
    return True
