"""Payment initiation (Open Banking v3.1.2, domestic only) under /open-banking/v3.1/pisp.

`gate` runs before every handler here, in the order the contract gives: the bearer token (certificate-bound), the
security scheme the spec gives the operation (TPPOAuth2Security: a client_credentials token with `payments`;
PSUOAuth2Security: an authorization-code token issued for a payment consent), the spec check of the request
(`upstream-pis-openapi.yaml`), and on the two POSTs the detached JWS of the body (`x-jws-signature`), verified with
the client's software key. Only then do the handlers look at idempotency keys, and after that at Stripe's rules and
the consent's state, so a replayed request gets its first answer even when the consent has since been consumed.

Handlers never await between reading the idempotency record and writing the new resource: aiohttp runs them on one
event loop, so concurrent requests with one key cannot both find the key unused and create two resources.

The simulator signs every JSON answer on these paths (`StripeUKSandbox._sign_answer`), errors included.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from adapters.stripe_uk.sandbox_ais import INVALID_STATUS, MISMATCH, NOT_FOUND, iso
from adapters.stripe_uk.sandbox_data import ACCOUNTS, available_balance
from adapters.stripe_uk.sandbox_http import (
    SANDBOX, SIGNATURE_HEADER, BearerError, Detail, OBError, insufficient_scope, json_response, ob_bearer_error,
    problems_error,
)
from adapters.stripe_uk.sandbox_jose import SIGNATURE_INVALID, SignatureProblem, verify_detached
from adapters.stripe_uk.sandbox_world import (
    AUTHORIZATION_CODE, CLIENT_CREDENTIALS, AccessToken, Payment, PaymentConsent, World,
)

PIS_BASE = "/open-banking/v3.1/pisp"
IDEMPOTENCY_HEADER = "x-idempotency-key"
TOKEN = web.RequestKey("stripe_uk_pis_token", AccessToken)
BODY = web.RequestKey("stripe_uk_pis_body", dict)  # a POST's body as parsed JSON (the spec made it an object)

CREATE_CONSENT = "CreateDomesticPaymentConsents"
CREATE_PAYMENT = "CreateDomesticPayments"
INITIATION = "Data.Initiation"
# Stripe pays out to Stripe accounts (Wallet: acct_...) and to UK bank accounts (sort code + account number).
SCHEMES: dict[str, re.Pattern[str]] = {
    "UK.OBIE.Wallet": re.compile(r"acct_[A-Za-z0-9]+\Z"),
    "UK.OBIE.SortCodeAccountNumber": re.compile(r"\d{14}\Z"),
}
CURRENCY = "GBP"
REFERENCE_RUN = re.compile(r"[A-Za-z0-9]{6}")
NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")

Answer = tuple[int, dict[str, Any]]


# --- the gate -------------------------------------------------------------------------------------------------
def _token(sandbox: Any, request: web.Request) -> AccessToken:
    try:
        return sandbox.access_token(request)
    except BearerError as err:
        raise ob_bearer_error(err) from None


def _check_token_kind(world: World, token: AccessToken, psu: bool) -> None:
    """The operation's security scheme. A PSU token must be one of a payment consent: an account-access consent's
    token, even one whose scope also says payments, moves no money."""
    if "payments" not in token.scope.split():
        raise insufficient_scope("the access token lacks the payments scope")
    if psu and token.grant != AUTHORIZATION_CODE:
        raise insufficient_scope("this resource needs an access token from the authorization_code grant")
    if not psu and token.grant != CLIENT_CREDENTIALS:
        raise insufficient_scope("this resource needs an access token from the client_credentials grant")
    if psu and token.consent_id not in world.payment_consents:
        raise insufficient_scope("the access token was not issued for a domestic payment consent")


def check_request_signature(sandbox: Any, request: web.Request, token: AccessToken, body: bytes) -> None:
    """The TPP's detached JWS over the exact body bytes, by a key its software statement's JWKS publishes (PIS and
    event-subscription requests alike)."""
    client = sandbox.world.clients[token.client_id]
    try:
        jwks = sandbox.software_jwks(client.jwks_endpoint)
    except KeyError:
        raise OBError(400, SIGNATURE_INVALID, "the directory keystore no longer serves the software's JWKS",
                      path=SIGNATURE_HEADER) from None
    try:
        verify_detached(request.headers[SIGNATURE_HEADER], body, jwks, f"{client.org_id}/{client.software_id}",
                        sandbox.clock())
    except SignatureProblem as exc:
        raise OBError(400, exc.code, exc.message, path=SIGNATURE_HEADER) from None


async def gate(sandbox: Any, request: web.Request,
               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    found = sandbox.pis_spec.find(request.method, request.path[len(PIS_BASE):])
    if found is None:
        return await handler(request)  # aiohttp answers 404 / 405
    op, params = found
    token = _token(sandbox, request)
    _check_token_kind(sandbox.world, token, "PSUOAuth2Security" in op.raw["security"][0])
    body = await request.read() if request.body_exists else None
    problems = op.check(params, request.query, request.headers, body)
    if problems:
        raise problems_error(problems)
    request[TOKEN] = token
    if body is not None and op.method == "POST":
        check_request_signature(sandbox, request, token, body)
        request[BODY] = orjson.loads(body)
    return await handler(request)


# --- idempotency ----------------------------------------------------------------------------------------------
def _once(request: web.Request, operation: str, create: Callable[[], Answer]) -> web.Response:
    """Run `create` once per (client, operation, x-idempotency-key): the same body again gets the first 201 answer
    byte for byte; another body is refused. A refusal is not remembered, so the key stays usable. No await here."""
    world: World = request.app[SANDBOX].world
    scope = (request[TOKEN].client_id, operation, request.headers[IDEMPOTENCY_HEADER])
    seen = world.remembered(scope)
    if seen is not None:
        if seen.request != request[BODY]:
            raise OBError(400, "UK.OBIE.Header.Invalid", "the idempotency key was used with another body",
                          path=IDEMPOTENCY_HEADER)
        return web.Response(body=seen.body, status=seen.status, content_type="application/json")
    status, data = create()
    raw = orjson.dumps(data)
    if status == 201:
        world.remember(scope, request[BODY], status, raw)
    return web.Response(body=raw, status=status, content_type="application/json")


# --- Stripe's rules -------------------------------------------------------------------------------------------
def _amount_problems(amount: dict[str, Any]) -> list[Detail]:
    out = []
    if amount["Currency"] != CURRENCY:
        out.append(Detail("UK.OBIE.Unsupported.Currency", f"Stripe UK pays in {CURRENCY} only",
                          f"{INITIATION}.InstructedAmount.Currency"))
    value = amount["Amount"]  # the spec's pattern made it digits "." digits
    if Decimal(value) <= 0 or len(value.partition(".")[2]) > 2:
        out.append(Detail("UK.OBIE.Field.Invalid", "Amount must be more than zero, with at most 2 decimals",
                          f"{INITIATION}.InstructedAmount.Amount"))
    return out


def _account_problems(initiation: dict[str, Any], party: str) -> list[Detail]:
    account = initiation.get(party)
    if account is None:
        return []
    scheme = account["SchemeName"]
    if scheme not in SCHEMES:
        return [Detail("UK.OBIE.Unsupported.Scheme", f"SchemeName must be one of {', '.join(SCHEMES)}",
                       f"{INITIATION}.{party}.SchemeName")]
    if not SCHEMES[scheme].match(account["Identification"]):
        shape = "14 digits (sort code and account number)" if scheme.endswith("AccountNumber") else \
            "acct_ followed by letters and digits"
        return [Detail("UK.OBIE.Unsupported.AccountIdentifier", f"a {scheme} Identification is {shape}",
                       f"{INITIATION}.{party}.Identification")]
    return []


def _reference_problems(initiation: dict[str, Any]) -> list[Detail]:
    """Faster Payments references that banks refuse: none, too short to identify anything, or one repeated
    character (compared case-insensitively, punctuation and spaces ignored)."""
    path = f"{INITIATION}.RemittanceInformation.Reference"
    reference = (initiation.get("RemittanceInformation") or {}).get("Reference")
    if reference is None:
        return [Detail("UK.OBIE.Field.Missing", "Stripe requires RemittanceInformation.Reference", path)]
    if not REFERENCE_RUN.search(reference):
        return [Detail("UK.OBIE.Field.Invalid", "Reference needs at least 6 letters or digits in a row", path)]
    if len(set(NOT_ALPHANUMERIC.sub("", reference).upper())) == 1:
        return [Detail("UK.OBIE.Field.Invalid", "Reference must not be one character repeated", path)]
    return []


def stripe_rules(initiation: dict[str, Any]) -> None:
    """What Stripe refuses beyond the spec, every problem at once (OBError 400)."""
    details = [*_amount_problems(initiation["InstructedAmount"]), *_account_problems(initiation, "CreditorAccount"),
               *_account_problems(initiation, "DebtorAccount"), *_reference_problems(initiation)]
    if details:
        raise OBError(400, details[0].error_code, "The payment is not one Stripe UK can make", details=details)


# --- consents -------------------------------------------------------------------------------------------------
def consent_json(sandbox: Any, consent: PaymentConsent) -> dict[str, Any]:
    data: dict[str, Any] = {"ConsentId": consent.consent_id, "CreationDateTime": iso(consent.created),
                            "Status": consent.status, "StatusUpdateDateTime": iso(consent.status_updated),
                            "Initiation": consent.initiation}
    if consent.authorisation is not None:
        data["Authorisation"] = consent.authorisation
    if consent.sca_support is not None:
        data["SCASupportData"] = consent.sca_support
    return {"Data": data, "Risk": consent.risk,
            "Links": {"Self": f"{sandbox.issuer}{PIS_BASE}/domestic-payment-consents/{consent.consent_id}"},
            "Meta": {}}


async def create_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = request[BODY]

    def create() -> Answer:
        stripe_rules(body["Data"]["Initiation"])
        consent = sandbox.world.add_payment_consent(request[TOKEN].client_id, body["Data"], body["Risk"])
        return 201, consent_json(sandbox, consent)

    return _once(request, CREATE_CONSENT, create)


def _owned(request: web.Request, table: dict[str, Any], name: str, what: str) -> Any:
    found = table.get(request.match_info[name])
    if found is None:
        raise OBError(404, NOT_FOUND, f"no {what} has this {name}", path=name)
    if found.client_id != request[TOKEN].client_id:
        raise OBError(403, MISMATCH, f"the {what} belongs to another client", path=name)
    return found


async def get_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    consent = _owned(request, sandbox.world.payment_consents, "ConsentId", "domestic payment consent")
    return json_response(consent_json(sandbox, consent))


def _authorised(consent: PaymentConsent) -> None:
    if consent.status != "Authorised":
        raise OBError(400, INVALID_STATUS, f"the consent is {consent.status}, not Authorised")


def _available(world: World, consent: PaymentConsent) -> Decimal:
    """InterimAvailable of the account the PSU chose to pay from (seeded data; payments do not change it)."""
    account = ACCOUNTS[str(consent.debtor_account_id)]
    return available_balance(account, world.transactions(account.account_id))


def _amount(consent: PaymentConsent) -> Decimal:
    return Decimal(consent.initiation["InstructedAmount"]["Amount"])


async def funds_confirmation(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    token: AccessToken = request[TOKEN]
    if request.match_info["ConsentId"] != token.consent_id:
        raise OBError(403, MISMATCH, "the access token was issued for another consent", path="ConsentId")
    consent = sandbox.world.payment_consents[token.consent_id]
    _authorised(consent)
    result = {"FundsAvailableDateTime": iso(sandbox.now()),
              "FundsAvailable": _amount(consent) <= _available(sandbox.world, consent)}
    return json_response({"Data": {"FundsAvailableResult": result},
                          "Links": {"Self": sandbox.issuer + request.raw_path}, "Meta": {}})


# --- payments -------------------------------------------------------------------------------------------------
def payment_json(sandbox: Any, payment: Payment, age: float) -> dict[str, Any]:
    """The payment as it stands `age` seconds after submission (0 for the answer to the submission itself)."""
    data = {"DomesticPaymentId": payment.payment_id, "ConsentId": payment.consent_id,
            "CreationDateTime": iso(payment.created), "Status": payment.stage(age)[0],
            "StatusUpdateDateTime": iso(payment.status_since(age)), "Initiation": payment.initiation}
    return {"Data": data, "Links": {"Self": f"{sandbox.issuer}{PIS_BASE}/domestic-payments/{payment.payment_id}"},
            "Meta": {}}


def _matches_consent(body: dict[str, Any], consent: PaymentConsent) -> None:
    details = []
    if body["Data"]["Initiation"] != consent.initiation:
        details.append(Detail(MISMATCH, "Initiation differs from the consent's", "Data.Initiation"))
    if body["Risk"] != consent.risk:
        details.append(Detail(MISMATCH, "Risk differs from the consent's", "Risk"))
    if details:
        raise OBError(400, MISMATCH, "The payment is not the one the PSU authorised", details=details)


async def create_payment(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    world: World = sandbox.world
    token: AccessToken = request[TOKEN]
    body = request[BODY]

    def create() -> Answer:
        if body["Data"]["ConsentId"] != token.consent_id:
            raise OBError(403, MISMATCH, "the access token was issued for another consent", path="Data.ConsentId")
        consent = world.payment_consents[token.consent_id]
        _authorised(consent)
        _matches_consent(body, consent)
        rejected = sandbox.reject_payments or _amount(consent) > _available(world, consent)
        payment = world.add_payment(consent, sandbox.payment_timeline, rejected)
        sandbox.events.payment_submitted(payment)  # its status changes are notified as they happen
        return 201, payment_json(sandbox, payment, 0.0)

    return _once(request, CREATE_PAYMENT, create)


async def get_payment(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    payment: Payment = _owned(request, sandbox.world.payments, "DomesticPaymentId", "domestic payment")
    return json_response(payment_json(sandbox, payment, payment.age()))


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/domestic-payment-consents", create_consent),
    ("GET", "/domestic-payment-consents/{ConsentId}", get_consent),
    ("GET", "/domestic-payment-consents/{ConsentId}/funds-confirmation", funds_confirmation),
    ("POST", "/domestic-payments", create_payment),
    ("GET", "/domestic-payments/{DomesticPaymentId}", get_payment),
]
