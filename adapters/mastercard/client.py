"""The Mastercard platform client (US and AU): partner authentication, the app token, and error translation.

One token per partner credential, shared by every caller through the token broker: renewed after
`renew_after` seconds (the token lives 120 minutes; we renew at 90), renewed once when the platform answers
that the token expired or is invalid, and never fetched again after the platform refused the partner
credentials (five refusals lock the partner).
"""
from __future__ import annotations

from typing import Any, Mapping

from adapters.mastercard.errors import TOKEN_RENEW_CODES, error_code, error_from_response
from adapters.mastercard.region import MastercardRegion
from gateway.connectivity.client import UpstreamClient
from gateway.connectivity.tokens import TokenBroker
from gateway.errors import GatewayCredentialsRejected, ProviderBadResponse, ProviderRateLimited
from gateway.observability import Metrics
from gateway.secrets import Secret

AUTH_PATH = "/aggregation/v2/partners/authentication"


class MastercardClient:
    def __init__(self, upstream: UpstreamClient, region: MastercardRegion, *, partner_id: str, partner_secret: Secret,
                 app_key: Secret, renew_after: float, metrics: Metrics) -> None:
        self.upstream = upstream
        self.region = region
        self._partner_id = partner_id
        self._partner_secret = partner_secret
        self._app_key = app_key
        self.tokens = TokenBroker(
            f"{region.provider_id}:{partner_id}", self._authenticate, renew_after=renew_after,
            on_fetch=lambda outcome: metrics.token_renewals.labels(region.provider_id, outcome).inc(),
        )

    async def _authenticate(self) -> str:
        response = await self.upstream.request(
            "POST", AUTH_PATH, operation="authenticate", idempotent=False,
            json={"partnerId": self._partner_id, "partnerSecret": self._partner_secret.reveal()},
            headers={self.region.app_key_header: self._app_key.reveal(), "Accept": "application/json"},
        )
        if response.ok:
            token = response.json().get("token") if response.body else None
            if not isinstance(token, str) or not token:
                raise ProviderBadResponse(f"{self.region.provider_id} authentication answered without a token")
            return token
        if response.status == 429 and response.retry_after is None:
            # The platform answers an invalid app key with "too many requests" (its rate limit is 0), without a
            # Retry-After. That is the gateway's configuration, not a reason for callers to retry; it is not latched
            # like a refused secret, in case it was a real limit after all, so each later request asks once again.
            error = GatewayCredentialsRejected(
                f"{self.region.provider_id} refuses the gateway's sign-in as rate limited without saying when to "
                "retry: the gateway's app key is most probably wrong; an operator must check it. Retrying will not "
                "help.", code="gateway_credentials_suspect", retryable=False, provider_code=error_code(response.body))
            error.latch = False
            raise error
        if response.status == 429:
            raise ProviderRateLimited(
                f"{self.region.provider_id} refused authentication as rate limited; if this persists the app key is "
                "probably wrong (the platform reports an invalid app key as a rate limit)",
                retry_after=response.retry_after, provider_code=error_code(response.body),
            )
        raise error_from_response(response.status, response.body, provider=self.region.provider_id,
                                  retry_after=response.retry_after)

    async def call(self, method: str, path: str, *, operation: str, params: Mapping[str, Any] | None = None,
                   json: Any = None, headers: Mapping[str, str] | None = None,
                   accept: str = "application/json") -> Any:
        """Call the platform with the app token; renew the token once if it is refused. Returns parsed JSON."""
        response = await self.call_raw(method, path, operation=operation, params=params, json=json,
                                       headers=headers, accept=accept)
        return response.json() if response.body else None

    async def call_raw(self, method: str, path: str, *, operation: str, params: Mapping[str, Any] | None = None,
                       json: Any = None, headers: Mapping[str, str] | None = None,
                       accept: str = "application/json") -> Any:
        for attempt in (0, 1):
            token = await self.tokens.get()
            send = {self.region.app_key_header: self._app_key.reveal(), self.region.app_token_header: token.value,
                    "Accept": accept}
            if headers:
                send.update(headers)
            response = await self.upstream.request(method, path, operation=operation, params=params, json=json,
                                                   headers=send)
            if response.ok:
                return response
            if response.status == 401 and attempt == 0 and error_code(response.body) in TOKEN_RENEW_CODES:
                await self.tokens.renew(token)
                continue
            raise error_from_response(response.status, response.body, provider=self.region.provider_id,
                                      retry_after=response.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover
