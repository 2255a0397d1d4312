"""The simulated Stripe UK ASPSP's domestic payment initiation (OB v3.1.2 PIS) over real HTTPS with mutual TLS:
tokens, the authorisation of payment consents, detached JWS both ways, idempotency keys, Stripe's rules, the payment
timeline, and the kit's faults that act after the upstream did.

Every PIS answer received through `Payer.pis` is checked against the trimmed v3.1.2 spec's response schema for its
status (401 and 404, which the spec gives no body, against OBErrorResponse1, as the AIS tests do), and its
`x-jws-signature` is verified here, independently of the simulator's own JOSE code, against the ASPSP's /jwks. So
each test is also a conformance and a response-signature test.
"""
from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

from adapters.sandbox_kit import FAULT_KINDS, CallLog, Fault, FaultInjector, SandboxServer, build_app
from adapters.stripe_uk.sandbox_ais import AIS_BASE
from adapters.stripe_uk.sandbox_data import (
    ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS, ACC_RAHUL_CURRENT, ACC_RAHUL_SAVINGS, ACCOUNTS, PSU_RAHUL,
    available_balance,
)
from adapters.stripe_uk.sandbox_pis import PIS_BASE, ROUTES
from adapters.stripe_uk.sandbox_world import Payment
from gateway.certificates.keys import SigningKey, client_ssl_context
from tests.sandbox.replies import Reply
from tests.sandbox.test_stripe_uk_sandbox import REDIRECT, Upstream, _sandbox, material  # noqa: F401 (fixture)

TIMELINE = (0.3, 0.6)  # short enough to watch, long enough to see each status while polling
OB_IAT, OB_ISS, OB_TAN = ("http://openbanking.org.uk/iat", "http://openbanking.org.uk/iss",
                          "http://openbanking.org.uk/tan")
CRIT = ["b64", OB_IAT, OB_ISS, OB_TAN]
ASPSP_ORG_ID = "0015800001HQQrZAAX"
UNSET: Any = object()  # "make the usual one" for Payer.pis's signature and idempotency key
# The test's own verifier of the simulator's signatures (not the simulator's code).
REGISTRY = JWSRegistry(header_registry={OB_IAT: HeaderParameter("iat", "int", True),
                                        OB_ISS: HeaderParameter("iss", "str", True),
                                        OB_TAN: HeaderParameter("tan", "str", True)},
                       algorithms=["PS256"], strict_check_header=False)
REGISTRY.max_header_length = 4096


def initiation(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "InstructionIdentification": "INSTR-20261123-01", "EndToEndIdentification": "E2E-20261123-01",
        "InstructedAmount": {"Amount": "25.50", "Currency": "GBP"},
        "CreditorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "20000055512345",
                            "Name": "Ada Lovelace"},
        "RemittanceInformation": {"Reference": "RENT2026NOV", "Unstructured": "November rent"},
    }
    body.update(changes)
    return body


RISK = {"PaymentContextCode": "PartyToParty"}


