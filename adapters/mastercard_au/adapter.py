"""The mastercard-au adapter: Mastercard Open Banking Australia under the CDR, on the shared platform adapter.

Beyond what the US deployment offers it keeps the CDR's rules:
- a consent records what the end user agreed to (purpose, data scopes, access period, how far back transactions may
  be read, the institutions under it) and the adapter refuses, before any upstream call, a data call outside them;
- data calls name the consent receipt (`Consent-Receipt-Id`), so the platform itself refuses data of a consent that
  has ended;
- consent notifications are subscribed to at start, their signing key kept sealed in the store, and every
  notification verified (`Event-Signature`, HMAC-SHA256 of the raw body) before it deletes anything;
- Connect and report webhooks are verified with `X-Signature` (HMAC-SHA256 keyed with the partner secret).
"""
from __future__ import annotations

from datetime import date
from typing import Any, ClassVar
from urllib.parse import quote

import attrs
import structlog

from adapters.base import (
    CallContext,
    ConsentUpdate,
    CreateCustomerInput,
    InboundEvent,
    TransactionQuery,
)
from adapters.mastercard.adapter import MastercardPlatformAdapter, MastercardSettings
from adapters.mastercard.region import AU
from adapters.mastercard_au import translate as au
from adapters.mastercard import webhooks as platform_hooks
from adapters.mastercard_au import webhooks as hooks
from adapters.mastercard_au.decisioning import DecisioningAndApplications
from gateway.errors import (
    Conflict,
    ConsentNotActive,
    GatewayError,
    MalformedRequest,
    NotFound,
    ProviderBadResponse,
    Unauthenticated,
    ValidationFailed,
)
from gateway.models import Balance, ConnectLink, ConsentStatus, Owner, Page, Transaction
from gateway.models.time import utcnow
from gateway.onboarding.applications import ACCESS_MODELS
from gateway.secrets import Secret
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord

log = structlog.get_logger("gateway.mastercard_au")

SUBSCRIPTION_ID = "consent_subscription_id"
SIGNING_KEY = "consent_signing_key"
_ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def abn_is_valid(abn: str) -> bool:
    """The Australian Business Register's check: 11 digits, first less one, weighted sum divisible by 89."""
    if len(abn) != 11 or not abn.isascii() or not abn.isdigit() or abn[0] == "0":
        return False
    digits = [int(c) for c in abn]
    digits[0] -= 1
    return sum(w * d for w, d in zip(_ABN_WEIGHTS, digits)) % 89 == 0


@attrs.frozen
class MastercardAUSettings(MastercardSettings):
    # How the partner takes part in the CDR (set with Mastercard): ADR_OSP, CDR_REPRESENTATIVE or BCDC.
    access_model: str = attrs.field(default="CDR_REPRESENTATIVE", validator=attrs.validators.in_(ACCESS_MODELS))
    # Subscribe to consent notifications at start (they are the CDR's only notice of revocation and expiry).
    subscribe_notifications: bool = True
    # The embedded simulator signs Connect webhooks like the provider's sample ("compact") or over the raw bytes.
    sandbox_connect_signature: str = "compact"


