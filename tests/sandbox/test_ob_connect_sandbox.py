"""The simulated Mastercard Open Banking Connect hub over real HTTP, signed the way the gateway signs: with
Mastercard's own OAuth 1.0a library (`mastercard-oauth1-signer`), which the simulator does not use to verify."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from oauth1.oauth import OAuth

from adapters.ob_connect.sandbox import ObConnectSandbox
from adapters.ob_connect.sandbox_data import ALBION, LENTO, LIFFEY, POLDER, RHEINUFER, WISLA
from tests.sandbox.replies import Reply

CONSUMER_KEY = "sim-consumer-key!4f1c0a7e9b2d"
REDIRECT = "https://tpp.example.com/ob/callback?flow=test"
MERCHANT = {"id": "MERCHANT-1", "name": "Example Shop Ltd"}
TIMELINE = (0.3, 0.6, 0.9)  # each status lasts long enough for a poll to see it on a loaded machine


def _key_and_cert(cn: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def signing() -> tuple[rsa.RSAPrivateKey, bytes]:
    return _key_and_cert("ob-connect test signer")


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Hub:
    """The gateway's side, reduced to signing and sending; and the end user's browser, reduced to one POST."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: ObConnectSandbox, key: rsa.RSAPrivateKey) -> None:
        self.session, self.sandbox, self.key = session, sandbox, key

    @staticmethod
    def info(aspsp: str | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"xRequestId": str(uuid.uuid4()), "merchant": MERCHANT, **extra}
        if aspsp is not None:
            out["aspspId"] = aspsp
        return out

    def sign(self, url: str, method: str, payload: str | None, key: Any = None) -> str:
        return OAuth.get_authorization_header(url, method, payload, CONSUMER_KEY, key or self.key)

    async def send(self, method: str, path: str, raw: bytes | None, authorization: str | None) -> Reply:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        async with self.session.request(method, self.sandbox.base_url + path, data=raw, headers=headers) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def post(self, path: str, body: dict[str, Any]) -> Reply:
        payload = json.dumps(body)
        url = self.sandbox.base_url + path
        return await self.send("POST", path, payload.encode(), self.sign(url, "POST", payload))

    async def get(self, path: str) -> Reply:
        return await self.send("GET", path, None, self.sign(self.sandbox.base_url + path, "GET", None))

    async def user(self, url: str, **choice: Any) -> Reply:
        async with self.session.post(url, json=choice) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def page(self, url: str) -> Reply:
        async with self.session.get(url) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    # --- flows ---------------------------------------------------------------------------------------------
    async def ais_consent(self, aspsp: str, permissions: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        reply = await self.post("/accounts/consents", {
            "requestInfo": self.info(aspsp, tppRedirectURI=REDIRECT), "permissions": permissions or ["allPSD2"],
            **extra})
        assert reply.status == 200, reply.body
        return reply.body

    async def sca(self, sca_url: str, outcome: str = "approve", **choice: Any) -> str:
        reply = await self.user(sca_url, outcome=outcome, **choice)
        assert reply.status == 200, reply.body
        return urlsplit(reply.body["redirect_to"]).query

    async def valid_consent(self, aspsp: str, permissions: list[str] | None = None) -> str:
        created = await self.ais_consent(aspsp, permissions)
        query = await self.sca(created["_links"]["scaRedirect"])
        reply = await self.post("/accounts/consents/authorizations",
                                {"requestInfo": self.info(aspsp), "authorization": query})
        assert reply.status == 200, reply.body
        return reply.body["consentId"]

    async def data(self, path: str, aspsp: str, consent_id: str, **fields: Any) -> Reply:
        return await self.post(path, {"requestInfo": self.info(aspsp, consentId=consent_id), **fields})

    async def payment_consent(self, kind: str, aspsp: str, payments: dict[str, Any], **info: Any) -> Reply:
        return await self.post(f"/payments/{kind}-credit-transfers/consents", {
            "requestInfo": self.info(aspsp, tppRedirectURI=REDIRECT, **info), "payments": payments})

    async def transfer(self, kind: str, aspsp: str, authorization: str) -> Reply:
        return await self.post(f"/payments/{kind}-credit-transfers",
                               {"requestInfo": self.info(aspsp, authorization=authorization)})

    async def status(self, kind: str, aspsp: str, consent_id: str, payment_id: str) -> Reply:
        return await self.post(f"/payments/{kind}-credit-transfers/payment-status",
                               {"requestInfo": self.info(aspsp, consentId=consent_id), "paymentId": payment_id})

    async def paid(self, kind: str, aspsp: str, payments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Consent, approve, transfer: (the authorization string, the transfer answer)."""
        consent = await self.payment_consent(kind, aspsp, payments)
        assert consent.status == 200, consent.body
        query = await self.sca(consent.body["_links"]["scaRedirect"])
        reply = await self.transfer(kind, aspsp, query)
        assert reply.status == 200, reply.body
        return query, reply.body


def reason(reply: Reply) -> str:
    return reply.body["Errors"]["Error"][0]["ReasonCode"]


def check_error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    errors = reply.body["Errors"]["Error"]
    assert errors and all(set(e) == {"Source", "ReasonCode", "Description", "Recoverable", "Details"}
                          for e in errors)
    assert errors[0]["ReasonCode"] == code, errors


@pytest.fixture
async def sandbox(signing: tuple[Any, bytes]) -> Any:
    sim = ObConnectSandbox(consumer_key=CONSUMER_KEY, signing_cert_pem=signing[1], payment_timeline=TIMELINE)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def hub(sandbox: ObConnectSandbox, signing: tuple[Any, bytes]) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Hub(session, sandbox, signing[0])


def conforms(sandbox: ObConnectSandbox, path: str, reply: Reply, method: str = "POST") -> None:
    spec = sandbox.pis_spec if path.startswith("/payments/") else sandbox.ais_spec
    assert spec.validate_response(method, path, reply.status, reply.raw) == []


UK_PAYMENT = {"creditorAccount": {"identification": "12345678", "schemeName": "UK.AccountNumber"},
              "creditorAgent": {"clearingSystemIdentification": "UK.SortCode", "memberIdentification": "400515"},
              "creditorName": "Jane Supplier", "endToEndIdentification": "E2E-0001",
              "instructedAmount": {"amount": 25.5, "currency": "GBP"}, "localInstrument": "UK.FasterPayments",
              "remittanceInformationUnstructured": "Invoice 42"}
SEPA_PAYMENT = {"creditorAccount": {"iban": "DE89370400440532013000"}, "creditorAddress": {"country": "DE"},
                "creditorAgent": {"bicfi": "COBADEFFXXX"}, "creditorName": "Max Lieferant", "debtorName": "Alex Morgan",
                "endToEndIdentification": "E2E-SEPA-1", "instructedAmount": {"amount": 99.99, "currency": "EUR"},
                "instructionPriority": "Normal", "localInstrument": "SEPA"}


# --- base path, ASPSPs, health ---------------------------------------------------------------------------------
async def test_base_url_carries_the_hub_path(sandbox: ObConnectSandbox) -> None:
    assert sandbox.base_url == sandbox.origin + "/openbanking/connect/api"


async def test_aspsps_lists_every_bank_and_filters(hub: Hub) -> None:
    every = await hub.post("/accounts/aspsps", {"requestInfo": hub.info()})
    assert every.status == 200
    conforms(hub.sandbox, "/accounts/aspsps", every)
    assert {a["id"] for a in every.body["aspsps"]} == {ALBION, RHEINUFER, WISLA, POLDER, LENTO, LIFFEY}
    assert "capabilities" not in every.body["aspsps"][0]
    polish = await hub.post("/payments/aspsps", {"requestInfo": hub.info(), "country": "PL",
                                                 "returnAdditionalData": ["capabilities", "logo"]})
    conforms(hub.sandbox, "/payments/aspsps", polish)
    [bank] = polish.body["aspsps"]
    assert bank["id"] == WISLA and bank["aspspServices"] == ["AIS", "PIS"] and bank["logo"]["fileType"] == "png"
    assert bank["capabilities"]["domestic_credit_transfer"] and not bank["capabilities"]["cross_border_credit_transfer"]
    ais_only = await hub.post("/accounts/aspsps", {"requestInfo": hub.info(), "id": POLDER,
                                                   "returnAdditionalData": ["capabilities"]})
    [polder] = ais_only.body["aspsps"]
    assert polder["aspspServices"] == ["AIS"] and not polder["capabilities"]["sepa_credit_transfer"]


async def test_health_is_signed_like_everything_else(hub: Hub) -> None:
    for path in ("/accounts/health", "/payments/health"):
        reply = await hub.get(path)
        assert reply.status == 200 and reply.body["status"] == "UP"
        conforms(hub.sandbox, path, reply, "GET")
    check_error(await hub.send("GET", "/accounts/health", None, None), 401, "UNAUTHORIZED")


# --- AIS -------------------------------------------------------------------------------------------------------
async def test_ais_consent_sca_and_every_data_call(hub: Hub) -> None:
    created = await hub.ais_consent(ALBION)
    conforms(hub.sandbox, "/accounts/consents", Reply(200, {}, json.dumps(created).encode()))
    sca_url = created["_links"]["scaRedirect"]
    assert isinstance(sca_url, str) and sca_url.startswith(hub.sandbox.origin + "/sca/")
    page = await hub.page(sca_url)
    assert page.status == 200 and page.body["kind"] == "ais" and len(page.body["accounts"]) == 2
    query = await hub.sca(sca_url)
    params = parse_qs(query)
    assert params["flow"] == ["test"] and params["code"] and params["state"]  # the TPP's own query is kept
    exchanged = await hub.post("/accounts/consents/authorizations",
                               {"requestInfo": hub.info(ALBION), "authorization": "?" + query})
    conforms(hub.sandbox, "/accounts/consents/authorizations", exchanged)
    consent_id = exchanged.body["consentId"]
    assert exchanged.body["consentRequestId"] == created["consentRequestId"]
    again = await hub.post("/accounts/consents/authorizations", {"requestInfo": hub.info(ALBION),
                                                                  "authorization": query})
    assert again.body["consentId"] == consent_id  # a retried exchange is safe

    accounts = await hub.data("/accounts", ALBION, consent_id)
    conforms(hub.sandbox, "/accounts", accounts)
    current = accounts.body["accounts"][0]
    assert current["schemeName"] == "SortCodeAccountNumber" and len(current["accountNumber"]) == 14
    one = await hub.data("/accounts/account", ALBION, consent_id, accountId=current["resourceId"])
    conforms(hub.sandbox, "/accounts/account", one)
    assert one.body["account"] == current
    balances = await hub.data("/accounts/account/balances", ALBION, consent_id, accountId=current["resourceId"])
    conforms(hub.sandbox, "/accounts/account/balances", balances)
    assert {b["balanceType"] for b in balances.body["balances"]} == {"interimAvailable", "closingBooked"}
    assert all(isinstance(b["balanceAmount"]["amount"], float) for b in balances.body["balances"])
    orders = await hub.data("/accounts/account/standing-orders", ALBION, consent_id,
                            accountId=current["resourceId"])
    conforms(hub.sandbox, "/accounts/account/standing-orders", orders)
    assert len(orders.body["standingOrders"]) == 2
    raw = await hub.data("/accounts/consents/raw", ALBION, consent_id)
    conforms(hub.sandbox, "/accounts/consents/raw", raw)
    assert json.loads(raw.body["rawConsent"])["consentStatus"] == "valid"
    assert hub.sandbox.consents[created["consentRequestId"]].consent_id == consent_id


async def test_transactions_page_to_the_end_with_an_opaque_offset(hub: Hub) -> None:
    consent_id = await hub.valid_consent(RHEINUFER, ["transactions"])
    account = (await hub.data("/accounts", RHEINUFER, consent_id)).body["accounts"][0]["resourceId"]
    seen: list[dict[str, Any]] = []
    fields: dict[str, Any] = {"accountId": account, "limit": 40}
    pages = 0
    while True:
        reply = await hub.data("/accounts/account/transactions", RHEINUFER, consent_id, **fields)
        assert reply.status == 200, reply.body
        conforms(hub.sandbox, "/accounts/account/transactions", reply)
        pages += 1
        seen += reply.body["transactions"]
        if "offset" not in reply.body:
            break
        fields["offset"] = reply.body["offset"]
    assert pages == 4 and len(seen) == 150 and len({t["transactionId"] for t in seen}) == 150
    stamps = [t["bookingDateTime"] for t in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert {t["status"] for t in seen} == {"BOOK", "PDNG"}
    # a date window, and offsets that do not belong to the request
    recent = await hub.data("/accounts/account/transactions", RHEINUFER, consent_id, accountId=account,
                            bookingDateFrom=seen[10]["bookingDateTime"][:10], limit=500)
    assert 10 <= len(recent.body["transactions"]) < 150 and "offset" not in recent.body
    first = await hub.data("/accounts/account/transactions", RHEINUFER, consent_id, accountId=account, limit=5)
    check_error(await hub.data("/accounts/account/transactions", RHEINUFER, consent_id, accountId=account,
                               offset=first.body["offset"] + "x"), 400, "INVALID_REQUEST")
    check_error(await hub.data("/accounts/account/transactions", RHEINUFER, consent_id, accountId=account,
                               offset=first.body["offset"], bookingDateTo="2099-01-01"), 400, "INVALID_REQUEST")


async def test_sca_refused_consents_and_consent_states(hub: Hub) -> None:
    created = await hub.ais_consent(WISLA)
    query = await hub.sca(created["_links"]["scaRedirect"], "reject")
    assert parse_qs(query)["error"] == ["access_denied"]
    check_error(await hub.post("/accounts/consents/authorizations",
                               {"requestInfo": hub.info(WISLA), "authorization": query}), 400, "PSU_REJECTED")
    assert (await hub.user(created["_links"]["scaRedirect"], outcome="approve")).status == 400  # used ticket
    check_error(await hub.post("/accounts/consents/authorizations",
                               {"requestInfo": hub.info(WISLA), "authorization": "code=nope&state=x"}),
                400, "AUTHORIZATION_INVALID")

    limited = await hub.valid_consent(WISLA, ["accounts"])
    account = (await hub.data("/accounts", WISLA, limited)).body["accounts"][0]["resourceId"]
    check_error(await hub.data("/accounts/account/balances", WISLA, limited, accountId=account),
                400, "PERMISSION_DENIED")
    check_error(await hub.data("/accounts/account", WISLA, limited, accountId="acc-unknown"),
                400, "ACCOUNT_NOT_FOUND")
    check_error(await hub.data("/accounts", ALBION, limited), 400, "CONSENT_NOT_FOUND")

    hub.sandbox.expire_consent(limited)
    check_error(await hub.data("/accounts", WISLA, limited), 400, "CONSENT_EXPIRED")
    raw = await hub.data("/accounts/consents/raw", WISLA, limited)
    assert json.loads(raw.body["rawConsent"])["consentStatus"] == "expired"

    other = await hub.valid_consent(WISLA)
    deleted = await hub.post("/accounts/consents/delete", {"requestInfo": hub.info(WISLA), "consentId": other})
    assert deleted.status == 200
    conforms(hub.sandbox, "/accounts/consents/delete", deleted)
    check_error(await hub.data("/accounts", WISLA, other), 400, "CONSENT_INVALID")


async def test_a_consent_limited_to_named_accounts(hub: Hub) -> None:
    consent_id = await hub.valid_consent(POLDER)
    accounts = (await hub.data("/accounts", POLDER, consent_id)).body["accounts"]
    savings = next(a for a in accounts if a["accountType"] == "SVGS")
    created = await hub.ais_consent(POLDER, accounts=[{"accountReference": {"currency": "EUR", "accountNumber": {
        "identification": savings["accountNumber"], "schemeName": "IBAN"}}}])
    page = await hub.page(created["_links"]["scaRedirect"])
    assert [a["resourceId"] for a in page.body["accounts"]] == [savings["resourceId"]]


async def test_requests_the_hub_refuses(hub: Hub) -> None:
    check_error(await hub.post("/accounts/consents", {"requestInfo": hub.info(str(uuid.uuid4()),
                                                                               tppRedirectURI=REDIRECT),
                                                      "permissions": ["accounts"]}), 400, "ASPSP_NOT_FOUND")
    schema = await hub.post("/accounts/consents", {"requestInfo": {"xRequestId": "not-a-uuid"},
                                                   "permissions": ["everything"]})
    check_error(schema, 400, "INVALID_REQUEST")
    sources = {e["Source"] for e in schema.body["Errors"]["Error"]}
    assert {"requestInfo.xRequestId", "requestInfo.aspspId", "requestInfo.tppRedirectURI",
            "permissions[0]"} <= sources
    conforms(hub.sandbox, "/accounts/consents", schema)
    check_error(await hub.payment_consent("sepa", POLDER, SEPA_PAYMENT), 400, "SERVICE_NOT_SUPPORTED")
    check_error(await hub.payment_consent("domestic", RHEINUFER, UK_PAYMENT), 400, "SERVICE_NOT_SUPPORTED")
    cross = {"creditorAccount": {"identification": "GB29NWBK60161331926819", "schemeName": "IBAN"},
             "creditorAgent": {"identification": "NWBKGB2L", "schemeName": "BIC"}, "creditorName": "UK Ltd",
             "debtorAccount": {"identification": "PL00000000000000000000000000", "schemeName": "IBAN"},
             "endToEndIdentification": "X1", "instructedAmount": {"amount": 10, "currency": "GBP"},
             "instructionPriority": "Normal", "localInstrument": "Swift"}
    check_error(await hub.payment_consent("cross-border", WISLA, cross), 400, "SERVICE_NOT_SUPPORTED")
    check_error(await hub.payment_consent("domestic", ALBION, {**UK_PAYMENT, "creditorAgent": {
        "clearingSystemIdentification": "UK.SortCode", "memberIdentification": "4005"}}), 400, "INVALID_PAYMENT")
    check_error(await hub.payment_consent("domestic", ALBION, {
        **UK_PAYMENT, "instructedAmount": {"amount": 1.005, "currency": "GBP"}}), 400, "INVALID_PAYMENT")
    missing = await hub.payment_consent("sepa", RHEINUFER, {k: v for k, v in SEPA_PAYMENT.items()
                                                             if k != "creditorAgent"})
    check_error(missing, 400, "INVALID_REQUEST")
    assert missing.body["Errors"]["Error"][0]["Source"] == "payments.creditorAgent"
    check_error(await hub.post("/accounts/nowhere", {"requestInfo": hub.info()}), 404, "NOT_FOUND")


# --- PIS -------------------------------------------------------------------------------------------------------
async def test_domestic_payment_moves_through_iso_statuses_and_is_idempotent(hub: Hub) -> None:
    consent = await hub.payment_consent("domestic", ALBION, UK_PAYMENT, flags=["Return.Raw.Consent"])
    conforms(hub.sandbox, "/payments/domestic-credit-transfers/consents", consent)
    assert json.loads(consent.body["additionalData"]["rawConsent"])["type"] == "domestic"
    page = await hub.page(consent.body["_links"]["scaRedirect"])
    assert page.body["kind"] == "pis" and page.body["payment"]["instructedAmount"]["amount"] == 25.5
    query = await hub.sca(consent.body["_links"]["scaRedirect"])
    first = await hub.transfer("domestic", ALBION, query)
    conforms(hub.sandbox, "/payments/domestic-credit-transfers", first)
    transfer = first.body["transfer"]
    assert transfer["transactionStatus"] == "RCVD"
    consent_id = first.body["consent"]["consentId"]
    again = await hub.transfer("domestic", ALBION, query)
    assert again.body["transfer"]["paymentId"] == transfer["paymentId"] and hub.sandbox.payments_created == 1
    seen = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        reply = await hub.status("domestic", ALBION, consent_id, transfer["paymentId"])
        conforms(hub.sandbox, "/payments/domestic-credit-transfers/payment-status", reply)
        status = reply.body["payments"]["transactionStatus"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "ACSC":
            break
        await asyncio.sleep(0.03)
    assert seen == ["RCVD", "ACTC", "ACSP", "ACSC"]
    check_error(await hub.status("domestic", ALBION, consent_id, "pay-other"), 400, "PAYMENT_NOT_FOUND")
    check_error(await hub.status("sepa", RHEINUFER, consent_id, transfer["paymentId"]), 400, "CONSENT_NOT_FOUND")
    check_error(await hub.transfer("sepa", RHEINUFER, query), 400, "AUTHORIZATION_INVALID")
    raw = await hub.post("/payments/consents/raw", {"requestInfo": hub.info(ALBION, consentId=consent_id)})
    assert json.loads(raw.body["rawConsent"])["status"] == "consumed"


async def test_polish_domestic_and_refused_payments(hub: Hub) -> None:
    accounts = hub.sandbox.data.by_bank[WISLA]
    pln = {"creditorAccount": {"identification": "61109010140000071219812874", "schemeName": "PL.AccountNumber"},
           "creditorName": "Jan Kowalski", "endToEndIdentification": "E2E-PL-1",
           "instructedAmount": {"amount": 120, "currency": "PLN"}, "localInstrument": "PL.Elixir",
           "debtorAccount": {"identification": accounts[0].number}}
    _, paid = await hub.paid("domestic", WISLA, pln)
    assert paid["transfer"]["transactionStatus"] == "RCVD"
    assert hub.sandbox.payment_consents[paid["consent"]["consentRequestId"]].debtor_account_id == \
        accounts[0].resource_id

    _, rejected = await hub.paid("sepa", LIFFEY, SEPA_PAYMENT)
    await asyncio.sleep(TIMELINE[0] + 0.05)
    reply = await hub.status("sepa", LIFFEY, rejected["consent"]["consentId"], rejected["transfer"]["paymentId"])
    assert reply.body["payments"] == {"transactionStatus": "RJCT", "statusReasonCode": "AM04"}

    hub.sandbox.reject_payments = True
    _, also = await hub.paid("sepa", RHEINUFER, SEPA_PAYMENT)
    await asyncio.sleep(TIMELINE[0] + 0.05)
    reply = await hub.status("sepa", RHEINUFER, also["consent"]["consentId"], also["transfer"]["paymentId"])
    assert reply.body["payments"]["transactionStatus"] == "RJCT"

    consent = await hub.payment_consent("sepa", RHEINUFER, SEPA_PAYMENT)
    refused = await hub.sca(consent.body["_links"]["scaRedirect"], "reject")
    check_error(await hub.transfer("sepa", RHEINUFER, refused), 400, "PSU_REJECTED")
    assert hub.sandbox.payments_created == 3


async def test_cross_border_from_a_named_debtor(hub: Hub) -> None:
    debtor = hub.sandbox.data.by_bank[RHEINUFER][0]
    cross = {"creditorAccount": {"identification": "GB29NWBK60161331926819", "schemeName": "IBAN"},
             "creditorAgent": {"identification": "NWBKGB2L", "schemeName": "BIC"}, "creditorName": "UK Ltd",
             "debtorAccount": {"identification": debtor.number, "schemeName": "IBAN"},
             "endToEndIdentification": "X-BORDER-1", "instructedAmount": {"amount": 310.2, "currency": "GBP"},
             "instructionPriority": "Urgent", "localInstrument": "Swift"}
    _, paid = await hub.paid("cross-border", RHEINUFER, cross)
    conforms(hub.sandbox, "/payments/cross-border-credit-transfers",
             Reply(200, {}, json.dumps(paid).encode()))
    unknown = {**cross, "debtorAccount": {"identification": "DE89370400440532013000", "schemeName": "IBAN"}}
    check_error(await hub.payment_consent("cross-border", RHEINUFER, unknown), 400, "INVALID_PAYMENT")


# --- OAuth 1.0a ------------------------------------------------------------------------------------------------
async def test_oauth_refusals(hub: Hub, other_key: Any) -> None:
    body = json.dumps({"requestInfo": hub.info()})
    url = hub.sandbox.base_url + "/accounts/aspsps"
    header = hub.sign(url, "POST", body)
    tampered = body.replace('"merchant"', ' "merchant"')
    check_error(await hub.send("POST", "/accounts/aspsps", tampered.encode(), header), 401, "BODY_HASH_MISMATCH")
    check_error(await hub.send("POST", "/accounts/aspsps", body.encode(), hub.sign(url, "POST", body, other_key)),
                401, "INVALID_SIGNATURE")
    other_path = hub.sign(hub.sandbox.base_url + "/payments/aspsps", "POST", body)
    check_error(await hub.send("POST", "/accounts/aspsps", body.encode(), other_path), 401, "INVALID_SIGNATURE")
    assert (await hub.send("POST", "/accounts/aspsps", body.encode(), header)).status == 200
    check_error(await hub.send("POST", "/accounts/aspsps", body.encode(), header), 401, "NONCE_REPLAYED")
    check_error(await hub.send("POST", "/accounts/aspsps", body.encode(),
                               OAuth.get_authorization_header(url, "POST", body, "someone-else", hub.key)),
                401, "UNAUTHORIZED")
    check_error(await hub.send("POST", "/accounts/aspsps", body.encode(), None), 401, "UNAUTHORIZED")
    check_error(await hub.send("POST", "/accounts/aspsps", body.encode(), "OAuth garbage"), 401, "UNAUTHORIZED")
    hub.sandbox.verifier.clock = lambda: time.time() + 3600
    reply = await hub.send("POST", "/accounts/aspsps", body.encode(), hub.sign(url, "POST", body))
    check_error(reply, 401, "TIMESTAMP_OUT_OF_RANGE")
    assert reply.body["Errors"]["Error"][0]["Source"] == "Gateway"
    assert reply.body["Errors"]["Error"][0]["Recoverable"] is False


# --- faults, latency, determinism ------------------------------------------------------------------------------
async def test_injected_faults_answer_in_the_hub_shape(hub: Hub) -> None:
    hub.sandbox.faults.add("status", status=500, path="/accounts/aspsps")
    reply = await hub.post("/accounts/aspsps", {"requestInfo": hub.info()})
    check_error(reply, 500, "PROVIDER_ERROR")
    assert reply.body["Errors"]["Error"][0]["Recoverable"] is True
    hub.sandbox.faults.add("status", status=504, path="/accounts/aspsps")
    check_error(await hub.post("/accounts/aspsps", {"requestInfo": hub.info()}), 504, "PROVIDER_TIMEOUT")
    assert len(hub.sandbox.calls.matching("POST", "/accounts/aspsps$")) == 2


async def test_a_lost_transfer_answer_is_recovered_by_repeating_it(hub: Hub) -> None:
    consent = await hub.payment_consent("domestic", ALBION, UK_PAYMENT)
    query = await hub.sca(consent.body["_links"]["scaRedirect"])
    hub.sandbox.faults.add("lose_response", path="-credit-transfers$")
    with pytest.raises(aiohttp.ClientError):
        await hub.transfer("domestic", ALBION, query)
    assert hub.sandbox.payments_created == 1  # the hub acted
    hub.sandbox.faults.add("late_response", path="-credit-transfers$", delay=0.2)
    started = time.monotonic()
    late = await hub.transfer("domestic", ALBION, query)
    assert time.monotonic() - started >= 0.2
    retried = await hub.transfer("domestic", ALBION, query)
    assert late.body["transfer"]["paymentId"] == retried.body["transfer"]["paymentId"]
    assert list(hub.sandbox.payments) == [retried.body["transfer"]["paymentId"]]


async def test_the_slow_bank_is_slow(hub: Hub) -> None:
    hub.sandbox.aspsps[LENTO].latency = 0.3
    started = time.monotonic()
    await hub.ais_consent(LENTO)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await hub.ais_consent(ALBION)
    assert time.monotonic() - started < 0.3


async def test_the_same_seed_gives_the_same_hub(signing: tuple[Any, bytes]) -> None:
    fixed = dt.datetime(2025, 3, 1, 12, tzinfo=dt.timezone.utc)
    one, two = (ObConnectSandbox(consumer_key=CONSUMER_KEY, signing_cert_pem=signing[1], now=lambda: fixed)
                for _ in range(2))
    assert list(one.data.accounts) == list(two.data.accounts)
    account = next(iter(one.data.accounts))
    assert one.data.transactions[account] == two.data.transactions[account]
    other = ObConnectSandbox(consumer_key=CONSUMER_KEY, signing_cert_pem=signing[1], seed=7, now=lambda: fixed)
    assert list(other.data.accounts) != list(one.data.accounts)