def consent_body(init: dict[str, Any] | None = None, risk: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Data": {"Initiation": init or initiation()}, "Risk": RISK if risk is None else risk}


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def detached(header: dict[str, Any], body: bytes, key: RSAKey) -> str:
    """A detached JWS made by hand (RFC 7797 signing input, PS256 by `cryptography`), so a test can put anything,
    even what joserfc would refuse to sign, in the protected header."""
    head = _b64e(json.dumps(header).encode())
    signature = key.private_key.sign(head.encode() + b"." + body,
                                     padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    return f"{head}..{_b64e(signature)}"


_STRANGER: list[RSAKey] = []


def stranger_key() -> RSAKey:
    """A key no keystore knows (made once: RSA keys are slow to make)."""
    if not _STRANGER:
        _STRANGER.append(RSAKey.generate_key(2048))
    return _STRANGER[0]


class Payer(Upstream):
    """The gateway's side of PIS: signs request bodies, sends idempotency keys, and checks every PIS answer's
    conformance and signature."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._aspsp_keys: KeySet | None = None
        self._pis_error_schema = self.sandbox.pis_spec.validator(
            {"$ref": "#/components/schemas/OBErrorResponse1"}, "response")
        self.pis_seen: set[tuple[str, str, int]] = set()

    @property
    def iss(self) -> str:
        return f"{self.material.organisation_id}/{self.material.software_id}"

    def header(self, **changes: Any) -> dict[str, Any]:
        """The OB protected header; a change to None removes that member."""
        header = {"alg": "PS256", "kid": self.key.kid, "b64": False, OB_IAT: int(time.time()), OB_ISS: self.iss,
                  OB_TAN: "openbanking.org.uk", "crit": CRIT, "typ": "JOSE", "cty": "application/json"}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def sign(self, raw: bytes, key: SigningKey | RSAKey | None = None, **changes: Any) -> str:
        signer = key or self.key
        return detached(self.header(**changes), raw, signer.key if isinstance(signer, SigningKey) else signer)

    async def pis(self, method: str, path: str, *, token: str | None, body: Any = None, raw: bytes | None = None,
                  signature: Any = UNSET, idempotency: Any = UNSET, headers: dict[str, str] | None = None,
                  check: bool = True, timeout: float | None = None) -> Reply:
        sent = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        if body is not None and raw is None:
            raw = json.dumps(body).encode()
        if raw is not None:
            sent["Content-Type"] = "application/json"
            if signature is UNSET:
                signature = self.sign(raw)
            if idempotency is UNSET:
                idempotency = str(uuid.uuid4())
        for name, value in (("x-jws-signature", signature), ("x-idempotency-key", idempotency)):
            if isinstance(value, str):
                sent[name] = value
        sent.update(headers or {})
        options: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
        async with self.session.request(method, self.sandbox.issuer + PIS_BASE + path, headers=sent, data=raw,
                                        **options) as resp:
            reply = Reply(resp.status, resp.headers, await resp.read())
        if check:
            self._pis_conforms(method, path.split("?")[0], reply)
            if reply.raw:
                await self.verify_answer(reply)
        return reply

    def _pis_conforms(self, method: str, path: str, reply: Reply) -> None:
        found = self.sandbox.pis_spec.find(method, path)
        assert found is not None, f"{method} {path} is not a PIS operation"
        op = found[0]
        if reply.status in (401, 404) and reply.raw:
            assert list(self._pis_error_schema.iter_errors(reply.body)) == [], reply.body
        else:
            problems = op.check_response(reply.status, reply.raw, reply.headers.get("Content-Type", ""))
            assert problems == [], f"{method} {path} -> {reply.status} breaks the spec: {problems}"
        self.pis_seen.add((op.method, op.template, reply.status))

    async def aspsp_keys(self) -> KeySet:
        if self._aspsp_keys is None:
            self._aspsp_keys = KeySet.import_key_set((await self.call("GET", "/jwks", mtls=False)).body)
        return self._aspsp_keys

    async def verify_answer(self, reply: Reply) -> dict[str, Any]:
        """The answer's detached JWS checked as a gateway must: header claims, then the signature over the bytes."""
        signature = reply.headers["x-jws-signature"]
        head, payload, _ = signature.split(".")
        header = json.loads(_b64(head))
        assert payload == "" and header["alg"] == "PS256" and header["b64"] is False
        assert header["kid"] == self.sandbox.kid and header[OB_ISS] == ASPSP_ORG_ID == self.sandbox.aspsp_org_id
        assert header[OB_TAN] == "openbanking.org.uk" and sorted(header["crit"]) == sorted(CRIT)
        assert abs(header[OB_IAT] - time.time()) < 30
        jws.deserialize_compact(signature, await self.aspsp_keys(), payload=reply.raw, algorithms=["PS256"],
                                registry=REGISTRY)
        return header

    # --- flows --------------------------------------------------------------------------------------------------
    async def payments_token(self, client_id: str) -> str:
        return await self.cc_token(client_id, "payments")

    async def payment_consent(self, client_id: str, body: dict[str, Any] | None = None) -> str:
        reply = await self.pis("POST", "/domestic-payment-consents", token=await self.payments_token(client_id),
                               body=body or consent_body())
        assert reply.status == 201, reply.body
        return reply.body["Data"]["ConsentId"]

    def payment_authorize_url(self, client_id: str, consent_id: str, scope: str = "openid payments") -> str:
        return self.authorize_url(client_id, self.request_object(client_id, consent_id, scope=scope), scope=scope)

    async def approve(self, client_id: str, consent_id: str, choice: dict[str, Any] | None = None) -> dict[str, str]:
        url = self.payment_authorize_url(client_id, consent_id)
        page = await self.call("GET", url, mtls=False)
        assert page.status == 200, page.body
        done = await self.call("POST", page.body["complete"]["url"], json=choice, mtls=False)
        assert done.status == 200, done.body
        return {k: v[0] for k, v in parse_qs(urlsplit(done.body["redirect_to"]).fragment).items()}

    async def psu_tokens(self, client_id: str, consent_id: str, choice: dict[str, Any] | None = None) -> dict:
        fragment = await self.approve(client_id, consent_id, choice)
        reply = await self.token(client_id, {"grant_type": "authorization_code", "code": fragment["code"],
                                             "redirect_uri": REDIRECT})
        assert reply.status == 200, reply.body
        return reply.body

    async def authorised(self, body: dict[str, Any] | None = None,
                         choice: dict[str, Any] | None = None) -> tuple[str, str, str]:
        """A new client, its Authorised payment consent and the consent's PSU access token."""
        client_id = await self.client()
        consent_id = await self.payment_consent(client_id, body)
        return client_id, consent_id, (await self.psu_tokens(client_id, consent_id, choice))["access_token"]

    async def submit(self, token: str, consent_id: str, body: dict[str, Any] | None = None, **kw: Any) -> Reply:
        sent = body or consent_body()
        return await self.pis("POST", "/domestic-payments", token=token,
                              body={"Data": {"ConsentId": consent_id, "Initiation": sent["Data"]["Initiation"]},
                                    "Risk": sent["Risk"]}, **kw)


@pytest.fixture
async def sandbox(material):  # noqa: F811 (the imported session fixture)
    sim = _sandbox(material, payment_timeline=TIMELINE)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def payer(sandbox, material):  # noqa: F811
    trust = ssl.create_default_context(cafile=str(material.ca_cert))
    mtls = client_ssl_context(material.transport_cert, material.transport_key, material.ca_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=mtls)) as session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as anonymous:
        yield Payer(sandbox, material, session, anonymous)


def first_error(reply: Reply) -> tuple[int, str, str | None]:
    error = reply.body["Errors"][0]
    return reply.status, error["ErrorCode"], error.get("Path")


# --- the whole journey ------------------------------------------------------------------------------------------
async def test_domestic_payment_end_to_end(payer, sandbox):
    client_id = await payer.client()
    cc = await payer.payments_token(client_id)
    body = consent_body()
    created = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body,
                              headers={"x-fapi-interaction-id": "int-pis-1"})
    assert created.status == 201 and created.headers["x-fapi-interaction-id"] == "int-pis-1"
    data = created.body["Data"]
    consent_id = data["ConsentId"]
    assert consent_id.startswith("pdc-") and len(consent_id) == 36 and data["Status"] == "AwaitingAuthorisation"
    assert data["Initiation"] == body["Data"]["Initiation"] and created.body["Risk"] == RISK
    assert data["CreationDateTime"] == data["StatusUpdateDateTime"] == "2026-11-23T15:00:00+00:00"
    assert created.body["Links"]["Self"] == f"{sandbox.issuer}{PIS_BASE}/domestic-payment-consents/{consent_id}"
    assert created.body["Meta"] == {}
    state = sandbox.payment_consents[consent_id]
    assert (state.status, state.client_id, state.initiation, state.risk, state.debtor_account_id) == (
        "AwaitingAuthorisation", client_id, body["Data"]["Initiation"], RISK, None)

    url = payer.payment_authorize_url(client_id, consent_id)
    page = (await payer.call("GET", url, mtls=False)).body
    assert (page["kind"], page["consent_id"], page["initiation"]) == ("payment", consent_id, body["Data"]["Initiation"])
    assert page["complete"]["body"] == {"outcome": "approve", "psu": "psu-olivia-bennett",
                                        "accounts": [ACC_OLIVIA_CURRENT]}
    done = await payer.call("POST", url, json={"accounts": [ACC_OLIVIA_SAVINGS]}, mtls=False)
    fragment = {k: v[0] for k, v in parse_qs(urlsplit(done.body["redirect_to"]).fragment).items()}
    assert set(fragment) == {"code", "id_token", "state"}
    assert (state.status, state.debtor_account_id, state.psu_id) == ("Authorised", ACC_OLIVIA_SAVINGS,
                                                                     "psu-olivia-bennett")
    tokens = await payer.token(client_id, {"grant_type": "authorization_code", "code": fragment["code"],
                                           "redirect_uri": REDIRECT})
    assert tokens.status == 200 and tokens.body["scope"] == "openid payments"
    psu = tokens.body["access_token"]
    got = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc)
    assert got.body["Data"]["Status"] == "Authorised" and uuid.UUID(got.headers["x-fapi-interaction-id"])

    funds = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}/funds-confirmation", token=psu)
    assert funds.status == 200 and funds.body["Data"]["FundsAvailableResult"] == {
        "FundsAvailableDateTime": "2026-11-23T15:00:00+00:00", "FundsAvailable": True}
    assert funds.body["Links"]["Self"].endswith(f"/domestic-payment-consents/{consent_id}/funds-confirmation")

    submitted = await payer.submit(psu, consent_id, body)
    assert submitted.status == 201, submitted.body
    payment = submitted.body["Data"]
    payment_id = payment["DomesticPaymentId"]
    assert payment_id.startswith("dp-") and len(payment_id) == 35 and payment["ConsentId"] == consent_id
    assert (payment["Status"], payment["StatusUpdateDateTime"]) == ("Pending", "2026-11-23T15:00:00+00:00")
    assert payment["Initiation"] == body["Data"]["Initiation"]
    assert submitted.body["Links"]["Self"] == f"{sandbox.issuer}{PIS_BASE}/domestic-payments/{payment_id}"
    assert sandbox.payment_consents[consent_id].status == "Consumed"
    assert (sandbox.payments[payment_id].consent_id, len(sandbox.payments)) == (consent_id, 1)

    statuses = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        reply = await payer.pis("GET", f"/domestic-payments/{payment_id}", token=cc)
        status = reply.body["Data"]["Status"]
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status == "AcceptedSettlementCompleted":
            break
        await asyncio.sleep(0.01)
    assert statuses == ["Pending", "AcceptedSettlementInProcess", "AcceptedSettlementCompleted"]
    assert sandbox.payments[payment_id].status == "AcceptedSettlementCompleted"
    consumed = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc)
    assert consumed.body["Data"]["Status"] == "Consumed"


