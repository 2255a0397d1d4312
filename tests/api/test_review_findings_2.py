"""Regression tests for the second review's findings, against the simulated ob-connect hub (and mastercard-us for
the restricted `readonly` caller): a revoke of a consent the hub no longer knows ends it here with its data; a raw
consent whose status cannot be read changes nothing; a transactions cursor whose hub offset expired is a 422 on
`cursor`; the restricted caller's consent list pages on; payment text refuses control, bidi and invisible
characters; revoking a consent that already ended leaves it as it ended."""
from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

import pytest

from tests.api.test_ob_connect import (
    ALBION, FAST, OBC, authorised_consent, get, hub_posts, sepa_order, start_consent, uk_order,
)
from tests.conftest import DEV, READONLY, count_rows, sandbox_of, state_of
from tests.flows import authorised_consent as mastercard_us_consent
from tests.payments_flow import keyed


@pytest.fixture
def gateway_config(make_config):  # type: ignore[no-untyped-def]
    return make_config(FAST)


async def _first_account(client: Any, consent_id: str) -> dict[str, Any]:
    return (await get(client, "/v1/accounts", consent_id=consent_id))["data"][0]


async def get_as(client: Any, path: str, headers: dict[str, str], **params: Any) -> Any:
    resp = await client.get(path, params=params or None, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_revoking_a_consent_the_hub_no_longer_knows_ends_it_and_deletes_its_data(gateway):
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, ALBION)
    account = await _first_account(gateway, consent["id"])
    del sandbox.world.ais_by_consent_id[consent["provider_ref"]]  # the hub has forgotten it (answers CONSENT_NOT_FOUND)

    resp = await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)
    body = await resp.json()
    # Today: 403 consent_revoked_upstream, the consent still authorised, its account still served from the store.
    assert resp.status == 200 and body["status"] == "revoked", body
    await get(gateway, f"/v1/accounts/{account['id']}", 404)


async def test_a_raw_consent_whose_status_cannot_be_read_does_not_end_the_consent(gateway, monkeypatch):
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, ALBION)
    account = await _first_account(gateway, consent["id"])
    monkeypatch.setattr(sandbox.world, "ais_status", lambda _consent: None)  # rawConsent.consentStatus: null

    resp = await gateway.get(f"/v1/consents/{consent['id']}", params={"refresh": "true"}, headers=DEV)
    body = await resp.json()
    # Today: 200 with status "revoked" ("the bank says ") and the account data deleted.
    assert resp.status == 502 and body["code"] == "provider_bad_response", body
    assert (await get(gateway, f"/v1/consents/{consent['id']}"))["status"] == "authorised"
    await get(gateway, f"/v1/accounts/{account['id']}")


async def test_a_cursor_whose_hub_offset_is_no_longer_accepted_is_a_4xx_naming_cursor(gateway):
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, ALBION)
    account = await _first_account(gateway, consent["id"])
    today = date.today()
    params = {"from": (today - timedelta(days=185)).isoformat(), "to": today.isoformat(), "limit": "10"}
    first = await get(gateway, f"/v1/accounts/{account['id']}/transactions", **params)
    assert first["next_cursor"]
    sandbox.world._offset_key = secrets.token_bytes(32)  # the hub no longer honours the offsets it gave (expiry)

    resp = await gateway.get(f"/v1/accounts/{account['id']}/transactions",
                             params={**params, "cursor": first["next_cursor"]}, headers=DEV)
    problem = await resp.json()
    assert 400 <= resp.status < 500, problem  # today: 502 upstream_request_rejected, "This is a gateway defect"
    assert any(e["field"] == "cursor" for e in problem.get("errors", [])), problem


async def test_the_readonly_callers_consent_list_reaches_its_consents_past_other_providers(gateway):
    mine = await mastercard_us_consent(gateway)  # mastercard-us: the one provider `readonly` may use
    await start_consent(gateway, ALBION)  # newer ob-connect consents of the same tenant come first
    await start_consent(gateway, ALBION)

    seen: list[str] = []
    params = {"limit": "1"}
    for _ in range(5):
        page = await get_as(gateway, "/v1/consents", READONLY, **params)
        seen += [c["id"] for c in page["data"]]
        if not page["next_cursor"]:
            break
        params = {"limit": "1", "cursor": page["next_cursor"]}
    # Today: the first page is empty with no next_cursor, so the caller never sees its consent.
    assert seen == [mine["id"]]


_UK_ACCOUNT = {"scheme": "uk_sort_code", "sort_code": "40-05-15", "account_number": "12345678"}


@pytest.mark.parametrize(("body", "field"), [
    (uk_order(reference="INV\x00 2026"), "reference"),
    (uk_order(reference="Rent\u202e0001"), "reference"),
    (uk_order(creditor={"name": "\u200b", "account": _UK_ACCOUNT}), "creditor.name"),
    (uk_order(creditor={"name": "Jane\u202eSupplies", "account": _UK_ACCOUNT}), "creditor.name"),
    (sepa_order(debtor_name="Alex\x07Morgan"), "debtor_name"),
], ids=["nul-in-reference", "bidi-override-in-reference", "invisible-creditor-name", "bidi-override-in-name",
        "control-in-debtor-name"])
async def test_payment_text_with_control_or_invisible_characters_is_refused_naming_the_field(gateway, body, field):
    sandbox = sandbox_of(gateway, OBC)
    sandbox.calls.clear()
    resp = await gateway.post("/v1/payments", json=body, headers=keyed())
    problem = await resp.json()
    # Today: 201, the text passed on to the hub as creditorName / remittanceInformationUnstructured, and stored.
    assert resp.status == 422 and [e["field"] for e in problem["errors"]] == [field], problem
    assert count_rows(gateway, "payments") == 0
    assert not hub_posts(sandbox, r"/consents$")


async def test_revoking_an_expired_consent_leaves_it_expired(gateway):
    consent = await authorised_consent(gateway, ALBION)
    store = state_of(gateway).store
    record = await store.get_consent("dev", consent["id"])
    record.expires_at = record.authorised_at or record.created_at  # its expiry has passed
    await store.update_consent(record)
    assert (await get(gateway, f"/v1/consents/{consent['id']}"))["status"] == "expired"

    resp = await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)
    body = await resp.json()
    assert resp.status in (200, 409), body
    # Today: 200 with status "revoked", revoked_at set and "revoked by the caller" replacing the expiry.
    assert (await get(gateway, f"/v1/consents/{consent['id']}"))["status"] == "expired"
