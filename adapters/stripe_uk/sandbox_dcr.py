"""Dynamic Client Registration v3.2: POST /register, and GET/PUT/DELETE /register/{ClientId} for the registered client.

A registration request is a JWT signed (PS256) by the software's key, which the directory keystore serves at the
software statement's `software_jwks_endpoint`; the software statement inside is signed by the directory. Checks run
from the outside in: the software statement, the transport certificate against it, the request's signature, then
its claims (the DCR schema first, then this ASPSP's rules). Each failure is a RegistrationError naming the field.
"""
from __future__ import annotations

import copy
import functools
import uuid
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID
from jsonschema import Draft4Validator

from adapters.sandbox_kit import OpenAPISpec
from adapters.stripe_uk.sandbox_http import CLIENT_CERT, SANDBOX, BearerError, OAuthError, json_response
from adapters.stripe_uk.sandbox_jose import ALG, JwtProblem, audience_ok, check_times, unverified, verify
from adapters.stripe_uk.sandbox_oauth import RESPONSE_TYPE
from adapters.stripe_uk.sandbox_world import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, Client, World

JWT_TYPES = frozenset({"application/jwt", "application/jose"})
AUTH_METHODS = frozenset({"private_key_jwt", "tls_client_auth"})
ROLE_SCOPES = {"accounts": "AISP", "payments": "PISP"}


def _error(error: str, description: str) -> OAuthError:
    return OAuthError(400, error, description)


@functools.cache
def _claims_validator(spec: OpenAPISpec) -> Draft4Validator:
    """OBClientRegistration1, except `aud`: DCR v3.2 types it as the ASPSP's directory organisation id (18
    alphanumerics), but this ASPSP, like most, expects its issuer URL (the contract); `audience_ok` checks it."""
    claims, properties = copy.deepcopy(spec.doc["components"]["schemas"]["OBClientRegistration1"]["allOf"])
    claims["properties"]["aud"] = {"type": "string"}
    return spec.validator({"allOf": [claims, properties]}, "request")