def test_payment_timeline_stages():
    payment = Payment("dp-1", "pdc-1", "c", {}, datetime.fromisoformat("2026-11-23T15:00:00+00:00"), 0.0,
                      (1.0, 3.0), rejected=False)
    assert [payment.stage(age) for age in (0.0, 0.999, 1.0, 2.999, 3.0, 99.0)] == [
        ("Pending", 0.0), ("Pending", 0.0), ("AcceptedSettlementInProcess", 1.0),
        ("AcceptedSettlementInProcess", 1.0), ("AcceptedSettlementCompleted", 3.0),
        ("AcceptedSettlementCompleted", 3.0)]
    assert payment.status_since(2.0).isoformat() == "2026-11-23T15:00:01+00:00"
    rejected = Payment("dp-2", "pdc-2", "c", {}, payment.created, 0.0, (1.0, 3.0), rejected=True)
    assert [rejected.stage(age)[0] for age in (0.5, 1.0, 5.0)] == ["Pending", "Rejected", "Rejected"]


def test_payment_timeline_is_checked(material):  # noqa: F811
    with pytest.raises(ValueError, match="payment_timeline"):
        _sandbox(material, payment_timeline=(3.0, 1.0))
    assert _sandbox(material).payment_timeline == (1.0, 3.0)


