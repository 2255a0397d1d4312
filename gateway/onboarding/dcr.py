"""Dynamic Client Registration, Open Banking UK v3.2: the gateway registers itself as an OAuth client of an ASPSP.

The registration request is a JWT the gateway signs (PS256) carrying its metadata and the software statement
assertion (SSA) the Open Banking directory issued for its software; it is POSTed to the ASPSP's `/register` over
mutual TLS. The answer (client id and the metadata the ASPSP kept) is stored, sealed, with the provider.

Registration is idempotent from the operator's view: `register()` first looks at what is stored for the same
software statement; if the ASPSP still knows that client it is kept (or updated with PUT when the wanted metadata
changed), and only otherwise is a new client created. Read, update and delete act on the stored client, with a
client-credentials token of that client (the ASPSP's registration management security).
"""
from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Awaitable, Callable

import attrs
import orjson
import structlog
from joserfc import jws

from gateway.certificates.keys import SigningKey
from gateway.connectivity.client import UpstreamClient, UpstreamResponse
from gateway.connectivity.fapi import sign
from gateway.errors import GatewayCredentialsRejected, GatewayError, NotFound, ProviderBadResponse, ProviderRejected
from gateway.secrets import Secret

log = structlog.get_logger("gateway.onboarding")

REGISTRATION = "registration"
GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
AUTH_METHODS = ("private_key_jwt", "tls_client_auth")


@attrs.frozen
class ClientProfile:
    """What the gateway asks to be registered as."""
    software_statement: Secret
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    scope: str
    transport_subject_dn: str  # the transport certificate's subject, for tls_client_auth

    @property
    def software_id(self) -> str:
        payload = jws.extract_compact(self.software_statement.reveal().encode()).payload
        return str(orjson.loads(payload)["software_id"])

    @property
    def statement_digest(self) -> str:
        return hashlib.sha256(self.software_statement.reveal().encode()).hexdigest()

    def metadata(self) -> dict[str, Any]:
        wanted: dict[str, Any] = {
            "redirect_uris": list(self.redirect_uris), "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": list(GRANT_TYPES), "response_types": ["code id_token"], "scope": self.scope,
            "application_type": "web", "id_token_signed_response_alg": "PS256",
            "request_object_signing_alg": "PS256",
        }
        if self.token_endpoint_auth_method == "private_key_jwt":
            wanted["token_endpoint_auth_signing_alg"] = "PS256"
        else:
            wanted["tls_client_auth_subject_dn"] = self.transport_subject_dn
        return wanted


def registration_jwt(key: SigningKey, profile: ClientProfile, *, audience: str) -> str:
    now = int(time.time())
    return sign(key, {"iss": profile.software_id, "iat": now, "exp": now + 300, "aud": audience,
                      "jti": str(uuid.uuid4()), "software_statement": profile.software_statement.reveal(),
                      **profile.metadata()})


