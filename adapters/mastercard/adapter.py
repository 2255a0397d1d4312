"""The Mastercard platform adapter (Finicity API family) that mastercard-us and mastercard-au both build on.

Consents are Data Connect sessions: creating one generates a Connect URL for the customer; completing one checks
upstream that the customer now holds an ACTIVE data-sharing consent receipt (the redirect's query alone is never
trusted to authorise); revoking deletes that receipt upstream.
"""
from __future__ import annotations

from typing import Any, ClassVar

import attrs

from adapters.base import (
    Adapter,
    CallContext,
    ConsentUpdate,
    CreateConsentInput,
    CreateCustomerInput,
    CreatedCustomer,
    InstitutionQuery,
    TransactionQuery,
)
from adapters.mastercard import bodies, details, translate
from adapters.mastercard.client import MastercardClient
from adapters.mastercard.region import MastercardRegion
from gateway.errors import Conflict, NotApplicable, NotFound, ProviderBadResponse, ValidationFailed
from gateway.models import (
    Account,
    AccountDetails,
    Balance,
    ConnectLink,
    ConsentStatus,
    Institution,
    Owner,
    Page,
    Transaction,
)
from gateway.models.time import parse_upstream_time, utc_from_epoch
from gateway.secrets import Secret
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord


@attrs.frozen
class MastercardSettings:
    partner_id: str
    partner_secret: Secret
    app_key: Secret
    # Renew the partner token after this many seconds (it lives 120 minutes upstream).
    token_renew_after: float = 5400.0
    # Lifetime of tokens issued by the embedded simulator (to exercise renewal locally).
    sandbox_token_ttl: float = 7200.0
    application_id: str | None = None
    experience: str | None = None
    webhook_url: str | None = None


