"""mastercard-us end to end over HTTP: the README walk-through, step by step, against the simulator."""
from __future__ import annotations

from decimal import Decimal

from tests.conftest import DEV, sandbox_of, state_of
from tests.flows import authorised_consent, create_consent, create_customer, first_account, play_end_user


async def test_walkthrough(gateway) -> None:  # type: ignore[no-untyped-def]
    providers = await (await gateway.get("/v1/providers", headers=DEV)).json()
    us = next(p for p in providers["data"] if p["id"] == "mastercard-us")
    assert "list_transactions" in us["capabilities"] and us["health"]["circuit"] == "closed"

    institutions = await gateway.get("/v1/institutions", params={"provider": "mastercard-us", "search": "FinBank"},
                                     headers=DEV)
    assert institutions.status == 200
    assert any("FinBank" in i["name"] for i in (await institutions.json())["data"])

    customer = await create_customer(gateway, "mastercard-us")
    assert customer["id"].startswith("cus_") and customer["provider_ref"]
    consent = await create_consent(gateway, customer["id"])
    assert consent["status"] == "awaiting_authorisation"
    assert consent["authorisation_url"].startswith("http://127.0.0.1:")

    redirect = await play_end_user(consent["authorisation_url"])
    assert "code=200" in redirect
    done = await (await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                                     headers=DEV)).json()
    assert done["status"] == "authorised" and done["provider_ref"]

    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    accounts = (await resp.json())["data"]
    types = {a["type"] for a in accounts}
    assert {"checking", "savings"} <= types
    checking = next(a for a in accounts if a["type"] == "checking")
    assert (await (await gateway.get(f"/v1/accounts/{checking['id']}", headers=DEV)).json())["id"] == checking["id"]

    cached = await (await gateway.get(f"/v1/accounts/{checking['id']}/balances", headers=DEV)).json()
    assert {b["type"] for b in cached["data"]} >= {"available"}
    for balance in cached["data"]:
        Decimal(balance["amount"]["amount"])  # a decimal string, never a float
        assert isinstance(balance["amount"]["amount"], str) and balance["live"] is False
    sandbox = sandbox_of(gateway, "mastercard-us")
    live_before = sandbox.live_balance_calls
    live = await (await gateway.get(f"/v1/accounts/{checking['id']}/balances?live=true", headers=DEV)).json()
    assert all(b["live"] for b in live["data"]) and sandbox.live_balance_calls == live_before + 1

    details = await (await gateway.get(f"/v1/accounts/{checking['id']}/details", headers=DEV)).json()
    ach = details["coordinates"][0]
    assert ach["scheme"] == "us_ach" and len(ach["routing_number"]) == 9 and ach["account_number"]

    owner = await (await gateway.get(f"/v1/accounts/{checking['id']}/owner", headers=DEV)).json()
    assert owner["names"]

    revoked = await (await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)).json()
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    refused = await gateway.get(f"/v1/accounts/{checking['id']}/balances", headers=DEV)
    assert refused.status == 404  # everything stored from the consent is gone
    listing = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert listing.status == 403 and (await listing.json())["code"] == "consent_not_active"
    assert await state_of(gateway).store.list_accounts("dev", consent["id"]) == []