# --- tokens ------------------------------------------------------------------------------------------------------
async def test_mutual_tls_and_bearer_tokens(payer, sandbox):
    async with payer.anonymous.get(sandbox.issuer + PIS_BASE + "/domestic-payments/dp-1") as resp:
        body = await resp.json()
        assert resp.status == 401 and body["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Invalid"
        assert "client certificate" in body["Errors"][0]["Message"] and resp.headers["x-jws-signature"]
    missing = await payer.pis("GET", "/domestic-payments/dp-1", token=None)
    assert first_error(missing) == (401, "UK.OBIE.Header.Missing", "Authorization")
    unknown = await payer.pis("GET", "/domestic-payments/dp-1", token="nope")
    assert unknown.status == 401 and unknown.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


async def test_the_kind_of_token_each_operation_needs(payer, sandbox):
    client_id, consent_id, psu = await payer.authorised()
    cc_payments = await payer.payments_token(client_id)
    cc_accounts = await payer.cc_token(client_id, "accounts")
    funds = f"/domestic-payment-consents/{consent_id}/funds-confirmation"

    def insufficient(reply: Reply) -> None:
        assert first_error(reply) == (403, "UK.OBIE.Header.Invalid", "Authorization"), reply.body
        assert reply.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')

    insufficient(await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc_accounts))
    insufficient(await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=psu))
    insufficient(await payer.pis("POST", "/domestic-payment-consents", token=psu, body=consent_body()))
    insufficient(await payer.pis("GET", funds, token=cc_payments))
    insufficient(await payer.submit(cc_payments, consent_id))
    # An account-access consent's token moves no money, even with payments in its scope.
    aac = await payer.consent(client_id)
    both = "openid accounts payments"
    url = payer.authorize_url(client_id, payer.request_object(client_id, aac, scope=both), scope=both)
    done = await payer.call("POST", url, mtls=False)
    code = parse_qs(urlsplit(done.body["redirect_to"]).fragment)["code"][0]
    ais = await payer.token(client_id, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert ais.body["scope"] == both
    not_a_payment = await payer.pis("GET", funds, token=ais.body["access_token"])
    insufficient(not_a_payment)
    assert "payment consent" in not_a_payment.body["Errors"][0]["Message"]
    # ... and a payment consent's token reads no accounts.
    refused = await payer.call("GET", AIS_BASE + "/accounts", token=psu)
    assert refused.status == 403 and refused.headers["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope"')
    assert (await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc_payments)).status == 200

    _, other_consent, other_psu = await payer.authorised()
    assert first_error(await payer.pis("GET", funds, token=other_psu)) == (
        403, "UK.OBIE.Resource.ConsentMismatch", "ConsentId")
    assert first_error(await payer.submit(other_psu, consent_id)) == (
        403, "UK.OBIE.Resource.ConsentMismatch", "Data.ConsentId")
    assert sandbox.payments == {} and sandbox.payment_consents[consent_id].status == "Authorised"
    assert sandbox.payment_consents[other_consent].status == "Authorised"


async def test_reading_consents_and_payments_of_others(payer, sandbox):
    client_id, consent_id, psu = await payer.authorised()
    payment_id = (await payer.submit(psu, consent_id)).body["Data"]["DomesticPaymentId"]
    stranger = await payer.payments_token(await payer.client())
    for path in (f"/domestic-payment-consents/{consent_id}", f"/domestic-payments/{payment_id}"):
        assert first_error(await payer.pis("GET", path, token=stranger))[:2] == (
            403, "UK.OBIE.Resource.ConsentMismatch")
    cc = await payer.payments_token(client_id)
    assert first_error(await payer.pis("GET", "/domestic-payment-consents/pdc-nope", token=cc)) == (
        404, "UK.OBIE.Resource.NotFound", "ConsentId")
    assert first_error(await payer.pis("GET", "/domestic-payments/dp-nope", token=cc)) == (
        404, "UK.OBIE.Resource.NotFound", "DomesticPaymentId")


# --- authorisation of payment consents ----------------------------------------------------------------------------
async def test_authorising_payment_consents(payer, sandbox):
    client_id = await payer.client()
    consent_id = await payer.payment_consent(client_id)
    for scope in ("openid accounts", "openid payments accounts", "payments"):
        reply = await payer.call("GET", payer.payment_authorize_url(client_id, consent_id, scope), mtls=False)
        assert (reply.status, reply.body["error"]) == (400, "invalid_request_object"), scope
    url = payer.payment_authorize_url(client_id, consent_id)
    for choice in ({"accounts": [ACC_OLIVIA_CURRENT, ACC_OLIVIA_SAVINGS]}, {"accounts": []},
                   {"accounts": [ACC_RAHUL_CURRENT]}, {"psu": "nobody"}):
        reply = await payer.call("POST", url, json=choice, mtls=False)
        assert (reply.status, reply.body["error"]) == (400, "invalid_request"), choice
    assert sandbox.payment_consents[consent_id].status == "AwaitingAuthorisation"
    await payer.approve(client_id, consent_id, {"psu": PSU_RAHUL})  # that PSU's first sort-code account pays
    assert (sandbox.payment_consents[consent_id].psu_id,
            sandbox.payment_consents[consent_id].debtor_account_id) == (PSU_RAHUL, ACC_RAHUL_CURRENT)
    again = await payer.call("GET", url, mtls=False)
    assert (again.status, again.body["error"]) == (400, "invalid_request")

    rejected = await payer.payment_consent(client_id)
    done = await payer.call("POST", payer.payment_authorize_url(client_id, rejected), json={"outcome": "reject"},
                            mtls=False)
    assert parse_qs(urlsplit(done.body["redirect_to"]).fragment)["error"] == ["access_denied"]
    cc = await payer.payments_token(client_id)
    assert (await payer.pis("GET", f"/domestic-payment-consents/{rejected}", token=cc)).body["Data"]["Status"] == \
        "Rejected"


async def test_a_named_debtor_account_must_pay(payer, sandbox):
    rahul = ACCOUNTS[ACC_RAHUL_CURRENT]
    body = consent_body(initiation(DebtorAccount={"SchemeName": rahul.scheme, "Identification": rahul.identification,
                                                  "Name": "Rahul Mistry"}))
    client_id = await payer.client()
    consent_id = await payer.payment_consent(client_id, body)
    url = payer.payment_authorize_url(client_id, consent_id)
    page = (await payer.call("GET", url, mtls=False)).body
    assert page["psu_id"] == PSU_RAHUL and page["complete"]["body"]["accounts"] == [ACC_RAHUL_CURRENT]
    for choice in ({"accounts": [ACC_RAHUL_SAVINGS]}, {"psu": "psu-olivia-bennett"}):
        reply = await payer.call("POST", url, json=choice, mtls=False)
        assert (reply.status, reply.body["error"]) == (400, "invalid_request"), choice
    tokens = await payer.psu_tokens(client_id, consent_id)  # no choice: the named account, its holder
    assert sandbox.payment_consents[consent_id].debtor_account_id == ACC_RAHUL_CURRENT
    assert (await payer.submit(tokens["access_token"], consent_id, body)).status == 201

    elsewhere = consent_body(initiation(DebtorAccount={"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                                       "Identification": "99999912345678"}))
    unknown = await payer.payment_consent(client_id, elsewhere)
    reply = await payer.call("POST", payer.payment_authorize_url(client_id, unknown), mtls=False)
    assert (reply.status, reply.body["error"]) == (400, "invalid_request")


async def test_psu_answers_of_the_wrong_type_are_refused(payer, sandbox):
    client_id = await payer.client()
    payment_url = payer.payment_authorize_url(client_id, await payer.payment_consent(client_id))
    aac_url = payer.authorize_url(client_id, payer.request_object(client_id, await payer.consent(client_id)))
    for url in (payment_url, aac_url):
        for choice in ({"psu": ["psu-olivia-bennett"]}, {"accounts": [{"AccountId": ACC_OLIVIA_CURRENT}]},
                       {"accounts": ACC_OLIVIA_CURRENT}):
            reply = await payer.call("POST", url, json=choice, mtls=False)
            assert (reply.status, reply.body["error"]) == (400, "invalid_request"), (url, choice)
    assert {c.status for c in sandbox.payment_consents.values()} == {"AwaitingAuthorisation"}


async def test_refresh_stops_once_the_consent_is_consumed(payer):
    client_id = await payer.client()
    consent_id = await payer.payment_consent(client_id)
    tokens = await payer.psu_tokens(client_id, consent_id)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    fresh = await payer.token(client_id, refresh)
    assert fresh.status == 200 and fresh.body["scope"] == "openid payments"
    assert (await payer.submit(fresh.body["access_token"], consent_id)).status == 201
    assert (await payer.token(client_id, refresh)).body["error"] == "invalid_grant"


# --- request signatures -----------------------------------------------------------------------------------------
async def test_request_signature_refusals(payer, sandbox):
    client_id = await payer.client()
    cc = await payer.payments_token(client_id)
    body = consent_body()
    raw = json.dumps(body).encode()
    good = payer.sign(raw)
    head, _, signature = good.split(".")
    cases: dict[str, tuple[Any, str]] = {
        "absent": (UNSET, "UK.OBIE.Signature.Missing"),
        "two parts": (f"{head}.{signature}", "UK.OBIE.Signature.Malformed"),
        "attached payload": (f"{head}.{_b64e(raw)}.{signature}", "UK.OBIE.Signature.Malformed"),
        "unreadable header": (f"bm90IGpzb24..{signature}", "UK.OBIE.Signature.Malformed"),
        "header not an object": (f"{_b64e(b'[1]')}..{signature}", "UK.OBIE.Signature.Malformed"),
        "no iat": (payer.sign(raw, **{OB_IAT: None}), "UK.OBIE.Signature.MissingClaim"),
        "no iss": (payer.sign(raw, **{OB_ISS: None}), "UK.OBIE.Signature.MissingClaim"),
        "no tan": (payer.sign(raw, **{OB_TAN: None}), "UK.OBIE.Signature.MissingClaim"),
        "no kid": (payer.sign(raw, kid=None), "UK.OBIE.Signature.MissingClaim"),
        "no b64": (payer.sign(raw, b64=None), "UK.OBIE.Signature.MissingClaim"),
        "no crit": (payer.sign(raw, crit=None), "UK.OBIE.Signature.MissingClaim"),
        "crit lacks tan": (payer.sign(raw, crit=CRIT[:3]), "UK.OBIE.Signature.MissingClaim"),
        "crit names more": (payer.sign(raw, crit=[*CRIT, "exp"], exp=1), "UK.OBIE.Signature.InvalidClaim"),
        "alg RS256": (payer.sign(raw, alg="RS256"), "UK.OBIE.Signature.InvalidClaim"),
        "b64 true": (payer.sign(raw, b64=True), "UK.OBIE.Signature.InvalidClaim"),
        "iat too old": (payer.sign(raw, **{OB_IAT: int(time.time()) - 400}), "UK.OBIE.Signature.InvalidClaim"),
        "iat ahead": (payer.sign(raw, **{OB_IAT: int(time.time()) + 400}), "UK.OBIE.Signature.InvalidClaim"),
        "iat a string": (payer.sign(raw, **{OB_IAT: str(int(time.time()))}), "UK.OBIE.Signature.InvalidClaim"),
        "iss of another software": (payer.sign(raw, **{OB_ISS: "0015800001041REAAY/someone"}),
                                    "UK.OBIE.Signature.InvalidClaim"),
        "tan elsewhere": (payer.sign(raw, **{OB_TAN: "example.org"}), "UK.OBIE.Signature.InvalidClaim"),
        "typ JWT": (payer.sign(raw, typ="JWT"), "UK.OBIE.Signature.InvalidClaim"),
        "unknown kid": (payer.sign(raw, kid="not-a-published-kid"), "UK.OBIE.Signature.Invalid"),
        "another key": (payer.sign(raw, key=stranger_key()), "UK.OBIE.Signature.Invalid"),
        "other bytes": (payer.sign(json.dumps(body, indent=1).encode()), "UK.OBIE.Signature.Invalid"),
    }
    key = "same-key-throughout"  # refusals do not consume an idempotency key
    for why, (value, code) in cases.items():
        reply = await payer.pis("POST", "/domestic-payment-consents", token=cc, raw=raw,
                                signature=None if value is UNSET else value, idempotency=key)
        assert first_error(reply) == (400, code, "x-jws-signature"), (why, reply.body)
    assert sandbox.payment_consents == {}
    optional_members_left_out = payer.sign(raw, typ=None, cty=None)
    reply = await payer.pis("POST", "/domestic-payment-consents", token=cc, raw=raw,
                            signature=optional_members_left_out, idempotency=key)
    assert reply.status == 201 and len(sandbox.payment_consents) == 1


async def test_signature_checked_after_the_spec_and_on_payments_too(payer, sandbox):
    client_id, consent_id, psu = await payer.authorised()
    cc = await payer.payments_token(client_id)
    spec_and_signature = await payer.pis("POST", "/domestic-payment-consents", token=cc,
                                         body={"Data": {"Initiation": initiation()}}, signature=None)
    codes = {(e["ErrorCode"], e.get("Path")) for e in spec_and_signature.body["Errors"]}
    assert spec_and_signature.status == 400
    assert codes == {("UK.OBIE.Field.Missing", "Risk"), ("UK.OBIE.Signature.Missing", "x-jws-signature")}
    forged = await payer.submit(psu, consent_id, signature=payer.sign(b"{}", key=stranger_key()))
    assert first_error(forged) == (400, "UK.OBIE.Signature.Invalid", "x-jws-signature")
    assert sandbox.payments == {} and sandbox.payment_consents[consent_id].status == "Authorised"


# --- idempotency ------------------------------------------------------------------------------------------------
async def test_idempotency_keys(payer, sandbox):
    client_id = await payer.client()
    cc = await payer.payments_token(client_id)
    body = consent_body()
    first = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body, idempotency="key-1")
    assert first.status == 201
    # The same body, serialised differently and signed afresh: the same answer, byte for byte, and nothing new.
    again = await payer.pis("POST", "/domestic-payment-consents", token=cc,
                            raw=json.dumps(body, indent=2).encode(), idempotency="key-1")
    assert (again.status, again.raw) == (201, first.raw) and len(sandbox.payment_consents) == 1
    other_body = consent_body(initiation(EndToEndIdentification="E2E-OTHER"))
    clash = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=other_body, idempotency="key-1")
    assert first_error(clash) == (400, "UK.OBIE.Header.Invalid", "x-idempotency-key")
    assert clash.body["Errors"][0]["Message"] == "the idempotency key was used with another body"
    # Keys belong to a client: another client's key-1 is its own.
    stranger = await payer.payments_token(await payer.client())
    theirs = await payer.pis("POST", "/domestic-payment-consents", token=stranger, body=body, idempotency="key-1")
    assert theirs.status == 201 and theirs.body["Data"]["ConsentId"] != first.body["Data"]["ConsentId"]
    # An error is not remembered: the key can then be used for a good request.
    refused = await payer.pis("POST", "/domestic-payment-consents", token=cc,
                              body=consent_body(initiation(InstructedAmount={"Amount": "1.00", "Currency": "EUR"})),
                              idempotency="key-2")
    assert refused.status == 400
    assert (await payer.pis("POST", "/domestic-payment-consents", token=cc, body=other_body,
                            idempotency="key-2")).status == 201
    assert len(sandbox.payment_consents) == 3
    # The spec's rules for the header itself (its pattern only refuses edge whitespace, which HTTP strips).
    for key, code in (("", "UK.OBIE.Header.Missing"), ("k" * 41, "UK.OBIE.Header.Invalid")):
        reply = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body,
                                idempotency=key or None)
        assert first_error(reply) == (400, code, "x-idempotency-key"), key
    # After 24 hours a key is forgotten and makes a new resource.
    for remembered in sandbox.world.idempotency.values():
        remembered.expires_at = time.monotonic() - 1
    later = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body, idempotency="key-1")
    assert later.status == 201 and later.body["Data"]["ConsentId"] != first.body["Data"]["ConsentId"]
    assert len(sandbox.payment_consents) == 4


