"""The simulated Stripe UK ASPSP over real HTTPS with mutual TLS: discovery, DCR v3.2, client authentication, the FAPI
hybrid flow, account information, faults and conformance.

Every AIS answer received through `Upstream.call` is checked against the v3.1.2 spec's response schema for its status
(401 and 404, which the spec gives no body, carry the contract's OBErrorResponse1 and are checked against that), so
each test is also a conformance test; `test_every_ais_operation_conforms` covers them all.
"""
from __future__ import annotations

import json
import re
import ssl
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from adapters.stripe_uk.sandbox import StripeUKSandbox
from adapters.stripe_uk.sandbox_ais import AIS_BASE, ROUTES
from adapters.stripe_uk.sandbox_data import (
    ACC_OLIVIA_BUSINESS, ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS, ACC_RAHUL_CURRENT, ACC_RAHUL_SAVINGS, ACCOUNTS,
    PSU_RAHUL,
)
from adapters.stripe_uk.sandbox_jose import half_hash
from gateway.certificates.keys import SigningKey, certificate_subject, client_ssl_context, load_signing_key
from gateway.certificates.local import LocalMaterial, ensure_local_material
from tests.sandbox.replies import Reply

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
REDIRECT = "http://127.0.0.1:8080/callback"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALL_READ = ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits",
            "ReadTransactionsDebits", "ReadParty"]


@pytest.fixture(scope="session")
def material(tmp_path_factory: pytest.TempPathFactory) -> LocalMaterial:
    return ensure_local_material(tmp_path_factory.mktemp("stripe-uk-material"))


def _sandbox(material: LocalMaterial, **kw: Any) -> StripeUKSandbox:
    options: dict[str, Any] = dict(server_cert=material.server_cert, server_key=material.server_key,
                                   client_ca=material.ca_cert, keystore=material.keystore(), now=lambda: NOW,
                                   directory_jwks=json.loads(material.directory_jwks.read_text()))
    return StripeUKSandbox(**{**options, **kw})


@pytest.fixture
async def sandbox(material):
    sim = _sandbox(material)
    await sim.start()
    yield sim
    await sim.stop()


def _sign(key: SigningKey | RSAKey, claims: dict[str, Any], kid: str | None = None) -> str:
    raw = key.key if isinstance(key, SigningKey) else key
    kid = kid or (key.kid if isinstance(key, SigningKey) else "k")
    return jwt.encode({"alg": "PS256", "kid": kid, "typ": "JWT"}, claims, raw, algorithms=["PS256"])


