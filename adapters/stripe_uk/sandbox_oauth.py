"""The simulator's OpenID Provider: discovery, its JWKS, the token endpoint and the FAPI hybrid-flow authorisation.

/authorize is the browser's side: GET answers a JSON description of the simulated PSU's consent page and POST to
the same URL is the PSU's decision. Nothing here ever redirects: the answer names where the browser would go, and
only to a redirect_uri that a verified request object asked for and the client registered.

One flow serves both kinds of intent. An account-access consent needs the scope word `accounts` and the PSU picks
some of their accounts; a domestic payment consent needs `payments` (and not `accounts`, so its tokens can never
read account data) and the PSU picks the one account that pays.
"""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import attrs
import orjson
from aiohttp import web

from adapters.stripe_uk.sandbox_data import ACCOUNTS, PSUS
from adapters.stripe_uk.sandbox_http import CLIENT_CERT, SANDBOX, OAuthError, cert_thumbprint, json_response
from adapters.stripe_uk.sandbox_jose import ALG, JwtProblem, audience_ok, check_times, half_hash, unverified, verify
from adapters.stripe_uk.sandbox_world import (
    AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN, Client, Intent, PaymentConsent, World,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RESPONSE_TYPE = "code id_token"
ACRS = ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"]
ASSERTION_MAX_LIFETIME = 600.0
REQUEST_OBJECT_MAX_LIFETIME = 3600.0
ID_TOKEN_TTL = 300
RESOURCE_SCOPES = frozenset({"accounts", "payments"})


# --- discovery ------------------------------------------------------------------------------------------------
async def discovery(request: web.Request) -> web.Response:
    issuer = request.app[SANDBOX].issuer
    return json_response({
        "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks", "registration_endpoint": f"{issuer}/register",
        "response_types_supported": [RESPONSE_TYPE], "response_modes_supported": ["fragment"],
        "grant_types_supported": [AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "tls_client_auth"],
        "token_endpoint_auth_signing_alg_values_supported": [ALG],
        "request_object_signing_alg_values_supported": [ALG], "id_token_signing_alg_values_supported": [ALG],
        "scopes_supported": ["openid", "accounts", "payments"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "c_hash", "s_hash",
                             "openbanking_intent_id"],
        "claims_parameter_supported": True, "acr_values_supported": ACRS,
        "tls_client_certificate_bound_access_tokens": True, "request_parameter_supported": True,
        "request_uri_parameter_supported": False, "require_request_uri_registration": False,
    })


async def jwks(request: web.Request) -> web.Response:
    return json_response(request.app[SANDBOX].jwks())


# --- client authentication --------------------------------------------------------------------------------------
def _invalid_client(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


def authenticate_client(sandbox: Any, request: web.Request, form: Any) -> Client:
    world: World = sandbox.world
    assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
    if assertion_type or assertion:
        if assertion_type != JWT_BEARER:
            raise _invalid_client(f"client_assertion_type must be {JWT_BEARER}")
        if not assertion:
            raise _invalid_client("client_assertion is missing")
        try:
            _, claims = unverified(assertion, "client assertion")
        except JwtProblem as exc:
            raise _invalid_client(str(exc)) from None
        client = world.clients.get(str(claims.get("iss")))
        if client is None:
            raise _invalid_client("the client assertion's iss is not a registered client_id")
        if client.auth_method != "private_key_jwt":
            raise _invalid_client(f"the client is registered for {client.auth_method}, not private_key_jwt")
        if form.get("client_id") not in (None, client.client_id):
            raise _invalid_client("client_id does not match the client assertion's iss")
        try:
            claims = verify(assertion, sandbox.software_jwks(client.jwks_endpoint), "client assertion")
            check_times(claims, sandbox.clock(), "client assertion", max_lifetime=ASSERTION_MAX_LIFETIME)
        except KeyError:
            raise _invalid_client("the directory keystore no longer serves the software's JWKS") from None
        except JwtProblem as exc:
            raise _invalid_client(str(exc)) from None
        if claims.get("sub") != client.client_id or claims.get("iss") != client.client_id:
            raise _invalid_client("the client assertion's iss and sub must both be the client_id")
        if not audience_ok(claims.get("aud"), (sandbox.token_endpoint, sandbox.issuer)):
            raise _invalid_client(f"the client assertion's aud must be {sandbox.token_endpoint}")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _invalid_client("the client assertion needs a jti")
        if not world.first_use("client_assertion", client.client_id, jti, claims["exp"]):
            raise _invalid_client("the client assertion's jti was already used")
        return client
    client_id = form.get("client_id")
    if not client_id:
        raise _invalid_client("no client authentication: send a client_assertion or (tls_client_auth) client_id")
    client = world.clients.get(client_id)
    if client is None:
        raise _invalid_client("unknown client_id")
    if client.auth_method != "tls_client_auth":
        raise _invalid_client(f"the client is registered for {client.auth_method}: a client_assertion is required")
    subject = request[CLIENT_CERT].subject.rfc4514_string()
    if subject != client.subject_dn:
        raise _invalid_client("the client certificate's subject is not the registered tls_client_auth_subject_dn")
    return client


# --- the token endpoint -----------------------------------------------------------------------------------------
def _grant_error(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


async def token(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
    form = await request.post()
    client = authenticate_client(sandbox, request, form)
    grant = form.get("grant_type")
    if grant not in (CLIENT_CREDENTIALS, AUTHORIZATION_CODE, REFRESH_TOKEN):
        raise OAuthError(400, "unsupported_grant_type" if grant else "invalid_request",
                         f"unsupported grant_type {grant!r}" if grant else "grant_type is missing")
    if grant not in client.grant_types:
        raise OAuthError(400, "unauthorized_client", f"the client did not register the {grant} grant")
    thumbprint = cert_thumbprint(request[CLIENT_CERT])
    if grant == CLIENT_CREDENTIALS:
        return _client_credentials(sandbox.world, client, form, thumbprint)
    if grant == AUTHORIZATION_CODE:
        return _authorization_code(sandbox, client, form, thumbprint)
    return _refresh(sandbox, client, form, thumbprint)


def _token_answer(world: World, access: Any, **more: Any) -> web.Response:
    body = {"access_token": access.value, "token_type": "Bearer", "expires_in": int(world.access_token_ttl),
            "scope": access.scope, **more}
    return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _client_credentials(world: World, client: Client, form: Any, thumbprint: str) -> web.Response:
    requested = form.get("scope")
    scopes = set(requested.split()) if requested else client.scopes & RESOURCE_SCOPES
    if not scopes or not scopes <= RESOURCE_SCOPES or not scopes <= client.scopes:
        raise OAuthError(400, "invalid_scope", "client_credentials scopes are accounts and/or payments, as registered")
    return _token_answer(world, world.issue_access_token(client.client_id, CLIENT_CREDENTIALS,
                                                         " ".join(sorted(scopes)), thumbprint))


def _authorization_code(sandbox: Any, client: Client, form: Any, thumbprint: str) -> web.Response:
    world: World = sandbox.world
    value, redirect_uri = form.get("code"), form.get("redirect_uri")
    if not value or not redirect_uri:
        raise OAuthError(400, "invalid_request", "code and redirect_uri are required")
    code = world.codes.get(value)
    if code is None or code.client_id != client.client_id:
        raise _grant_error("unknown authorization code")
    if code.used:
        world.revoke(code.tokens)
        raise _grant_error("the authorization code was already used; the tokens issued for it are revoked")
    if time.monotonic() >= code.expires_at:
        raise _grant_error("the authorization code has expired")
    if redirect_uri != code.redirect_uri:
        raise _grant_error("redirect_uri is not the one of the authorisation request")
    code.used = True
    consent = world.intent(code.consent_id)
    if consent is None or consent.status != "Authorised":
        raise _grant_error("the consent of this code is no longer authorised")
    access = world.issue_access_token(client.client_id, AUTHORIZATION_CODE, code.scope, thumbprint,
                                      consent.consent_id)
    code.tokens.append(access.value)
    more: dict[str, Any] = {}
    if REFRESH_TOKEN in client.grant_types:
        refresh = world.issue_refresh_token(client.client_id, consent.consent_id, code.scope)
        code.tokens.append(refresh.value)
        more["refresh_token"] = refresh.value
    more["id_token"] = sandbox.sign_id_token(id_token_claims(sandbox, client, consent, code.nonce,
                                                             at_hash=half_hash(access.value)))
    return _token_answer(world, access, **more)


def _refresh(sandbox: Any, client: Client, form: Any, thumbprint: str) -> web.Response:
    world: World = sandbox.world
    value = form.get("refresh_token")
    if not value:
        raise OAuthError(400, "invalid_request", "refresh_token is required")
    refresh = world.refresh_tokens.get(value)
    if refresh is None or refresh.client_id != client.client_id:
        raise _grant_error("unknown or revoked refresh token")
    if time.monotonic() >= refresh.expires_at:
        raise _grant_error("the refresh token has expired")
    consent = world.intent(refresh.consent_id)
    if consent is None or consent.status != "Authorised":
        raise _grant_error(f"the consent is {consent.status if consent else 'gone'}, not Authorised")
    if consent.expired(sandbox.now()):
        raise _grant_error("the consent has expired")
    scope = refresh.scope
    if form.get("scope"):
        if not set(form["scope"].split()) <= set(refresh.scope.split()):
            raise OAuthError(400, "invalid_scope", "a refresh cannot widen the original scope")
        scope = form["scope"]
    access = world.issue_access_token(client.client_id, AUTHORIZATION_CODE, scope, thumbprint, consent.consent_id)
    return _token_answer(world, access, refresh_token=refresh.value)


def id_token_claims(sandbox: Any, client: Client, consent: Intent, nonce: str, **hashes: str) -> dict[str, Any]:
    now = int(sandbox.clock())
    return {"iss": sandbox.issuer, "sub": consent.consent_id, "aud": client.client_id, "iat": now,
            "exp": now + ID_TOKEN_TTL, "auth_time": now, "nonce": nonce,
            "openbanking_intent_id": consent.consent_id, "acr": ACRS[0], **hashes}


# --- authorisation ----------------------------------------------------------------------------------------------
@attrs.frozen
class AuthorizationRequest:
    client: Client
    consent: Intent
    redirect_uri: str
    scope: str
    nonce: str
    state: str | None


def _bad(error: str, description: str) -> OAuthError:
    return OAuthError(400, error, description)


def _intent_id(claims: dict[str, Any]) -> Any:
    requested = claims.get("claims")
    if not isinstance(requested, dict):
        return None
    for where in ("id_token", "userinfo"):
        intent = (requested.get(where) or {}).get("openbanking_intent_id")
        if isinstance(intent, dict) and intent.get("value"):
            return intent["value"]
    return None


def authorization_request(sandbox: Any, request: web.Request) -> AuthorizationRequest:
    """The verified authorisation request, or OAuthError 400 (never a redirect)."""
    world: World = sandbox.world
    query = request.query
    client = world.clients.get(query.get("client_id", ""))
    if client is None:
        raise _bad("unauthorized_client", "client_id is missing or not a registered client")
    if query.get("response_type") != RESPONSE_TYPE:
        raise _bad("invalid_request", f"response_type must be '{RESPONSE_TYPE}'")
    if not query.get("request"):
        raise _bad("invalid_request", "a signed request object (request) is required")
    try:
        claims = verify(query["request"], sandbox.software_jwks(client.jwks_endpoint), "request object")
        check_times(claims, sandbox.clock(), "request object", max_lifetime=REQUEST_OBJECT_MAX_LIFETIME)
    except KeyError:
        raise _bad("unauthorized_client", "the directory keystore no longer serves the software's JWKS") from None
    except JwtProblem as exc:
        raise _bad("invalid_request_object", str(exc)) from None
    if claims.get("iss") != client.client_id or claims.get("client_id") != client.client_id:
        raise _bad("invalid_request_object", "the request object's iss and client_id must be the client_id")
    if not audience_ok(claims.get("aud"), (sandbox.issuer,)):
        raise _bad("invalid_request_object", f"the request object's aud must be {sandbox.issuer}")
    for name in ("response_type", "redirect_uri", "scope", "nonce"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise _bad("invalid_request_object", f"the request object has no {name}")
    for name in ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce"):
        if name in query and name in claims and query[name] != claims[name]:
            raise _bad("invalid_request", f"the query's {name} differs from the request object's")
    if claims["response_type"] != RESPONSE_TYPE:
        raise _bad("invalid_request_object", f"the request object's response_type must be '{RESPONSE_TYPE}'")
    if claims["redirect_uri"] not in client.redirect_uris:
        raise _bad("invalid_request", "redirect_uri is not registered for this client")
    scopes = set(claims["scope"].split())
    _check_scope(scopes, world.intent(_intent_id(claims)))
    if AUTHORIZATION_CODE not in client.grant_types or not scopes <= client.scopes:
        raise _bad("unauthorized_client", "the client did not register the authorization_code grant or this scope")
    consent_id = _intent_id(claims)
    if consent_id is None:
        raise _bad("invalid_request_object", "claims.id_token.openbanking_intent_id.value is required")
    consent = world.intent(consent_id)
    if consent is None or consent.client_id != client.client_id:
        raise _bad("invalid_request", "openbanking_intent_id is not a consent of this client")
    if consent.status != "AwaitingAuthorisation":
        raise _bad("invalid_request", f"the consent is {consent.status}, not AwaitingAuthorisation")
    if consent.expired(sandbox.now()):
        raise _bad("invalid_request", "the consent has expired")
    state = claims.get("state") if isinstance(claims.get("state"), str) else None
    return AuthorizationRequest(client, consent, claims["redirect_uri"], claims["scope"], claims["nonce"], state)


def _check_scope(scopes: set[str], intent: Intent | None) -> None:
    """The scope words the intent's kind requires. An unknown intent is judged as an account-access one, so the
    error a bad AIS request gets is the same as before payment consents existed; the intent is refused later."""
    if isinstance(intent, PaymentConsent):
        if "openid" not in scopes or "payments" not in scopes:
            raise _bad("invalid_request_object", "scope must include openid and payments for a payment consent")
        if "accounts" in scopes:
            raise _bad("invalid_request_object", "a payment consent's scope must not include accounts")
    elif "openid" not in scopes or "accounts" not in scopes:
        raise _bad("invalid_request_object", "scope must include openid and accounts")


def _offer(psu_id: str) -> dict[str, Any]:
    accounts = [{"AccountId": a, "Nickname": ACCOUNTS[a].nickname, "AccountSubType": ACCOUNTS[a].sub_type}
                for a in PSUS[psu_id].account_ids]
    return {"psu_id": psu_id, "name": PSUS[psu_id].name, "accounts": accounts}


async def authorize_page(request: web.Request) -> web.Response:
    """What the PSU would see: who asks, for what, the accounts on offer, and how to answer."""
    sandbox = request.app[SANDBOX]
    authz = authorization_request(sandbox, request)
    if isinstance(authz.consent, PaymentConsent):
        return json_response(_payment_page(sandbox, request, authz, authz.consent))
    default = _offer(sandbox.default_psu)
    return json_response({
        "client_id": authz.client.client_id, "software_id": authz.client.software_id,
        "consent_id": authz.consent.consent_id, "permissions": authz.consent.permissions,
        "psu_id": default["psu_id"], "accounts": default["accounts"],
        "psus": [_offer(p) for p in PSUS],
        "complete": {"method": "POST", "url": sandbox.issuer + request.raw_path, "outcomes": ["approve", "reject"],
                     "body": {"outcome": "approve", "psu": default["psu_id"],
                              "accounts": [a["AccountId"] for a in default["accounts"]]}},
    })


def _payment_page(sandbox: Any, request: web.Request, authz: AuthorizationRequest,
                  consent: PaymentConsent) -> dict[str, Any]:
    psu_id = _payer(sandbox, consent, None)
    default = _offer(psu_id)
    debtor = _proposed_debtor(consent, psu_id)
    return {
        "client_id": authz.client.client_id, "software_id": authz.client.software_id,
        "consent_id": consent.consent_id, "kind": "payment", "initiation": consent.initiation,
        "psu_id": psu_id, "accounts": default["accounts"], "psus": [_offer(p) for p in PSUS],
        "complete": {"method": "POST", "url": sandbox.issuer + request.raw_path, "outcomes": ["approve", "reject"],
                     "body": {"outcome": "approve", "psu": psu_id, "accounts": [debtor] if debtor else []}},
    }


def _named_debtor(consent: PaymentConsent) -> str | None:
    """The AccountId of the Initiation's DebtorAccount (by scheme and identification), "" when it names an account
    this bank does not hold, None when there is no DebtorAccount."""
    named = consent.initiation.get("DebtorAccount")
    if not isinstance(named, dict):
        return None
    return next((a.account_id for a in ACCOUNTS.values() if (a.scheme, a.identification) ==
                 (named.get("SchemeName"), named.get("Identification"))), "")


def _payer(sandbox: Any, consent: PaymentConsent, psu: Any) -> str:
    """The PSU who approves: the one the POST names, else the holder of the named DebtorAccount, else default_psu."""
    if psu is not None:
        return str(psu)
    named = _named_debtor(consent)
    return ACCOUNTS[named].psu_id if named else sandbox.default_psu


def _proposed_debtor(consent: PaymentConsent, psu_id: str) -> str | None:
    """The account that pays unless the PSU picks one: the named DebtorAccount, else the PSU's first account with a
    sort code and account number (the UK's everyday payment account)."""
    named = _named_debtor(consent)
    if named:
        return named
    return next((a for a in PSUS[psu_id].account_ids if ACCOUNTS[a].scheme == "UK.OBIE.SortCodeAccountNumber"),
                None)


def _debtor_account(sandbox: Any, consent: PaymentConsent, choice: dict[str, Any]) -> tuple[str, str]:
    """(PSU, AccountId) that pays, from the PSU's answer; OAuthError 400 when the choice cannot pay this consent."""
    psu_id = _payer(sandbox, consent, choice.get("psu"))
    if psu_id not in PSUS:
        raise _bad("invalid_request", f"unknown psu; the PSUs are {', '.join(PSUS)}")
    offered = PSUS[psu_id].account_ids
    named = _named_debtor(consent)
    if named == "":
        raise _bad("invalid_request", "the consent's DebtorAccount is not an account held at this bank")
    default = _proposed_debtor(consent, psu_id)
    accounts = choice.get("accounts", [default] if default else [])
    if not isinstance(accounts, list) or len(accounts) != 1 or accounts[0] not in offered:
        raise _bad("invalid_request", f"accounts must name exactly one debtor account of {', '.join(offered)}")
    if named is not None and accounts[0] != named:
        raise _bad("invalid_request", "the consent's DebtorAccount must pay: approve with that account")
    return psu_id, accounts[0]


def _fragment(redirect_uri: str, **params: str | None) -> str:
    return redirect_uri + "#" + urlencode({k: v for k, v in params.items() if v is not None})


def _granted_accounts(sandbox: Any, choice: dict[str, Any]) -> tuple[str, list[str]]:
    """(PSU, AccountIds) an account-access consent grants, from the PSU's answer; OAuthError 400 when unusable."""
    psu_id = choice.get("psu", sandbox.default_psu)
    if not isinstance(psu_id, str) or psu_id not in PSUS:
        raise _bad("invalid_request", f"unknown psu; the PSUs are {', '.join(PSUS)}")
    offered = list(PSUS[psu_id].account_ids)
    accounts = choice.get("accounts", offered)
    if not isinstance(accounts, list) or not accounts or not all(isinstance(a, str) for a in accounts) \
            or not set(accounts) <= set(offered):
        raise _bad("invalid_request", f"accounts must be a non-empty list of {', '.join(offered)}")
    return psu_id, [a for a in offered if a in accounts]


async def authorize_complete(request: web.Request) -> web.Response:
    """The PSU's decision: approve (some of a PSU's accounts, or the one that pays), or reject."""
    sandbox = request.app[SANDBOX]
    authz = authorization_request(sandbox, request)
    raw = await request.read()
    try:
        choice = orjson.loads(raw) if raw.strip() else {}
        if not isinstance(choice, dict):
            raise ValueError
    except ValueError:
        raise _bad("invalid_request", "the body must be a JSON object: outcome, psu, accounts") from None
    outcome = choice.get("outcome", "approve")
    if outcome not in ("approve", "reject"):
        raise _bad("invalid_request", "outcome must be approve or reject")
    world: World = sandbox.world
    if outcome == "reject":
        world.set_status(authz.consent, "Rejected")
        return json_response({"outcome": "reject", "redirect_to": _fragment(
            authz.redirect_uri, error="access_denied", error_description="The PSU rejected the consent",
            state=authz.state)})
    consent = authz.consent
    if isinstance(consent, PaymentConsent):
        consent.psu_id, consent.debtor_account_id = _debtor_account(sandbox, consent, choice)
    else:
        consent.psu_id, consent.account_ids = _granted_accounts(sandbox, choice)
    world.set_status(consent, "Authorised")
    code = world.issue_code(authz.client.client_id, consent.consent_id, authz.redirect_uri, authz.nonce, authz.scope)
    hashes = {"c_hash": half_hash(code.value), **({"s_hash": half_hash(authz.state)} if authz.state else {})}
    id_token = sandbox.sign_id_token(id_token_claims(sandbox, authz.client, consent, authz.nonce, **hashes))
    return json_response({"outcome": "approve", "redirect_to": _fragment(
        authz.redirect_uri, code=code.value, id_token=id_token, state=authz.state)})


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/.well-known/openid-configuration", discovery),
    ("GET", "/jwks", jwks),
    ("POST", "/token", token),
    ("GET", "/authorize", authorize_page),
    ("POST", "/authorize", authorize_complete),
]