async def test_concurrent_requests_with_one_key_make_one_resource(payer, sandbox):
    client_id = await payer.client()
    cc = await payer.payments_token(client_id)
    raw = json.dumps(consent_body()).encode()
    # Open the 20 connections first, so the POSTs reach the simulator together rather than a TLS handshake apart.
    await asyncio.gather(*(payer.pis("GET", "/domestic-payment-consents/pdc-warm", token=cc) for _ in range(20)))
    replies = await asyncio.gather(*(payer.pis("POST", "/domestic-payment-consents", token=cc, raw=raw,
                                               idempotency="together") for _ in range(20)))
    assert {r.status for r in replies} == {201} and len({r.raw for r in replies}) == 1
    assert len(sandbox.payment_consents) == 1
    consent_id = replies[0].body["Data"]["ConsentId"]
    psu = (await payer.psu_tokens(client_id, consent_id))["access_token"]
    payments = await asyncio.gather(*(payer.submit(psu, consent_id, idempotency="pay-once") for _ in range(10)))
    assert {r.status for r in payments} == {201} and len({r.raw for r in payments}) == 1
    assert len(sandbox.payments) == 1
    # A retry after the consent was consumed still gets the first answer.
    replay = await payer.submit(psu, consent_id, idempotency="pay-once")
    assert (replay.status, replay.raw) == (201, payments[0].raw)
    second = await payer.submit(psu, consent_id, idempotency="another-payment")
    assert first_error(second)[:2] == (400, "UK.OBIE.Resource.InvalidConsentStatus")
    assert len(sandbox.payments) == 1


