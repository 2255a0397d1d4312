"""mastercard-us reports through the canonical API, against the simulator over real HTTP: the consumer, VOA, VOI and
cash flow reports completed by their signed webhooks (no polling), failed reports, bad input refused before any
upstream call, and reports going with their consent."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import DEV, count_rows, sandbox_of, state_of
from tests.flows import authorised_consent, create_consent, create_customer, first_account

US = "mastercard-us"
CONSUMER = {"first_name": "Jordan", "last_name": "Whitaker", "email": "jordan.whitaker@example.com",
            "birth_date": "1985-04-12"}


def upstream_calls(client: Any, path_regex: str = "/decisioning/") -> list[Any]:
    return sandbox_of(client, US).calls.matching(path_regex=path_regex)


async def with_consumer(client: Any, **choice: Any) -> dict[str, Any]:
    """An authorised consent whose customer has its consumer."""
    consent = await authorised_consent(client, US, **choice)
    resp = await client.post(f"/v1/customers/{consent['customer_id']}/consumer", json=CONSUMER, headers=DEV)
    assert resp.status == 201, await resp.text()
    return consent


async def ask(client: Any, consent: dict[str, Any], report_type: str, **extra: Any) -> Any:
    return await client.post("/v1/reports", json={"customer_id": consent["customer_id"], "type": report_type,
                                                  **extra}, headers=DEV)


async def stored(client: Any, report_id: str) -> Any:
    return await state_of(client).store.get_report("dev", report_id)


# --- the consumer ---------------------------------------------------------------------------------------------------
async def test_the_consumer_takes_its_state_from_the_account_owner(gateway):
    sandbox = sandbox_of(gateway, US)
    customer = await create_customer(gateway, US)
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consumer", json=CONSUMER, headers=DEV)
    problem = await resp.json()
    assert resp.status == 403 and "connect their accounts first" in problem["detail"]  # no owner to read yet
    assert not upstream_calls(gateway) and sandbox.world.consumers == {}

    consent = await authorised_consent(gateway, US)
    path = f"/v1/customers/{consent['customer_id']}/consumer"
    sandbox.calls.clear()
    resp = await gateway.post(path, json={"first_name": "Jordan", "last_name": "Whitaker"}, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and [e["field"] for e in problem["errors"]] == ["email", "birth_date"], problem
    assert not sandbox.calls.matching()  # refused before any upstream call

    resp = await gateway.post(path, json=CONSUMER, headers=DEV)
    body = await resp.json()
    assert resp.status == 201 and body["consumer_ref"], body
    sent = orjson.loads(upstream_calls(gateway, r"/consumer$")[-1].body)
    assert sent == {"firstName": "Jordan", "lastName": "Whitaker", "email": "jordan.whitaker@example.com",
                    "birthday": {"year": 1985, "month": 4, "dayOfMonth": 12},
                    "state": "UT", "address": "434 W Ascension Way", "city": "Murray", "zip": "84123"}
    assert (await gateway.post(path, json=CONSUMER, headers=DEV)).status == 409  # one per customer


async def test_an_existing_upstream_consumer_is_adopted(gateway):
    consent = await authorised_consent(gateway, US)
    customer = await state_of(gateway).store.get_customer("dev", consent["customer_id"])
    sandbox = sandbox_of(gateway, US)
    from adapters.mastercard_us.sandbox_world import Consumer

    sandbox.world.consumers[customer.provider_ref] = Consumer("f" * 32, customer.provider_ref,
                                                              {"firstName": "J", "lastName": "W", "state": "UT"}, 1)
    resp = await gateway.post(f"/v1/customers/{consent['customer_id']}/consumer", json=CONSUMER, headers=DEV)
    assert resp.status == 201 and (await resp.json())["consumer_ref"] == "f" * 32


# --- reports ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("report_type", ["voa", "voi", "cash_flow"])
async def test_a_report_completes_by_its_webhook(gateway, report_type):
    sandbox = sandbox_of(gateway, US)
    consent = await with_consumer(gateway)
    resp = await ask(gateway, consent, report_type)
    report = await resp.json()
    assert resp.status == 202 and report["status"] == "pending" and report["consent_id"] == consent["id"], report
    assert report["interval_types"] == []
    generate = upstream_calls(gateway, r"/decisioning/v2/")[-1]
    assert generate.path.endswith({"voa": "/voa", "voi": "/voi", "cash_flow": "/cashFlowPersonal"}[report_type])
    assert generate.query["callbackUrl"].endswith("/webhooks/mastercard-us/reports")
    await sandbox.wait_webhooks_idle()
    assert (await stored(gateway, report["id"])).status.value == "ready"  # the signed webhook did it, no GET
    names = [e.type for e in await state_of(gateway).store.list_inbound_events(US) if e.event_id.startswith(
        f"report:{report['provider_ref']}:")]
    assert sorted(names) == ["done", "inProgress"]
    events = (await (await gateway.get("/v1/events", params={"type": "report.completed"}, headers=DEV)).json())
    assert [e["data"]["report"]["id"] for e in events["data"]] == [report["id"]]

    content = await gateway.get(f"/v1/reports/{report['id']}/content", headers=DEV)
    document = await content.json()
    assert content.status == 200 and document["status"] == "success" and document["institutions"]
    pdf = await gateway.get(f"/v1/reports/{report['id']}/content", headers={**DEV, "Accept": "application/pdf"})
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")
    listing = await (await gateway.get("/v1/reports", params={"customer_id": consent["customer_id"]},
                                       headers=DEV)).json()
    assert [r["id"] for r in listing["data"]] == [report["id"]]


async def test_a_report_on_accounts_of_the_failing_profile_fails(gateway):
    sandbox = sandbox_of(gateway, US)
    consent = await with_consumer(gateway, username="profile_02")
    report = await (await ask(gateway, consent, "voa")).json()
    await sandbox.wait_webhooks_idle()
    got = await (await gateway.get(f"/v1/reports/{report['id']}", headers=DEV)).json()
    assert got["status"] == "failed" and got["status_reason"]
    events = (await (await gateway.get("/v1/events", params={"type": "report.failed"}, headers=DEV)).json())
    assert [e["data"]["report"]["id"] for e in events["data"]] == [report["id"]]
    content = await gateway.get(f"/v1/reports/{report['id']}/content", headers=DEV)
    assert content.status == 409 and (await content.json())["code"] == "report_failed"


async def test_a_pending_report_is_read_upstream_until_it_is_ready(gateway):
    sandbox = sandbox_of(gateway, US)
    sandbox.report_delay = 0.3
    consent = await with_consumer(gateway)
    account = await first_account(gateway, consent["id"], account_type="checking")
    report = await (await ask(gateway, consent, "voi", account_ids=[account["id"]])).json()
    assert orjson.loads(upstream_calls(gateway, r"/voi$")[-1].body) == {"accountIds": account["provider_ref"]}
    got = await (await gateway.get(f"/v1/reports/{report['id']}", headers=DEV)).json()
    assert got["status"] == "pending"  # asked upstream: still in progress
    early = await gateway.get(f"/v1/reports/{report['id']}/content", headers=DEV)
    assert early.status == 409 and (await early.json())["code"] == "report_not_ready"
    await sandbox.wait_webhooks_idle()
    got = await (await gateway.get(f"/v1/reports/{report['id']}", headers=DEV)).json()
    assert got["status"] == "ready"


async def test_bad_report_requests_are_refused_before_any_upstream_call(gateway):
    consent = await with_consumer(gateway)
    other = await authorised_consent(gateway, US)
    foreign = await first_account(gateway, other["id"])
    sandbox_of(gateway, US).calls.clear()
    for extra, field in (({"type": "voi", "interval_types": ["MONTHLY_CALENDAR"]}, "interval_types"),
                         ({"type": "credit_score"}, "type"),
                         ({"type": "voa", "account_ids": [foreign["id"]]}, "account_ids"),
                         ({"type": "voa", "from_date": "yesterday"}, "from_date")):
        resp = await gateway.post("/v1/reports", json={"customer_id": consent["customer_id"], **extra}, headers=DEV)
        problem = await resp.json()
        assert resp.status == 422 and problem["errors"][0]["field"] == field, (extra, problem)
    assert not sandbox_of(gateway, US).calls.matching() and count_rows(gateway, "reports") == 0
    card = next(a for a in (await (await gateway.get("/v1/accounts", params={"consent_id": consent["id"]},
                                                     headers=DEV)).json())["data"] if a["type"] == "credit_card")
    resp = await ask(gateway, consent, "voa", account_ids=[card["id"]])  # the platform says which it reads
    problem = await resp.json()
    assert resp.status == 422 and problem["errors"][0]["field"] == "account_ids", problem
    assert "checking" in problem["detail"] and count_rows(gateway, "reports") == 0
    without = await authorised_consent(gateway, US)  # no consumer yet
    resp = await ask(gateway, without, "voa")
    assert resp.status == 409 and (await resp.json())["code"] == "consumer_required"


async def test_reports_go_with_their_consent(gateway):
    sandbox = sandbox_of(gateway, US)
    consent = await with_consumer(gateway)
    report = await (await ask(gateway, consent, "voa")).json()
    await sandbox.wait_webhooks_idle()
    await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)
    assert (await gateway.get(f"/v1/reports/{report['id']}", headers=DEV)).status == 404
    assert count_rows(gateway, "reports") == 0


async def test_report_webhooks_are_verified_and_replays_change_nothing(gateway):
    import hashlib
    import hmac

    consent = await with_consumer(gateway)
    report = await (await ask(gateway, consent, "voa")).json()
    await sandbox_of(gateway, US).wait_webhooks_idle()
    url = "/webhooks/mastercard-us/reports"
    body = orjson.dumps({"eventName": "failed", "id": report["provider_ref"], "consumerId": "x", "type": "voa",
                         "status": "failure", "customerId": 1})
    resp = await gateway.post(url, data=body, headers={"X-Signature": "ab" * 32})
    assert resp.status == 401
    good = hmac.new(b"sandbox-partner-secret", body, hashlib.sha256).hexdigest()
    resp = await gateway.post(url, data=body, headers={"X-Signature": good})
    assert resp.status == 200  # acknowledged; a late "failed" never undoes "done"
    assert (await stored(gateway, report["id"])).status.value == "ready"
    again = await gateway.post(url, data=body, headers={"X-Signature": good})
    assert (await again.json())["duplicate"] is True


async def test_consent_must_be_authorised_for_a_report(gateway):
    customer = await create_customer(gateway, US)
    waiting = await create_consent(gateway, customer["id"])
    resp = await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa",
                                                   "consent_id": waiting["id"]}, headers=DEV)
    assert resp.status == 403 and (await resp.json())["code"] == "consent_not_active"


async def test_an_unsigned_report_webhook_is_believed_only_as_the_platform_confirms(gateway):
    """The platform's older documentation says report callbacks carry no signature: such an event only names a
    report, whose status the adapter reads from the platform."""
    sandbox = sandbox_of(gateway, US)
    sandbox.report_delay = 0.5  # still in progress while the events below arrive
    consent = await with_consumer(gateway)
    report = await (await ask(gateway, consent, "voa")).json()
    customer_ref = (await state_of(gateway).store.get_customer("dev", consent["customer_id"])).provider_ref
    url = "/webhooks/mastercard-us/reports"
    lie = {"eventName": "done", "id": report["provider_ref"], "consumerId": "x", "type": "voa",
           "status": "success", "customerId": int(customer_ref)}
    resp = await gateway.post(url, data=orjson.dumps(lie), headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert (await stored(gateway, report["id"])).status.value == "pending"  # the platform says inProgress
    reads = upstream_calls(gateway, r"/decisioning/v3/customers/\d+/reports/")
    assert reads and reads[-1].path.endswith(report["provider_ref"])
    unknown = orjson.dumps({**lie, "id": "nosuchreport"})
    resp = await gateway.post(url, data=unknown, headers={"Content-Type": "application/json"})
    assert resp.status == 401
    assert not [e for e in await state_of(gateway).store.list_inbound_events(US) if "nosuchreport" in e.event_id]
    await sandbox.wait_webhooks_idle()  # the report is done: its signed `done` is not taken for a replay
    assert (await stored(gateway, report["id"])).status.value == "ready"


# --- the consumer's identity: birth date or SSN, and an address from the caller --------------------------------------
ADDRESS = {"lines": ["1 Market St", "Apt 4"], "city": "San Francisco", "region": "CA", "postal_code": "94105",
           "country": "US"}


async def test_a_consumer_with_ssn_and_address_needs_no_connected_accounts(aiohttp_client, make_config, capsys):
    from tests.conftest import serve

    gateway = await serve(aiohttp_client, make_config({"logging": {"format": "json", "level": "debug"}}))
    sandbox = sandbox_of(gateway, US)
    customer = await create_customer(gateway, US)  # no consent yet: no account owner to read a state from
    body = {"first_name": "Jordan", "last_name": "Whitaker", "phone": "+1 801 984 4200", "ssn": "999-60-1111",
            "address": ADDRESS}
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consumer", json=body, headers=DEV)
    created = await resp.json()
    assert resp.status == 201 and created["consumer_ref"], created
    [call] = upstream_calls(gateway, r"/consumer$")
    assert orjson.loads(call.body) == {"firstName": "Jordan", "lastName": "Whitaker", "phone": "+1 801 984 4200",
                                       "ssn": "999601111", "address": "1 Market St, Apt 4", "city": "San Francisco",
                                       "state": "CA", "zip": "94105"}
    assert not sandbox.calls.matching(path_regex=r"/owner$")
    assert "ssn" not in created and "999" not in orjson.dumps(created).decode()  # the answer carries no identity
    out = capsys.readouterr().out
    assert "999601111" not in out and "999-60-1111" not in out and "1 Market St" not in out  # not even at debug
    # Only the consumer's id is kept: no identity in the database files (the main file and its write-ahead log).
    db = Path(state_of(gateway).config.store.url.removeprefix("sqlite:///"))
    files = list(db.parent.glob(db.name + "*"))
    kept = b"".join(f.read_bytes() for f in files)
    assert created["consumer_ref"].encode() in kept  # the check can see what is stored
    assert b"999601111" not in kept and b"Market St" not in kept and b"1985" not in kept


@pytest.mark.parametrize("change, field", [
    ({"birth_date": "2999-01-01"}, "birth_date"),
    ({"birth_date": "1850-01-01"}, "birth_date"),
    ({"birth_date": "12/04/1985"}, "birth_date"),
    ({"ssn": "12345678"}, "ssn"),
    ({"ssn": "123-45-678x"}, "ssn"),
    ({"address": {**ADDRESS, "region": "XX"}}, "address.region"),
    ({"address": {**ADDRESS, "country": "CA"}}, "address.country"),
    ({"address": {**ADDRESS, "lines": []}}, "address.lines"),
    ({"address": {**ADDRESS, "city": "San\u202eFrancisco"}}, "address.city"),
    ({"address": {"lines": ["1 Market St"], "region": "CA"}}, "address.city"),
])
async def test_bad_consumer_identity_is_refused_before_any_call(gateway, change, field):
    customer = await create_customer(gateway, US)
    sandbox = sandbox_of(gateway, US)
    sandbox.calls.clear()
    body = {**CONSUMER, "address": ADDRESS, **change}
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consumer", json=body, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and field in [e["field"] for e in problem["errors"]], problem
    assert "123-45" not in orjson.dumps(problem).decode() and "12345678" not in orjson.dumps(problem).decode()
    assert not sandbox.calls.matching() and sandbox.world.consumers == {}
    assert (await state_of(gateway).store.get_customer("dev", customer["id"])).consumer_ref is None


async def test_mastercard_au_takes_a_birth_date_but_no_ssn(gateway):
    customer = await create_customer(gateway, "mastercard-au")
    au = sandbox_of(gateway, "mastercard-au")
    au.calls.clear()
    path = f"/v1/customers/{customer['id']}/consumer"
    resp = await gateway.post(path, json={"first_name": "Jack", "last_name": "Li", "ssn": "999601111"}, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and problem["errors"][0]["field"] == "ssn", problem
    assert not au.calls.matching()
    resp = await gateway.post(path, json={"first_name": "Jack", "last_name": "Li", "birth_date": "1990-02-28",
                                          "address": {"lines": ["1 George St"], "city": "Sydney", "region": "NSW",
                                                      "postal_code": "2000", "country": "AU"}}, headers=DEV)
    assert resp.status == 201, await resp.text()
    [call] = au.calls.matching(method="POST", path_regex=r"/consumer$")
    assert orjson.loads(call.body) == {"firstName": "Jack", "lastName": "Li",
                                       "birthday": {"year": 1990, "month": 2, "dayOfMonth": 28},
                                       "address": "1 George St", "city": "Sydney", "state": "NSW", "zip": "2000"}
