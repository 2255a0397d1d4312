"""stripe-uk payment initiation: Open Banking v3.1.2 domestic payments under FAPI.

    create   client-credentials token (payments) → POST /domestic-payment-consents → the payer's authorisation URL
    authorise  the redirect result, trusted only after its ID token verifies → the code exchanged for the payer's
             token, sealed with the payment
    submit   POST /domestic-payments with the payer's token, the consent's exact Initiation and Risk
    status   GET /domestic-payments/{id}, or the consent while no payment id is known

Every POST carries `x-jws-signature` (gateway.connectivity.obsign) over its exact bytes and an `x-idempotency-key`
derived from the caller's key (consent) or from the payment (submission): the bank keeps those keys for 24 hours
and answers a repeat with the original resource, so the connectivity layer may retry these POSTs, and a retry after
a crash cannot make a second consent or payment. Every answer the gateway acts on must carry the bank's signature
over its body, checked against the bank's published keys.

Resolving `unknown` (the submission's answer was lost) asks the bank: the consent still `Authorised` means the
submission never took effect; `Consumed` means a payment was made from it, and the bank is asked for it by
repeating the original submission, byte for byte under its original key. OB offers no other way to find a payment
by its consent, and a consumed consent cannot pay twice, so that repeat is a lookup, not a second payment.

A mixin of `StripeUKAdapter` (it uses the adapter's OAuth client, key material, settings and vault).
"""
from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import orjson

from adapters.base import CallContext, PaymentInput, PaymentLink, PaymentUpdate
from adapters.stripe_uk import translate_pis as pis
from gateway.connectivity import obsign
from gateway.connectivity.client import UpstreamResponse
from gateway.errors import (
    ConsentEndedUpstream, ProviderBadResponse, ProviderRejected, ProviderUnavailable, ValidationFailed,
)
from gateway.models.payments import PaymentStatus
from gateway.models.time import parse_upstream_time, utcnow
from gateway.payments.keys import upstream_key
from gateway.store.records import PaymentRecord

_RENEW_MARGIN = 30.0
# How long the bank answers a repeated request with the original resource (OB: x-idempotency-key, 24 hours).
IDEMPOTENCY_WINDOW = timedelta(hours=24)