def _path(parts: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _name(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    found = cert.subject.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def _software_statement(sandbox: Any, request: web.Request, claims: dict[str, Any]) -> dict[str, Any]:
    statement = claims.get("software_statement")
    if not isinstance(statement, str):
        raise _error("invalid_software_statement", "software_statement is missing")
    try:
        ssa = verify(statement, sandbox.directory_jwks, "software statement")
    except JwtProblem as exc:
        raise _error("invalid_software_statement", str(exc)) from None
    for name in ("software_id", "org_id", "software_jwks_endpoint", "software_redirect_uris", "software_roles"):
        if not ssa.get(name):
            raise _error("invalid_software_statement", f"the software statement has no {name}")
    if ssa.get("org_status", "Active") != "Active":
        raise _error("unapproved_software_statement", "the organisation of this software statement is not Active")
    cert = request[CLIENT_CERT]
    if _name(cert, NameOID.COMMON_NAME) != ssa["software_id"] or \
            _name(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) != ssa["org_id"]:
        raise _error("unapproved_software_statement",
                     "the transport certificate (CN, OU) is not the software statement's (software_id, org_id)")
    return ssa


def _metadata(sandbox: Any, request: web.Request, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked registration claims and the software statement's claims."""
    try:
        _, unchecked = unverified(token, "registration request")
    except JwtProblem as exc:
        raise _error("invalid_client_metadata", str(exc)) from None
    ssa = _software_statement(sandbox, request, unchecked)
    try:
        claims = verify(token, sandbox.software_jwks(ssa["software_jwks_endpoint"]), "registration request")
    except KeyError:
        raise _error("invalid_software_statement", "the directory keystore serves no JWKS at software_jwks_endpoint")
    except JwtProblem as exc:
        raise _error("invalid_client_metadata", str(exc)) from None
    problems = sorted(_claims_validator(sandbox.dcr_spec).iter_errors(claims), key=lambda e: list(map(str, e.path)))
    if problems:
        raise _error("invalid_client_metadata", "; ".join(f"{_path(e.absolute_path) or '$'}: {e.message}"
                                                          for e in problems[:5])[:500])
    if claims["iss"] != ssa["software_id"]:
        raise _error("invalid_software_statement", "the software statement's software_id is not the request's iss")
    if not audience_ok(claims["aud"], (sandbox.issuer,)):
        raise _error("invalid_client_metadata", f"aud must be {sandbox.issuer}")
    try:
        check_times(claims, sandbox.clock(), "registration request")
    except JwtProblem as exc:
        raise _error("invalid_client_metadata", str(exc)) from None
    _rules(claims, ssa, request)
    world: World = sandbox.world
    if not world.first_use("registration", claims["iss"], claims["jti"], claims["exp"]):
        raise _error("invalid_client_metadata", "jti was already used: a registration request cannot be replayed")
    return claims, ssa


def _rules(claims: dict[str, Any], ssa: dict[str, Any], request: web.Request) -> None:
    """What this ASPSP accepts beyond the schema."""
    allowed = set(ssa["software_redirect_uris"])
    stray = [u for u in claims["redirect_uris"] if u not in allowed]
    if stray:
        raise _error("invalid_redirect_uri", f"not in the software statement's software_redirect_uris: {stray[0]}")
    if AUTHORIZATION_CODE in claims["grant_types"] and not claims["redirect_uris"]:
        raise _error("invalid_redirect_uri", "the authorization_code grant needs at least one redirect_uri")
    method = claims["token_endpoint_auth_method"]
    if method not in AUTH_METHODS:
        raise _error("invalid_client_metadata", f"token_endpoint_auth_method must be one of {sorted(AUTH_METHODS)}")
    if method == "tls_client_auth":
        subject = request[CLIENT_CERT].subject.rfc4514_string()
        if claims.get("tls_client_auth_subject_dn") != subject:
            raise _error("invalid_client_metadata",
                         f"tls_client_auth_subject_dn must be the transport certificate's subject: {subject}")
    elif claims.get("token_endpoint_auth_signing_alg") != ALG:
        raise _error("invalid_client_metadata", f"token_endpoint_auth_signing_alg must be {ALG}")
    if claims.get("response_types", [RESPONSE_TYPE]) != [RESPONSE_TYPE]:
        raise _error("invalid_client_metadata", f"response_types must be ['{RESPONSE_TYPE}']")
    scopes = claims["scope"].split()
    for scope in scopes:
        if scope not in ("openid", *ROLE_SCOPES):
            raise _error("invalid_client_metadata", f"unsupported scope {scope!r}")
        if scope in ROLE_SCOPES and ROLE_SCOPES[scope] not in ssa["software_roles"]:
            raise _error("invalid_client_metadata", f"scope {scope} needs the {ROLE_SCOPES[scope]} software role")
    for name in ("id_token_signed_response_alg", "request_object_signing_alg"):
        if claims[name] != ALG:
            raise _error("invalid_client_metadata", f"{name} must be {ALG}")
    if claims["application_type"] != "web":
        raise _error("invalid_client_metadata", "application_type must be web")


def _registration(client_id: str, issued_at: int, claims: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"client_id": client_id, "client_id_issued_at": issued_at}
    for name in ("redirect_uris", "token_endpoint_auth_method", "grant_types", "scope", "application_type",
                 "id_token_signed_response_alg", "request_object_signing_alg", "token_endpoint_auth_signing_alg",
                 "tls_client_auth_subject_dn", "software_statement"):
        if name in claims:
            out[name] = claims[name]
    out["response_types"] = claims.get("response_types", [RESPONSE_TYPE])
    out["software_id"] = claims["iss"]
    return out


def _client(client_id: str, issued_at: int, claims: dict[str, Any], ssa: dict[str, Any]) -> Client:
    return Client(client_id, issued_at, ssa["software_id"], ssa["org_id"], ssa["software_jwks_endpoint"],
                  claims["token_endpoint_auth_method"], claims.get("tls_client_auth_subject_dn"),
                  list(claims["redirect_uris"]), list(claims["grant_types"]), set(claims["scope"].split()),
                  _registration(client_id, issued_at, claims))


async def _request_jwt(request: web.Request) -> str:
    if request.content_type not in JWT_TYPES:
        raise _error("invalid_client_metadata", "the body must be a signed JWT (Content-Type: application/jwt)")
    return (await request.text()).strip()


async def register(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    claims, ssa = _metadata(sandbox, request, await _request_jwt(request))
    client = _client(str(uuid.uuid4()), int(sandbox.clock()), claims, ssa)
    sandbox.world.clients[client.client_id] = client
    return json_response(client.registration, 201)


def _managed_client(request: web.Request) -> Client:
    """The client of /register/{ClientId}, if the bearer is a client_credentials token of that very client."""
    sandbox = request.app[SANDBOX]
    token = sandbox.access_token(request)
    if token.grant != CLIENT_CREDENTIALS:
        raise BearerError(401, "invalid_token", "use an access token from the client_credentials grant")
    if token.client_id != request.match_info["ClientId"]:
        raise BearerError(403, "insufficient_scope", "the access token belongs to another client")
    return sandbox.world.clients[token.client_id]


async def get_registration(request: web.Request) -> web.Response:
    return json_response(_managed_client(request).registration)


async def update_registration(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    client = _managed_client(request)
    claims, ssa = _metadata(sandbox, request, await _request_jwt(request))
    if ssa["software_id"] != client.software_id:
        raise _error("invalid_software_statement", "the software statement is for another software_id")
    updated = _client(client.client_id, client.issued_at, claims, ssa)
    sandbox.world.clients[client.client_id] = updated
    return json_response(updated.registration)


async def delete_registration(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    sandbox.world.remove_client(_managed_client(request).client_id)
    return web.Response(status=204)


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/register", register),
    ("GET", "/register/{ClientId}", get_registration),
    ("PUT", "/register/{ClientId}", update_registration),
    ("DELETE", "/register/{ClientId}", delete_registration),
]
