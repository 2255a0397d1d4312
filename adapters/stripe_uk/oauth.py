"""stripe-uk's OAuth side: discovery, the ASPSP's keys, the registration, the token endpoint, and the consent's
own tokens (sealed with the consent, renewed before they expire, one renewal at a time per consent).

A mixin of `StripeUKAdapter`: it uses the adapter's settings, key material, store, vault and upstream clients.
"""
from __future__ import annotations

import asyncio
import base64
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from adapters.stripe_uk import translate as ob
from gateway.certificates.keys import certificate_subject
from gateway.connectivity import fapi
from gateway.connectivity.client import UpstreamClient, UpstreamResponse
from gateway.connectivity.tokens import TokenBroker
from gateway.errors import (
    ConsentEndedUpstream,
    GatewayCredentialsRejected,
    GatewayError,
    ProviderBadResponse,
    ProviderUnavailable,
)
from gateway.models import ConsentStatus
from gateway.onboarding.dcr import ClientProfile, Registrar
from gateway.store.lease import held
from gateway.store.records import ConsentRecord

_RENEW_MARGIN = 30.0  # seconds before an access token's expiry when it is renewed


class OAuthClient:
    provider_id: str
    settings: Any
    material: Any
    store: Any
    vault: Any
    config: Any
    upstream: UpstreamClient
    upstreams: Any
    registrar: Registrar | None
    _ssl: Any
    _origins: dict[str, UpstreamClient]
    _discovery: dict[str, Any] | None
    _aspsp_jwks: dict[str, Any] | None
    _client_tokens: dict[str, TokenBroker]
    _consent_locks: dict[str, asyncio.Lock]

    # --- plumbing ------------------------------------------------------------------------------------------------
    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    async def _client_for(self, url: str) -> tuple[UpstreamClient, str]:
        """The pooled mTLS client for an absolute URL's origin, and the URL's path and query."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self._origins.get(origin)
        if client is None:
            if parts.scheme != "https":
                raise ProviderBadResponse(f"{self.provider_id} named a non-https endpoint")
            client = self.upstreams.client(f"{self.provider_id}:{parts.netloc}", origin, self.config, ssl=self._ssl)
            await client.start()
            self._origins[origin] = client
        return client, parts.path + (f"?{parts.query}" if parts.query else "")

    def _fail(self, response: UpstreamResponse) -> GatewayError:
        return ob.error_from_response(response.status, response.body, retry_after=response.retry_after)

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            response = await self.upstream.request("GET", "/.well-known/openid-configuration",
                                                   operation="discovery")
            if not response.ok:
                raise self._fail(response)
            document = response.json()
            if not isinstance(document, dict) or not all(
                    isinstance(document.get(k), str) for k in ("issuer", "token_endpoint", "authorization_endpoint",
                                                              "jwks_uri", "registration_endpoint")):
                raise ProviderBadResponse(f"{self.provider_id} published an incomplete OpenID configuration")
            self._discovery = document
        return self._discovery

    async def _jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        if self._aspsp_jwks is None or refresh:
            client, path = await self._client_for((await self.discovery())["jwks_uri"])
            response = await client.request("GET", path, operation="aspsp_jwks")
            if not response.ok or not isinstance(response.json(), dict):
                raise ProviderBadResponse(f"{self.provider_id} published no usable JWKS")
            self._aspsp_jwks = response.json()
        return self._aspsp_jwks

    def _profile(self) -> ClientProfile:
        return ClientProfile(software_statement=self.material.software_statement,
                             redirect_uris=tuple(self.settings.redirect_uris),
                             token_endpoint_auth_method=self.settings.token_endpoint_auth_method,
                             scope="openid accounts payments",
                             transport_subject_dn=certificate_subject(self.material.transport_cert.read_bytes()))

    async def _registrar(self) -> Registrar:
        if self.vault is None:
            raise LookupError("security.encryption_key is not configured: the registration cannot be stored")
        if self.registrar is None:
            document = await self.discovery()
            client, path = await self._client_for(document["registration_endpoint"])
            self.registrar = Registrar(self.provider_id, client, self.vault, self.material.signing, self._profile(),
                                       registration_path=path, audience=document["issuer"],
                                       management_token=lambda cid: self._client_credentials("accounts", cid))
        return self.registrar

    async def _client_id(self) -> str:
        registration = await (await self._registrar()).stored()
        if registration is None:
            raise GatewayCredentialsRejected(f"the gateway is not registered with {self.provider_id}; an operator "
                                             f"must run `gateway onboard {self.provider_id}`", retryable=False)
        return str(registration["client_id"])

    # --- the end user's authorisation (hybrid flow) ----------------------------------------------------------------------
    async def _authorisation_url(self, *, client_id: str, redirect_uri: str, scope: str,
                                 intent_id: str) -> tuple[str, dict[str, str]]:
        """Where to send the end user for `intent_id`, with the state and nonce to keep until they come back."""
        document = await self.discovery()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        request_object = fapi.request_object(
            self.material.signing, client_id=client_id, issuer=document["issuer"], redirect_uri=redirect_uri,
            scope=scope, state=state, nonce=nonce, intent_id=intent_id)
        url = document["authorization_endpoint"] + "?" + urlencode({
            "response_type": "code id_token", "client_id": client_id, "redirect_uri": redirect_uri,
            "scope": scope, "state": state, "nonce": nonce, "request": request_object})
        return url, {"state": state, "nonce": nonce}

    async def _redeem(self, kept: dict[str, Any], result: dict[str, str], *, intent_id: str, redirect_uri: str,
                      what: str) -> tuple[dict[str, Any] | None, str | None]:
        """The redirect result of an authorisation, trusted only once its ID token verifies (signature, nonce,
        c_hash, s_hash, the intent): (the tokens its code is exchanged for, None), or (None, why the end user or
        the bank refused). A forged or mixed-up result raises AuthorisationRefused."""
        expected_state = kept.get("state")
        if not expected_state or result.get("state") != expected_state:
            raise fapi.AuthorisationRefused(f"redirect_result: its state is not this {what}'s (forged or mixed up)",
                                            errors=[{"location": "body", "field": "redirect_result",
                                                     "message": "state does not match"}])
        if "error" in result:
            return None, f"the end user or the bank refused ({result['error']})"
        code, id_token = result.get("code"), result.get("id_token")
        if not code or not id_token:
            raise fapi.AuthorisationRefused("redirect_result: needs code and id_token (hybrid flow)", errors=[
                {"location": "body", "field": "redirect_result", "message": "code or id_token missing"}])
        document = await self.discovery()
        client_id = await self._client_id()
        verify = dict(issuer=document["issuer"], client_id=client_id, nonce=kept.get("nonce", ""),
                      code=code, state=expected_state, intent_id=intent_id)
        try:
            fapi.verify_id_token(id_token, jwks=await self._jwks(), **verify)
        except fapi.AuthorisationRefused:
            # The ASPSP may have rotated its keys: look once more before refusing.
            fapi.verify_id_token(id_token, jwks=await self._jwks(refresh=True), **verify)
        tokens = await self._token_call({"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": redirect_uri}, client_id=client_id, operation="exchange_code")
        return tokens, None

    # --- the token endpoint ------------------------------------------------------------------------------------------
    async def _token_call(self, form: dict[str, str], *, client_id: str, operation: str) -> dict[str, Any]:
        document = await self.discovery()
        client, path = await self._client_for(document["token_endpoint"])
        form = dict(form)
        if self.settings.token_endpoint_auth_method == "private_key_jwt":
            form["client_assertion_type"] = fapi.CLIENT_ASSERTION_TYPE
            form["client_assertion"] = fapi.client_assertion(self.material.signing, client_id=client_id,
                                                             audience=document["token_endpoint"])
        else:
            form["client_id"] = client_id
        response = await client.request("POST", path, operation=operation, data=urlencode(form).encode(),
                                        headers={"Content-Type": "application/x-www-form-urlencoded",
                                                 "Accept": "application/json"}, idempotent=False)
        if response.ok:
            body = response.json()
            if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
                raise ProviderBadResponse(f"{self.provider_id} answered the token endpoint without an access token")
            return body
        code, _ = ob.ob_error_code(response.body)
        if response.status == 400 and code == "invalid_grant":
            raise ConsentEndedUpstream(f"{self.provider_id} no longer accepts the consent's grant (revoked or "
                                       "expired at the bank); a new consent is needed.", provider_code=code)
        if response.status in (400, 401) and code in ("invalid_client", "unauthorized_client"):
            raise GatewayCredentialsRejected(f"{self.provider_id} refused the gateway's client authentication; an "
                                             "operator must check the registration and keys.", provider_code=code,
                                             retryable=False)
        raise self._fail(response)

    async def _client_credentials(self, scope: str, client_id: str | None = None) -> str:
        client_id = client_id or await self._client_id()
        broker = self._client_tokens.get(f"{client_id}:{scope}")
        if broker is None:
            async def fetch() -> str:
                return str((await self._token_call({"grant_type": "client_credentials", "scope": scope},
                                                   client_id=client_id, operation="client_credentials"))["access_token"])
            # Renewed well inside the ASPSP's lifetime (it says expires_in; 4 minutes suits its 5).
            broker = TokenBroker(f"{self.provider_id}:{client_id}:{scope}", fetch, renew_after=240.0)
            self._client_tokens[f"{client_id}:{scope}"] = broker
        return (await broker.get()).value

    def _seal(self, consent: ConsentRecord, tokens: dict[str, Any]) -> str:
        if self.vault is None:
            raise LookupError("security.encryption_key is not configured: consent tokens cannot be stored")
        record = {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
                  "expires_at": time.time() + int(tokens.get("expires_in") or 300)}
        sealed = self.vault.seal(self.provider_id, f"consent:{consent.id}", orjson.dumps(record).decode())
        return base64.b64encode(sealed).decode("ascii")

    def _unseal(self, consent: ConsentRecord) -> dict[str, Any]:
        stored = consent.upstream.get("tokens")
        if not stored or self.vault is None:
            raise ConsentEndedUpstream("the consent holds no tokens; it must be authorised again")
        return orjson.loads(self.vault.open(self.provider_id, f"consent:{consent.id}", base64.b64decode(stored)))

    async def _access_token(self, consent: ConsentRecord, *, stale: str | None = None) -> str:
        tokens = self._unseal(consent)
        if tokens["access_token"] != stale and tokens["expires_at"] - _RENEW_MARGIN > time.time():
            return str(tokens["access_token"])
        lock = self._consent_locks.setdefault(consent.id, asyncio.Lock())
        # One renewal at a time in this process (the lock) and across replicas (the store's lease): the bank
        # rotates the refresh token, so two renewals with the same one would leave one replica holding a dead token.
        async with lock, held(self.store, f"{self.provider_id}:consent-tokens:{consent.tenant}:{consent.id}") as reader:
            fresh = await reader.get_consent(consent.tenant, consent.id)  # past the read cache: the last holder's write
            if fresh is None or fresh.status is not ConsentStatus.AUTHORISED:
                raise ConsentEndedUpstream("the consent has ended")
            tokens = self._unseal(fresh)
            if tokens["access_token"] != stale and tokens["expires_at"] - _RENEW_MARGIN > time.time():
                consent.upstream["tokens"] = fresh.upstream["tokens"]
                return str(tokens["access_token"])  # renewed meanwhile
            try:
                renewed = await self._token_call({"grant_type": "refresh_token",
                                                  "refresh_token": tokens["refresh_token"]},
                                                 client_id=await self._client_id(), operation="refresh_token")
            except ProviderUnavailable:
                raise  # an ASPSP fault: the stored refresh token stays, the next call tries again
            renewed.setdefault("refresh_token", tokens["refresh_token"])
            fresh.upstream["tokens"] = self._seal(fresh, renewed)
            await self.store.update_consent(fresh)
            consent.upstream["tokens"] = fresh.upstream["tokens"]
            return str(renewed["access_token"])