async def test_transactions_paging_covers_a_year_without_gaps(gateway) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gateway)
    checking = await first_account(gateway, consent["id"], account_type="checking")
    from datetime import date, timedelta

    to = date.today()
    params = {"from": (to - timedelta(days=366)).isoformat(), "to": to.isoformat(), "limit": "500"}
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        query = dict(params, cursor=cursor) if cursor else params
        resp = await gateway.get(f"/v1/accounts/{checking['id']}/transactions", params=query, headers=DEV)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        seen.extend(page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages >= 3
    ids = [t["id"] for t in seen]
    assert len(ids) == len(set(ids)) >= 1000
    assert {t["status"] for t in seen} <= {"booked", "pending"}  # removed (shadow) ones are excluded by default
    assert any(t["status"] == "pending" for t in seen)
    for t in seen:
        assert isinstance(t["amount"]["amount"], str)
        assert t["booked_at"] is None or t["booked_at"].endswith("Z")

    with_removed = await gateway.get(f"/v1/accounts/{checking['id']}/transactions",
                                     params=dict(params, include_removed="true"), headers=DEV)
    assert any(t["status"] == "removed" for t in (await with_removed.json())["data"])


async def test_exact_amounts_from_upstream_floats(gateway) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gateway)
    checking = await first_account(gateway, consent["id"], account_type="checking")
    from datetime import date, timedelta

    amounts: set[str] = set()
    cursor = None
    while True:
        params = {"from": (date.today() - timedelta(days=366)).isoformat(), "limit": "500",
                  "include_removed": "true"}
        if cursor:
            params["cursor"] = cursor
        page = await (await gateway.get(f"/v1/accounts/{checking['id']}/transactions", params=params,
                                        headers=DEV)).json()
        amounts.update(t["amount"]["amount"] for t in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert "0.30000000000000004" in amounts  # what the upstream printed, not a rounded or binary value
    assert "-0.00" not in amounts
    assert all("e" not in a.lower() for a in amounts)


async def test_rejected_connect_marks_consent_rejected(gateway) -> None:  # type: ignore[no-untyped-def]
    customer = await create_customer(gateway, "mastercard-us")
    consent = await create_consent(gateway, customer["id"])
    redirect = await play_end_user(consent["authorisation_url"], outcome="reject")
    resp = await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    assert (await resp.json())["status"] == "rejected"


async def test_forged_redirect_does_not_authorise(gateway) -> None:  # type: ignore[no-untyped-def]
    customer = await create_customer(gateway, "mastercard-us")
    consent = await create_consent(gateway, customer["id"])
    resp = await gateway.post(f"/v1/consents/{consent['id']}/complete",
                              json={"redirect_result": "https://app.example.com/callback?code=200&reason=done"},
                              headers=DEV)
    assert resp.status == 409
    again = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert again["status"] == "awaiting_authorisation"


async def test_consent_listing_and_refresh(gateway) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gateway)
    listing = await (await gateway.get("/v1/consents", params={"limit": "1"}, headers=DEV)).json()
    assert len(listing["data"]) == 1
    refreshed = await (await gateway.get(f"/v1/consents/{consent['id']}?refresh=true", headers=DEV)).json()
    assert refreshed["status"] == "authorised"


async def test_connect_lite_for_one_institution(gateway) -> None:  # type: ignore[no-untyped-def]
    customer = await create_customer(gateway, "mastercard-us")
    consent = await create_consent(gateway, customer["id"], institution_id="102105")
    assert consent["institution_id"] == "102105"
    calls = sandbox_of(gateway, "mastercard-us").calls.matching(method="POST", path_regex=r"/connect/v2/generate/lite$")
    assert len(calls) == 1
    redirect = await play_end_user(consent["authorisation_url"], institution_id="102105")
    done = await (await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                                     headers=DEV)).json()
    assert done["status"] == "authorised"


async def test_expired_consent_is_recorded_and_its_data_deleted(gateway) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from gateway.models.time import utcnow

    consent = await authorised_consent(gateway)
    account = await first_account(gateway, consent["id"])
    store = state_of(gateway).store
    record = await store.get_consent("dev", consent["id"])
    record.expires_at = utcnow() - timedelta(seconds=1)
    await store.update_consent(record)  # the access period has ended
    resp = await gateway.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 403 and "expired" in (await resp.json())["detail"]
    seen = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert seen["status"] == "expired" and seen["status_reason"].startswith("expired at")
    assert await store.list_accounts("dev", consent["id"]) == []
    assert (await gateway.get(f"/v1/accounts/{account['id']}", headers=DEV)).status == 404