class MastercardPlatformAdapter(Adapter):
    """What mastercard-us and mastercard-au share; the region object carries their differences."""

    region: ClassVar[MastercardRegion]
    settings_type = MastercardSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: MastercardSettings = self.settings
        upstream = self.upstreams.client(self.provider_id, self.base_url, self.config)
        self.upstream = upstream
        self.client = MastercardClient(
            upstream, self.region, partner_id=settings.partner_id, partner_secret=settings.partner_secret,
            app_key=settings.app_key, renew_after=settings.token_renew_after, metrics=self.upstreams.metrics,
        )

    def health(self) -> dict[str, Any]:
        out = self.upstream.health()
        if self.client.tokens.latched_error is not None:
            out["credentials"] = "rejected: fix the partner credentials and restart"
        return out

    # --- validation before any upstream call -------------------------------------------------------------------
    def validate_customer(self, data: CreateCustomerInput) -> None:
        self.validate_customer_category(data)
        reason = bodies.validate_username(data.external_ref)
        if reason is not None:
            raise ValidationFailed(f"external_ref: {reason}", errors=[
                {"location": "body", "field": "external_ref", "message": reason}])

    def validate_consent(self, data: CreateConsentInput, customer: CustomerRecord | None) -> None:
        if customer is None:
            raise ValidationFailed("customer_id: required for this provider", errors=[
                {"location": "body", "field": "customer_id", "message": f"{self.provider_id} consents need a customer"}])
        if data.institution_id is not None and not data.institution_id.isdigit():
            raise ValidationFailed("institution_id: not an institution of this provider", errors=[
                {"location": "body", "field": "institution_id", "message": "must be a numeric institution id"}])

    # --- helpers --------------------------------------------------------------------------------------------------
    @staticmethod
    def _customer_ref(consent: ConsentRecord) -> str:
        ref = consent.upstream.get("customer_ref")
        if not ref:
            raise ProviderBadResponse("the consent has no upstream customer")
        return str(ref)

    def _account_path(self, consent: ConsentRecord, account: AccountRecord, template: str) -> str:
        return self.region.path(template, customer=self._customer_ref(consent), account=account.provider_ref)

    def _data_headers(self, consent: ConsentRecord) -> dict[str, str] | None:
        """Headers a data call carries for its consent (AU names the consent receipt; US sends none)."""
        return None

    def _receipt_facts(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """What the gateway keeps from an active consent receipt (in the consent's upstream facts)."""
        return {"account_refs": translate.receipt_account_refs(receipt)}

    def _receipt_update(self, receipt: dict[str, Any]) -> ConsentUpdate:
        end = parse_upstream_time((receipt.get("accessPeriod") or {}).get("endDate"))
        return ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref=str(receipt["consentReceiptId"]),
                             expires_at=end, upstream=self._receipt_facts(receipt))

    # --- operations ------------------------------------------------------------------------------------------------
    async def list_institutions(self, ctx: CallContext, query: InstitutionQuery) -> Page[Institution]:
        start = int((query.position or {}).get("start", 1))
        params: dict[str, Any] = {"start": start, "limit": query.limit}
        if query.search:
            params["search"] = query.search
        body = await self.client.call("GET", "/institution/v2/institutions", operation="list_institutions",
                                      params=params)
        items, found, _ = translate.institutions(body, provider=self.provider_id)
        if query.country:
            items = [i for i in items if i.country == query.country.upper()]
        next_start = start + query.limit
        return Page(tuple(items), {"start": next_start} if next_start <= found else None)

    def customer_extra(self, data: CreateCustomerInput) -> dict[str, Any]:
        """Region-specific customer fields (AU: category and ABN)."""
        return {}

    def connect_webhook(self) -> str | None:
        """Where Connect sends its events for a new session."""
        return self.settings.webhook_url

    async def create_customer(self, ctx: CallContext, data: CreateCustomerInput) -> CreatedCustomer:
        kind = "testing" if data.type.value == "testing" else "active"
        body = await self.client.call(
            "POST", f"/aggregation/v2/customers/{kind}", operation="create_customer",
            json={**bodies.customer_body(data, self.settings.application_id), **self.customer_extra(data)},
        )
        try:
            return CreatedCustomer(provider_ref=str(body["id"]), created_at=utc_from_epoch(body["createdDate"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderBadResponse(f"{self.provider_id} answered a customer creation without id or date") from exc

    async def create_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                             data: CreateConsentInput) -> ConnectLink:
        assert customer is not None  # validate_consent guarantees it
        lite = data.institution_id is not None
        body = bodies.connect_body(
            partner_id=self.settings.partner_id, customer_ref=customer.provider_ref, redirect_uri=data.redirect_uri,
            webhook_url=self.connect_webhook(), institution_id=data.institution_id, language=data.language,
            from_date_epoch=None, region=self.region,
        )
        if self.settings.experience:
            body["experience"] = self.settings.experience
        if lite:
            await self._require_institution(data.institution_id)
        path = "/connect/v2/generate/lite" if lite else "/connect/v2/generate"
        answer = await self.client.call("POST", path, operation="create_consent", json=body)
        link = answer.get("link") if isinstance(answer, dict) else None
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise ProviderBadResponse(f"{self.provider_id} generated no Connect link")
        consent.upstream["customer_ref"] = customer.provider_ref
        return ConnectLink(url=link)

    async def _require_institution(self, institution_id: str | None) -> None:
        """An unknown institution is the caller's mistake: say so as a 422 before generating a link."""
        try:
            await self.client.call("GET", f"/institution/v2/institutions/{institution_id}",
                                   operation="get_institution")
        except NotFound:
            raise ValidationFailed("institution_id: no such institution", errors=[
                {"location": "body", "field": "institution_id",
                 "message": f"{self.provider_id} has no institution {institution_id}"}]) from None

    def _redirect_rejection(self, result: dict[str, str]) -> str | None:
        """Why the redirect result says the end user came back without consenting, or None."""
        reason, code = result.get("reason", ""), result.get("code", "")
        if reason in ("exited", "error") or (code and code != "200"):
            return f"the end user left Connect ({reason or code})"
        return None

    async def _receipts(self, customer_ref: str) -> list[dict[str, Any]]:
        body = await self.client.call("GET", "/data-sharing-consents", operation="list_consent_receipts",
                                      params={"customer_id": customer_ref, "sort_order": "Desc"})
        receipts = body.get("consents") if isinstance(body, dict) else None
        return [r for r in receipts or [] if isinstance(r, dict)]

    @staticmethod
    def _receipt_status(receipt: dict[str, Any]) -> str:
        return str((receipt.get("statusDetails") or {}).get("status", "")).upper()

    async def complete_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                               result: dict[str, str]) -> ConsentUpdate:
        rejection = self._redirect_rejection(result)
        if rejection is not None:
            return ConsentUpdate(status=ConsentStatus.REJECTED, reason=rejection)
        receipts = await self._receipts(self._customer_ref(consent))
        for receipt in receipts:
            receipt_id = receipt.get("consentReceiptId")
            if self._receipt_status(receipt) != "ACTIVE" or not receipt_id:
                continue
            created = parse_upstream_time(receipt.get("createdDate"))
            if created is not None and created < consent.created_at.replace(microsecond=0):
                continue  # an older receipt belongs to an earlier consent
            return self._receipt_update(receipt)
        raise Conflict(f"{self.provider_id} holds no active data-sharing consent for this customer yet; "
                       "complete the Connect session first")

    async def refresh_consent(self, ctx: CallContext, consent: ConsentRecord,
                              customer: CustomerRecord | None) -> ConsentUpdate:
        if not consent.provider_ref:
            return ConsentUpdate(status=consent.status)
        receipt = await self.client.call("GET", f"/data-sharing-consents/{consent.provider_ref}",
                                         operation="get_consent_receipt")
        status = self._receipt_status(receipt if isinstance(receipt, dict) else {})
        mapped = ConsentStatus.AUTHORISED if status == "ACTIVE" else ConsentStatus.REVOKED
        return ConsentUpdate(status=mapped, provider_ref=consent.provider_ref, reason=f"upstream status {status}")

    async def revoke_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> None:
        if consent.provider_ref:
            await self.client.call("DELETE", f"/data-sharing-consents/{consent.provider_ref}",
                                   operation="revoke_consent")

    async def list_accounts(self, ctx: CallContext, consent: ConsentRecord,
                            customer: CustomerRecord | None) -> list[Account]:
        path = self.region.path("/aggregation/v1/customers/{customer}/accounts", customer=self._customer_ref(consent),
                                account="")
        body = await self.client.call("GET", path,
                                      operation="list_accounts", headers=self._data_headers(consent))
        accounts = translate.accounts(body, region=self.region, consent_id=consent.id, ids=ctx.ids(consent.id))
        covered = consent.upstream.get("account_refs")
        if covered is not None:
            # A customer may hold several consents: show only what this one's receipt covers.
            allowed = set(covered)
            accounts = [a for a in accounts if a.provider_ref in allowed]
        return accounts

    @staticmethod
    def _is_deposit(account: AccountRecord) -> bool:
        return (account.data.get("extra") or {}).get("provider_type") in translate.DEPOSIT_TYPES

    def _deposit_only(self, account: AccountRecord, what: str) -> None:
        if not self._is_deposit(account):
            raise NotApplicable(f"{self.provider_id} offers {what} for deposit accounts only; "
                                f"this is a {account.data.get('type', 'non-deposit')} account")

    async def get_balances(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list[Balance]:
        if not self._is_deposit(account):
            # Non-deposit accounts (cards, loans, investments) carry their current balance on the account itself.
            raw = await self.client.call("GET", self._account_path(
                consent, account, "/aggregation/v2/customers/{customer}/accounts/{account}"), operation="get_account",
                headers=self._data_headers(consent))
            return translate.account_balance(raw, region=self.region, account_id=account.id)
        body = await self.client.call("GET", self._account_path(
            consent, account, "/aggregation/v1/customers/{customer}/accounts/{account}/availableBalance"),
                                      operation="get_balances", headers=self._data_headers(consent))
        return translate.balances(body, region=self.region, account_id=account.id, live=False)

    async def get_live_balances(self, ctx: CallContext, consent: ConsentRecord,
                                account: AccountRecord) -> list[Balance]:
        self._deposit_only(account, "live balances")
        body = await self.client.call("GET", self._account_path(
            consent, account, "/aggregation/v1/customers/{customer}/accounts/{account}/availableBalance/live"),
                                      operation="get_live_balances", headers=self._data_headers(consent))
        return translate.balances(body, region=self.region, account_id=account.id, live=True)

    async def list_transactions(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord,
                                query: TransactionQuery) -> Page[Transaction]:
        start = int((query.position or {}).get("start", 1))
        params = bodies.transactions_params(from_date=query.from_date, to_date=query.to_date, start=start,
                                               limit=query.limit, include_pending=query.include_pending, sort="desc")
        path = self._account_path(consent, account, self.region.transactions_path)
        body = await self.client.call("GET", path, operation="list_transactions", params=params,
                                      headers=self._data_headers(consent))
        page = translate.transactions(body, region=self.region, account_id=account.id, ids=ctx.ids(consent.id),
                                      include_pending=query.include_pending, include_removed=query.include_removed)
        next_position = {"start": start + page.displaying} if page.more_available and page.displaying else None
        return Page(tuple(page.items), next_position)

    async def get_account_details(self, ctx: CallContext, consent: ConsentRecord,
                                  account: AccountRecord) -> AccountDetails:
        self._deposit_only(account, "payment coordinates")
        body = await self.client.call("GET", self._account_path(consent, account, self.region.details_path),
                                      operation="get_account_details", headers=self._data_headers(consent))
        return details.payment_coordinates(body, region=self.region, account_id=account.id)

    async def get_account_owner(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Owner:
        body = await self.client.call("GET", self._account_path(
            consent, account, "/aggregation/v3/customers/{customer}/accounts/{account}/owner"),
                                      operation="get_account_owner", headers=self._data_headers(consent))
        return details.owner(body, account_id=account.id)
