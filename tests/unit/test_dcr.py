"""gateway.onboarding.dcr: the client profile, the signed registration request and the Registrar's idempotent
register/read/update/delete, against an in-memory vault and a fake ASPSP registration endpoint (no network)."""
from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet, RSAKey
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.certificates.keys import SigningKey
from gateway.connectivity.client import UpstreamResponse
from gateway.connectivity.fapi import sign
from gateway.errors import NotFound, ProviderBadResponse, ProviderRejected
from gateway.onboarding.dcr import REGISTRATION, ClientProfile, Registrar, _differs, registration_jwt
from gateway.secrets import Secret

KEY = SigningKey(key=RSAKey.generate_key(2048), kid="k1")
DIRECTORY = SigningKey(key=RSAKey.generate_key(2048), kid="dir-1")
PUBLIC = KeySet.import_key_set({"keys": [KEY.public_jwk()]})
PROVIDER = "stripe-uk"
AUDIENCE = "https://aspsp.example.com"
SOFTWARE_ID = "gwsoftware42"
SUBJECT_DN = "CN=gwsoftware42,OU=0015800001041RHAAY,O=Gateway,C=GB"


def _ssa(software_id: str = SOFTWARE_ID, **extra: Any) -> str:
    return sign(DIRECTORY, {"iss": "OpenBanking Ltd", "iat": int(time.time()), "software_id": software_id,
                            "software_client_name": "Gateway", **extra})


SSA = _ssa()


def _profile(ssa: str = SSA, method: str = "private_key_jwt",
             redirect_uris: tuple[str, ...] = ("https://app.example.com/cb",), scope: str = "openid accounts"
             ) -> ClientProfile:
    return ClientProfile(software_statement=Secret(ssa), redirect_uris=redirect_uris,
                         token_endpoint_auth_method=method, scope=scope, transport_subject_dn=SUBJECT_DN)


# --- profile ------------------------------------------------------------------------------------------------------
def test_software_id_read_from_statement() -> None:
    assert _profile().software_id == SOFTWARE_ID
    assert _profile(_ssa("another-id")).software_id == "another-id"


def test_statement_digest() -> None:
    assert _profile().statement_digest == hashlib.sha256(SSA.encode()).hexdigest()
    assert _profile(_ssa(jti="x")).statement_digest != _profile().statement_digest


def test_metadata_private_key_jwt() -> None:
    meta = _profile(redirect_uris=("https://a/cb", "https://b/cb")).metadata()
    assert meta["token_endpoint_auth_method"] == "private_key_jwt"
    assert meta["token_endpoint_auth_signing_alg"] == "PS256"
    assert "tls_client_auth_subject_dn" not in meta
    assert meta["redirect_uris"] == ["https://a/cb", "https://b/cb"]
    assert meta["response_types"] == ["code id_token"]
    assert set(meta["grant_types"]) == {"authorization_code", "client_credentials", "refresh_token"}
    assert meta["id_token_signed_response_alg"] == "PS256"
    assert meta["request_object_signing_alg"] == "PS256"
    assert meta["scope"] == "openid accounts"
    assert meta["application_type"] == "web"


def test_metadata_tls_client_auth() -> None:
    meta = _profile(method="tls_client_auth").metadata()
    assert meta["token_endpoint_auth_method"] == "tls_client_auth"
    assert meta["tls_client_auth_subject_dn"] == SUBJECT_DN
    assert "token_endpoint_auth_signing_alg" not in meta


# --- registration JWT -----------------------------------------------------------------------------------------------
def test_registration_jwt_claims() -> None:
    before = int(time.time())
    profile = _profile()
    token = registration_jwt(KEY, profile, audience=AUDIENCE)
    decoded = jwt.decode(token, PUBLIC, algorithms=["PS256"])
    assert decoded.header["alg"] == "PS256" and decoded.header["kid"] == "k1"
    claims = decoded.claims
    assert claims["iss"] == SOFTWARE_ID
    assert claims["aud"] == AUDIENCE
    assert before <= claims["iat"] < claims["exp"] <= claims["iat"] + 300
    assert claims["jti"]
    assert claims["software_statement"] == SSA
    for name, value in profile.metadata().items():
        assert claims[name] == value
    other = jwt.decode(registration_jwt(KEY, profile, audience=AUDIENCE), PUBLIC, algorithms=["PS256"])
    assert other.claims["jti"] != claims["jti"]