class Upstream:
    """A client of the simulator holding the gateway's material; every AIS answer is checked against the spec."""

    def __init__(self, sandbox: StripeUKSandbox, material: LocalMaterial, session: aiohttp.ClientSession,
                 anonymous: aiohttp.ClientSession) -> None:
        self.sandbox, self.material, self.session, self.anonymous = sandbox, material, session, anonymous
        self.key = load_signing_key(material.signing_key)
        self.seen: set[tuple[str, str, int]] = set()
        self.bodies_on_bodiless: set[int] = set()
        self._error_schema = sandbox.spec.validator({"$ref": "#/components/schemas/OBErrorResponse1"}, "response")

    async def call(self, method: str, path: str, *, token: str | None = None, mtls: bool = True,
                   headers: dict[str, str] | None = None, check: bool = True, **kw: Any) -> Reply:
        sent = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
                **(headers or {})}
        url = path if path.startswith("https://") else self.sandbox.issuer + path
        session = self.session if mtls else self.anonymous
        async with session.request(method, url, headers=sent, **kw) as resp:
            reply = Reply(resp.status, resp.headers, await resp.read())
        local = urlsplit(url).path
        if check and local.startswith(AIS_BASE):
            self._conforms(method, local[len(AIS_BASE):], reply)
        return reply

    def _conforms(self, method: str, path: str, reply: Reply) -> None:
        found = self.sandbox.spec.find(method, path)
        if found is None:
            return
        op = found[0]
        if reply.status in (401, 404) and reply.raw:
            assert list(self._error_schema.iter_errors(reply.body)) == [], reply.body
            self.bodies_on_bodiless.add(reply.status)
        else:
            problems = op.check_response(reply.status, reply.raw, reply.headers.get("Content-Type", "application/json"))
            assert problems == [], f"{method} {path} -> {reply.status} breaks the spec: {problems}"
        self.seen.add((op.method, op.template, reply.status))

    # --- registration ---------------------------------------------------------------------------------------------
    def registration_jwt(self, key: SigningKey | RSAKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.material.software_id, "iat": now, "exp": now + 300, "aud": self.sandbox.issuer,
                "jti": str(uuid.uuid4()), "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "PS256",
                "grant_types": ["authorization_code", "client_credentials", "refresh_token"],
                "response_types": ["code id_token"], "scope": "openid accounts payments",
                "software_statement": self.material.software_statement.read_text(), "application_type": "web",
                "id_token_signed_response_alg": "PS256", "request_object_signing_alg": "PS256", **claims}
        return _sign(key or self.key, {k: v for k, v in body.items() if v is not None},
                     kid=self.key.kid if isinstance(key, RSAKey) else None)

    async def register(self, token: str | None = None, *, method: str = "POST", path: str = "/register",
                       bearer: str | None = None, **claims: Any) -> Reply:
        return await self.call(method, path, data=token or self.registration_jwt(**claims), token=bearer,
                               headers={"Content-Type": "application/jwt"})

    async def client(self, method: str = "private_key_jwt") -> str:
        extra = {"tls_client_auth_subject_dn": self.subject(), "token_endpoint_auth_signing_alg": None} \
            if method == "tls_client_auth" else {}
        reply = await self.register(token_endpoint_auth_method=method, **extra)
        assert reply.status == 201, reply.body
        return reply.body["client_id"]

    def subject(self) -> str:
        return certificate_subject(self.material.transport_cert.read_bytes())

    # --- tokens ---------------------------------------------------------------------------------------------------
    def assertion(self, client_id: str, key: SigningKey | RSAKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": client_id, "sub": client_id, "aud": self.sandbox.token_endpoint, "iat": now, "exp": now + 300,
                "jti": str(uuid.uuid4()), **claims}
        return _sign(key or self.key, body, kid=self.key.kid if isinstance(key, RSAKey) else None)

    async def token(self, client_id: str, form: dict[str, str], *, tls_auth: bool = False,
                    assertion: str | None = None, mtls: bool = True) -> Reply:
        auth = {"client_id": client_id} if tls_auth else {
            "client_assertion_type": JWT_BEARER, "client_assertion": assertion or self.assertion(client_id)}
        return await self.call("POST", "/token", data={**form, **auth}, mtls=mtls)

    async def cc_token(self, client_id: str, scope: str = "accounts") -> str:
        reply = await self.token(client_id, {"grant_type": "client_credentials", "scope": scope})
        assert reply.status == 200, reply.body
        return reply.body["access_token"]

    # --- consents and authorisation ---------------------------------------------------------------------------------
    async def consent(self, client_id: str, permissions: list[str] | None = None, **data: Any) -> str:
        reply = await self.call("POST", AIS_BASE + "/account-access-consents", token=await self.cc_token(client_id),
                                json={"Data": {"Permissions": permissions or ALL_READ, **data}, "Risk": {}})
        assert reply.status == 201, reply.body
        return reply.body["Data"]["ConsentId"]

    def request_object(self, client_id: str, consent_id: str, key: SigningKey | RSAKey | None = None,
                       **claims: Any) -> str:
        now = int(time.time())
        intent = {"openbanking_intent_id": {"value": consent_id, "essential": True},
                  "acr": {"essential": True, "values": ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"]}}
        body = {"iss": client_id, "aud": self.sandbox.issuer, "response_type": "code id_token", "client_id": client_id,
                "redirect_uri": REDIRECT, "scope": "openid accounts", "state": "st-1", "nonce": "n-1", "iat": now,
                "exp": now + 600, "claims": {"id_token": intent}, **claims}
        return _sign(key or self.key, body, kid=self.key.kid if isinstance(key, RSAKey) else None)

    def authorize_url(self, client_id: str, request: str, **query: str) -> str:
        params = {"response_type": "code id_token", "client_id": client_id, "redirect_uri": REDIRECT,
                  "scope": "openid accounts", "state": "st-1", "nonce": "n-1", "request": request, **query}
        return f"{self.sandbox.issuer}/authorize?{urlencode(params)}"

    async def authorise(self, client_id: str, consent_id: str, choice: dict[str, Any] | None = None) -> dict:
        url = self.authorize_url(client_id, self.request_object(client_id, consent_id))
        page = await self.call("GET", url, mtls=False)
        assert page.status == 200, page.body
        done = await self.call("POST", page.body["complete"]["url"], json=choice, mtls=False)
        assert done.status == 200, done.body
        return {k: v[0] for k, v in parse_qs(urlsplit(done.body["redirect_to"]).fragment).items()}

    async def data_tokens(self, permissions: list[str] | None = None, choice: dict[str, Any] | None = None,
                          **data: Any) -> tuple[str, str, dict[str, Any]]:
        """A client, an authorised consent and the token answer of its code."""
        client_id = await self.client()
        consent_id = await self.consent(client_id, permissions, **data)
        fragment = await self.authorise(client_id, consent_id, choice)
        reply = await self.token(client_id, {"grant_type": "authorization_code", "code": fragment["code"],
                                             "redirect_uri": REDIRECT})
        assert reply.status == 200, reply.body
        return client_id, consent_id, reply.body


@pytest.fixture
async def upstream(sandbox, material):
    trust = ssl.create_default_context(cafile=str(material.ca_cert))
    mtls = client_ssl_context(material.transport_cert, material.transport_key, material.ca_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=mtls)) as session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as anonymous:
        yield Upstream(sandbox, material, session, anonymous)


def ais(path: str) -> str:
    return AIS_BASE + path


# --- discovery and mutual TLS ------------------------------------------------------------------------------------
async def test_discovery_and_jwks(upstream, sandbox):
    reply = await upstream.call("GET", "/.well-known/openid-configuration", mtls=False)
    doc = reply.body
    assert doc["issuer"] == sandbox.issuer and sandbox.issuer.startswith("https://127.0.0.1:")
    assert doc["token_endpoint"] == sandbox.issuer + "/token" and doc["registration_endpoint"].endswith("/register")
    assert doc["response_types_supported"] == ["code id_token"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "tls_client_auth"]
    assert doc["tls_client_certificate_bound_access_tokens"] is True and doc["request_parameter_supported"] is True
    assert doc["acr_values_supported"] == ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"]
    keys = (await upstream.call("GET", "/jwks", mtls=False)).body["keys"]
    assert [(k["kty"], k["alg"], k["use"], k["kid"]) for k in keys] == [("RSA", "PS256", "sig", sandbox.kid)]
    assert "d" not in keys[0]
    signed = sandbox.sign_id_token({"hello": "world"})
    assert jwt.decode(signed, KeySet.import_key_set({"keys": keys}), algorithms=["PS256"]).claims == {"hello": "world"}


async def test_mutual_tls_is_required(upstream):
    for path, data in (("/register", upstream.registration_jwt()), ("/token", {"grant_type": "client_credentials"})):
        reply = await upstream.call("POST", path, data=data, mtls=False)
        assert (reply.status, reply.body) == (401, {"error": "invalid_client", "error_description":
                                                    "a client certificate is required (mutual TLS)"})
    reply = await upstream.call("GET", ais("/accounts"), token="anything", mtls=False)
    assert reply.status == 401 and reply.body["Code"] == "401"
    assert reply.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Invalid"
    assert "client certificate" in reply.body["Errors"][0]["Message"]
    assert (await upstream.call("GET", "/.well-known/openid-configuration", mtls=False)).status == 200


# --- dynamic client registration ----------------------------------------------------------------------------------
async def test_registration_with_either_client_authentication(upstream, sandbox):
    reply = await upstream.register()
    assert reply.status == 201
    body = reply.body
    assert uuid.UUID(body["client_id"]) and body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["software_id"] == upstream.material.software_id and body["redirect_uris"] == [REDIRECT]
    assert body["scope"] == "openid accounts payments" and body["token_endpoint_auth_signing_alg"] == "PS256"
    properties = sandbox.dcr_spec.validator({"allOf": [
        {"$ref": "#/components/schemas/OBRegistrationProperties1"}, {"required": ["client_id"]}]}, "response")
    assert list(properties.iter_errors(body)) == []
    tls = await upstream.register(token_endpoint_auth_method="tls_client_auth", token_endpoint_auth_signing_alg=None,
                                  tls_client_auth_subject_dn=upstream.subject())
    assert tls.status == 201 and tls.body["tls_client_auth_subject_dn"].startswith("CN=gwlocalsoftware01,OU=")
    assert tls.body["client_id"] != body["client_id"] and set(sandbox.clients) == {body["client_id"],
                                                                                   tls.body["client_id"]}
    wrong_dn = await upstream.register(token_endpoint_auth_method="tls_client_auth",
                                       tls_client_auth_subject_dn="CN=someone-else")
    assert (wrong_dn.status, wrong_dn.body["error"]) == (400, "invalid_client_metadata")


async def test_registration_refusals(upstream, material):
    ssa = material.software_statement.read_text()
    header, payload, _ = ssa.split(".")
    forged_ssa = _sign(RSAKey.generate_key(2048), json.loads(_b64(payload)), kid=json.loads(_b64(header))["kid"])
    cases = [
        ({"software_statement": forged_ssa}, "invalid_software_statement"),
        ({"redirect_uris": ["https://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"iss": "someothersoftware"}, "invalid_software_statement"),
        ({"aud": "https://elsewhere.example"}, "invalid_client_metadata"),
        ({"exp": int(time.time()) - 120}, "invalid_client_metadata"),
        ({"jti": "not-a-uuid"}, "invalid_client_metadata"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"scope": "openid accounts admin"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
        ({"request_object_signing_alg": "RS256"}, "invalid_client_metadata"),
    ]
    for claims, error in cases:
        reply = await upstream.register(**claims)
        assert (reply.status, reply.body["error"]) == (400, error), (claims, reply.body)
        assert reply.body["error_description"]
    forged = await upstream.register(upstream.registration_jwt(key=RSAKey.generate_key(2048)))
    assert (forged.status, forged.body["error"]) == (400, "invalid_client_metadata")
    token = upstream.registration_jwt()
    assert (await upstream.register(token)).status == 201
    replay = await upstream.register(token)
    assert (replay.status, replay.body["error"]) == (400, "invalid_client_metadata") and "jti" in \
        replay.body["error_description"]
    not_jwt = await upstream.call("POST", "/register", json={"redirect_uris": [REDIRECT]})
    assert (not_jwt.status, not_jwt.body["error"]) == (400, "invalid_client_metadata")


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def test_registration_management(upstream, sandbox):
    client_id = await upstream.client()
    other = await upstream.client()
    path = f"/register/{client_id}"
    assert (await upstream.call("GET", path)).status == 401  # no token
    bad = await upstream.call("GET", path, token="nope")
    assert bad.status == 401 and bad.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    token = await upstream.cc_token(client_id)
    got = await upstream.call("GET", path, token=token)
    assert got.status == 200 and got.body["client_id"] == client_id
    assert (await upstream.call("GET", f"/register/{other}", token=token)).status == 403
    updated = await upstream.register(method="PUT", path=path, bearer=token, scope="openid accounts")
    assert updated.status == 200 and updated.body["scope"] == "openid accounts" and updated.body["client_id"] == \
        client_id
    assert (await upstream.call("GET", path, token=token)).body["scope"] == "openid accounts"
    consent_id = await upstream.consent(client_id)
    deleted = await upstream.call("DELETE", path, token=token)
    assert deleted.status == 204 and client_id not in sandbox.clients and consent_id not in sandbox.consents
    assert (await upstream.call("GET", path, token=token)).status == 401
    assert (await upstream.token(client_id, {"grant_type": "client_credentials"})).status == 401


# --- the token endpoint ---------------------------------------------------------------------------------------------
async def test_client_authentication_refusals(upstream):
    client_id = await upstream.client()
    tls_client = await upstream.client("tls_client_auth")
    form = {"grant_type": "client_credentials", "scope": "accounts"}
    now = int(time.time())
    assertions = {
        "wrong key": upstream.assertion(client_id, key=RSAKey.generate_key(2048)),
        "wrong aud": upstream.assertion(client_id, aud="https://elsewhere.example/token"),
        "expired": upstream.assertion(client_id, iat=now - 900, exp=now - 300),
        "too long-lived": upstream.assertion(client_id, exp=now + 3600),
        "sub differs": upstream.assertion(client_id, sub="someone"),
        "unknown client": upstream.assertion("no-such-client"),
        "method mismatch": upstream.assertion(tls_client),
    }
    for why, assertion in assertions.items():
        reply = await upstream.token(client_id, form, assertion=assertion)
        assert (reply.status, reply.body["error"]) == (401, "invalid_client"), why
    used = upstream.assertion(client_id)
    assert (await upstream.token(client_id, form, assertion=used)).status == 200
    replay = await upstream.token(client_id, form, assertion=used)
    assert replay.status == 401 and "jti" in replay.body["error_description"]
    assert (await upstream.token(client_id, form, tls_auth=True)).status == 401  # private_key_jwt client
    tls = await upstream.token(tls_client, form, tls_auth=True)
    assert tls.status == 200 and tls.body["token_type"] == "Bearer" and tls.body["scope"] == "accounts"
    assert (await upstream.call("POST", "/token", data=form)).body["error"] == "invalid_client"


async def test_client_credentials_grant(upstream):
    client_id = await upstream.client()
    reply = await upstream.token(client_id, {"grant_type": "client_credentials", "scope": "accounts"})
    assert reply.status == 200 and reply.body["expires_in"] == 300 and reply.body["scope"] == "accounts"
    assert reply.headers["Cache-Control"] == "no-store"
    for form, error in (({"grant_type": "client_credentials", "scope": "openid"}, "invalid_scope"),
                        ({"grant_type": "password"}, "unsupported_grant_type"),
                        ({"scope": "accounts"}, "invalid_request"),
                        ({"grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT},
                         "invalid_grant"),
                        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant")):
        refused = await upstream.token(client_id, form)
        assert (refused.status, refused.body["error"]) == (400, error), form


async def test_authorization_code_is_single_use_and_refresh_works(upstream, sandbox):
    client_id, consent_id, tokens = await upstream.data_tokens()
    assert tokens["scope"] == "openid accounts" and tokens["refresh_token"] and tokens["id_token"]
    claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(sandbox.jwks()), algorithms=["PS256"]).claims
    assert (claims["sub"], claims["aud"], claims["nonce"]) == (consent_id, client_id, "n-1")
    assert (await upstream.call("GET", ais("/accounts"), token=tokens["access_token"])).status == 200

    refreshed = await upstream.token(client_id, {"grant_type": "refresh_token",
                                                 "refresh_token": tokens["refresh_token"]})
    assert refreshed.status == 200 and refreshed.body["refresh_token"] == tokens["refresh_token"]
    assert refreshed.body["access_token"] != tokens["access_token"]
    assert (await upstream.call("GET", ais("/accounts"), token=refreshed.body["access_token"])).status == 200

    # A second use of a code is refused and revokes what the first use issued.
    consent2 = await upstream.consent(client_id)
    fragment = await upstream.authorise(client_id, consent2)
    form = {"grant_type": "authorization_code", "code": fragment["code"], "redirect_uri": REDIRECT}
    wrong_redirect = await upstream.token(client_id, {**form, "redirect_uri": "http://127.0.0.1:8080/other"})
    assert (wrong_redirect.status, wrong_redirect.body["error"]) == (400, "invalid_grant")
    first = await upstream.token(client_id, form)
    assert first.status == 200
    second = await upstream.token(client_id, form)
    assert (second.status, second.body["error"]) == (400, "invalid_grant")
    assert (await upstream.call("GET", ais("/accounts"), token=first.body["access_token"])).status == 401
    revoked_refresh = await upstream.token(client_id, {"grant_type": "refresh_token",
                                                       "refresh_token": first.body["refresh_token"]})
    assert revoked_refresh.body["error"] == "invalid_grant"


async def test_codes_expire(material):
    sim = _sandbox(material, code_ttl=0.0)
    await sim.start()
    try:
        trust = client_ssl_context(material.transport_cert, material.transport_key, material.ca_cert)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            upstream = Upstream(sim, material, session, session)
            client_id = await upstream.client()
            fragment = await upstream.authorise(client_id, await upstream.consent(client_id))
            reply = await upstream.token(client_id, {"grant_type": "authorization_code", "code": fragment["code"],
                                                     "redirect_uri": REDIRECT})
            assert reply.body == {"error": "invalid_grant", "error_description": "the authorization code has expired"}
    finally:
        await sim.stop()


# --- authorisation ------------------------------------------------------------------------------------------------
async def test_authorisation_approve_with_a_verifiable_id_token(upstream, sandbox):
    client_id = await upstream.client()
    consent_id = await upstream.consent(client_id)
    url = upstream.authorize_url(client_id, upstream.request_object(client_id, consent_id))
    page = (await upstream.call("GET", url, mtls=False)).body
    assert page["consent_id"] == consent_id and page["permissions"] == ALL_READ
    assert [a["AccountId"] for a in page["accounts"]] == [ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS, ACC_OLIVIA_BUSINESS]
    assert {p["psu_id"] for p in page["psus"]} >= {PSU_RAHUL}
    assert page["complete"]["method"] == "POST" and page["complete"]["outcomes"] == ["approve", "reject"]
    assert parse_qs(urlsplit(page["complete"]["url"]).query) == parse_qs(urlsplit(url).query)
    done = await upstream.call("POST", url, json={"psu": PSU_RAHUL, "accounts": [ACC_RAHUL_SAVINGS]}, mtls=False)
    target = urlsplit(done.body["redirect_to"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    fragment = {k: v[0] for k, v in parse_qs(target.fragment).items()}
    assert fragment["state"] == "st-1" and set(fragment) == {"code", "id_token", "state"}
    keys = KeySet.import_key_set((await upstream.call("GET", "/jwks", mtls=False)).body)
    claims = jwt.decode(fragment["id_token"], keys, algorithms=["PS256"]).claims
    assert claims["iss"] == sandbox.issuer and claims["aud"] == client_id and claims["sub"] == consent_id
    assert claims["openbanking_intent_id"] == consent_id and claims["nonce"] == "n-1"
    assert claims["c_hash"] == half_hash(fragment["code"]) and claims["s_hash"] == half_hash("st-1")
    assert claims["acr"] == "urn:openbanking:psd2:sca" and claims["exp"] - claims["iat"] == 300
    consent = sandbox.consents[consent_id]
    assert (consent.status, consent.psu_id, consent.account_ids) == ("Authorised", PSU_RAHUL, [ACC_RAHUL_SAVINGS])
    again = await upstream.call("GET", url, mtls=False)  # the intent is no longer awaiting authorisation
    assert (again.status, again.body["error"]) == (400, "invalid_request")


async def test_authorisation_reject(upstream, sandbox):
    client_id = await upstream.client()
    consent_id = await upstream.consent(client_id)
    url = upstream.authorize_url(client_id, upstream.request_object(client_id, consent_id))
    done = await upstream.call("POST", url, json={"outcome": "reject"}, mtls=False)
    fragment = parse_qs(urlsplit(done.body["redirect_to"]).fragment)
    assert fragment["error"] == ["access_denied"] and fragment["state"] == ["st-1"]
    assert sandbox.consents[consent_id].status == "Rejected"
    token = await upstream.cc_token(client_id)
    assert (await upstream.call("GET", ais(f"/account-access-consents/{consent_id}"),
                                token=token)).body["Data"]["Status"] == "Rejected"


async def test_authorisation_refusals(upstream, sandbox):
    client_id = await upstream.client()
    other_client = await upstream.client()
    consent_id = await upstream.consent(client_id)
    now = int(time.time())
    obj = upstream.request_object
    cases = {
        "forged signature": (upstream.authorize_url(client_id, obj(client_id, consent_id,
                                                                   key=RSAKey.generate_key(2048))),
                             "invalid_request_object"),
        "expired": (upstream.authorize_url(client_id, obj(client_id, consent_id, iat=now - 900, exp=now - 60)),
                    "invalid_request_object"),
        "wrong aud": (upstream.authorize_url(client_id, obj(client_id, consent_id, aud="https://x.example")),
                      "invalid_request_object"),
        "redirect not registered": (upstream.authorize_url(client_id, obj(
            client_id, consent_id, redirect_uri="https://evil.example/cb"), redirect_uri="https://evil.example/cb"),
            "invalid_request"),
        "redirect differs from the request object": (upstream.authorize_url(
            client_id, obj(client_id, consent_id), redirect_uri="https://evil.example/cb"), "invalid_request"),
        "another client's intent": (upstream.authorize_url(other_client, obj(other_client, consent_id)),
                                    "invalid_request"),
        "no intent": (upstream.authorize_url(client_id, obj(client_id, consent_id, claims={})),
                      "invalid_request_object"),
        "unknown client": (upstream.authorize_url("nobody", obj(client_id, consent_id)), "unauthorized_client"),
        "no request object": (upstream.authorize_url(client_id, ""), "invalid_request"),
        "wrong response_type": (upstream.authorize_url(client_id, obj(client_id, consent_id), response_type="code"),
                                "invalid_request"),
    }
    for why, (url, error) in cases.items():
        for method in ("GET", "POST"):
            reply = await upstream.call(method, url, mtls=False)
            assert (reply.status, reply.body["error"]) == (400, error), (why, method, reply.body)
    assert sandbox.consents[consent_id].status == "AwaitingAuthorisation"
    url = upstream.authorize_url(client_id, obj(client_id, consent_id))
    for choice in ({"outcome": "maybe"}, {"accounts": [ACC_RAHUL_CURRENT]}, {"psu": "nobody"}, {"accounts": []}):
        assert (await upstream.call("POST", url, json=choice, mtls=False)).status == 400, choice
    revoked = await upstream.consent(client_id)
    sandbox.revoke_consent(revoked)
    reply = await upstream.call("GET", upstream.authorize_url(client_id, obj(client_id, revoked)), mtls=False)
    assert reply.status == 400 and "Revoked" in reply.body["error_description"]


# --- account information -------------------------------------------------------------------------------------------
async def test_consent_lifecycle(upstream, sandbox):
    client_id = await upstream.client()
    token = await upstream.cc_token(client_id)
    body = {"Data": {"Permissions": ["ReadAccountsBasic", "ReadBalances"],
                     "ExpirationDateTime": "2027-05-01T00:00:00+00:00",
                     "TransactionFromDateTime": "2026-01-01T00:00:00+00:00"}, "Risk": {}}
    created = await upstream.call("POST", ais("/account-access-consents"), token=token, json=body,
                                  headers={"x-fapi-interaction-id": "int-123"})
    assert created.status == 201 and created.headers["x-fapi-interaction-id"] == "int-123"
    data = created.body["Data"]
    assert re.fullmatch(r"aac-[0-9a-f-]{36}", data["ConsentId"]) and data["Status"] == "AwaitingAuthorisation"
    assert data["CreationDateTime"] == "2026-11-23T15:00:00+00:00"
    assert data["ExpirationDateTime"] == "2027-05-01T00:00:00+00:00"
    assert created.body["Links"]["Self"].endswith(f"/account-access-consents/{data['ConsentId']}")
    path = ais(f"/account-access-consents/{data['ConsentId']}")
    got = await upstream.call("GET", path, token=token)
    assert got.body["Data"] == data and uuid.UUID(got.headers["x-fapi-interaction-id"])
    other_token = await upstream.cc_token(await upstream.client())
    assert (await upstream.call("GET", path, token=other_token)).body["Errors"][0]["ErrorCode"] == \
        "UK.OBIE.Resource.ConsentMismatch"
    deleted = await upstream.call("DELETE", path, token=token)
    assert deleted.status == 204 and deleted.raw == b"" and "x-fapi-interaction-id" in deleted.headers
    assert (await upstream.call("GET", path, token=token)).body["Data"]["Status"] == "Revoked"
    missing = await upstream.call("GET", ais("/account-access-consents/aac-nope"), token=token)
    assert missing.status == 404 and missing.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"


async def _refused_consents(upstream: Upstream, token: str) -> None:
    post = ais("/account-access-consents")
    for body, code, where in (
        ({"Data": {"Permissions": ["ReadEverything"]}, "Risk": {}}, "UK.OBIE.Field.Invalid", "Data.Permissions[0]"),
        ({"Data": {"Permissions": ["ReadAccountsBasic"]}}, "UK.OBIE.Field.Missing", "Risk"),
        ({"Data": {"Permissions": []}, "Risk": {}}, "UK.OBIE.Field.Invalid", "Data.Permissions"),
        ({"Data": {"Permissions": ["ReadTransactionsDetail"]}, "Risk": {}}, "UK.OBIE.Field.Invalid",
         "Data.Permissions"),
        ({"Data": {"Permissions": ["ReadTransactionsCredits"]}, "Risk": {}}, "UK.OBIE.Field.Invalid",
         "Data.Permissions"),
        ({"Data": {"Permissions": ["ReadBalances"], "ExpirationDateTime": "2020-01-01T00:00:00Z"}, "Risk": {}},
         "UK.OBIE.Field.InvalidDate", "Data.ExpirationDateTime"),
        ({"Data": {"Permissions": ["ReadBalances"], "ExpirationDateTime": "soon"}, "Risk": {}},
         "UK.OBIE.Field.InvalidDate", "Data.ExpirationDateTime"),
    ):
        reply = await upstream.call("POST", post, token=token, json=body)
        assert reply.status == 400, body
        assert (reply.body["Errors"][0]["ErrorCode"], reply.body["Errors"][0].get("Path")) == (code, where), body
    bad_header = await upstream.call("POST", post, token=token, json={"Data": {"Permissions": ["ReadBalances"]},
                                                                      "Risk": {}},
                                     headers={"x-fapi-auth-date": "yesterday"})
    assert bad_header.body["Errors"][0] == {"ErrorCode": "UK.OBIE.Header.Invalid", "Path": "x-fapi-auth-date",
                                            "Message": bad_header.body["Errors"][0]["Message"]}
    ok = await upstream.call("POST", post, token=token, json={"Data": {"Permissions": ["ReadBalances"]}, "Risk": {}},
                             headers={"x-fapi-auth-date": "Sun, 10 Sep 2017 19:43:31 UTC",
                                      "x-fapi-customer-ip-address": "203.0.113.9"})
    assert ok.status == 201
    no_token = await upstream.call("POST", post, json={"Data": {"Permissions": ["ReadBalances"]}, "Risk": {}})
    assert no_token.status == 401 and no_token.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Missing"


async def test_requests_the_spec_refuses(upstream, sandbox):
    client_id = await upstream.client()
    await _refused_consents(upstream, await upstream.cc_token(client_id))
    assert len(sandbox.consents) == 1  # only the valid one


async def test_accounts_balances_party_and_permissions(upstream):
    _, _, tokens = await upstream.data_tokens()
    token = tokens["access_token"]
    accounts = (await upstream.call("GET", ais("/accounts"), token=token)).body["Data"]["Account"]
    assert [a["AccountId"] for a in accounts] == [ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS, ACC_OLIVIA_BUSINESS]
    schemes = {a["Account"][0]["SchemeName"]: a["Account"][0]["Identification"] for a in accounts}
    assert re.fullmatch(r"\d{14}", schemes["UK.OBIE.SortCodeAccountNumber"])
    assert re.fullmatch(r"GB\d{2}SRLG\d{14}", schemes["UK.OBIE.IBAN"])
    one = await upstream.call("GET", ais(f"/accounts/{ACC_OLIVIA_SAVINGS}"), token=token)
    assert one.body["Data"]["Account"][0]["AccountSubType"] == "Savings"
    balances = (await upstream.call("GET", ais(f"/accounts/{ACC_OLIVIA_CURRENT}/balances"),
                                    token=token)).body["Data"]["Balance"]
    assert [b["Type"] for b in balances] == ["InterimAvailable", "InterimBooked"]
    assert all(re.fullmatch(r"\d+\.\d{2}", b["Amount"]["Amount"]) and b["Amount"]["Currency"] == "GBP"
               for b in balances)
    party = (await upstream.call("GET", ais(f"/accounts/{ACC_OLIVIA_CURRENT}/party"), token=token)).body["Data"]
    assert party["Party"]["Name"] == "Olivia Bennett" and party["Party"]["Address"][0]["Country"] == "GB"
    not_consented = await upstream.call("GET", ais(f"/accounts/{ACC_RAHUL_CURRENT}/balances"), token=token)
    assert not_consented.status == 403
    assert not_consented.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.ConsentMismatch"
    unknown = await upstream.call("GET", ais("/accounts/acc-9999/balances"), token=token)
    assert unknown.status == 404 and unknown.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"
    cc = await upstream.cc_token(await upstream.client())
    assert (await upstream.call("GET", ais("/accounts"), token=cc)).status == 403

    _, _, basic = await upstream.data_tokens(["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits"],
                                             {"accounts": [ACC_OLIVIA_CURRENT]})
    token = basic["access_token"]
    accounts = (await upstream.call("GET", ais("/accounts"), token=token)).body["Data"]["Account"]
    assert [a["AccountId"] for a in accounts] == [ACC_OLIVIA_CURRENT] and "Account" not in accounts[0]
    for path in (f"/accounts/{ACC_OLIVIA_CURRENT}/balances", f"/accounts/{ACC_OLIVIA_CURRENT}/party"):
        reply = await upstream.call("GET", ais(path), token=token)
        assert reply.status == 403 and reply.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.ConsentMismatch"
    rows = (await upstream.call("GET", ais(f"/accounts/{ACC_OLIVIA_CURRENT}/transactions"),
                                token=token)).body["Data"]["Transaction"]
    assert rows and {t["CreditDebitIndicator"] for t in rows} == {"Credit"}
    assert not any({"TransactionInformation", "Balance", "MerchantDetails"} & set(t) for t in rows)


async def test_transactions_paging_and_filters(upstream, sandbox):
    _, _, tokens = await upstream.data_tokens(TransactionFromDateTime="2026-03-01T00:00:00+00:00")
    token = tokens["access_token"]
    path = ais(f"/accounts/{ACC_OLIVIA_CURRENT}/transactions")
    window = {"fromBookingDateTime": "2026-01-01T00:00:00", "toBookingDateTime": "2026-11-30T00:00:00"}
    first = await upstream.call("GET", path, token=token, params=window)
    body = first.body
    assert len(body["Data"]["Transaction"]) == 25 and body["Meta"]["TotalPages"] > 5
    assert body["Links"]["Next"].startswith(sandbox.issuer + path + "?") and body["Links"]["Next"].endswith("&page=2")
    rows, url, pages = [], None, 0
    reply = first
    while True:
        rows += reply.body["Data"]["Transaction"]
        pages += 1
        url = reply.body["Links"].get("Next")
        if url is None:
            break
        reply = await upstream.call("GET", url, token=token)
    assert pages == body["Meta"]["TotalPages"] and len({t["TransactionId"] for t in rows}) == len(rows)
    booked = [datetime.fromisoformat(t["BookingDateTime"]) for t in rows]
    assert booked == sorted(booked, reverse=True) and min(booked) >= datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert {t["Status"] for t in rows} == {"Booked", "Pending"} and {t["CreditDebitIndicator"] for t in rows} == {
        "Credit", "Debit"}
    assert {t["BookingDateTime"][-6:] for t in rows} == {"+00:00", "+01:00"}  # London time, summer and winter
    assert any(t.get("MerchantDetails", {}).get("MerchantName") == "TESCO STORES" for t in rows)
    assert all(re.fullmatch(r"\d+\.\d{2}", t["Amount"]["Amount"]) for t in rows)
    assert all("Balance" in t for t in rows if t["Status"] == "Booked")
    assert 120 <= len(sandbox.world.transactions(ACC_OLIVIA_CURRENT)) <= 320

    narrow = await upstream.call("GET", path, token=token, params={"fromBookingDateTime": "2026-11-01",
                                                                  "toBookingDateTime": "2026-11-08T00:00:00+05:00"})
    dates = [t["BookingDateTime"][:10] for t in narrow.body["Data"]["Transaction"]]
    assert dates and all("2026-11-01" <= d <= "2026-11-08" for d in dates) and "Next" not in narrow.body["Links"]
    for params in ({"fromBookingDateTime": "last week"}, {"fromBookingDateTime": "2026-05-01",
                                                          "toBookingDateTime": "2026-04-01"}, {"page": "0"},
                   {"page": "999"}):
        assert (await upstream.call("GET", path, token=token, params=params)).status == 400, params


async def test_token_and_consent_state_refusals(upstream, sandbox):
    client_id, consent_id, tokens = await upstream.data_tokens()
    token = tokens["access_token"]
    sandbox.expire_access_tokens()
    expired = await upstream.call("GET", ais("/accounts"), token=token)
    assert expired.status == 401 and expired.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    refreshed = await upstream.token(client_id, {"grant_type": "refresh_token",
                                                 "refresh_token": tokens["refresh_token"]})
    token = refreshed.body["access_token"]
    assert (await upstream.call("GET", ais("/accounts"), token=token)).status == 200

    sandbox.expire_consent(consent_id)
    lapsed = await upstream.call("GET", ais("/accounts"), token=token)
    assert lapsed.status == 403 and lapsed.body["Errors"][0] == {
        "ErrorCode": "UK.OBIE.Resource.InvalidConsentStatus", "Message": "consent expired"}
    again = await upstream.token(client_id, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert (again.status, again.body["error"]) == (400, "invalid_grant")

    _, consent2, tokens2 = await upstream.data_tokens()
    cc = await upstream.cc_token(sandbox.consents[consent2].client_id)
    assert (await upstream.call("DELETE", ais(f"/account-access-consents/{consent2}"), token=cc)).status == 204
    revoked = await upstream.call("GET", ais("/accounts"), token=tokens2["access_token"])
    assert revoked.status == 403 and revoked.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"
    assert (await upstream.token(sandbox.consents[consent2].client_id, {
        "grant_type": "refresh_token", "refresh_token": tokens2["refresh_token"]})).body["error"] == "invalid_grant"


def _other_tpp(directory: Path) -> tuple[Path, Path, Path]:
    """Another TPP's CA (a name of its own: OpenSSL picks a trust anchor by subject name) and client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(**parts: str) -> x509.Name:
        oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME}
        return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts.items()])

    def cert(subject: x509.Name, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        now = datetime.now(timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    ca_name = name(CN="Other TPP Test CA", O="Other TPP")
    paths = directory / "other-ca.pem", directory / "other.pem", directory / "other.key"
    paths[0].write_bytes(cert(ca_name, ca_key, ca_name, ca_key, True).public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert(name(CN="othersoftware02", OU="0015800001041OTHER", O="Other TPP"), key, ca_name,
                              ca_key, False).public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


async def test_access_tokens_are_bound_to_the_client_certificate(material, tmp_path):
    other_ca, other_cert, other_key = _other_tpp(tmp_path)
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(material.ca_cert.read_bytes() + other_ca.read_bytes())
    sim = _sandbox(material, client_ca=bundle)
    await sim.start()
    try:
        mine = client_ssl_context(material.transport_cert, material.transport_key, material.ca_cert)
        theirs = client_ssl_context(other_cert, other_key, material.ca_cert)
        trust = ssl.create_default_context(cafile=str(material.ca_cert))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=mine)) as session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as anonymous, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=theirs)) as stranger:
            upstream = Upstream(sim, material, session, anonymous)
            _, _, tokens = await upstream.data_tokens()
            assert (await upstream.call("GET", ais("/accounts"), token=tokens["access_token"])).status == 200
            async with stranger.get(sim.issuer + ais("/accounts"),
                                    headers={"Authorization": f"Bearer {tokens['access_token']}"}) as resp:
                assert resp.status == 401
                assert "another client certificate" in (await resp.json())["Errors"][0]["Message"]
            # The gateway's software statement over another organisation's certificate is refused.
            async with stranger.post(sim.issuer + "/register", data=upstream.registration_jwt(),
                                     headers={"Content-Type": "application/jwt"}) as resp:
                assert resp.status == 400 and (await resp.json())["error"] == "unapproved_software_statement"
    finally:
        await sim.stop()


# --- faults, controls and determinism -----------------------------------------------------------------------------
async def test_faults(upstream, sandbox):
    _, _, tokens = await upstream.data_tokens()
    token = tokens["access_token"]
    sandbox.faults.add("status", path="/accounts$", status=500)
    reply = await upstream.call("GET", ais("/accounts"), token=token)  # the spec's 500: OBErrorResponse1
    assert reply.status == 500 and reply.body["Errors"][0]["ErrorCode"] == "UK.OBIE.UnexpectedError"
    sandbox.faults.add("status", path="^/token$", status=503)
    reply = await upstream.token("any", {"grant_type": "client_credentials"})
    assert (reply.status, reply.body["error"]) == (503, "temporarily_unavailable")
    sandbox.faults.add("rate_limit", path="/balances$", retry_after=3)
    reply = await upstream.call("GET", ais(f"/accounts/{ACC_OLIVIA_CURRENT}/balances"), token=token, check=False)
    assert reply.status == 429 and reply.headers["Retry-After"] == "3"
    sandbox.faults.add("expired_token", path="/accounts$")
    assert (await upstream.call("GET", ais("/accounts"), token=token)).status == 401
    async with upstream.session.post(sandbox.issuer + "/_sandbox/actions/expire_access_tokens") as resp:
        assert resp.status == 200
    assert [c.status for c in sandbox.calls.matching("GET", "/accounts$")][-3:] == [500, 401]


async def test_data_is_deterministic_per_seed(material):
    first, second, third = (_sandbox(material, seed=s) for s in (23, 23, 24))
    rows = [[(t.transaction_id, t.amount, t.booked_at) for t in sim.world.transactions(ACC_OLIVIA_BUSINESS)]
            for sim in (first, second, third)]
    assert rows[0] == rows[1] != rows[2]
    assert {a.psu_id for a in ACCOUNTS.values()} == {"psu-olivia-bennett", PSU_RAHUL}


# --- conformance ------------------------------------------------------------------------------------------------
def test_routes_are_exactly_the_trimmed_spec(material):
    served = {(m, t) for m, t, _ in ROUTES}
    assert served == {(op.method, op.template) for op in _sandbox(material).spec.operations()}


async def test_every_ais_operation_conforms(upstream, sandbox):
    client_id, consent_id, tokens = await upstream.data_tokens()
    token = tokens["access_token"]
    for account in (ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS, ACC_OLIVIA_BUSINESS, ACC_RAHUL_CURRENT, "acc-0"):
        for tail in ("", "/balances", "/transactions", "/party"):
            await upstream.call("GET", ais(f"/accounts/{account}{tail}"), token=token)
    await upstream.call("GET", ais("/accounts"), token=token)
    await upstream.call("GET", ais("/accounts"), token="expired-or-unknown")
    cc = await upstream.cc_token(client_id)
    await _refused_consents(upstream, cc)
    for method in ("GET", "DELETE"):
        await upstream.call(method, ais(f"/account-access-consents/{consent_id}"), token=cc)
        await upstream.call(method, ais("/account-access-consents/aac-unknown"), token=cc)
    await upstream.call("GET", ais("/accounts"), token=token)  # revoked: 403
    exercised = {(method, template) for method, template, _ in upstream.seen}
    assert exercised == {(op.method, op.template) for op in sandbox.spec.operations()}
    assert {status for *_, status in upstream.seen} >= {200, 201, 204, 400, 401, 403, 404}
    # The spec gives 401 and 404 no body; the contract adds OBErrorResponse1 (checked against that schema).
    assert upstream.bodies_on_bodiless == {401, 404}
