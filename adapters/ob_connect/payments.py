"""ob-connect payment initiation: domestic (UK Faster Payments, Polish Elixir), SEPA and cross-border credit
transfers through the canonical payments core.

    create     the bank must offer the type → POST /payments/{type}-credit-transfers/consents → the SCA redirect
    authorise  the redirect's query string, kept sealed: it is the transfer's `requestInfo.authorization`
    submit     POST /payments/{type}-credit-transfers → the payment and its ISO 20022 status; the answer must be
               for this payment's consent (another payment's authorisation never pays this one)
    status     POST …/payment-status

The hub answers a repeated transfer of one consent with its one payment, so the transfer may be retried, and an
`unknown` payment is resolved by repeating it: it finds the payment, or makes the one payment the payer
authorised, never a second. A mixin of `ObConnectAdapter` (it uses the adapter's hub client, settings, vault and
bank list).
"""
from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from adapters.base import CallContext, PaymentInput, PaymentLink, PaymentUpdate
from adapters.ob_connect import translate_pis as pis
from adapters.ob_connect.translate import consent_link
from gateway.errors import ConsentEndedUpstream, ValidationFailed
from gateway.models.payments import PaymentStatus
from gateway.store.records import PaymentRecord
from gateway.validation.body import field_error

_DOMESTIC = {"GB": ("GBP", "uk_sort_code"), "PL": ("PLN", "iban")}


class HubPayments:
    provider_id: str
    settings: Any
    vault: Any
    hub: Any
    _aspsp: Any
    _offers: Any

    payment_types = frozenset({"domestic", "sepa", "international"})
    payment_currencies = frozenset({"GBP", "EUR", "PLN", "USD", "CHF", "SEK", "DKK", "NOK", "CZK", "HUF", "RON"})
    payment_schemes = frozenset({"uk_sort_code", "iban"})
    end_to_end_id_max = 18  # the hub's domestic credit transfers carry 18 characters

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
            raise ValidationFailed.of(errors)

    async def create_payment(self, ctx: CallContext, payment: PaymentRecord, data: PaymentInput) -> PaymentLink:
        bank = await self._aspsp(data.institution_id, ctx)
        country = str(bank.get("country"))
        if not self._offers(bank, pis.PAYMENT_CAPABILITIES[data.type]):
            raise ValidationFailed.of([field_error(
                "institution_id", f"{bank.get('name')} offers no {data.type} payments through {self.provider_id}")])
        if data.type == "domestic" and _DOMESTIC.get(country, (None,))[0] != data.currency:
            currency = _DOMESTIC.get(country, ("its own currency",))[0]
            raise ValidationFailed.of([field_error(
                "amount.currency", f"domestic payments at a bank in {country} are in {currency}")])
        path = f"/payments/{pis.PAYMENT_PATHS[data.type]}-credit-transfers/consents"
        answer = await self.hub.post(ctx, path, {"payments": pis.payment_body(data, country=country)},
                                     operation="create_payment_consent", safe=False,
                                     request_info={"aspspId": data.institution_id,
                                                   "tppRedirectURI": data.redirect_uri})
        request_ref, url = consent_link(answer)
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
            raise ValidationFailed.of([field_error("redirect_result", "carries neither a code nor an error")])
        # The redirect result is what the transfer presents as its authorisation: kept sealed until then.
        return PaymentUpdate(status=PaymentStatus.AUTHORISED, reason="the payer authorised it at the bank",
                             upstream={"authorization": self._seal(payment, urlencode(result))})

    def _path(self, payment: PaymentRecord, suffix: str = "") -> str:
        return f"/payments/{pis.PAYMENT_PATHS[payment.type]}-credit-transfers{suffix}"

    async def submit_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        answer = await self.hub.post(ctx, self._path(payment), {}, operation="submit_payment", effect=True,
                                     request_info={"aspspId": payment.upstream.get("aspsp_id"),
                                                   "tppRedirectURI": payment.redirect_uri,
                                                   "authorization": self._authorization(payment)})
        payment_id, consent_id, iso, status = pis.transfer(answer, consent_request_id=payment.consent_ref)
        return PaymentUpdate(status=status, upstream_status=iso, provider_ref=payment_id,
                             reason=f"the bank says {iso}", upstream={"hub_consent_id": consent_id})

    async def get_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        if payment.provider_ref and payment.upstream.get("hub_consent_id"):
            answer = await self.hub.post(ctx, self._path(payment, "/payment-status"),
                                         {"paymentId": payment.provider_ref}, operation="get_payment",
                                         request_info={"aspspId": payment.upstream.get("aspsp_id"),
                                                       "tppRedirectURI": payment.redirect_uri,
                                                       "consentId": payment.upstream["hub_consent_id"]})
            iso, status, reason_code = pis.payment_status(answer)
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