# --- _differs -------------------------------------------------------------------------------------------------------
def test_differs_ignores_list_order_and_extra_stored_fields() -> None:
    wanted = {"redirect_uris": ["a", "b"], "scope": "openid", "grant_types": ["x", "y"]}
    stored = {"redirect_uris": ["b", "a"], "scope": "openid", "grant_types": ["y", "x"], "client_id": "c1"}
    assert not _differs(stored, wanted)


def test_differs_detects_changes() -> None:
    wanted = {"redirect_uris": ["a", "b"], "scope": "openid"}
    assert _differs({"redirect_uris": ["a", "b"], "scope": "openid accounts"}, wanted)
    assert _differs({"redirect_uris": ["a"], "scope": "openid"}, wanted)
    assert _differs({"redirect_uris": ["a", "c"], "scope": "openid"}, wanted)
    assert _differs({"scope": "openid"}, wanted)
    assert _differs({"redirect_uris": "a b", "scope": "openid"}, wanted)


# --- Registrar with fakes -------------------------------------------------------------------------------------------
class MemoryVault:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Secret] = {}

    async def get(self, provider: str, name: str) -> Secret | None:
        return self.items.get((provider, name))

    async def put(self, provider: str, name: str, value: Secret) -> None:
        assert isinstance(value, Secret)
        self.items[(provider, name)] = value

    async def delete(self, provider: str, name: str) -> None:
        self.items.pop((provider, name), None)


def _response(status: int, body: Any = None, *, raw: bytes | None = None) -> UpstreamResponse:
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
    return UpstreamResponse(status, CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"})), data,
                            PROVIDER)


class FakeASPSP:
    """The ASPSP's /register: creates clients from the signed request, echoing the SSA as real ASPSPs do."""

    def __init__(self) -> None:
        self.clients: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.forced: dict[str, UpstreamResponse] = {}  # method -> canned answer
        self._n = 0

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls]

    async def request(self, method: str, path: str, *, operation: str, data: bytes | None = None,
                      headers: dict[str, str] | None = None, idempotent: bool | None = None) -> UpstreamResponse:
        self.calls.append({"method": method, "path": path, "operation": operation, "data": data,
                           "headers": dict(headers or {}), "idempotent": idempotent})
        if method in self.forced:
            return self.forced[method]
        if method == "POST":
            assert path == "/register"
            claims = jwt.decode(data.decode(), PUBLIC, algorithms=["PS256"]).claims
            self._n += 1
            client_id = f"client-{self._n}"
            stored = {k: v for k, v in claims.items() if k not in ("iss", "iat", "exp", "aud", "jti")}
            self.clients[client_id] = {**stored, "client_id": client_id}
            return _response(201, self.clients[client_id])
        client_id = path.rsplit("/", 1)[1]
        assert headers and headers.get("Authorization") == f"Bearer token-for-{client_id}"
        if client_id not in self.clients:
            return _response(401, {"error": "invalid_client"})
        if method == "GET":
            return _response(200, self.clients[client_id])
        if method == "PUT":
            claims = jwt.decode(data.decode(), PUBLIC, algorithms=["PS256"]).claims
            stored = {k: v for k, v in claims.items() if k not in ("iss", "iat", "exp", "aud", "jti")}
            self.clients[client_id] = {**stored, "client_id": client_id}
            return _response(200, self.clients[client_id])
        if method == "DELETE":
            del self.clients[client_id]
            return _response(204)
        raise AssertionError(method)


async def _token(client_id: str) -> str:
    return f"token-for-{client_id}"


def _registrar(upstream: FakeASPSP, vault: MemoryVault, profile: ClientProfile | None = None) -> Registrar:
    return Registrar(PROVIDER, upstream, vault, KEY, profile or _profile(), registration_path="/register",
                     audience=AUDIENCE, management_token=_token)


