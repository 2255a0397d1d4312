"""The parts of canonical events and webhook delivery that need no server: retry delays, target checks, the
connect-time resolver, signing secrets and their rotation, and which state changes make which events."""
from __future__ import annotations

import random
import socket
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.config import EventsConfig
from gateway.events import canonical, signing
from gateway.events.delivery import next_delay
from gateway.events.targets import PublicOnlyResolver, TargetRefused, check_target, check_url, literal_refused
from gateway.models import ConsentStatus, ReportStatus
from gateway.models.payments import PaymentStatus, PaymentTransition
from gateway.models.time import utcnow
from gateway.store.records import ConsentRecord, PaymentRecord, ReportRecord


# --- retry delays -------------------------------------------------------------------------------------------------
def test_next_delay_grows_exponentially_without_jitter() -> None:
    config = EventsConfig(retry_base_seconds=1.0, retry_max_interval_seconds=1000.0, retry_jitter=0.0)
    assert [next_delay(config, n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def test_next_delay_is_capped() -> None:
    config = EventsConfig(retry_base_seconds=1.0, retry_max_interval_seconds=10.0, retry_jitter=0.0)
    assert next_delay(config, 4) == 8.0
    assert next_delay(config, 5) == next_delay(config, 6) == next_delay(config, 500) == 10.0
    assert next_delay(config, 10**6) == 10.0  # no overflow for absurd attempt counts


def test_next_delay_stays_within_the_jitter() -> None:
    config = EventsConfig(retry_base_seconds=2.0, retry_max_interval_seconds=100.0, retry_jitter=0.2)
    rng = random.Random(7)
    for attempts, raw in ((1, 2.0), (3, 8.0), (9, 100.0)):
        seen = [next_delay(config, attempts, rng) for _ in range(500)]
        assert all(raw * 0.8 <= d <= raw * 1.2 for d in seen), (attempts, min(seen), max(seen))
        assert max(seen) - min(seen) > raw * 0.2  # it really is spread, not a constant
        assert min(seen) < raw < max(seen)


# --- where webhooks may go ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "https://example.com/hook", "https://example.com:8443/a/b?x=1", "https://93.184.216.34/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
])
def test_check_url_accepts_https(url: str) -> None:
    assert check_url(url, allow_http=False)


