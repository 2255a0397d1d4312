"""The ob-connect adapter: Mastercard Open Banking Connect, the EU/UK hub in front of many banks (ASPSPs).

Every call is a POST signed with Mastercard OAuth 1.0a (body hash included) by the provider's own signer, carrying
`requestInfo` (our request id as `xRequestId`, the bank's `aspspId`, the merchant, the redirect URI). The hub's
list of banks and their capabilities is read once and kept `aspsp_cache_seconds`: it answers
`GET /v1/institutions`, the licence check (the bank's country) and the capability checks before any consent or
payment is asked for.

AIS: a consent is created for one bank; the end user authorises it at the bank (SCA redirect) and the redirect's
query string is exchanged for the consent id. Accounts, balances, transactions (the hub's `limit` + opaque
`offset` behind our cursor) and standing orders are read under it; the raw consent is kept by the hub for audit.

PIS: domestic (UK Faster Payments, Polish Elixir), SEPA and cross-border credit transfers, through the canonical
payments core: consent → SCA redirect → the transfer with the redirect result as `requestInfo.authorization` →
`payment-status`. The hub answers a repeated transfer of one consent with the same payment, so the transfer may be
retried, and an `unknown` payment is found by repeating it (it cannot make a second payment).
"""
from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog

from adapters.base import Adapter, CallContext, ConsentUpdate, CreateConsentInput, InstitutionQuery, TransactionQuery
from adapters.ob_connect import translate as obc
from adapters.ob_connect import translate_pis as pis
from adapters.ob_connect.client import HubClient
from adapters.ob_connect.payments import HubPayments
from adapters.ob_connect.settings import ObConnectSettings, load_material
from gateway.connectivity.fapi import AuthorisationRefused
from gateway.errors import (
    ConsentEndedUpstream, GatewayError, GatewayRequestRejected, InstitutionNotSupported, ProviderBadResponse,
    ValidationFailed,
)
from gateway.models import ConnectLink, ConsentStatus, Institution, Page, Transaction
from gateway.models.time import utcnow
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord
from gateway.validation.body import field_error

log = structlog.get_logger("gateway.ob_connect")

_CONSENT_STATUSES = {"valid": ConsentStatus.AUTHORISED, "expired": ConsentStatus.EXPIRED,
                     "terminatedByTpp": ConsentStatus.REVOKED, "revokedByPsu": ConsentStatus.REVOKED,
                     "rejected": ConsentStatus.REJECTED, "received": ConsentStatus.AWAITING_AUTHORISATION}
_DEFAULT_VALIDITY = timedelta(days=90)  # what the hub gives a consent that names no validUntil


def _source(body: Any) -> str | None:
    """The `Source` of the hub's first error (the field it blames), when the body is the hub's error body."""
    errors = ((body or {}).get("Errors") or {}).get("Error") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    return first.get("Source") if isinstance(first.get("Source"), str) else None


