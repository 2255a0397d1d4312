"""The stripe-uk adapter: Stripe as a UK ASPSP, Open Banking v3.1.2 account information under FAPI.

Everything goes over mutual TLS with the gateway's transport certificate. The gateway is the ASPSP's OAuth client
by Dynamic Client Registration (`gateway.onboarding.dcr`), authenticates at the token endpoint with
`private_key_jwt` (or `tls_client_auth`), asks for account-access consents with a client-credentials token, sends
the end user to the ASPSP with a signed request object, and trusts the redirect result only after verifying its
ID token (`gateway.connectivity.fapi`). The consent's access and refresh tokens are kept sealed (AES-GCM) with the
consent, renewed before they expire, and a renewal that fails on an ASPSP fault keeps the refresh token.
"""
from __future__ import annotations

import asyncio
import base64
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

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
from adapters.stripe_uk.settings import StripeUKSettings, resolve_material
from gateway.certificates.keys import SigningKey, certificate_subject, client_ssl_context
from gateway.connectivity import fapi
from gateway.connectivity.client import UpstreamClient, UpstreamResponse
from gateway.connectivity.tokens import TokenBroker
from gateway.errors import (
    ConsentEndedUpstream,
    GatewayCredentialsRejected,
    GatewayError,
    ProviderBadResponse,
    ProviderUnavailable,
    ValidationFailed,
)
from gateway.models import ConnectLink, ConsentStatus, Page, Transaction
from gateway.models.time import parse_upstream_time
from gateway.onboarding.dcr import ClientProfile, Registrar
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord

log = structlog.get_logger("gateway.stripe_uk")

_STATUSES = {"Authorised": ConsentStatus.AUTHORISED, "AwaitingAuthorisation": ConsentStatus.AWAITING_AUTHORISATION,
             "Rejected": ConsentStatus.REJECTED, "Revoked": ConsentStatus.REVOKED}
_RENEW_MARGIN = 30.0  # seconds before an access token's expiry when it is renewed


class StripeUKAdapter(Adapter):
    provider_id = "stripe-uk"
    regions = frozenset({"GB"})
    settings_type = StripeUKSettings
    consent_limits = True
    capabilities = frozenset({
        "create_consent", "complete_consent", "refresh_consent", "revoke_consent", "list_accounts", "get_balances",
        "list_transactions", "get_account_details", "get_account_owner", "register_client",
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
                               keystore=local.keystore(), access_token_ttl=s.sandbox_access_token_ttl)

    async def start(self) -> None:
        if self.settings.register_on_start:
            try:
                outcome, registration = await self.register_client(None)
                log.info("client_registered", provider=self.provider_id, outcome=outcome,
                         client_id=registration.get("client_id"))
            except (GatewayError, LookupError) as exc:
                self.registration_problem = str(exc)
                log.error("client_not_registered", provider=self.provider_id, error=str(exc))

    def signing_keys(self) -> list[SigningKey]:
        return [self.material.signing]

    def health(self) -> dict[str, Any]:
        out = self.upstream.health()
        if self.registration_problem is not None:
            out["registration"] = f"not registered: {self.registration_problem}"
        return out

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
            raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)

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
        document = await self.discovery()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        request_object = fapi.request_object(
            self.material.signing, client_id=client_id, issuer=document["issuer"], redirect_uri=data.redirect_uri,
            scope="openid accounts", state=state, nonce=nonce, intent_id=intent)
        url = document["authorization_endpoint"] + "?" + urlencode({
            "response_type": "code id_token", "client_id": client_id, "redirect_uri": data.redirect_uri,
            "scope": "openid accounts", "state": state, "nonce": nonce, "request": request_object})
        consent.upstream.update({"state": state, "nonce": nonce, "expires": created.get("ExpirationDateTime")})
        return ConnectLink(url=url, provider_ref=intent)

    async def complete_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None,
                               result: dict[str, str]) -> ConsentUpdate:
        expected_state = consent.upstream.get("state")
        if not expected_state or result.get("state") != expected_state:
            raise fapi.AuthorisationRefused("redirect_result: its state is not this consent's (forged or "
                                            "mixed up)", errors=[{"location": "body", "field": "redirect_result",
                                                                  "message": "state does not match"}])
        if "error" in result:
            return ConsentUpdate(status=ConsentStatus.REJECTED,
                                 reason=f"the end user or the bank refused ({result['error']})")
        code, id_token = result.get("code"), result.get("id_token")
        if not code or not id_token:
            raise fapi.AuthorisationRefused("redirect_result: needs code and id_token (hybrid flow)", errors=[
                {"location": "body", "field": "redirect_result", "message": "code or id_token missing"}])
        document = await self.discovery()
        client_id = await self._client_id()
        verify = dict(issuer=document["issuer"], client_id=client_id, nonce=consent.upstream.get("nonce", ""),
                      code=code, state=expected_state, intent_id=consent.provider_ref or "")
        try:
            fapi.verify_id_token(id_token, jwks=await self._jwks(), **verify)
        except fapi.AuthorisationRefused:
            # The ASPSP may have rotated its keys: look once more before refusing.
            fapi.verify_id_token(id_token, jwks=await self._jwks(refresh=True), **verify)
        tokens = await self._token_call({"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": consent.redirect_uri or ""},
                                        client_id=client_id, operation="exchange_code")
        if not tokens.get("refresh_token"):
            raise ProviderBadResponse(f"{self.provider_id} issued no refresh token for the consent")
        expires = parse_upstream_time(consent.upstream.get("expires"))
        return ConsentUpdate(status=ConsentStatus.AUTHORISED, provider_ref=consent.provider_ref, expires_at=expires,
                             upstream={"tokens": self._seal(consent, tokens), "state": None, "nonce": None})

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
        async with lock:
            fresh = await self.store.get_consent(consent.tenant, consent.id)
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