@pytest.mark.parametrize(("url", "why"), [
    ("http://example.com/hook", "https"),
    ("ftp://example.com/hook", "https"),
    ("example.com/hook", "https"),
    ("https:///hook", "no host"),
    ("https://user:pw@example.com/hook", "credentials"),
    ("https://user@example.com/hook", "credentials"),
    ("https://example.com/hook#frag", "fragment"),
    ("https://example.com:0/hook", "port 0"),
    ("https://example.com:99999/hook", "not a valid URL"),
])
def test_check_url_refuses_bad_forms(url: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        check_url(url, allow_http=False)


def test_plain_http_only_where_allowed() -> None:
    assert check_url("http://example.com/hook", allow_http=True) == "example.com"
    with pytest.raises(TargetRefused, match="plain http is not allowed"):
        check_url("http://example.com/hook", allow_http=False)
    with pytest.raises(TargetRefused):  # allowing http allows nothing else
        check_url("ftp://example.com/hook", allow_http=True)


INTERNAL = [
    "https://127.0.0.1/h", "https://127.8.9.10/h", "https://10.0.0.1/h", "https://172.16.5.4/h",
    "https://192.168.1.1/h", "https://169.254.169.254/latest/meta-data", "https://100.64.0.1/h",
    "https://0.0.0.0/h", "https://224.0.0.1/h", "https://[::1]/h", "https://[fe80::1]/h", "https://[fc00::1]/h",
    "https://[::ffff:127.0.0.1]/h", "https://[::ffff:10.0.0.1]/h", "https://[::ffff:169.254.169.254]/h",
    "https://[::]/h", "https://localhost/h",
]


@pytest.mark.parametrize("url", INTERNAL)
async def test_check_target_refuses_internal_addresses(url: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address"):
        await check_target(url, allow_http=False, allow_private=False)


@pytest.mark.parametrize("url", INTERNAL)
async def test_internal_addresses_pass_where_private_targets_are_allowed(url: str) -> None:
    await check_target(url, allow_http=False, allow_private=True)


async def test_check_target_accepts_public_literals_and_checks_form_first() -> None:
    await check_target("https://93.184.216.34/h", allow_http=False, allow_private=False)
    await check_target("https://[::ffff:93.184.216.34]/h", allow_http=False, allow_private=False)
    with pytest.raises(TargetRefused, match="https"):
        await check_target("http://127.0.0.1/h", allow_http=False, allow_private=True)
    with pytest.raises(TargetRefused, match="does not resolve"):
        await check_target("https://no-such-host.invalid/h", allow_http=False, allow_private=False)


def test_literal_refused_judges_only_ip_literals() -> None:
    assert literal_refused("http://127.0.0.1:9/h") == "127.0.0.1 is not a public address"
    assert literal_refused("http://[::ffff:192.168.0.1]/h") == "192.168.0.1 is not a public address"
    assert literal_refused("https://93.184.216.34/h") is None
    assert literal_refused("https://example.com/h") is None  # names are the resolver's to judge


class FixedResolver(AbstractResolver):
    """A stand-in for DNS: every name resolves to the addresses given."""

    def __init__(self, *addresses: str) -> None:
        self.addresses, self.closed = addresses, False

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
                for a in self.addresses]

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("answers", [
    ("10.1.2.3",), ("127.0.0.1",), ("169.254.169.254",), ("::1",), ("::ffff:10.0.0.1",),
    ("93.184.216.34", "192.168.0.7"),  # one private answer among public ones is enough to refuse
])
async def test_public_only_resolver_refuses_names_with_private_answers(answers: tuple[str, ...]) -> None:
    resolver = PublicOnlyResolver(FixedResolver(*answers))
    with pytest.raises(OSError, match="not a public address"):
        await resolver.resolve("rebinding.example.com", 443)


async def test_public_only_resolver_passes_public_answers_through() -> None:
    inner = FixedResolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    resolver = PublicOnlyResolver(inner)
    answers = await resolver.resolve("example.com", 443)
    assert [a["host"] for a in answers] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    await resolver.close()
    assert inner.closed


# --- signing secrets ----------------------------------------------------------------------------------------------
def test_new_secrets_are_standard_webhooks_secrets_and_differ() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a.startswith("whsec_") and b.startswith("whsec_") and a != b
    Webhook(a)  # the library accepts it


def test_rotation_keeps_the_previous_secret_only_inside_its_overlap() -> None:
    now = utcnow()
    entries = [{"secret": "whsec_old", "expires_at": None}]
    rotated = signing.rotate(entries, "whsec_new", now + timedelta(hours=1))
    assert [e["secret"] for e in rotated] == ["whsec_new", "whsec_old"]
    assert rotated[0]["expires_at"] is None
    assert signing.active(rotated, now) == ["whsec_new", "whsec_old"]
    assert signing.active(rotated, now + timedelta(minutes=59)) == ["whsec_new", "whsec_old"]
    assert signing.active(rotated, now + timedelta(hours=1, seconds=1)) == ["whsec_new"]


def test_rotating_again_drops_secrets_past_their_overlap_and_keeps_live_ones() -> None:
    now = utcnow()
    entries = [{"secret": "whsec_b", "expires_at": None},
               {"secret": "whsec_a", "expires_at": (now - timedelta(seconds=1)).isoformat()}]
    rotated = signing.rotate(entries, "whsec_c", now + timedelta(hours=1))
    assert [e["secret"] for e in rotated] == ["whsec_c", "whsec_b"]  # a had ended
    live = [{"secret": "whsec_b", "expires_at": None},
            {"secret": "whsec_a", "expires_at": (now + timedelta(minutes=5)).isoformat()}]
    rotated = signing.rotate(live, "whsec_c", now + timedelta(hours=1))
    assert [e["secret"] for e in rotated] == ["whsec_c", "whsec_b", "whsec_a"]  # a still inside its overlap
    assert signing.active(rotated, now + timedelta(minutes=10)) == ["whsec_c", "whsec_b"]


def test_headers_verify_with_the_standard_webhooks_library() -> None:
    old, new, other = signing.new_secret(), signing.new_secret(), signing.new_secret()
    body, at = b'{"id":"evt_1","type":"consent.authorised","data":{}}', utcnow()
    headers = signing.headers("evt_1", at, body, [new, old])
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert [s[:3] for s in headers["webhook-signature"].split(" ")] == ["v1,", "v1,"]
    assert Webhook(new).verify(body, headers) == {"id": "evt_1", "type": "consent.authorised", "data": {}}
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)  # the exact bytes are signed
    only = signing.headers("evt_1", at, body, [new])
    assert len(only["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, only)


# --- which changes are events -------------------------------------------------------------------------------------
def _consent(status: ConsentStatus) -> ConsentRecord:
    now = utcnow()
    return ConsentRecord(id="con_1", tenant="dev", provider="thredd", customer_id="cus_1", status=status,
                         created_at=now, updated_at=now, permissions=("accounts",), expires_at=now + timedelta(days=90),
                         upstream={"secret": "never in events"})


@pytest.mark.parametrize(("status", "kind"), [
    (ConsentStatus.AUTHORISED, "consent.authorised"), (ConsentStatus.REVOKED, "consent.revoked"),
    (ConsentStatus.EXPIRED, "consent.expired"), (ConsentStatus.REJECTED, "consent.rejected"),
    (ConsentStatus.REAUTHENTICATION_REQUIRED, "consent.reauthentication_required"),
])
def test_consent_changes_make_their_event(status: ConsentStatus, kind: str) -> None:
    consent = _consent(status)
    [event] = canonical.consent_changed(consent, ConsentStatus.AWAITING_AUTHORISATION)
    assert event.type == kind and event.subject_type == "consent" and event.subject_id == "con_1"
    assert event.order_key == "con_1" and event.tenant == "dev" and event.id.startswith("evt")
    assert event.data["previous_status"] == "awaiting_authorisation"
    assert event.data["consent"]["status"] == status.value and event.data["consent"]["id"] == "con_1"
    assert "upstream" not in event.data["consent"] and "never in events" not in repr(event.data)
    body = event.body()
    assert set(body) == {"id", "type", "timestamp", "data"} and body["timestamp"].endswith("Z")


def test_consent_non_changes_make_no_event() -> None:
    assert canonical.consent_changed(_consent(ConsentStatus.AUTHORISED), ConsentStatus.AUTHORISED) == []
    assert canonical.consent_changed(_consent(ConsentStatus.AWAITING_AUTHORISATION), None) == []
    assert canonical.consent_changed(_consent(ConsentStatus.AWAITING_AUTHORISATION),
                                     ConsentStatus.AUTHORISED) == []  # no event type for that status
    [first] = canonical.consent_changed(_consent(ConsentStatus.AUTHORISED), None)
    assert first.data["previous_status"] is None


def _report(status: ReportStatus) -> ReportRecord:
    now = utcnow()
    return ReportRecord(id="rep_1", tenant="dev", provider="mastercard-us", customer_id="cus_1", consent_id="con_1",
                        type="voa", status=status, provider_ref="r1", created_at=now, updated_at=now)


def test_report_changes() -> None:
    [done] = canonical.report_changed(_report(ReportStatus.READY), ReportStatus.PENDING)
    assert done.type == "report.completed" and done.data["report"]["status"] == "ready"
    assert done.subject_type == "report" and done.subject_id == "rep_1" and done.order_key == "con_1"
    [failed] = canonical.report_changed(_report(ReportStatus.FAILED), ReportStatus.PENDING)
    assert failed.type == "report.failed"
    assert canonical.report_changed(_report(ReportStatus.READY), ReportStatus.READY) == []
    assert canonical.report_changed(_report(ReportStatus.PENDING), None) == []
    assert canonical.report_changed(_report(ReportStatus.PENDING), ReportStatus.PENDING) == []


def test_payment_moves_make_one_event_per_real_transition_in_order() -> None:
    now = utcnow()
    payment = PaymentRecord(id="pay_1", tenant="dev", provider="stripe-uk", type="domestic",
                            status=PaymentStatus.COMPLETED, amount=Decimal("25.50"), currency="GBP",
                            request={"creditor": {"name": "never in events"}}, created_at=now, updated_at=now)
    moves = [
        PaymentTransition(PaymentStatus.AUTHORISED, now, PaymentStatus.AWAITING_AUTHORISATION),
        PaymentTransition(PaymentStatus.AUTHORISED, now, PaymentStatus.AUTHORISED),  # not a change
        PaymentTransition(PaymentStatus.SUBMITTED, now, PaymentStatus.AUTHORISED, "AcceptedSettlementInProcess"),
        PaymentTransition(PaymentStatus.COMPLETED, now, PaymentStatus.SUBMITTED, "AcceptedSettlementCompleted"),
    ]
    events = canonical.payment_moved(payment, moves)
    assert [e.type for e in events] == ["payment.status_changed"] * 3
    assert [(e.data["previous_status"], e.data["payment"]["status"]) for e in events] == [
        ("awaiting_authorisation", "authorised"), ("authorised", "submitted"), ("submitted", "completed")]
    assert events[-1].data["provider_status"] == "AcceptedSettlementCompleted"
    assert events[-1].data["payment"]["amount"] == "25.50"
    assert {e.order_key for e in events} == {"pay_1"} and len({e.id for e in events}) == 3
    assert "never in events" not in repr([e.data for e in events])
    assert canonical.payment_moved(payment, []) == []
    assert canonical.payment_moved(payment, [moves[1]]) == []


# --- the backlog gauges ---------------------------------------------------------------------------------------------
class _CountingStore:
    def __init__(self, fails: bool = False) -> None:
        self.reads, self.fails = 0, fails

    async def delivery_backlog(self, now: Any) -> canonical.DeliveryBacklog:
        self.reads += 1
        if self.fails:
            raise ConnectionError("database unreachable")
        return canonical.DeliveryBacklog(pending=5, due=3, oldest_due_at=now - timedelta(seconds=42), failed=1)


async def test_backlog_gauges_are_read_at_most_every_interval() -> None:
    from gateway.events.worker import observe_backlog
    from gateway.observability import Metrics

    metrics, store = Metrics(), _CountingStore()
    await observe_backlog(store, metrics)  # type: ignore[arg-type]
    await observe_backlog(store, metrics)  # type: ignore[arg-type]
    assert store.reads == 1  # a second scrape at once does not count again
    assert (metrics.deliveries_pending._value.get(), metrics.deliveries_due._value.get(),
            metrics.deliveries_failed._value.get()) == (5, 3, 1)
    assert 42 <= metrics.delivery_lag._value.get() < 43
    metrics.backlog_read_at -= 10  # the interval has passed
    await observe_backlog(store, metrics)  # type: ignore[arg-type]
    assert store.reads == 2


async def test_an_unreadable_backlog_leaves_the_gauges_as_they_were() -> None:
    from gateway.events.worker import observe_backlog
    from gateway.observability import Metrics

    metrics = Metrics()
    metrics.deliveries_pending.set(7)
    await observe_backlog(_CountingStore(fails=True), metrics)  # type: ignore[arg-type]
    assert metrics.deliveries_pending._value.get() == 7