class ObConnectAdapter(HubPayments, Adapter):
    provider_id = "ob-connect"
    # The UK and the EEA countries the hub's banks are in (the licence's countries narrow what is allowed).
    regions = frozenset({"GB", "IE", "DE", "FR", "ES", "IT", "NL", "BE", "AT", "PL", "CZ", "SK", "HU", "PT", "FI",
                         "SE", "DK", "NO", "LU", "RO", "BG", "HR", "SI", "LT", "LV", "EE", "GR", "CY", "MT", "IS",
                         "LI"})
    settings_type = ObConnectSettings
    consent_limits = True  # a consent's own expiry (validUntil); no transaction window (refused below)
    capabilities = frozenset({
        "list_institutions", "create_consent", "complete_consent", "refresh_consent", "revoke_consent",
        "list_accounts", "get_balances", "list_transactions", "get_account_details", "get_account_owner",
        "list_standing_orders", "get_raw_consent",
        "create_payment", "authorise_payment", "submit_payment", "get_payment",
    })

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s: ObConnectSettings = self.settings
        self.material = load_material(s)
        self.upstream = self.upstreams.client(self.provider_id, self.base_url, self.config)
        self.hub = HubClient(self.upstream, consumer_key=s.consumer_key, signing_key=self.material.key,
                             merchant={"id": s.merchant_id, "name": s.merchant_name})
        self._aspsps: dict[str, dict[str, Any]] | None = None
        self._aspsps_at = 0.0

    @classmethod
    def create_sandbox(cls, config: Any) -> Any:
        from adapters.ob_connect.sandbox import ObConnectSandbox

        s: ObConnectSettings = config.settings
        material = load_material(s)
        if material.certificate_pem is None:
            raise LookupError("the embedded ob-connect simulator needs local_material")
        return ObConnectSandbox(consumer_key=s.consumer_key, signing_cert_pem=material.certificate_pem,
                                payment_timeline=tuple(s.sandbox_payment_timeline))

    @staticmethod
    def certificate_paths(settings: ObConnectSettings) -> list[tuple[str, Path]]:
        if settings.local_material is not None:
            return [("signing certificate", Path(settings.local_material) / "ob-connect-signing.pem")]
        return []

    def health(self) -> dict[str, Any]:
        return self.upstream.health()

    async def start(self) -> None:
        """Read the hub's banks once at start, so the licence and capability checks of the first requests need no
        call to the hub (a hub that is down now is read again on first use)."""
        try:
            await self.aspsps()
        except GatewayError as exc:
            log.warning("aspsps_not_loaded", provider=self.provider_id, error=exc.detail)

    # --- banks ------------------------------------------------------------------------------------------------------
    async def aspsps(self, ctx: CallContext | None = None) -> dict[str, dict[str, Any]]:
        """The hub's banks by id, with their capabilities, read again every `aspsp_cache_seconds`. When the hub
        cannot be read, the list held keeps serving (banks change rarely) and the failure is logged."""
        fresh = time.monotonic() - self._aspsps_at < self.settings.aspsp_cache_seconds
        if self._aspsps is None or not fresh:
            from gateway.api.middleware import new_request_id

            context = ctx or CallContext(request_id=new_request_id(), tenant="", id_key=b"")
            try:
                body = await self.hub.post(context, "/accounts/aspsps", {"returnAdditionalData": ["capabilities"]},
                                           operation="list_aspsps")
            except GatewayError as exc:
                if self._aspsps is None:
                    raise
                log.warning("aspsps_stale", provider=self.provider_id, error=exc.detail)
                return self._aspsps
            self._aspsps = {str(row.get("id")): row for row in obc.institutions(body)}
            self._aspsps_at = time.monotonic()
        return self._aspsps

    async def _aspsp(self, institution_id: str | None, ctx: CallContext | None = None,
                     field: str = "institution_id") -> dict[str, Any]:
        if not institution_id:
            raise ValidationFailed.of([field_error(field, f"{self.provider_id} reaches many banks: name one "
                                               "(GET /v1/institutions?provider=ob-connect)")])
        row = (await self.aspsps(ctx)).get(institution_id)
        if row is None:
            raise ValidationFailed.of([field_error(field, f"{self.provider_id} has no bank {institution_id!r}")])
        return row

    async def institution_country(self, institution_id: str, ctx: CallContext | None = None) -> str | None:
        return str((await self._aspsp(institution_id, ctx))["country"])

    @staticmethod
    def _offers(row: dict[str, Any], capability: str) -> bool:
        """Whether a bank offers a capability: from its capability detail, or, where the hub gives none, from its
        services (AIS; PIS meaning every payment type), as `GET /v1/institutions` shows it."""
        capabilities = row.get("capabilities")
        if isinstance(capabilities, dict) and capabilities:
            return bool(capabilities.get(capability))
        services = set(row.get("aspspServices") or ())
        return "AIS" in services if capability == "obtain_ais_consent" else \
            "PIS" in services and capability in pis.PAYMENT_CAPABILITIES.values()

    async def list_institutions(self, ctx: CallContext, query: InstitutionQuery) -> Page[Institution]:
        rows = [obc.institution(row) for row in (await self.aspsps(ctx)).values()]
        if query.country:
            rows = [r for r in rows if r.country == query.country.upper()]
        if query.search:
            rows = [r for r in rows if query.search.lower() in r.name.lower()]
        rows.sort(key=lambda r: (r.country, r.name))
        start = int((query.position or {}).get("start", 0))
        page = rows[start:start + query.limit]
        more = start + query.limit < len(rows)
        return Page(tuple(page), {"start": start + query.limit} if more else None)

    # --- consents ---------------------------------------------------------------------------------------------------
    def validate_consent(self, data: CreateConsentInput, customer: CustomerRecord | None) -> None:
        errors = []
        if data.redirect_uri not in self.settings.redirect_uris:
            errors.append(field_error("redirect_uri", "must be one of the redirect URIs registered with the banks: "
                                                      + ", ".join(self.settings.redirect_uris)))
        if not data.institution_id:
            errors.append(field_error("institution_id", f"{self.provider_id} reaches many banks: name one"))
        for name in ("transactions_from", "transactions_to"):
            if getattr(data, name) is not None:
                errors.append(field_error(name, f"{self.provider_id} consents have no transaction window"))
        if data.expires_at is not None and data.expires_at > utcnow() + _DEFAULT_VALIDITY:
            errors.append(field_error("expires_at", "at most 90 days ahead (PSD2)"))
        if errors:
            raise ValidationFailed.of(errors)

    async def create_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                             data: CreateConsentInput) -> ConnectLink:
        bank = await self._aspsp(data.institution_id, ctx)
        if not self._offers(bank, "obtain_ais_consent"):
            raise InstitutionNotSupported(f"{bank.get('name')} offers no account information through "
                                          f"{self.provider_id}")
        permissions = list(dict.fromkeys(obc.PERMISSIONS[p] for p in consent.permissions))
        body: dict[str, Any] = {"permissions": permissions}
        expires = data.expires_at or (utcnow() + _DEFAULT_VALIDITY)
        if data.expires_at is not None:
            body["validUntilDateTime"] = data.expires_at.isoformat()
        answer = await self.hub.post(ctx, "/accounts/consents", body, operation="create_consent", safe=False,
                                     request_info={"aspspId": data.institution_id,
                                                   "tppRedirectURI": data.redirect_uri})
        request_ref, url = obc.consent_link(answer)
        consent.upstream.update({"aspsp_id": data.institution_id, "consent_request_id": request_ref})
        return ConnectLink(url=url, provider_ref=request_ref, expires_at=expires)

    async def complete_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                               result: dict[str, str]) -> ConsentUpdate:
        if "error" in result:
            return ConsentUpdate(status=ConsentStatus.REJECTED,
                                 reason=f"the end user or the bank refused ({result['error']})")
        answer = await self.hub.post(ctx, "/accounts/consents/authorizations", {"authorization": urlencode(result)},
                                     operation="complete_consent",
                                     request_info={"aspspId": consent.upstream.get("aspsp_id"),
                                                   "tppRedirectURI": consent.redirect_uri})
        consent_id = answer.get("consentId") if isinstance(answer, dict) else None
        if not isinstance(consent_id, str):
            raise ProviderBadResponse(f"{self.provider_id} authorised a consent without a consentId")
        if answer.get("consentRequestId") not in (None, consent.upstream.get("consent_request_id")):
            raise AuthorisationRefused("redirect_result: it authorised another consent, not this one", errors=[
                {"location": "body", "field": "redirect_result", "message": "the authorisation of another consent"}])
        return ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref=consent_id, expires_at=consent.expires_at,
                             upstream={"consent_id": consent_id})

    @staticmethod
    def _data_info(consent: ConsentRecord) -> dict[str, Any]:
        info = {"aspspId": consent.upstream.get("aspsp_id"), "consentId": consent.provider_ref}
        if consent.redirect_uri:
            info["tppRedirectURI"] = consent.redirect_uri
        return info

    async def get_raw_consent(self, ctx: CallContext, consent: ConsentRecord) -> dict[str, Any]:
        answer = await self.hub.post(ctx, "/accounts/consents/raw", {}, operation="get_raw_consent",
                                     request_info=self._data_info(consent))
        raw = answer.get("rawConsent") if isinstance(answer, dict) else None
        if isinstance(raw, str):
            try:
                raw = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return {"text": raw}
        if not isinstance(raw, dict):
            raise ProviderBadResponse(f"{self.provider_id} answered the raw consent without rawConsent")
        return raw

    async def refresh_consent(self, ctx: CallContext, consent: ConsentRecord,
                              customer: CustomerRecord | None) -> ConsentUpdate:
        try:
            raw = await self.get_raw_consent(ctx, consent)
        except ConsentEndedUpstream as exc:
            return ConsentUpdate(status=ConsentStatus(exc.consent_status), reason=exc.detail)
        status = raw.get("consentStatus")
        if status not in _CONSENT_STATUSES:
            # Never read an unknown answer as the end of a consent: ending it deletes its data for good.
            raise ProviderBadResponse(f"{self.provider_id} reported a consent status the gateway does not know "
                                      f"({status!r}); the consent is left as it was")
        return ConsentUpdate(status=_CONSENT_STATUSES[status], provider_ref=consent.provider_ref,
                             reason=f"the bank says {status}")

    async def revoke_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> None:
        await self.hub.post(ctx, "/accounts/consents/delete", {"consentId": consent.provider_ref},
                            operation="revoke_consent",
                            request_info={"aspspId": consent.upstream.get("aspsp_id"),
                                          "tppRedirectURI": consent.redirect_uri})

    # --- account information -------------------------------------------------------------------------------------
    async def _read(self, ctx: CallContext, consent: ConsentRecord, path: str, operation: str,
                    body: dict[str, Any] | None = None) -> Any:
        return await self.hub.post(ctx, path, body or {}, operation=operation, request_info=self._data_info(consent))

    async def list_accounts(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> list:
        body = await self._read(ctx, consent, "/accounts", "list_accounts")
        return obc.accounts(body, consent_id=consent.id, ids=ctx.ids(consent.id),
                            institution_id=consent.upstream.get("aspsp_id"))

    async def _account(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord,
                       operation: str) -> dict[str, Any]:
        body = await self._read(ctx, consent, "/accounts/account", operation, {"accountId": account.provider_ref})
        return obc.one_account(body)

    async def get_balances(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list:
        body = await self._read(ctx, consent, "/accounts/account/balances", "get_balances",
                                {"accountId": account.provider_ref})
        return obc.balances(body, account_id=account.id)

    async def list_transactions(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord,
                                query: TransactionQuery) -> Page[Transaction]:
        """The hub pages by `limit` + an opaque `offset`; its offset is kept in our cursor."""
        body: dict[str, Any] = {"accountId": account.provider_ref, "limit": min(query.limit, 500),
                                "bookingDateFrom": query.from_date.isoformat(),
                                "bookingDateTo": query.to_date.isoformat()}
        offset = (query.position or {}).get("offset")
        if offset:
            body["offset"] = offset
        try:
            answer = await self._read(ctx, consent, "/accounts/account/transactions", "list_transactions", body)
        except GatewayRequestRejected as exc:
            if offset and _source(exc.provider_body) == "offset":
                raise ValidationFailed("cursor: the bank no longer accepts this page's position; start the list "
                                       "again", errors=[field_error("cursor", "expired at the bank: start the list "
                                                                              "again without it", "query")]) from exc
            raise
        items = obc.transactions(answer, account_id=account.id, ids=ctx.ids(consent.id),
                                 include_pending=query.include_pending)
        following = obc.next_offset(answer)
        return Page(tuple(items), {"offset": following} if following else None)

    async def get_account_details(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Any:
        return obc.coordinates(await self._account(ctx, consent, account, "get_account_details"), account_id=account.id)

    async def get_account_owner(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Any:
        return obc.owner(await self._account(ctx, consent, account, "get_account_owner"), account_id=account.id)

    async def list_standing_orders(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list:
        body = await self._read(ctx, consent, "/accounts/account/standing-orders", "list_standing_orders",
                                {"accountId": account.provider_ref})
        return obc.standing_orders(body, account_id=account.id, ids=ctx.ids(consent.id))
