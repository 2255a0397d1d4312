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

import base64
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog

from adapters.base import (
    Adapter, CallContext, ConsentUpdate, CreateConsentInput, InstitutionQuery, PaymentInput, PaymentLink,
    PaymentUpdate, TransactionQuery,
)
from adapters.ob_connect import translate as obc
from adapters.ob_connect.client import HubClient
from adapters.ob_connect.settings import ObConnectSettings, load_material
from gateway.connectivity.fapi import AuthorisationRefused
from gateway.errors import (
    ConsentEndedUpstream, GatewayError, InstitutionNotSupported, ProviderBadResponse, ValidationFailed,
)
from gateway.models import ConnectLink, ConsentStatus, Institution, Page, Transaction
from gateway.models.payments import PaymentStatus
from gateway.models.time import utcnow
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord, PaymentRecord
from gateway.validation.body import field_error

log = structlog.get_logger("gateway.ob_connect")

_CONSENT_STATUSES = {"valid": ConsentStatus.AUTHORISED, "expired": ConsentStatus.EXPIRED,
                     "terminatedByTpp": ConsentStatus.REVOKED, "revokedByPsu": ConsentStatus.REVOKED,
                     "rejected": ConsentStatus.REJECTED, "received": ConsentStatus.AWAITING_AUTHORISATION}
_DEFAULT_VALIDITY = timedelta(days=90)  # what the hub gives a consent that names no validUntil
_DOMESTIC = {"GB": ("GBP", "uk_sort_code"), "PL": ("PLN", "iban")}


def _invalid(errors: list[dict[str, str]]) -> ValidationFailed:
    return ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