@pytest.fixture
def aspsp() -> FakeASPSP:
    return FakeASPSP()


@pytest.fixture
def vault() -> MemoryVault:
    return MemoryVault()


async def test_first_register_creates(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    outcome, record = await _registrar(aspsp, vault).register()
    assert outcome == "created"
    assert aspsp.methods() == ["POST"]
    call = aspsp.calls[0]
    assert call["headers"]["Content-Type"] == "application/jwt"
    assert "Authorization" not in call["headers"]
    assert call["idempotent"] is False
    assert record["client_id"] == "client-1"
    assert record["software_statement_sha256"] == hashlib.sha256(SSA.encode()).hexdigest()
    stored = orjson.loads(vault.items[(PROVIDER, REGISTRATION)].reveal())
    assert stored["client_id"] == "client-1"


async def test_second_register_keeps(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    outcome, record = await _registrar(aspsp, vault).register()
    assert outcome == "kept"
    assert record["client_id"] == "client-1"
    assert aspsp.methods() == ["POST", "GET"]
    get = aspsp.calls[1]
    assert get["path"] == "/register/client-1"
    assert get["headers"]["Authorization"] == "Bearer token-for-client-1"
    assert get["idempotent"] is True
    assert len(aspsp.clients) == 1


async def test_metadata_change_updates(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    changed = _profile(redirect_uris=("https://app.example.com/cb", "https://app.example.com/new"))
    outcome, record = await _registrar(aspsp, vault, changed).register()
    assert outcome == "updated"
    assert aspsp.methods() == ["POST", "GET", "PUT"]
    put = aspsp.calls[2]
    assert put["path"] == "/register/client-1"
    assert put["headers"]["Authorization"] == "Bearer token-for-client-1"
    assert put["headers"]["Content-Type"] == "application/jwt"
    assert put["idempotent"] is False
    assert record["client_id"] == "client-1"
    assert sorted(record["redirect_uris"]) == ["https://app.example.com/cb", "https://app.example.com/new"]
    assert sorted(aspsp.clients["client-1"]["redirect_uris"]) == sorted(record["redirect_uris"])
    # and once updated, the next run keeps it
    outcome, _ = await _registrar(aspsp, vault, changed).register()
    assert outcome == "kept"


async def test_redirect_uri_reorder_is_kept(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault, _profile(redirect_uris=("https://a/cb", "https://b/cb"))).register()
    outcome, _ = await _registrar(aspsp, vault, _profile(redirect_uris=("https://b/cb", "https://a/cb"))).register()
    assert outcome == "kept"
    assert "PUT" not in aspsp.methods()


async def test_client_unknown_upstream_is_created_anew(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    aspsp.clients.clear()  # the ASPSP forgot the client: GET answers 401
    outcome, record = await _registrar(aspsp, vault).register()
    assert outcome == "created"
    assert aspsp.methods() == ["POST", "GET", "POST"]
    assert record["client_id"] == "client-2"
    stored = orjson.loads(vault.items[(PROVIDER, REGISTRATION)].reveal())
    assert stored["client_id"] == "client-2"


async def test_client_not_found_upstream_is_created_anew(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    aspsp.forced["GET"] = _response(404, {"error": "not_found"})
    outcome, _ = await _registrar(aspsp, vault).register()
    assert outcome == "created"
    assert aspsp.methods() == ["POST", "GET", "POST"]


async def test_other_software_statement_creates(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    other = _profile(_ssa("gwsoftware43"))
    outcome, record = await _registrar(aspsp, vault, other).register()
    assert outcome == "created"
    assert aspsp.methods() == ["POST", "POST"]  # the stored client is for another statement: not read back
    assert record["client_id"] == "client-2"
    assert record["software_statement_sha256"] == other.statement_digest


async def test_read_when_nothing_stored(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    with pytest.raises(NotFound):
        await _registrar(aspsp, vault).read()
    assert aspsp.calls == []


async def test_update_when_nothing_stored(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    with pytest.raises(NotFound):
        await _registrar(aspsp, vault).update()
    assert aspsp.calls == []


async def test_delete_when_nothing_stored(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    with pytest.raises(NotFound):
        await _registrar(aspsp, vault).delete()
    assert aspsp.calls == []


async def test_read_and_delete(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    registrar = _registrar(aspsp, vault)
    await registrar.register()
    record = await registrar.read()
    assert record["client_id"] == "client-1"
    await registrar.delete()
    assert aspsp.methods() == ["POST", "GET", "DELETE"]
    assert aspsp.calls[-1]["path"] == "/register/client-1"
    assert aspsp.calls[-1]["idempotent"] is True
    assert vault.items == {}
    assert await registrar.stored() is None
    with pytest.raises(NotFound):
        await registrar.read()


async def test_delete_of_client_already_gone_clears_vault(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    registrar = _registrar(aspsp, vault)
    await registrar.register()
    aspsp.forced["DELETE"] = _response(404)
    await registrar.delete()
    assert vault.items == {}


async def test_delete_refused_keeps_vault(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    registrar = _registrar(aspsp, vault)
    await registrar.register()
    aspsp.forced["DELETE"] = _response(403, {"error": "access_denied"})
    with pytest.raises(ProviderRejected):
        await registrar.delete()
    assert (PROVIDER, REGISTRATION) in vault.items


async def test_read_of_unknown_client_is_not_found(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    registrar = _registrar(aspsp, vault)
    await registrar.register()
    aspsp.clients.clear()
    with pytest.raises(NotFound):
        await registrar.read()


async def test_provider_400_on_create_names_oauth_error(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    aspsp.forced["POST"] = _response(400, {"error": "invalid_software_statement",
                                           "error_description": "the SSA signature does not verify"})
    with pytest.raises(ProviderRejected) as caught:
        await _registrar(aspsp, vault).register()
    exc = caught.value
    assert exc.provider_code == "invalid_software_statement"
    assert "invalid_software_statement" in exc.detail
    assert "the SSA signature does not verify" in exc.detail
    assert exc.retryable is False
    assert vault.items == {}


async def test_provider_500_on_create_is_retryable(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    aspsp.forced["POST"] = _response(503, raw=b"<html>down</html>")
    with pytest.raises(ProviderRejected) as caught:
        await _registrar(aspsp, vault).register()
    assert caught.value.provider_code == "http_503"
    assert caught.value.retryable is True


async def test_create_without_client_id_is_bad_response(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    aspsp.forced["POST"] = _response(201, {"redirect_uris": ["x"]})
    with pytest.raises(ProviderBadResponse):
        await _registrar(aspsp, vault).register()
    assert vault.items == {}


async def test_update_refused(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    aspsp.forced["PUT"] = _response(400, {"error": "invalid_redirect_uri"})
    changed = _profile(redirect_uris=("https://other/cb",))
    with pytest.raises(ProviderRejected) as caught:
        await _registrar(aspsp, vault, changed).register()
    assert caught.value.provider_code == "invalid_redirect_uri"


async def test_record_never_contains_software_statement(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    registrar = _registrar(aspsp, vault)
    _, created = await registrar.register()
    assert "software_statement" in aspsp.clients["client-1"]  # the fake echoes it, like ASPSPs do
    assert "software_statement" not in created
    sealed = vault.items[(PROVIDER, REGISTRATION)].reveal()
    assert SSA not in sealed
    assert "software_statement\"" not in sealed
    _, kept = await registrar.register()
    assert "software_statement" not in kept
    assert SSA not in vault.items[(PROVIDER, REGISTRATION)].reveal()
    changed = _registrar(aspsp, vault, _profile(scope="openid accounts payments"))
    outcome, updated = await changed.register()
    assert outcome == "updated"
    assert "software_statement" not in updated
    assert SSA not in vault.items[(PROVIDER, REGISTRATION)].reveal()


async def test_statement_is_sent_in_the_signed_request(aspsp: FakeASPSP, vault: MemoryVault) -> None:
    await _registrar(aspsp, vault).register()
    payload = orjson.loads(jws.extract_compact(aspsp.calls[0]["data"]).payload)
    assert payload["software_statement"] == SSA
    assert payload["iss"] == SOFTWARE_ID
    assert payload["aud"] == AUDIENCE
