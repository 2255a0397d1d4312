"""The application factory: routes, middleware, and the resources an app owns for its lifetime."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import AsyncIterator

import structlog
from aiohttp import web

from adapters.base import load_adapter_class
from gateway.api import (
    accounts, applications, consents, customers, events, onboarding, ops, payments, providers, reports, webhooks,
)
from gateway.api.idempotency import idempotent
from gateway.api.cursor import CursorCodec
from gateway.api.middleware import gateway_middleware
from gateway.api.state import STATE, GatewayState
from gateway.config import GatewayConfig
from gateway.connectivity.client import UpstreamFactory
from gateway.observability import Metrics, configure_logging
from gateway.events.worker import start_event_workers
from gateway.payments.reconcile import Reconciler
from gateway.store import open_store
from gateway.validation.access import CallerDirectory
from gateway.vault import Vault

log = structlog.get_logger("gateway")
# The workers' stop, begun when shutdown begins (`_begin_stopping`) and awaited in `_lifecycle`'s cleanup; a holder
# set up with the app, since a running app's own keys are not to be changed.
WORKERS_STOPPING = web.AppKey("workers_stopping", list)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", ops.healthz)
    r.add_get("/readyz", ops.readyz)
    r.add_get("/metrics", ops.metrics)
    r.add_get("/openapi.json", ops.openapi_json)
    r.add_get("/docs", ops.docs)
    r.add_get("/.well-known/jwks.json", onboarding.public_keys)
    r.add_get("/v1/providers", providers.list_providers)
    r.add_post("/v1/providers/{provider}/registration", idempotent(onboarding.register))
    r.add_get("/v1/providers/{provider}/registration", onboarding.get_registration)
    r.add_delete("/v1/providers/{provider}/registration", onboarding.delete_registration)
    r.add_get("/v1/institutions", providers.list_institutions)
    r.add_post("/v1/customers", idempotent(customers.create_customer))
    r.add_get("/v1/customers/{customer_id}", customers.get_customer)
    r.add_post("/v1/customers/{customer_id}/consumer", idempotent(customers.create_consumer))
    r.add_post("/v1/customers/{customer_id}/consent-dashboard", idempotent(customers.consent_dashboard))
    r.add_post("/v1/consents", idempotent(consents.create_consent))
    r.add_get("/v1/consents", consents.list_consents)
    r.add_get("/v1/consents/{consent_id}", consents.get_consent)
    r.add_get("/v1/consents/{consent_id}/raw", consents.get_raw_consent)
    r.add_post("/v1/consents/{consent_id}/complete", idempotent(consents.complete_consent))
    r.add_post("/v1/consents/{consent_id}/revoke", idempotent(consents.revoke_consent))
    r.add_post("/v1/consents/{consent_id}/institution-logins/{login_ref}/revoke",
               idempotent(consents.revoke_institution_login))
    r.add_get("/v1/accounts", accounts.list_accounts)
    r.add_get("/v1/accounts/{account_id}", accounts.get_account)
    r.add_get("/v1/accounts/{account_id}/balances", accounts.get_balances)
    r.add_get("/v1/accounts/{account_id}/transactions", accounts.list_transactions)
    r.add_get("/v1/accounts/{account_id}/details", accounts.get_details)
    r.add_get("/v1/accounts/{account_id}/owner", accounts.get_owner)
    r.add_get("/v1/accounts/{account_id}/standing-orders", accounts.list_standing_orders)
    r.add_post("/v1/reports", idempotent(reports.create_report))
    r.add_get("/v1/reports", reports.list_reports)
    r.add_get("/v1/reports/{report_id}", reports.get_report)
    r.add_get("/v1/reports/{report_id}/content", reports.get_report_content)
    r.add_post("/v1/applications", idempotent(applications.register_application))
    r.add_get("/v1/applications/{application_id}", applications.get_application)
    r.add_get("/v1/applications/{application_id}/institutions", applications.list_application_institutions)
    r.add_post("/v1/payments", idempotent(payments.create_payment, required=True))
    r.add_get("/v1/payments", payments.list_payments)
    r.add_get("/v1/payments/{payment_id}", payments.get_payment)
    r.add_post("/v1/payments/{payment_id}/complete", idempotent(payments.complete_payment))
    r.add_post("/v1/payments/{payment_id}/submit", idempotent(payments.submit_payment))
    r.add_get("/v1/payments/{payment_id}/funds-confirmation", payments.funds_confirmation)
    r.add_post("/v1/webhook-subscriptions", idempotent(events.create_subscription, sealed=True))
    r.add_get("/v1/webhook-subscriptions", events.list_subscriptions)
    r.add_get("/v1/webhook-subscriptions/{subscription_id}", events.get_subscription)
    r.add_patch("/v1/webhook-subscriptions/{subscription_id}", events.update_subscription)
    r.add_delete("/v1/webhook-subscriptions/{subscription_id}", events.delete_subscription)
    r.add_post("/v1/webhook-subscriptions/{subscription_id}/rotate-secret", idempotent(events.rotate_secret, sealed=True))
    r.add_get("/v1/events", events.list_events)
    r.add_get("/v1/events/{event_id}", events.get_event)
    r.add_post("/v1/events/{event_id}/redeliver", idempotent(events.redeliver_event))
    r.add_post("/webhooks/{provider}", webhooks.receive)
    r.add_post("/webhooks/{provider}/{channel}", webhooks.receive)


def create_app(config: GatewayConfig) -> web.Application:
    configure_logging(config.logging.format, config.logging.level)
    app = web.Application(middlewares=[gateway_middleware], client_max_size=config.server.max_body_bytes)
    metrics = Metrics()
    id_key = hmac.new(config.security.id_key.reveal().encode(), b"gateway-ids-v1", hashlib.sha256).digest()
    state = GatewayState(
        config=config,
        store=open_store(config.store.url, read_cache_seconds=config.store.read_cache_seconds,
                         event_horizon_seconds=config.events.retry_horizon_seconds,
                         pool_min_size=config.store.pool_min_size, pool_max_size=config.store.pool_max_size,
                         schema=config.store.schema),
        metrics=metrics,
        upstreams=UpstreamFactory(metrics),
        callers=CallerDirectory(config.callers),
        cursors=CursorCodec(config.security.id_key.reveal().encode()),
        id_key=id_key,
    )
    app[STATE] = state
    app[WORKERS_STOPPING] = []
    add_routes(app)
    app.on_shutdown.append(_begin_stopping)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _stop_workers(state: GatewayState, grace: float) -> None:
    """Stop every worker at once: deliveries in flight get `grace` seconds, then are cut off and their claims
    handed back (so another replica sends them now, not after the lease)."""
    await asyncio.gather(*(w.stop() if w is state.reconciler else w.stop(grace) for w in state.workers))
    state.workers.clear()
    state.reconciler = None


async def _begin_stopping(app: web.Application) -> None:
    """Shutdown begins (SIGTERM): the server has stopped listening and is about to give the requests in flight
    `server.shutdown_grace_seconds`. The workers stop in that same grace, alongside, not after it, so the process
    ends within the grace."""
    state = app[STATE]
    state.ready = False
    if not app[WORKERS_STOPPING]:
        app[WORKERS_STOPPING].append(asyncio.create_task(
            _stop_workers(state, state.config.server.shutdown_grace_seconds), name="stop-workers"))


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    config = state.config
    await state.store.open()
    vault = Vault(state.store, config.security.encryption_key) if config.security.encryption_key else None
    state.vault = vault
    try:
        for provider, adapter_config in config.enabled_adapters().items():
            cls = load_adapter_class(provider)
            base_url = adapter_config.base_url
            if adapter_config.embedded:
                sandbox = cls.create_sandbox(adapter_config)
                base_url = await sandbox.start("127.0.0.1", adapter_config.sandbox_port)
                if hasattr(sandbox, "webhook_url"):  # simulators that call back reach this gateway
                    sandbox.webhook_url = f"{config.server.public_url.rstrip('/')}/webhooks/{provider}"
                state.sandboxes[provider] = sandbox
                log.info("sandbox_started", provider=provider, base_url=base_url)
            state.adapters[provider] = cls(adapter_config, state.upstreams, state.store, base_url=base_url,
                                           vault=vault, public_url=config.server.public_url)
            if getattr(adapter_config.settings, "live", False):
                log.warning("live_environment", provider=provider, base_url=base_url,
                            detail="this environment moves real money: every payment through it is tagged live")
        await state.upstreams.start()  # sessions open before adapters start: starting may call upstream
        for adapter in state.adapters.values():
            await adapter.start()
        reconciler = Reconciler(state)  # also purges expired idempotency keys, so it runs even when not reconciling
        reconciler.start()
        state.workers.append(reconciler)
        state.reconciler = reconciler
        if config.events.worker_in_serve:
            state.workers.extend(start_event_workers(state.store, vault, config, state.metrics, name="serve"))
        state.ready = True
        yield
    finally:
        state.ready = False
        for stopping in app[WORKERS_STOPPING]:
            await stopping
        await _stop_workers(state, config.server.shutdown_grace_seconds)  # any left (shutdown never began)
        for adapter in state.adapters.values():
            await adapter.close()
        await state.upstreams.close()
        for sandbox in state.sandboxes.values():
            await sandbox.stop()
        await state.store.close()