class MastercardAUAdapter(DecisioningAndApplications, MastercardPlatformAdapter):
    provider_id = "mastercard-au"
    regions = frozenset({"AU"})
    region = AU
    settings_type = MastercardAUSettings
    capabilities = frozenset({
        "list_institutions", "create_customer", "create_consent", "complete_consent", "refresh_consent",
        "revoke_consent", "list_accounts", "get_balances", "get_live_balances", "list_transactions",
        "get_account_details", "get_account_owner", "revoke_institution_login", "consent_dashboard",
        "create_consumer", "create_report", "get_report", "get_report_content", "register_application",
        "get_application", "list_application_institutions",
    })
    webhook_channels: ClassVar[frozenset[str]] = frozenset({"consent-notifications", "connect", "reports"})
    default_interval_types = au.DEFAULT_INTERVAL_TYPES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signing_key: Secret | None = None
        self.notifications_problem: str | None = None

    @classmethod
    def create_sandbox(cls, config: Any) -> Any:
        from adapters.mastercard_au.sandbox import MastercardAUSandbox

        s: MastercardAUSettings = config.settings
        return MastercardAUSandbox(partner_id=s.partner_id, partner_secret=s.partner_secret.reveal(),
                                   app_key=s.app_key.reveal(), token_ttl=s.sandbox_token_ttl,
                                   access_model=s.access_model, connect_signature=s.sandbox_connect_signature)

    # --- lifecycle: consent notifications -----------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.settings.subscribe_notifications:
            return
        try:
            outcome = await self.subscribe_notifications()
            log.info("consent_notifications_subscribed", provider=self.provider_id, outcome=outcome)
        except (GatewayError, LookupError) as exc:
            # Start anyway (data calls work); health shows it and `gateway subscribe-notifications` retries.
            self.notifications_problem = str(exc)
            log.error("consent_notifications_not_subscribed", provider=self.provider_id, error=str(exc))

    def health(self) -> dict[str, Any]:
        out = super().health()
        if self.notifications_problem is not None:
            out["consent_notifications"] = f"not subscribed: {self.notifications_problem}"
        return out

    def _require_vault(self) -> Any:
        if self.vault is None:
            raise LookupError("security.encryption_key is not configured: the notification signing key cannot be "
                              "stored")
        return self.vault

    async def subscribe_notifications(self) -> str:
        """Make sure the platform sends consent notifications here, keeping the signing key sealed in the store.
        Returns "kept", "moved" (URL updated) or "created"."""
        vault = self._require_vault()
        url = self.webhook_url("consent-notifications")
        if url is None:
            raise LookupError("server.public_url is not configured: the platform has nowhere to send notifications")
        stored_id, key = await vault.get(self.provider_id, SUBSCRIPTION_ID), await vault.get(self.provider_id,
                                                                                             SIGNING_KEY)
        if stored_id is not None and key is not None:
            path = f"/notifications/webhooks/subscriptions/{quote(stored_id.reveal(), safe='')}"
            try:
                current = await self.client.call("GET", path, operation="get_notification_subscription")
            except NotFound:
                current = None
            if isinstance(current, dict):
                self._signing_key = key
                self.notifications_problem = None
                if current.get("url") == url:
                    return "kept"
                await self.client.call("PUT", f"{path}/url", operation="move_notification_subscription",
                                       json={"url": url})
                return "moved"
        answer = await self.client.call("POST", "/notifications/webhooks/subscriptions",
                                        operation="subscribe_notifications",
                                        json={"url": url, "notificationType": "CONSENT"})
        if not isinstance(answer, dict) or not answer.get("signingKey") or not answer.get("subscriptionId"):
            raise ProviderBadResponse(f"{self.provider_id} subscribed without a subscription id or signing key")
        key = Secret(str(answer["signingKey"]), transient=True)
        await vault.put(self.provider_id, SIGNING_KEY, key)
        await vault.put(self.provider_id, SUBSCRIPTION_ID, Secret(str(answer["subscriptionId"]), transient=True))
        self._signing_key = key
        self.notifications_problem = None
        return "created"

    # --- validation before any upstream call -------------------------------------------------------------------------
    def validate_customer_category(self, data: CreateCustomerInput) -> None:
        model = self.settings.access_model
        if model == "BCDC" and data.category != "business":
            raise ValidationFailed("category: only business customers under the BCDC access model", errors=[
                {"location": "body", "field": "category",
                 "message": "the partner's BCDC access model allows business customers only"}])
        if data.category == "business" and model == "BCDC" and data.abn is None:
            raise ValidationFailed("abn: required for business customers under BCDC", errors=[
                {"location": "body", "field": "abn", "message": "required for business customers under BCDC"}])
        if data.abn is not None and not abn_is_valid(data.abn):
            raise ValidationFailed("abn: not a valid Australian Business Number", errors=[
                {"location": "body", "field": "abn", "message": "fails the ABN check digits"}])

    def customer_extra(self, data: CreateCustomerInput) -> dict[str, Any]:
        extra: dict[str, Any] = {"category": data.category.upper()}
        if data.abn is not None:
            extra["abn"] = data.abn
        return extra

    # --- consents ----------------------------------------------------------------------------------------------------
    def _data_headers(self, consent: ConsentRecord) -> dict[str, str] | None:
        return {"Consent-Receipt-Id": consent.provider_ref} if consent.provider_ref else None

    def _receipt_facts(self, receipt: dict[str, Any]) -> dict[str, Any]:
        return {"account_refs": au.active_account_refs(receipt),
                "terms": au.consent_terms(receipt, today=utcnow().date())}

    def _redirect_rejection(self, result: dict[str, str]) -> str | None:
        code = result.get("code", "")
        if code and code != "200":
            return au.CONNECT_CODES.get(code, f"Connect ended with status {code}")
        return super()._redirect_rejection(result)

    async def refresh_consent(self, ctx: CallContext, consent: ConsentRecord,
                              customer: CustomerRecord | None) -> ConsentUpdate:
        if not consent.provider_ref:
            return ConsentUpdate(status=consent.status)
        receipt = await self.client.call("GET", f"/data-sharing-consents/{quote(consent.provider_ref, safe='')}",
                                         operation="get_consent_receipt")
        if not isinstance(receipt, dict):
            raise ProviderBadResponse(f"{self.provider_id} answered a consent receipt that is not an object")
        status = au.receipt_status(receipt)
        upstream = self._receipt_facts(receipt) if status is ConsentStatus.AUTHORISED else {}
        return ConsentUpdate(status=status, provider_ref=consent.provider_ref, upstream=upstream,
                             reason=None if status is ConsentStatus.AUTHORISED else f"the receipt is {status.value}")

    async def revoke_institution_login(self, ctx: CallContext, consent: ConsentRecord, login_ref: str) -> ConsentUpdate:
        terms = consent.upstream.get("terms") or {}
        known = {i["login_ref"]: i for i in terms.get("institutions") or []}
        if login_ref not in known:
            raise NotFound("the consent has no institution login with this id")
        if known[login_ref]["status"] != "active":
            raise Conflict(f"this institution's arrangement is already {known[login_ref]['status']}")
        assert consent.provider_ref is not None
        await self.client.call(
            "DELETE", f"/data-sharing-consents/{quote(consent.provider_ref, safe='')}/institutionLogins/"
                      f"{quote(login_ref, safe='')}", operation="revoke_institution_login")
        return await self.refresh_consent(ctx, consent, None)

    async def consent_dashboard(self, ctx: CallContext, customer: CustomerRecord,
                                redirect_uri: str | None) -> ConnectLink:
        body: dict[str, Any] = {"partnerId": self.settings.partner_id, "customerId": customer.provider_ref}
        if redirect_uri:
            body["redirectUri"] = redirect_uri
        answer = await self.client.call("POST", "/connect/v2/generate/consent/manage", operation="consent_dashboard",
                                        json=body)
        link = answer.get("link") if isinstance(answer, dict) else None
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise ProviderBadResponse(f"{self.provider_id} generated no Connect Dashboard link")
        return ConnectLink(url=link)

    def connect_webhook(self) -> str | None:
        return self.settings.webhook_url or self.webhook_url("connect")

    # --- data calls inside the consent's terms -------------------------------------------------------------------------
    def _within_consent(self, consent: ConsentRecord, operation: str) -> None:
        terms = consent.upstream.get("terms")
        if terms is None:
            return  # a consent completed before the gateway recorded terms: the platform still checks the receipt
        scope = au.SCOPE_FOR_OPERATION[operation]
        if scope not in (terms.get("data_scopes") or ()):
            raise ConsentNotActive(f"the end user did not consent to share this data ({scope})", code="outside_consent")

    async def list_accounts(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> list:
        self._within_consent(consent, "list_accounts")
        return await super().list_accounts(ctx, consent, customer)

    async def get_balances(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list[Balance]:
        self._within_consent(consent, "get_balances")
        return await super().get_balances(ctx, consent, account)

    async def get_live_balances(self, ctx: CallContext, consent: ConsentRecord,
                                account: AccountRecord) -> list[Balance]:
        self._within_consent(consent, "get_live_balances")
        return await super().get_live_balances(ctx, consent, account)

    async def list_transactions(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord,
                                query: TransactionQuery) -> Page[Transaction]:
        self._within_consent(consent, "list_transactions")
        earliest = (consent.upstream.get("terms") or {}).get("transactions_from")
        if earliest is not None and query.from_date < date.fromisoformat(earliest):
            raise ConsentNotActive(
                f"the consent allows transactions from {earliest} only", code="outside_consent",
                errors=[{"location": "query", "field": "from", "message": f"must be {earliest} or later"}])
        return await super().list_transactions(ctx, consent, account, query)

    async def get_account_details(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Any:
        self._within_consent(consent, "get_account_details")
        return await super().get_account_details(ctx, consent, account)

    async def get_account_owner(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Owner:
        self._within_consent(consent, "get_account_owner")
        return await super().get_account_owner(ctx, consent, account)

    # --- webhooks ------------------------------------------------------------------------------------------------------
    async def receive_webhook(self, channel: str, headers: Any, body: bytes) -> InboundEvent:
        if channel == "consent-notifications":
            return await self._consent_notification(headers, body)
        self._verify_partner_signature(headers, body)
        parsed = hooks.json_body(body)
        if channel == "reports":
            return hooks.report_event(parsed)
        return await self._connect_event(parsed)

    async def _signing_key_now(self) -> Secret:
        if self._signing_key is None and self.vault is not None:
            self._signing_key = await self.vault.get(self.provider_id, SIGNING_KEY)  # another replica subscribed
        if self._signing_key is None:
            raise Unauthenticated("consent notifications cannot be verified: the gateway holds no signing key yet "
                                  "(run `gateway subscribe-notifications mastercard-au`)")
        return self._signing_key

    async def _consent_notification(self, headers: Any, body: bytes) -> InboundEvent:
        hooks.verify_consent_notification(await self._signing_key_now(), headers, body)
        parsed = hooks.json_body(body)
        event_id, event_type, customer_ref, details, receipt = au.notification_parts(parsed)
        hooks.check_notification_headers(headers, event_id, event_type)
        receipt_ref = str(receipt.get("consentReceiptId") or next(
            (d.get("consentReceiptId") for d in details if d.get("consentReceiptId")), ""))
        payload = {"customer_ref": customer_ref, "receipt_ref": receipt_ref, "details": details,
                   "summary": ((parsed.get("payload") or {}).get("changes") or {}).get("summary")}
        if event_type == "INSTITUTIONS_ADDED" and receipt.get("consentReceiptId"):
            # The end user finished Connect: this authorises the consent awaiting it, with the receipt's terms.
            return InboundEvent(event_id=event_id, type=event_type, provider_ref=customer_ref, payload=payload,
                                ref_kind="customer", consent_update=self._receipt_update(receipt),
                                accounts_added=True, added_account_refs=tuple(au.active_account_refs(receipt)))
        if event_type in au.ENDING_EVENT_TYPES:
            forget = au.changed_account_refs(details)
            ending = au.ENDING_EVENT_TYPES[event_type]
            remaining = au.active_account_refs(receipt) if receipt else []
            whole = au.receipt_status(receipt) is not ConsentStatus.AUTHORISED if receipt else True
            if whole or not remaining:
                return InboundEvent(event_id=event_id, type=event_type, provider_ref=receipt_ref, payload=payload,
                                    consent_status=ending, forget_account_refs=forget,
                                    reason=f"{event_type.lower().replace('_', ' ')} at the provider")
            update = ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref=receipt_ref,
                                   upstream=self._receipt_facts(receipt))
            return InboundEvent(event_id=event_id, type=event_type, provider_ref=receipt_ref, payload=payload,
                                consent_update=update, forget_account_refs=forget)
        return InboundEvent(event_id=event_id, type=event_type, provider_ref=receipt_ref, payload=payload)

    def _verify_partner_signature(self, headers: Any, body: bytes) -> None:
        hooks.verify_partner_signature(self.settings.partner_secret, headers, body)

    async def _connect_event(self, body: dict[str, Any]) -> InboundEvent:
        event_type = str(body.get("eventType") or "")
        if not event_type:
            raise MalformedRequest("a Connect webhook needs eventType")
        event_id = hooks.connect_event_id(body, event_type)
        customer_ref = str(body.get("customerId") or "")
        payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
        receipt_ref = payload.get("receiptId")
        added = event_type == "added"
        refs = platform_hooks.added_account_refs(payload) if added else ()
        problem = platform_hooks.connection_problem(event_type, payload)
        if added and receipt_ref and customer_ref:
            # Accounts were added under a consent receipt: authorise the consent awaiting it, on the receipt's terms.
            receipt = await self.client.call("GET", f"/data-sharing-consents/{quote(str(receipt_ref), safe='')}",
                                             operation="get_consent_receipt")
            if isinstance(receipt, dict) and au.receipt_status(receipt) is ConsentStatus.AUTHORISED:
                return InboundEvent(event_id=event_id, type=event_type, provider_ref=customer_ref, payload=body,
                                    ref_kind="customer", consent_update=self._receipt_update(receipt),
                                    accounts_added=True, added_account_refs=refs)
        return InboundEvent(event_id=event_id, type=event_type, provider_ref=customer_ref, payload=body,
                            ref_kind="customer", accounts_added=added, added_account_refs=refs,
                            connection_error=problem)