# --- Stripe's rules ---------------------------------------------------------------------------------------------
def _creditor(scheme: str, identification: str) -> dict[str, Any]:
    return {"CreditorAccount": {"SchemeName": scheme, "Identification": identification, "Name": "Payee Ltd"}}


async def test_stripe_rules_for_consents(payer, sandbox):
    cc = await payer.payments_token(await payer.client())
    sort_code = "UK.OBIE.SortCodeAccountNumber"
    where = "Data.Initiation"
    cases = [
        ({"InstructedAmount": {"Amount": "10.00", "Currency": "EUR"}}, "UK.OBIE.Unsupported.Currency",
         f"{where}.InstructedAmount.Currency"),
        (_creditor("UK.OBIE.IBAN", "GB33BUKB20201555555555"), "UK.OBIE.Unsupported.Scheme",
         f"{where}.CreditorAccount.SchemeName"),
        (_creditor(sort_code, "2000005551234"), "UK.OBIE.Unsupported.AccountIdentifier",
         f"{where}.CreditorAccount.Identification"),
        (_creditor(sort_code, "20-00-00 55512345"), "UK.OBIE.Unsupported.AccountIdentifier",
         f"{where}.CreditorAccount.Identification"),
        (_creditor("UK.OBIE.Wallet", "acct-1AbC"), "UK.OBIE.Unsupported.AccountIdentifier",
         f"{where}.CreditorAccount.Identification"),
        (_creditor("UK.OBIE.Wallet", "acct_"), "UK.OBIE.Unsupported.AccountIdentifier",
         f"{where}.CreditorAccount.Identification"),
        ({"DebtorAccount": {"SchemeName": "UK.OBIE.IBAN",
                            "Identification": ACCOUNTS[ACC_RAHUL_SAVINGS].identification}},
         "UK.OBIE.Unsupported.Scheme", f"{where}.DebtorAccount.SchemeName"),
        ({"RemittanceInformation": {"Unstructured": "no reference"}}, "UK.OBIE.Field.Missing",
         f"{where}.RemittanceInformation.Reference"),
        ({"RemittanceInformation": {"Reference": "AB-123-CD"}}, "UK.OBIE.Field.Invalid",
         f"{where}.RemittanceInformation.Reference"),
        ({"RemittanceInformation": {"Reference": "AAAAAAAA"}}, "UK.OBIE.Field.Invalid",
         f"{where}.RemittanceInformation.Reference"),
        ({"RemittanceInformation": {"Reference": "aaa-AAA-aaa"}}, "UK.OBIE.Field.Invalid",
         f"{where}.RemittanceInformation.Reference"),
        ({"InstructedAmount": {"Amount": "0.00", "Currency": "GBP"}}, "UK.OBIE.Field.Invalid",
         f"{where}.InstructedAmount.Amount"),
        ({"InstructedAmount": {"Amount": "10.125", "Currency": "GBP"}}, "UK.OBIE.Field.Invalid",
         f"{where}.InstructedAmount.Amount"),
        ({"InstructedAmount": {"Amount": "10", "Currency": "GBP"}}, "UK.OBIE.Field.Invalid",  # the spec's pattern
         f"{where}.InstructedAmount.Amount"),
    ]
    for changes, code, path in cases:
        reply = await payer.pis("POST", "/domestic-payment-consents", token=cc,
                                body=consent_body(initiation(**changes)))
        assert first_error(reply) == (400, code, path), (changes, reply.body)
    assert sandbox.payment_consents == {}
    several = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=consent_body(initiation(
        InstructedAmount={"Amount": "10.00", "Currency": "USD"}, RemittanceInformation={"Reference": "x"},
        **_creditor("UK.OBIE.PAN", "4111111111111111"))))
    assert [(e["ErrorCode"], e["Path"]) for e in several.body["Errors"]] == [
        ("UK.OBIE.Unsupported.Currency", f"{where}.InstructedAmount.Currency"),
        ("UK.OBIE.Unsupported.Scheme", f"{where}.CreditorAccount.SchemeName"),
        ("UK.OBIE.Field.Invalid", f"{where}.RemittanceInformation.Reference")]
    for changes in (_creditor("UK.OBIE.Wallet", "acct_1NvY8bLkdIwHu7ix"),
                    {"RemittanceInformation": {"Reference": "INV 2026/000042"}},
                    {"InstructedAmount": {"Amount": "0.5", "Currency": "GBP"}}):
        reply = await payer.pis("POST", "/domestic-payment-consents", token=cc,
                                body=consent_body(initiation(**changes)))
        assert reply.status == 201, (changes, reply.body)


