"""gateway.payments.states: the one payment state machine. Every (current, target) pair is checked against the
table, and the table itself is pinned, so a change to what may follow what is a deliberate one."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from gateway.errors import GatewayFault
from gateway.models.payments import PaymentStatus as S
from gateway.models.payments import PaymentTransition
from gateway.payments import states
from gateway.payments.states import ALLOWED, IllegalTransition, can_move, is_progress, transition

AT = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
PAIRS = list(itertools.product(S, S))
FINAL = (S.COMPLETED, S.REJECTED, S.CANCELLED, S.EXPIRED)

# The table as the module's docstring draws it, written out independently.
EXPECTED = {
    S.AWAITING_AUTHORISATION: {S.AUTHORISED, S.REJECTED, S.CANCELLED, S.EXPIRED},
    S.AUTHORISED: {S.AWAITING_AUTHORISATION, S.SUBMITTED, S.PENDING, S.COMPLETED, S.REJECTED, S.CANCELLED,
                   S.EXPIRED, S.UNKNOWN},
    S.UNKNOWN: {S.AUTHORISED, S.SUBMITTED, S.PENDING, S.COMPLETED, S.REJECTED, S.CANCELLED, S.EXPIRED},
    S.SUBMITTED: {S.PENDING, S.COMPLETED, S.REJECTED, S.CANCELLED},
    S.PENDING: {S.COMPLETED, S.REJECTED, S.CANCELLED},
    S.COMPLETED: set(),
    S.REJECTED: set(),
    S.CANCELLED: set(),
    S.EXPIRED: set(),
}


def test_the_table_names_every_status_once_as_a_source():
    assert set(ALLOWED) == set(S)
    assert all(isinstance(v, frozenset) for v in ALLOWED.values())


def test_the_table_is_the_documented_one():
    assert {k: set(v) for k, v in ALLOWED.items()} == EXPECTED


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{c.value}->{t.value}" for c, t in PAIRS])
def test_can_move_is_exactly_the_table(current, target):
    assert can_move(current, target) is (target in EXPECTED[current])


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{c.value}->{t.value}" for c, t in PAIRS])
def test_transition_agrees_with_can_move(current, target):
    if can_move(current, target):
        moved = transition(current, target, at=AT)
        assert moved.status is target and moved.previous is current
    else:
        with pytest.raises(IllegalTransition):
            transition(current, target, at=AT)


def test_no_status_may_move_to_itself():
    for status in S:
        assert not can_move(status, status), status


@pytest.mark.parametrize("final", FINAL)
def test_final_statuses_have_no_way_out(final):
    assert final.is_final
    assert ALLOWED[final] == frozenset()
    for target in S:
        assert not can_move(final, target)
        with pytest.raises(IllegalTransition):
            transition(final, target, at=AT)


def test_only_the_four_final_statuses_are_final():
    assert {s for s in S if s.is_final} == set(FINAL)
    # and every non-final status has somewhere to go
    assert all(ALLOWED[s] for s in S if not s.is_final)


def test_only_a_refused_authorisation_leads_back_to_awaiting_authorisation():
    assert {s for s in S if can_move(s, S.AWAITING_AUTHORISATION)} == {S.AUTHORISED}


def test_only_authorised_can_become_unknown():
    assert {s for s in S if can_move(s, S.UNKNOWN)} == {S.AUTHORISED}


def test_transition_records_everything():
    moved = transition(S.SUBMITTED, S.COMPLETED, at=AT, upstream_status="AcceptedSettlementCompleted",
                       reason="the bank says AcceptedSettlementCompleted")
    assert moved == PaymentTransition(status=S.COMPLETED, at=AT, previous=S.SUBMITTED,
                                      upstream_status="AcceptedSettlementCompleted",
                                      reason="the bank says AcceptedSettlementCompleted")
    assert isinstance(moved, PaymentTransition)
    assert moved.at is AT


def test_transition_defaults_leave_upstream_status_and_reason_empty():
    moved = transition(S.AWAITING_AUTHORISATION, S.AUTHORISED, at=AT)
    assert (moved.upstream_status, moved.reason) == (None, None)


@pytest.mark.parametrize(("current", "target"), [
    (S.COMPLETED, S.PENDING),  # a late "Pending" read after settlement
    (S.PENDING, S.SUBMITTED),
    (S.SUBMITTED, S.AUTHORISED),
    (S.AWAITING_AUTHORISATION, S.SUBMITTED),  # never submitted without the payer's authorisation
    (S.AWAITING_AUTHORISATION, S.COMPLETED),
    (S.AWAITING_AUTHORISATION, S.UNKNOWN),
    (S.SUBMITTED, S.EXPIRED),
    (S.PENDING, S.EXPIRED),
    (S.SUBMITTED, S.UNKNOWN),
    (S.REJECTED, S.COMPLETED),
    (S.CANCELLED, S.AUTHORISED),
    (S.EXPIRED, S.AUTHORISED),
])
def test_forbidden_moves_raise_illegal_transition_naming_both_statuses(current, target):
    with pytest.raises(IllegalTransition) as caught:
        transition(current, target, at=AT, upstream_status="X", reason="y")
    assert str(caught.value) == f"a payment cannot move from {current.value} to {target.value}"
    assert caught.value.code == "illegal_payment_transition"
    assert isinstance(caught.value, GatewayFault)
    assert caught.value.status == 500  # a gateway fault: callers never cause it


def test_the_happy_path_is_legal_step_by_step():
    path = [S.AWAITING_AUTHORISATION, S.AUTHORISED, S.SUBMITTED, S.PENDING, S.COMPLETED]
    history = [transition(a, b, at=AT) for a, b in zip(path, path[1:])]
    assert [(m.previous, m.status) for m in history] == list(zip(path, path[1:]))
    assert history[-1].status.is_final


@pytest.mark.parametrize("target", [S.SUBMITTED, S.PENDING, S.COMPLETED])
def test_authorised_may_skip_ahead(target):
    # a bank that settles at once answers "completed" to the submission itself
    assert can_move(S.AUTHORISED, target)


@pytest.mark.parametrize("target", [s for s in S if s not in (S.AWAITING_AUTHORISATION, S.UNKNOWN)])
def test_unknown_can_resolve_to_every_non_awaiting_status(target):
    assert can_move(S.UNKNOWN, target)
    assert transition(S.UNKNOWN, target, at=AT).previous is S.UNKNOWN


def test_unknown_resolves_to_exactly_the_non_awaiting_statuses():
    assert ALLOWED[S.UNKNOWN] == frozenset(S) - {S.AWAITING_AUTHORISATION, S.UNKNOWN}


@pytest.mark.parametrize("status", list(S))
def test_is_progress_is_false_for_the_same_status(status):
    assert is_progress(status, status) is False


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{c.value}->{t.value}" for c, t in PAIRS])
def test_is_progress_is_a_legal_move_to_another_status(current, target):
    assert states.is_progress(current, target) is (current is not target and target in EXPECTED[current])


def test_is_progress_false_for_a_stale_backwards_report():
    assert is_progress(S.COMPLETED, S.PENDING) is False
    assert is_progress(S.PENDING, S.SUBMITTED) is False
    assert is_progress(S.SUBMITTED, S.PENDING) is True
