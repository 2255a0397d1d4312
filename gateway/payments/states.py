"""The one payment state machine every provider's statuses are mapped onto.

    awaiting_authorisation → authorised → submitted → pending → completed
                 ↘ rejected / cancelled / expired      ↘ rejected / cancelled
    authorised → unknown (the submission's outcome was lost) → whatever the bank then says
    authorised → awaiting_authorisation (the bank refused the authorisation when the payment was submitted)

A transition not in `ALLOWED` is refused with `IllegalTransition`, so a late or out-of-order upstream answer (a
"Pending" read after "AcceptedSettlementCompleted") can never move a payment backwards. Statuses may skip ahead
(a bank that settles at once answers "completed" to the submission itself).
"""
from __future__ import annotations

from datetime import datetime

from gateway.errors import GatewayFault
from gateway.models.payments import PaymentStatus as S
from gateway.models.payments import PaymentTransition

ALLOWED: dict[S, frozenset[S]] = {
    S.AWAITING_AUTHORISATION: frozenset({S.AUTHORISED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    # authorised → awaiting_authorisation: the bank refused the authorisation the gateway was given (it is only
    # checked when the payment is submitted, at hubs such as ob-connect); the payer's real one may still come.
    S.AUTHORISED: frozenset({S.AWAITING_AUTHORISATION, S.SUBMITTED, S.PENDING, S.COMPLETED, S.REJECTED, S.CANCELLED,
                             S.EXPIRED, S.UNKNOWN}),
    # unknown → authorised: the bank shows the consent still unused, so the submission never took effect.
    S.UNKNOWN: frozenset({S.AUTHORISED, S.SUBMITTED, S.PENDING, S.COMPLETED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.SUBMITTED: frozenset({S.PENDING, S.COMPLETED, S.REJECTED, S.CANCELLED}),
    S.PENDING: frozenset({S.COMPLETED, S.REJECTED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(GatewayFault):
    code = "illegal_payment_transition"
    title = "The payment cannot move to that status"


def can_move(current: S, target: S) -> bool:
    return target in ALLOWED[current]


def transition(current: S, target: S, *, at: datetime, upstream_status: str | None = None,
               reason: str | None = None) -> PaymentTransition:
    """The record of moving from `current` to `target`; raises IllegalTransition when the table forbids it."""
    if not can_move(current, target):
        raise IllegalTransition(f"a payment cannot move from {current.value} to {target.value}")
    return PaymentTransition(status=target, at=at, previous=current, upstream_status=upstream_status, reason=reason)


def is_progress(current: S, target: S) -> bool:
    """Whether an upstream report of `target` is news: a legal move (same status is not news)."""
    return target is not current and can_move(current, target)