# --- submission -------------------------------------------------------------------------------------------------
async def test_a_payment_must_be_the_consented_one(payer, sandbox):
    _, consent_id, psu = await payer.authorised()
    changed = consent_body(initiation(InstructedAmount={"Amount": "2500.00", "Currency": "GBP"}))
    assert first_error(await payer.submit(psu, consent_id, changed)) == (
        400, "UK.OBIE.Resource.ConsentMismatch", "Data.Initiation")
    assert first_error(await payer.submit(psu, consent_id, consent_body(risk={}))) == (
        400, "UK.OBIE.Resource.ConsentMismatch", "Risk")
    both = await payer.submit(psu, consent_id, consent_body(initiation(EndToEndIdentification="E2E-X"), risk={}))
    assert [e["Path"] for e in both.body["Errors"]] == ["Data.Initiation", "Risk"]
    assert sandbox.payments == {} and sandbox.payment_consents[consent_id].status == "Authorised"
    assert (await payer.submit(psu, consent_id)).status == 201
    funds = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}/funds-confirmation", token=psu)
    assert first_error(funds)[:2] == (400, "UK.OBIE.Resource.InvalidConsentStatus")
    assert "Consumed" in funds.body["Errors"][0]["Message"]


async def test_rejected_payments(payer, sandbox):
    debtor = ACCOUNTS[ACC_OLIVIA_CURRENT]
    available = available_balance(debtor, sandbox.world.transactions(debtor.account_id))
    too_much = consent_body(initiation(InstructedAmount={"Amount": f"{available + Decimal('0.01'):.2f}",
                                                         "Currency": "GBP"}))
    _, consent_id, psu = await payer.authorised(too_much)
    funds = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}/funds-confirmation", token=psu)
    assert funds.body["Data"]["FundsAvailableResult"]["FundsAvailable"] is False
    short = await payer.submit(psu, consent_id, too_much)
    assert short.status == 201 and short.body["Data"]["Status"] == "Pending"

    exact = consent_body(initiation(InstructedAmount={"Amount": f"{available:.2f}", "Currency": "GBP"}))
    _, exact_consent, exact_psu = await payer.authorised(exact)
    assert (await payer.pis("GET", f"/domestic-payment-consents/{exact_consent}/funds-confirmation",
                            token=exact_psu)).body["Data"]["FundsAvailableResult"]["FundsAvailable"] is True
    settled = await payer.submit(exact_psu, exact_consent, exact)

    _, refused_consent, refused_psu = await payer.authorised()
    sandbox.reject_payments = True
    refused = await payer.submit(refused_psu, refused_consent)
    sandbox.reject_payments = False
    await asyncio.sleep(TIMELINE[1] + 0.05)
    cc = await payer.payments_token(sandbox.payment_consents[consent_id].client_id)
    after = await payer.pis("GET", f"/domestic-payments/{short.body['Data']['DomesticPaymentId']}", token=cc)
    assert after.body["Data"]["Status"] == "Rejected"
    assert [sandbox.payments[r.body["Data"]["DomesticPaymentId"]].status for r in (short, refused, settled)] == [
        "Rejected", "Rejected", "AcceptedSettlementCompleted"]
    assert sandbox.payment_consents[refused_consent].status == "Consumed"