class ObConnectAdapter(Adapter):
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
    payment_types = frozenset({"domestic", "sepa", "international"})
    payment_currencies = frozenset({"GBP", "EUR", "PLN", "USD", "CHF", "SEK", "DKK", "NOK", "CZK", "HUF", "RON"})
    payment_schemes = frozenset({"uk_sort_code", "iban"})
    end_to_end_id_max = 18  # the hub's domestic credit transfers carry 18 characters

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
            raise _invalid([field_error(field, f"{self.provider_id} reaches many banks: name one "
                                               "(GET /v1/institutions?provider=ob-connect)")])
        row = (await self.aspsps(ctx)).get(institution_id)
        if row is None:
            raise _invalid([field_error(field, f"{self.provider_id} has no bank {institution_id!r}")])
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
            "PIS" in services and capability in obc.PAYMENT_CAPABILITIES.values()

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
            raise _invalid(errors)

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
        status = str(raw.get("consentStatus", ""))
        return ConsentUpdate(status=_CONSENT_STATUSES.get(status, ConsentStatus.REVOKED), provider_ref=consent.provider_ref,
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
        answer = await self._read(ctx, consent, "/accounts/account/transactions", "list_transactions", body)
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

    # --- payments -----------------------------------------------------------------------------------------------------
    def validate_payment(self, data: PaymentInput) -> None:
        """The rules per payment type, before anything is sent: SEPA is EUR to an IBAN with the creditor's BIC and
        country and the payer's name; domestic is GBP to a sort code and account (UK) or PLN to a Polish IBAN;
        cross-border needs the creditor's BIC and the payer's account."""
        errors = []
        account = data.creditor.account
        if data.redirect_uri not in self.settings.redirect_uris:
            errors.append(field_error("redirect_uri", "must be one of the redirect URIs registered with the banks: "
                                                      + ", ".join(self.settings.redirect_uris)))
        if not data.institution_id:
            errors.append(field_error("institution_id", f"{self.provider_id} reaches many banks: name the payer's"))
        if data.type == "sepa":
            if data.currency != "EUR":
                errors.append(field_error("amount.currency", "SEPA credit transfers are in EUR"))
            if account.scheme != "iban":
                errors.append(field_error("creditor.account.scheme", "SEPA credit transfers pay to an IBAN"))
            elif not account.bic:
                errors.append(field_error("creditor.account.bic", "SEPA credit transfers need the creditor's BIC"))
            if data.creditor.address is None:
                errors.append(field_error("creditor.address", "SEPA credit transfers need the creditor's country"))
            if not data.debtor_name:
                errors.append(field_error("debtor_name", "SEPA credit transfers carry the payer's name"))
        elif data.type == "domestic":
            pairs = {currency: scheme for currency, scheme in _DOMESTIC.values()}
            if data.currency not in pairs:
                errors.append(field_error("amount.currency", "domestic payments are in GBP (UK) or PLN (Poland)"))
            elif account.scheme != pairs[data.currency]:
                errors.append(field_error("creditor.account.scheme", f"domestic {data.currency} payments pay to a "
                                                                     f"{pairs[data.currency]} account"))
            elif data.currency == "PLN" and not (account.iban or "").startswith("PL"):
                errors.append(field_error("creditor.account.iban", "domestic PLN payments pay to a Polish IBAN"))
        else:
            if not account.bic:
                errors.append(field_error("creditor.account.bic", "cross-border payments need the creditor's BIC"))
            if data.debtor_account is None:
                errors.append(field_error("debtor_account", "cross-border payments name the payer's account"))
        debtor = data.debtor_account
        if debtor is not None and data.type == "sepa" and debtor.scheme != "iban":
            errors.append(field_error("debtor_account.scheme", "SEPA credit transfers are paid from an IBAN"))
        if debtor is not None and data.type == "domestic" and data.currency in ("GBP", "PLN"):
            wanted = dict(_DOMESTIC.values())[data.currency]
            if debtor.scheme != wanted:
                errors.append(field_error("debtor_account.scheme", f"domestic {data.currency} payments are paid "
                                                                   f"from a {wanted} account"))
        if len(data.reference) > 140:
            errors.append(field_error("reference", "at most 140 characters"))
        if errors:
            raise _invalid(errors)

    async def create_payment(self, ctx: CallContext, payment: PaymentRecord, data: PaymentInput) -> PaymentLink:
        bank = await self._aspsp(data.institution_id, ctx)
        country = str(bank.get("country"))
        if not self._offers(bank, obc.PAYMENT_CAPABILITIES[data.type]):
            raise _invalid([field_error("institution_id", f"{bank.get('name')} offers no {data.type} payments "
                                                          f"through {self.provider_id}")])
        if data.type == "domestic" and _DOMESTIC.get(country, (None,))[0] != data.currency:
            raise _invalid([field_error("amount.currency", f"domestic payments at a bank in {country} are in "
                                                           f"{_DOMESTIC.get(country, ('its own currency',))[0]}")])
        path = f"/payments/{obc.PAYMENT_PATHS[data.type]}-credit-transfers/consents"
        answer = await self.hub.post(ctx, path, {"payments": obc.payment_body(data, country=country)},
                                     operation="create_payment_consent", safe=False,
                                     request_info={"aspspId": data.institution_id,
                                                   "tppRedirectURI": data.redirect_uri})
        request_ref, url = obc.consent_link(answer)
        return PaymentLink(url=url, consent_ref=request_ref,
                           upstream={"aspsp_id": data.institution_id, "country": country})

    def _seal(self, payment: PaymentRecord, authorization: str) -> str:
        if self.vault is None:
            raise LookupError("security.encryption_key is not configured: the payer's authorisation cannot be kept")
        return base64.b64encode(self.vault.seal(self.provider_id, f"payment:{payment.id}", authorization)).decode()

    def _authorization(self, payment: PaymentRecord) -> str:
        sealed = payment.upstream.get("authorization")
        if not sealed or self.vault is None:
            raise ConsentEndedUpstream("the payment holds no authorisation; the payer must authorise it again")
        return self.vault.open(self.provider_id, f"payment:{payment.id}", base64.b64decode(sealed))

    async def authorise_payment(self, ctx: CallContext, payment: PaymentRecord,
                                result: dict[str, str]) -> PaymentUpdate:
        if "error" in result:
            return PaymentUpdate(status=PaymentStatus.REJECTED, upstream_status="RJCT",
                                 reason=f"the payer or the bank refused ({result['error']})")
        if not result.get("code"):
            raise _invalid([field_error("redirect_result", "carries neither a code nor an error")])
        # The redirect result is what the transfer presents as its authorisation: kept sealed until then.
        return PaymentUpdate(status=PaymentStatus.AUTHORISED, reason="the payer authorised it at the bank",
                             upstream={"authorization": self._seal(payment, urlencode(result))})

    def _path(self, payment: PaymentRecord, suffix: str = "") -> str:
        return f"/payments/{obc.PAYMENT_PATHS[payment.type]}-credit-transfers{suffix}"

    async def submit_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        answer = await self.hub.post(ctx, self._path(payment), {}, operation="submit_payment", effect=True,
                                     request_info={"aspspId": payment.upstream.get("aspsp_id"),
                                                   "tppRedirectURI": payment.redirect_uri,
                                                   "authorization": self._authorization(payment)})
        payment_id, consent_id, iso, status = obc.transfer(answer, consent_request_id=payment.consent_ref)
        return PaymentUpdate(status=status, upstream_status=iso, provider_ref=payment_id,
                             reason=f"the bank says {iso}", upstream={"hub_consent_id": consent_id})

    async def get_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        if payment.provider_ref and payment.upstream.get("hub_consent_id"):
            answer = await self.hub.post(ctx, self._path(payment, "/payment-status"), {"paymentId": payment.provider_ref},
                                         operation="get_payment",
                                         request_info={"aspspId": payment.upstream.get("aspsp_id"),
                                                       "tppRedirectURI": payment.redirect_uri,
                                                       "consentId": payment.upstream["hub_consent_id"]})
            iso, status, reason_code = obc.payment_status(answer)
            reason = f"the bank says {iso}" + (f" ({reason_code})" if reason_code else "")
            return PaymentUpdate(status=status, upstream_status=iso, reason=reason)
        if payment.status is PaymentStatus.AUTHORISED and payment.upstream.get("submission_started_at"):
            # A submission was started and never answered (its process stopped): what it did is not known.
            return PaymentUpdate(status=PaymentStatus.UNKNOWN, upstream_status=payment.upstream_status,
                                 reason="a submission was started and its answer never came; asking the hub")
        if payment.status is PaymentStatus.UNKNOWN and payment.upstream.get("submission_started_at"):
            # The hub answers a repeated transfer of this consent with its one payment; OB Connect offers no other
            # way to find a payment by its consent. The repeat is the submission the caller asked for, under the
            # payer's one authorisation: it finds the payment, or makes that one payment, never a second.
            update = await self.submit_payment(ctx, payment)
            return PaymentUpdate(status=update.status, upstream_status=update.upstream_status,
                                 provider_ref=update.provider_ref, upstream=update.upstream,
                                 reason=f"found at the bank after a lost answer; it says {update.upstream_status}")
        # Not submitted: the hub reports nothing more until the payer comes back from the bank.
        return PaymentUpdate(status=payment.status, upstream_status=payment.upstream_status)
