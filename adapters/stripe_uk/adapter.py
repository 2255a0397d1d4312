"""The stripe-uk adapter: Stripe as a UK ASPSP, Open Banking v3.1.2 account information under FAPI.

Everything goes over mutual TLS with the gateway's transport certificate. The gateway is the ASPSP's OAuth client
by Dynamic Client Registration (`gateway.onboarding.dcr`), authenticates at the token endpoint with
`private_key_jwt` (or `tls_client_auth`), asks for account-access consents with a client-credentials token, sends
the end user to the ASPSP with a signed request object, and trusts the redirect result only after verifying its
ID token (`gateway.connectivity.fapi`). The consent's access and refresh tokens are kept sealed (AES-GCM) with the
consent, renewed before they expire, and a renewal that fails on an ASPSP fault keeps the refresh token.

At start the gateway subscribes to the bank's event notifications (`subscriptions.py`), so a payment's status change
or an account holder's revocation at the bank reaches it without polling (`POST /webhooks/stripe-uk`, `events.py`).
"""
from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import orjson
import structlog

from adapters.base import (
    Adapter,
    CallContext,
    ConsentUpdate,
    CreateConsentInput,
    TransactionQuery,
)
from adapters.stripe_uk import translate as ob
from adapters.stripe_uk.oauth import OAuthClient
from adapters.stripe_uk.payments import PaymentsClient
from adapters.stripe_uk.settings import StripeUKSettings, resolve_material
from adapters.stripe_uk.subscriptions import EventsClient
from gateway.certificates.keys import SigningKey, client_ssl_context
from gateway.connectivity.client import UpstreamClient, UpstreamResponse
from gateway.connectivity.tokens import TokenBroker
from gateway.errors import (
    GatewayError,
    ProviderBadResponse,
    ValidationFailed,
)
from gateway.models import ConnectLink, ConsentStatus, Page, Transaction
from gateway.models.time import parse_upstream_time
from gateway.onboarding.dcr import Registrar
from gateway.store.lease import LeaseBusy, held
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord

log = structlog.get_logger("gateway.stripe_uk")

_STATUSES = {"Authorised": ConsentStatus.AUTHORISED, "AwaitingAuthorisation": ConsentStatus.AWAITING_AUTHORISATION,
             "Rejected": ConsentStatus.REJECTED, "Revoked": ConsentStatus.REVOKED}