# --- response signatures ----------------------------------------------------------------------------------------
async def test_tampered_response_signatures(payer, sandbox):
    client_id = await payer.client()
    cc = await payer.payments_token(client_id)
    consent_id = await payer.payment_consent(client_id)
    sandbox.tamper_response_signatures = True
    for path in (f"/domestic-payment-consents/{consent_id}", "/domestic-payment-consents/pdc-nope"):
        reply = await payer.pis("GET", path, token=cc, check=False)
        assert reply.status in (200, 404)
        with pytest.raises(BadSignatureError):
            await payer.verify_answer(reply)
    sandbox.tamper_response_signatures = False
    reply = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc, check=False)
    assert (await payer.verify_answer(reply))["kid"] == sandbox.kid
    # Faults answer on PIS paths signed as well; AIS answers carry no signature.
    sandbox.faults.add("status", path="/domestic-payment-consents/", status=500)
    fault = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc)
    assert first_error(fault)[:2] == (500, "UK.OBIE.UnexpectedError")
    assert "x-jws-signature" not in (await payer.call("GET", AIS_BASE + "/accounts", token="x")).headers


# --- faults that act after the upstream did ----------------------------------------------------------------------
async def test_lost_and_late_answers_after_the_upstream_acted(payer, sandbox):
    client_id = await payer.client()
    cc = await payer.payments_token(client_id)
    body = consent_body()
    sandbox.faults.add("lose_response", path="/domestic-payment-consents$", method="POST")
    with pytest.raises(aiohttp.ClientConnectionError):
        await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body, idempotency="lost")
    assert len(sandbox.payment_consents) == 1  # it happened, though nobody heard
    (consent_id,) = sandbox.payment_consents
    assert sandbox.calls.matching("POST", "/domestic-payment-consents$")[-1].status is None
    retry = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body, idempotency="lost")
    assert retry.status == 201 and retry.body["Data"]["ConsentId"] == consent_id
    assert len(sandbox.payment_consents) == 1

    sandbox.faults.add("late_response", path="/domestic-payment-consents$", delay=0.4)
    with pytest.raises(TimeoutError):
        await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body, idempotency="late",
                        timeout=0.1)
    assert len(sandbox.payment_consents) == 2
    retry = await payer.pis("POST", "/domestic-payment-consents", token=cc, body=body, idempotency="late")
    assert retry.status == 201 and len(sandbox.payment_consents) == 2

    sandbox.faults.add("late_response", path="/domestic-payment-consents/", delay=0.2)
    started = time.monotonic()
    waited = await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc)  # signed when sent
    assert waited.status == 200 and time.monotonic() - started >= 0.2
    assert sandbox.faults.faults == []


async def test_kit_faults_that_act_after_the_handler():
    """lose_response / late_response for any simulator: the handler's effect happens, its answer is lost or late."""
    assert {"lose_response", "late_response"} <= FAULT_KINDS
    effects: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        effects.append(request.path)
        return web.json_response({"done": len(effects)}, status=201)

    faults, calls = FaultInjector(), CallLog()
    app = build_app(faults=faults, calls=calls)
    app.router.add_post("/orders", handler)
    server = SandboxServer(app)
    base = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            lost = faults.add("lose_response", path="^/orders$", method="post", times=2)
            assert lost.to_json()["kind"] == "lose_response" and lost.method == "POST"
            for _ in range(2):
                with pytest.raises(aiohttp.ClientConnectionError):
                    await session.post(base + "/orders")
            assert effects == ["/orders", "/orders"] and faults.faults == []
            assert [c.status for c in calls] == [None, None]

            faults.add("late_response", path="/orders", delay=0.3)
            with pytest.raises(TimeoutError):
                await session.post(base + "/orders", timeout=aiohttp.ClientTimeout(total=0.05))
            assert len(effects) == 3
            faults.add("late_response", path="/orders", delay=0.1)
            started = time.monotonic()
            async with session.post(base + "/orders") as resp:
                assert (resp.status, await resp.json()) == (201, {"done": 4})
            assert time.monotonic() - started >= 0.1
            faults.add("late_response", path="/missing", delay=0.05)
            async with session.get(base + "/missing") as resp:  # aiohttp's own 404 comes late too
                assert resp.status == 404
            faults.add("lose_response", method="GET")
            async with session.post(base + "/orders") as resp:  # the method does not match: answered
                assert resp.status == 201
            assert len(faults.faults) == 1
    finally:
        await server.stop()
    with pytest.raises(ValueError):
        Fault(kind="lose_everything")


# --- conformance ------------------------------------------------------------------------------------------------
def test_routes_are_exactly_the_trimmed_pis_spec(material):  # noqa: F811
    served = {(m, t) for m, t, _ in ROUTES}
    assert served == {(op.method, op.template) for op in _sandbox(material).pis_spec.operations()}
    assert len(served) == 5


async def test_every_pis_operation_answers_to_the_spec(payer, sandbox):
    client_id, consent_id, psu = await payer.authorised()
    cc = await payer.payments_token(client_id)
    await payer.pis("GET", f"/domestic-payment-consents/{consent_id}/funds-confirmation", token=psu)
    payment = await payer.submit(psu, consent_id)
    await payer.pis("GET", f"/domestic-payments/{payment.body['Data']['DomesticPaymentId']}", token=cc)
    await payer.pis("GET", f"/domestic-payment-consents/{consent_id}", token=cc)
    for path in ("/domestic-payment-consents/pdc-x", "/domestic-payments/dp-x"):
        await payer.pis("GET", path, token=cc)
        await payer.pis("GET", path, token="expired-or-unknown")
    await payer.pis("GET", f"/domestic-payment-consents/{consent_id}/funds-confirmation", token=psu)  # consumed
    await payer.pis("POST", "/domestic-payment-consents", token=cc, body={"Data": {}, "Risk": {}})
    await payer.pis("POST", "/domestic-payment-consents", token=psu, body=consent_body())
    exercised = {(method, template) for method, template, _ in payer.pis_seen}
    assert exercised == {(op.method, op.template) for op in sandbox.pis_spec.operations()}
    assert {status for *_, status in payer.pis_seen} == {200, 201, 400, 401, 403, 404}