class PaymentsClient:
    provider_id: str
    settings: Any
    material: Any
    vault: Any
    upstream: Any

    # Also used, from OAuthClient and StripeUKAdapter:
    _client_id: Any
    _client_credentials: Any
    _authorisation_url: Any
    _redeem: Any
    _jwks: Any
    _token_call: Any
    _fapi_headers: Any
    _fail: Any

    payment_types = frozenset({"domestic"})
    payment_currencies = frozenset({"GBP"})
    payment_schemes = frozenset({"uk_sort_code", "wallet"})

    def validate_payment(self, data: PaymentInput) -> None:
        errors = pis.payment_problems(data)
        if data.redirect_uri not in self.settings.redirect_uris:
            errors.append({"location": "body", "field": "redirect_uri", "message": "must be one of the redirect URIs "
                           f"registered with {self.provider_id}: {', '.join(self.settings.redirect_uris)}"})
        if errors:
            raise ValidationFailed.of(errors)

    # --- plumbing ------------------------------------------------------------------------------------------------
    @property
    def _jws_issuer(self) -> str:
        return f"{self.settings.organisation_id}/{self.settings.software_id}"

    async def _pisp(self, ctx: CallContext, method: str, path: str, *, token: str, operation: str,
                    body: dict[str, Any] | None = None, idempotency_key: str | None = None) -> Any:
        """One PIS call; the answer's JSON once its signature is verified, or the mapped error."""
        headers = {**self._fapi_headers(ctx), "Authorization": f"Bearer {token}"}
        raw = None
        if body is not None:
            raw = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
            headers["x-idempotency-key"] = idempotency_key or ""
            headers["x-jws-signature"] = obsign.sign_detached(self.material.signing, raw, issuer=self._jws_issuer,
                                                              trust_anchor=self.settings.jws_trust_anchor)
        response = await self.upstream.request(method, self.settings.pisp_path + path, operation=operation,
                                               data=raw, headers=headers, idempotent=True)
        if not response.ok:
            if body is not None and response.status < 500 and response.earlier_attempt_lost:
                raise ProviderUnavailable(f"an earlier attempt of this request to {self.provider_id} got no answer "
                                          f"and the retry was refused (HTTP {response.status}): the bank may have "
                                          "acted on the first; its outcome is not known", retryable=True)
            raise self._fail(response)
        await self._verify_signature(response)
        return response.json()

    async def _verify_signature(self, response: UpstreamResponse) -> None:
        if not self.settings.verify_response_signatures:
            return
        signature = response.headers.get("x-jws-signature")
        check = dict(trust_anchor=self.settings.jws_trust_anchor, issuer=self.settings.aspsp_signing_issuer,
                     max_age=IDEMPOTENCY_WINDOW.total_seconds() + obsign.CLOCK_SKEW)
        try:
            obsign.verify_detached(signature, response.body, await self._jwks(), **check)
        except obsign.SignatureInvalid:
            try:  # the bank may have rotated its keys: look once more before refusing
                obsign.verify_detached(signature, response.body, await self._jwks(refresh=True), **check)
            except obsign.SignatureInvalid as exc:
                raise ProviderBadResponse(f"{self.provider_id}'s answer is not signed as Open Banking requires "
                                          f"({exc}); it was not acted on") from None

    def _seal_payer_tokens(self, payment: PaymentRecord, tokens: dict[str, Any]) -> str:
        if self.vault is None:
            raise LookupError("security.encryption_key is not configured: payment tokens cannot be stored")
        record = {"access_token": tokens["access_token"], "refresh_token": tokens.get("refresh_token"),
                  "expires_at": time.time() + int(tokens.get("expires_in") or 300)}
        sealed = self.vault.seal(self.provider_id, f"payment:{payment.id}", orjson.dumps(record).decode())
        return base64.b64encode(sealed).decode("ascii")

    async def _payer_token(self, payment: PaymentRecord) -> str:
        """The payer's access token for this payment's consent, renewed with its refresh token when it is old."""
        stored = payment.upstream.get("tokens")
        if not stored or self.vault is None:
            raise ConsentEndedUpstream("the payment holds no authorisation; the payer must authorise it again")
        tokens = orjson.loads(self.vault.open(self.provider_id, f"payment:{payment.id}", base64.b64decode(stored)))
        if tokens["expires_at"] - _RENEW_MARGIN > time.time():
            return str(tokens["access_token"])
        if not tokens.get("refresh_token"):
            raise ConsentEndedUpstream("the payer's authorisation has expired; the payer must authorise again")
        renewed = await self._token_call({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                         client_id=await self._client_id(), operation="refresh_token")
        renewed.setdefault("refresh_token", tokens["refresh_token"])
        payment.upstream["tokens"] = self._seal_payer_tokens(payment, renewed)
        return str(renewed["access_token"])

    # --- operations ------------------------------------------------------------------------------------------------
    async def create_payment(self, ctx: CallContext, payment: PaymentRecord, data: PaymentInput) -> PaymentLink:
        client_id = await self._client_id()
        token = await self._client_credentials("payments", client_id)
        body = pis.consent_body(data)
        answer = await self._pisp(ctx, "POST", "/domestic-payment-consents", token=token, body=body,
                                  idempotency_key=data.idempotency_key, operation="create_payment_consent")
        consent_id, status = pis.created_consent(answer)
        url, kept = await self._authorisation_url(client_id=client_id, redirect_uri=data.redirect_uri,
                                                  scope="openid payments", intent_id=consent_id)
        return PaymentLink(url=url, consent_ref=consent_id, upstream={
            **kept, "consent_status": status,
            "initiation": body["Data"]["Initiation"], "risk": body["Risk"]})

    async def authorise_payment(self, ctx: CallContext, payment: PaymentRecord,
                                result: dict[str, str]) -> PaymentUpdate:
        tokens, refusal = await self._redeem(payment.upstream, result, intent_id=payment.consent_ref or "",
                                             redirect_uri=payment.redirect_uri or "", what="payment")
        if tokens is None:
            return PaymentUpdate(status=PaymentStatus.REJECTED, upstream_status="Rejected", reason=refusal)
        return PaymentUpdate(status=PaymentStatus.AUTHORISED, upstream_status="Authorised",
                             reason="the payer authorised it at the bank",
                             upstream={"tokens": self._seal_payer_tokens(payment, tokens), "state": None,
                                       "nonce": None})

    def _submission(self, ctx: CallContext, payment: PaymentRecord) -> tuple[dict[str, Any], str]:
        body = pis.payment_body(payment.consent_ref or "", payment.upstream["initiation"], payment.upstream["risk"])
        return body, upstream_key(ctx.id_key, payment.tenant, payment.id, "submission")

    async def submit_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        token = await self._payer_token(payment)
        body, key = self._submission(ctx, payment)
        answer = await self._pisp(ctx, "POST", "/domestic-payments", token=token, body=body, idempotency_key=key,
                                  operation="submit_payment")
        payment_id, ob_status, status = pis.payment(answer)
        return PaymentUpdate(status=status, upstream_status=ob_status, provider_ref=payment_id,
                             reason=f"the bank says {ob_status}")

    async def get_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        if payment.provider_ref:
            token = await self._client_credentials("payments")
            answer = await self._pisp(ctx, "GET", f"/domestic-payments/{payment.provider_ref}", token=token,
                                      operation="get_payment")
            _, ob_status, status = pis.payment(answer)
            return PaymentUpdate(status=status, upstream_status=ob_status, reason=f"the bank says {ob_status}")
        token = await self._client_credentials("payments")
        answer = await self._pisp(ctx, "GET", f"/domestic-payment-consents/{payment.consent_ref}", token=token,
                                  operation="get_payment_consent")
        consent_status = pis.consent_status(answer)
        if consent_status != pis.CONSUMED:
            status = pis.CONSENT_STATUSES[consent_status]
            reason = f"the bank says the payment consent is {consent_status}"
            if payment.status is PaymentStatus.UNKNOWN and status is PaymentStatus.AUTHORISED:
                reason = "the submission never took effect (the bank shows its consent unused); submit it again"
            return PaymentUpdate(status=status, upstream_status=consent_status, reason=reason)
        started = parse_upstream_time(payment.upstream.get("submission_started_at"))
        if started is None or "tokens" not in payment.upstream:
            raise ProviderBadResponse(f"{self.provider_id} shows the payment consent consumed, but the gateway never "
                                      "submitted this payment; ask the bank which payment used it")
        if utcnow() - started > IDEMPOTENCY_WINDOW:
            raise ProviderRejected(f"{self.provider_id} keeps idempotency keys for 24 hours and this submission is "
                                   "older: the bank can no longer be asked for its payment by repeating it. The "
                                   "consent was consumed, so a payment exists; ask the bank for it.", retryable=False)
        update = await self.submit_payment(ctx, payment)  # the original request again: the bank's answer to it
        return PaymentUpdate(status=update.status, upstream_status=update.upstream_status,
                             provider_ref=update.provider_ref,
                             reason=f"recovered from the bank after a lost answer; it says {update.upstream_status}")

    async def confirm_funds(self, ctx: CallContext, payment: PaymentRecord) -> bool:
        token = await self._payer_token(payment)
        answer = await self._pisp(ctx, "GET", f"/domestic-payment-consents/{payment.consent_ref}/funds-confirmation",
                                  token=token, operation="confirm_funds")
        return pis.funds_available(answer)