def _differs(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for name, value in wanted.items():
        have = stored.get(name)
        if isinstance(value, list) and isinstance(have, list):
            if sorted(map(str, value)) != sorted(map(str, have)):
                return True
        elif have != value:
            return True
    return False


class Registrar:
    """Registers one provider's client and keeps the registration (sealed) in the vault."""

    def __init__(self, provider: str, upstream: UpstreamClient, vault: Any, key: SigningKey, profile: ClientProfile,
                 *, registration_path: str, audience: str,
                 management_token: Callable[[str], Awaitable[str]]) -> None:
        self.provider = provider
        self.upstream = upstream
        self.vault = vault
        self.key = key
        self.profile = profile
        self.path = registration_path
        self.audience = audience
        self._token = management_token  # client id -> a client-credentials access token of that client

    async def stored(self) -> dict[str, Any] | None:
        sealed = await self.vault.get(self.provider, REGISTRATION)
        return orjson.loads(sealed.reveal()) if sealed is not None else None

    async def _keep(self, answer: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(answer, dict) or not answer.get("client_id"):
            raise ProviderBadResponse(f"{self.provider} registered the gateway without a client_id")
        record = {**answer, "software_statement_sha256": self.profile.statement_digest}
        record.pop("software_statement", None)  # the SSA stays in config; the record keeps its digest
        await self.vault.put(self.provider, REGISTRATION, Secret(orjson.dumps(record).decode(), transient=True))
        return record

    async def _send(self, method: str, path: str, operation: str, *, token: str | None = None,
                    body: bytes | None = None) -> UpstreamResponse:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/jwt"
        return await self.upstream.request(method, path, operation=operation, data=body, headers=headers,
                                           idempotent=method in ("GET", "DELETE"))

    def _failed(self, what: str, response: UpstreamResponse) -> GatewayError:
        try:
            body = orjson.loads(response.body) if response.body else {}
        except orjson.JSONDecodeError:
            body = {}
        error = body.get("error", f"http_{response.status}") if isinstance(body, dict) else f"http_{response.status}"
        description = body.get("error_description", "") if isinstance(body, dict) else ""
        if response.status == 404:
            return NotFound(f"{self.provider} does not know the gateway's client")
        return ProviderRejected(f"{self.provider} refused to {what} the gateway's registration: {error}"
                                + (f" ({description})" if description else ""), provider_code=str(error),
                                retryable=response.status >= 500)

    async def register(self) -> tuple[str, dict[str, Any]]:
        """("kept" | "updated" | "created", the registration)."""
        current = await self.stored()
        if current is not None and current.get("software_statement_sha256") == self.profile.statement_digest:
            try:
                live = await self.read(current)
            except NotFound as exc:
                # The bank deleted the client, or (the embedded simulator after a restart) never knew it: register
                # anew rather than keep a client nothing can use.
                log.warning("client_registration_replaced", provider=self.provider,
                            client_id=current.get("client_id"), reason=str(exc))
                live = None
            if live is not None:
                if not _differs(live, self.profile.metadata()):
                    return "kept", live
                return "updated", await self.update(current)
        body = registration_jwt(self.key, self.profile, audience=self.audience).encode()
        response = await self._send("POST", self.path, "register_client", body=body)
        if response.status != 201:
            raise self._failed("create", response)
        return "created", await self._keep(response.json())

    async def read(self, current: dict[str, Any] | None = None) -> dict[str, Any]:
        current = current or await self.stored()
        if current is None:
            raise NotFound(f"the gateway is not registered with {self.provider}")
        client_id = current["client_id"]
        try:
            token = await self._token(client_id)
        except GatewayCredentialsRejected as exc:  # the token endpoint does not know the client (invalid_client)
            raise NotFound(f"{self.provider} no longer accepts the gateway's client {client_id}") from exc
        response = await self._send("GET", f"{self.path}/{client_id}", "read_registration", token=token)
        if response.status == 401:
            raise NotFound(f"{self.provider} no longer accepts the gateway's client {client_id}")
        if response.status != 200:
            raise self._failed("read", response)
        return await self._keep(response.json())

    async def update(self, current: dict[str, Any] | None = None) -> dict[str, Any]:
        current = current or await self.stored()
        if current is None:
            raise NotFound(f"the gateway is not registered with {self.provider}")
        client_id = current["client_id"]
        body = registration_jwt(self.key, self.profile, audience=self.audience).encode()
        response = await self._send("PUT", f"{self.path}/{client_id}", "update_registration",
                                    token=await self._token(client_id), body=body)
        if response.status != 200:
            raise self._failed("update", response)
        return await self._keep(response.json())

    async def delete(self) -> None:
        current = await self.stored()
        if current is None:
            raise NotFound(f"the gateway is not registered with {self.provider}")
        client_id = current["client_id"]
        response = await self._send("DELETE", f"{self.path}/{client_id}", "delete_registration",
                                    token=await self._token(client_id))
        if response.status not in (204, 200, 404):
            raise self._failed("delete", response)
        await self.vault.delete(self.provider, REGISTRATION)
