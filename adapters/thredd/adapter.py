"""The thredd adapter: Thredd Open Banking instant account verification (US, on Mastercard Finicity).

A consent is a Thredd registration: POST /register gives an open-banking customer and a Connect link; the end
user connects an account; Thredd reports progress by webhook (event code 117) and the accounts and their ACH
details become readable. Thredd offers no balances, transactions, owner or revocation API: those operations are
not declared, so the gateway answers 501 without calling it.
"""
from __future__ import annotations

import hmac
from typing import Any

import attrs

from adapters.base import Adapter, CallContext, ConsentUpdate, CreateConsentInput, InboundEvent
from adapters.thredd import translate
from gateway.errors import Conflict, ConsentEndedUpstream, ProviderBadResponse, Unauthenticated
from gateway.models import Account, AccountDetails, ConnectLink, ConsentStatus
from gateway.secrets import Secret
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord

API = "/api/v1/open-banking"
SECRET_HEADER = "X-Thredd-Webhook-Secret"


@attrs.frozen
class ThreddSettings:
    client_id: Secret
    application_id: str
    # Thredd publishes no webhook signature: the shared secret it sends in SECRET_HEADER is configured per environment.
    webhook_secret: Secret
    partner_id: str | None = None
    hosted_in_mobile_app: bool = False


class ThreddAdapter(Adapter):
    provider_id = "thredd"
    regions = frozenset({"US"})
    settings_type = ThreddSettings
    webhook_channels = frozenset({""})
    capabilities = frozenset({"create_consent", "complete_consent", "refresh_consent", "list_accounts",
                              "get_account_details"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upstream = self.upstreams.client(self.provider_id, self.base_url, self.config)

    @classmethod
    def create_sandbox(cls, config: Any) -> Any:
        from adapters.thredd.sandbox import ThreddSandbox

        s: ThreddSettings = config.settings
        return ThreddSandbox(client_id=s.client_id.reveal(), partner_id=s.partner_id, application_id=s.application_id,
                             webhook_secret=s.webhook_secret.reveal())

    def health(self) -> dict[str, Any]:
        return self.upstream.health()

    async def _call(self, method: str, path: str, *, operation: str, json: Any = None) -> Any:
        headers = {"client-id": self.settings.client_id.reveal(), "Accept": "application/json"}
        if self.settings.partner_id:
            headers["partner-id"] = self.settings.partner_id
        response = await self.upstream.request(method, API + path, operation=operation, json=json, headers=headers)
        if not response.ok:
            raise translate.error_from_response(response.status, response.body, retry_after=response.retry_after)
        return response.json()

    @staticmethod
    def _customer_ref(consent: ConsentRecord) -> str:
        ref = consent.provider_ref
        if not ref:
            raise ProviderBadResponse("the consent has no Thredd customer")
        return ref

    # --- operations ---------------------------------------------------------------------------------------------
    async def create_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                             data: CreateConsentInput) -> ConnectLink:
        body = translate.register_body(redirect_uri=data.redirect_uri,
                                       hosted_in_mobile_app=self.settings.hosted_in_mobile_app,
                                       application_id=self.settings.application_id,
                                       customer_ref=data.previous_provider_ref)
        answer = await self._call("POST", "/register", operation="create_consent", json=body)
        customer_ref, link = translate.registration(answer)
        return ConnectLink(url=link, provider_ref=customer_ref)

    async def _accounts_body(self, consent: ConsentRecord) -> Any:
        return await self._call("GET", f"/customers/{self._customer_ref(consent)}/accounts", operation="list_accounts")

    async def complete_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                               result: dict[str, str]) -> ConsentUpdate:
        reason, code = result.get("reason", ""), result.get("code", "")
        if reason in ("exited", "error") or (code and code != "200"):
            return ConsentUpdate(status=ConsentStatus.REJECTED, reason=f"the end user left Connect ({reason or code})")
        body = await self._accounts_body(consent)
        if not body.get("accounts"):
            raise Conflict("Thredd has no connected account for this customer yet; complete the Connect session first")
        return ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref=consent.provider_ref)

    async def refresh_consent(self, ctx: CallContext, consent: ConsentRecord,
                              customer: CustomerRecord | None) -> ConsentUpdate:
        try:
            await self._accounts_body(consent)
        except ConsentEndedUpstream as exc:
            return ConsentUpdate(status=ConsentStatus.REVOKED, reason=exc.detail)
        return ConsentUpdate(status=consent.status, provider_ref=consent.provider_ref)

    async def list_accounts(self, ctx: CallContext, consent: ConsentRecord,
                            customer: CustomerRecord | None) -> list[Account]:
        return translate.accounts(await self._accounts_body(consent), consent_id=consent.id, ids=ctx.ids(consent.id))

    async def get_account_details(self, ctx: CallContext, consent: ConsentRecord,
                                  account: AccountRecord) -> AccountDetails:
        body = await self._call("GET", f"/customers/{self._customer_ref(consent)}/accounts/{account.provider_ref}"
                                       "/details", operation="get_account_details")
        return translate.details(body, account_id=account.id)

    # --- webhooks -------------------------------------------------------------------------------------------------
    def verify_webhook(self, headers: Any, body: bytes) -> None:
        given = headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.settings.webhook_secret.reveal().encode()):
            raise Unauthenticated("the webhook's shared secret is missing or wrong")

    def parse_webhook(self, headers: Any, body: bytes) -> InboundEvent:
        return translate.inbound_event(body)