class StripeUKAdapter(EventsClient, PaymentsClient, OAuthClient, Adapter):
    provider_id = "stripe-uk"
    regions = frozenset({"GB"})
    settings_type = StripeUKSettings
    consent_limits = True
    capabilities = frozenset({
        "create_consent", "complete_consent", "refresh_consent", "revoke_consent", "list_accounts", "get_balances",
        "list_transactions", "get_account_details", "get_account_owner", "register_client",
        "create_payment", "authorise_payment", "submit_payment", "get_payment", "confirm_funds",
    })

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s: StripeUKSettings = self.settings
        self.material = resolve_material(s)
        self._ssl = client_ssl_context(self.material.transport_cert, self.material.transport_key,
                                       self.material.trust_ca)
        self.upstream = self.upstreams.client(self.provider_id, self.base_url, self.config, ssl=self._ssl)
        self._origins: dict[str, UpstreamClient] = {self._origin(self.base_url): self.upstream}
        self._discovery: dict[str, Any] | None = None
        self._aspsp_jwks: dict[str, Any] | None = None
        self._client_tokens: dict[str, TokenBroker] = {}
        self._consent_locks: dict[str, asyncio.Lock] = {}
        self.registrar: Registrar | None = None
        self.registration_problem: str | None = None
        self.events_problem: str | None = None
        self._jwks_fetched_at = -math.inf  # monotonic time of the last JWKS fetch an event notification caused

    @staticmethod
    def certificate_paths(settings: StripeUKSettings) -> list[tuple[str, Path]]:
        """The certificates `gateway certificates` reports on."""
        if settings.local_material is not None:
            base = Path(settings.local_material)
            return [("transport certificate", base / "transport.pem"), ("local CA", base / "local-ca.pem")]
        out = [("transport certificate", Path(settings.transport_cert or ""))]
        if settings.trust_ca:
            out.append(("trusted CA", Path(settings.trust_ca)))
        return out

    @classmethod
    def create_sandbox(cls, config: Any) -> Any:
        from adapters.stripe_uk.sandbox import StripeUKSandbox
        from gateway.certificates.local import ensure_local_material

        s: StripeUKSettings = config.settings
        if s.local_material is None:
            raise LookupError("the embedded stripe-uk simulator needs local_material")
        local = ensure_local_material(Path(s.local_material), software_id=s.software_id,
                                      organisation_id=s.organisation_id, redirect_uris=s.redirect_uris)
        return StripeUKSandbox(server_cert=local.server_cert, server_key=local.server_key, client_ca=local.ca_cert,
                               directory_jwks=orjson.loads(local.directory_jwks.read_bytes()),
                               keystore=local.keystore(), access_token_ttl=s.sandbox_access_token_ttl,
                               payment_timeline=tuple(s.sandbox_payment_timeline))

    async def start(self) -> None:
        # Replicas starting together register and subscribe one after another: the first registers, the others
        # find its registration stored (otherwise the bank would hold a client per replica, all but one orphaned).
        try:
            async with held(self.store, f"{self.provider_id}:start", ttl=120.0, wait=120.0):
                await self._start()
        except LeaseBusy as exc:
            self.registration_problem = str(exc)
            log.error("client_not_registered", provider=self.provider_id, error=str(exc))

    async def _start(self) -> None:
        if self.settings.register_on_start:
            try:
                outcome, registration = await self.register_client(None)
                log.info("client_registered", provider=self.provider_id, outcome=outcome,
                         client_id=registration.get("client_id"))
            except (GatewayError, LookupError) as exc:
                self.registration_problem = str(exc)
                log.error("client_not_registered", provider=self.provider_id, error=str(exc))
        if self.settings.subscribe_events and self.webhook_url() is not None:
            try:
                outcome, subscription = await self.subscribe_events()
                self.events_problem = None
                log.info("events_subscribed", provider=self.provider_id, outcome=outcome,
                         subscription_id=subscription.get("EventSubscriptionId"),
                         callback_url=subscription.get("CallbackUrl"))
            except (GatewayError, LookupError) as exc:
                # Start anyway: everything works by polling; health shows it until a restart subscribes.
                self.events_problem = str(exc)
                log.error("events_not_subscribed", provider=self.provider_id, error=str(exc))

    def signing_keys(self) -> list[SigningKey]:
        return [self.material.signing]

    def health(self) -> dict[str, Any]:
        out = self.upstream.health()
        if self.registration_problem is not None:
            out["registration"] = f"not registered: {self.registration_problem}"
        if self.events_problem is not None:
            out["event_notifications"] = f"not subscribed: {self.events_problem}"
        return out

    # --- onboarding ----------------------------------------------------------------------------------------------------
    async def register_client(self, ctx: CallContext | None) -> tuple[str, dict[str, Any]]:
        outcome, registration = await (await self._registrar()).register()
        self._client_tokens.clear()
        self.registration_problem = None
        return outcome, registration

    async def get_registration(self, ctx: CallContext | None) -> dict[str, Any]:
        return await (await self._registrar()).read()

    async def delete_registration(self, ctx: CallContext | None) -> None:
        await (await self._registrar()).delete()
        self._client_tokens.clear()

    # --- consents ------------------------------------------------------------------------------------------------------
    def validate_consent(self, data: CreateConsentInput, customer: CustomerRecord | None) -> None:
        errors = []
        if data.redirect_uri not in self.settings.redirect_uris:
            errors.append({"location": "body", "field": "redirect_uri",
                           "message": f"must be one of the redirect URIs registered with {self.provider_id}: "
                                      f"{', '.join(self.settings.redirect_uris)}"})
        if data.institution_id is not None:
            errors.append({"location": "body", "field": "institution_id",
                           "message": f"{self.provider_id} is itself the bank; name no institution"})
        if errors:
            raise ValidationFailed.of(errors)

    def _fapi_headers(self, ctx: CallContext) -> dict[str, str]:
        headers = {"x-fapi-interaction-id": ctx.request_id, "Accept": "application/json"}
        for key, header in (("ip", "x-fapi-customer-ip-address"), ("auth_date", "x-fapi-auth-date"),
                            ("agent", "x-customer-user-agent")):
            if key in ctx.end_user:
                headers[header] = ctx.end_user[key]
        return headers

    async def _aisp(self, ctx: CallContext, method: str, path: str, *, token: str, operation: str,
                    json: Any = None, params: dict[str, str] | None = None) -> UpstreamResponse:
        headers = {**self._fapi_headers(ctx), "Authorization": f"Bearer {token}"}
        return await self.upstream.request(method, self.settings.aisp_path + path, operation=operation, json=json,
                                           params=params, headers=headers)

    async def create_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                             data: CreateConsentInput) -> ConnectLink:
        client_id = await self._client_id()
        token = await self._client_credentials("accounts", client_id)
        body = ob.consent_body(consent.permissions, expires_at=data.expires_at,
                               transactions_from=data.transactions_from, transactions_to=data.transactions_to)
        response = await self._aisp(ctx, "POST", "/account-access-consents", token=token, json=body,
                                    operation="create_consent")
        if not response.ok:
            raise self._fail(response)
        try:
            created = response.json()["Data"]  # an unreadable body is the provider's fault (ProviderBadResponse)
            intent = str(created["ConsentId"])
        except (KeyError, TypeError):
            raise ProviderBadResponse(f"{self.provider_id} created a consent without a ConsentId") from None
        url, kept = await self._authorisation_url(client_id=client_id, redirect_uri=data.redirect_uri,
                                                  scope="openid accounts", intent_id=intent)
        consent.upstream.update({**kept, "expires": created.get("ExpirationDateTime")})
        return ConnectLink(url=url, provider_ref=intent)

    async def complete_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                               result: dict[str, str]) -> ConsentUpdate:
        tokens, refusal = await self._redeem(consent.upstream, result, intent_id=consent.provider_ref or "",
                                             redirect_uri=consent.redirect_uri or "", what="consent")
        if tokens is None:
            return ConsentUpdate(status=ConsentStatus.REJECTED, reason=refusal)
        if not tokens.get("refresh_token"):
            raise ProviderBadResponse(f"{self.provider_id} issued no refresh token for the consent")
        expires = parse_upstream_time(consent.upstream.get("expires"))
        return ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref=consent.provider_ref, expires_at=expires,
                             upstream={"tokens": self._seal(consent, tokens), "state": None, "nonce": None})

    async def _data(self, ctx: CallContext, consent: ConsentRecord, path: str, operation: str,
                    params: dict[str, str] | None = None) -> Any:
        token = await self._access_token(consent)
        response = await self._aisp(ctx, "GET", path, token=token, operation=operation, params=params)
        if response.status == 401:  # revoked or expired early at the ASPSP: renew once
            token = await self._access_token(consent, stale=token)
            response = await self._aisp(ctx, "GET", path, token=token, operation=operation, params=params)
        if not response.ok:
            raise self._fail(response)
        return response.json()

    async def refresh_consent(self, ctx: CallContext, consent: ConsentRecord,
                              customer: CustomerRecord | None) -> ConsentUpdate:
        token = await self._client_credentials("accounts")
        response = await self._aisp(ctx, "GET", f"/account-access-consents/{consent.provider_ref}", token=token,
                                    operation="get_consent")
        if response.status == 404:
            return ConsentUpdate(status=ConsentStatus.REVOKED, reason="the bank no longer knows the consent")
        if not response.ok:
            raise self._fail(response)
        status = str((response.json().get("Data") or {}).get("Status", ""))
        mapped = _STATUSES.get(status, ConsentStatus.REVOKED)
        return ConsentUpdate(status=mapped, provider_ref=consent.provider_ref, reason=f"the bank says {status}")

    async def revoke_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> None:
        token = await self._client_credentials("accounts")
        response = await self._aisp(ctx, "DELETE", f"/account-access-consents/{consent.provider_ref}", token=token,
                                    operation="revoke_consent")
        if response.status not in (204, 200, 404):
            raise self._fail(response)

    # --- account information ------------------------------------------------------------------------------------------
    async def list_accounts(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> list:
        body = await self._data(ctx, consent, "/accounts", "list_accounts")
        return ob.accounts(body, consent_id=consent.id, ids=ctx.ids(consent.id))

    async def get_balances(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list:
        body = await self._data(ctx, consent, f"/accounts/{account.provider_ref}/balances", "get_balances")
        return ob.balances(body, account_id=account.id)

    async def list_transactions(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord,
                                query: TransactionQuery) -> Page[Transaction]:
        """OB pages by `Links.Next`; the gateway's pages are the ASPSP's pages (its own size), the next link kept
        in the cursor. A caller's `limit` smaller than the ASPSP's page is honoured by cutting the page and
        resuming inside it from the cursor."""
        position = query.position or {}
        path = f"/accounts/{account.provider_ref}/transactions"
        if "next" in position:
            client, next_path = await self._client_for(position["next"])
            if client is not self.upstream or not next_path.startswith(self.settings.aisp_path + path):
                raise ProviderBadResponse(f"{self.provider_id} linked to a page of another resource")
            token = await self._access_token(consent)
            response = await self.upstream.request("GET", next_path, operation="list_transactions",
                                                   headers={**self._fapi_headers(ctx),
                                                            "Authorization": f"Bearer {token}"})
            if not response.ok:
                raise self._fail(response)
            body = response.json()
        else:
            body = await self._data(ctx, consent, path, "list_transactions",
                                    params=ob.booking_window(query.from_date, query.to_date))
        items = ob.transactions(body, account_id=account.id, ids=ctx.ids(consent.id),
                                include_pending=query.include_pending)
        skip = int(position.get("skip", 0))
        items = items[skip:]
        if len(items) > query.limit:
            here = {k: v for k, v in position.items() if k == "next"}
            return Page(tuple(items[:query.limit]), {**here, "skip": skip + query.limit})
        link = ob.next_link(body)
        return Page(tuple(items), {"next": link} if link else None)

    async def get_account_details(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Any:
        body = await self._data(ctx, consent, f"/accounts/{account.provider_ref}", "get_account_details")
        return ob.payment_coordinates(body, account_id=account.id)

    async def get_account_owner(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Any:
        body = await self._data(ctx, consent, f"/accounts/{account.provider_ref}/party", "get_account_owner")
        return ob.owner(body, account_id=account.id)
