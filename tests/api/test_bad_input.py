"""Bad input: a clear 4xx naming the field, and nothing stored, nothing sent upstream."""
from __future__ import annotations

import pytest

from tests.conftest import DEV, count_rows, sandbox_of, state_of
from tests.flows import authorised_consent, create_customer, first_account


async def _problem(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["request_id"] == resp.headers["X-Request-Id"]
    return body


async def _nothing_stored_or_sent(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "mastercard-us")
    assert not sandbox.calls.matching(method="POST", path_regex=r"/customers/")
    assert count_rows(gateway, "customers") == 0


@pytest.mark.parametrize("body, field, status", [
    ({}, "external_ref", 422),
    ({"provider": "mastercard-us", "external_ref": 12345678}, "external_ref", 422),
    ({"provider": "mastercard-us", "external_ref": "valid_user1", "nickname": "x"}, "$", 422),
    ({"provider": "mastercard-us", "external_ref": "valid_user1", "type": "vip"}, "type", 422),
    ({"provider": "mastercard-us", "external_ref": "short"}, "external_ref", 422),
    ({"provider": "mastercard-us", "external_ref": "has space in it"}, "external_ref", 422),
    ({"provider": "mastercard-us", "external_ref": "valid_user1", "email": "nope"}, "email", 422),
    ({"provider": "nowhere-bank", "external_ref": "valid_user1"}, "provider", 422),
    ({"region": "MARS", "external_ref": "valid_user1"}, "region", 422),
    ([1, 2], "$", 422),
])
async def test_customer_body_errors_name_the_field(gateway, body, field, status) -> None:  # type: ignore[no-untyped-def]
    problem = await _problem(await gateway.post("/v1/customers", json=body, headers=DEV), status)
    assert problem["code"] == "validation_failed" and problem["source"] == "caller"
    assert any(e["field"] == field for e in problem["errors"]), problem
    await _nothing_stored_or_sent(gateway)


async def test_malformed_json_and_content_type(gateway) -> None:  # type: ignore[no-untyped-def]
    bad = await _problem(await gateway.post("/v1/customers", data=b"{not json", headers={
        **DEV, "Content-Type": "application/json"}), 400)
    assert bad["code"] == "malformed_request" and "JSON" in bad["detail"]
    wrong = await _problem(await gateway.post("/v1/customers", data=b"external_ref=x", headers={
        **DEV, "Content-Type": "application/x-www-form-urlencoded"}), 400)
    assert "Content-Type" in wrong["detail"]
    await _nothing_stored_or_sent(gateway)


async def test_oversize_body(gateway) -> None:  # type: ignore[no-untyped-def]
    limit = state_of(gateway).config.server.max_body_bytes
    body = b'{"external_ref": "' + b"a" * (limit + 10) + b'"}'
    problem = await _problem(await gateway.post("/v1/customers", data=body, headers={
        **DEV, "Content-Type": "application/json"}), 413)
    assert problem["code"] == "payload_too_large"
    await _nothing_stored_or_sent(gateway)


async def test_consent_body_errors(gateway) -> None:  # type: ignore[no-untyped-def]
    customer = await create_customer(gateway, "mastercard-us")
    cases = [
        ({"customer_id": customer["id"], "redirect_uri": "ftp://x"}, "redirect_uri"),
        ({"customer_id": customer["id"], "redirect_uri": "http://evil.example.com/cb"}, "redirect_uri"),
        ({"customer_id": customer["id"], "redirect_uri": "https://a.example/cb", "permissions": ["everything"]},
         "permissions"),
        ({"customer_id": "cus_doesnotexist", "redirect_uri": "https://a.example/cb"}, "customer_id"),
        ({"provider": "mastercard-us", "redirect_uri": "https://a.example/cb"}, "customer_id"),
        ({"customer_id": customer["id"], "redirect_uri": "https://a.example/cb", "institution_id": "abc"},
         "institution_id"),
        ({"customer_id": customer["id"], "redirect_uri": "https://a.example/cb", "institution_id": "999999"},
         "institution_id"),
    ]
    for body, field in cases:
        problem = await _problem(await gateway.post("/v1/consents", json=body, headers=DEV), 422)
        assert any(e["field"] == field for e in problem["errors"]), (body, problem)
    assert not sandbox_of(gateway, "mastercard-us").calls.matching(path_regex=r"/connect/v2")
    assert count_rows(gateway, "consents") == 0


async def test_query_errors(gateway) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gateway)
    account = await first_account(gateway, consent["id"])
    base = f"/v1/accounts/{account['id']}/transactions"
    sandbox = sandbox_of(gateway, "mastercard-us")
    sandbox.calls.clear()
    for query, field in [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-01-01T00:00:00Z"}, "to"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"include_pending": "maybe"}, "include_pending"),
        ({"cursor": "garbage"}, "cursor"),
        ({"colour": "blue"}, "colour"),
    ]:
        resp = await gateway.get(base, params=query, headers=DEV)
        assert resp.status in (400, 422), (query, resp.status)
        problem = await resp.json()
        assert any(e["field"] == field for e in problem["errors"]), (query, problem)
    assert not sandbox.calls.matching(path_regex=r"/transactions")


async def test_cursor_from_another_query_refused(gateway) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gateway)
    account = await first_account(gateway, consent["id"], account_type="checking")
    base = f"/v1/accounts/{account['id']}/transactions"
    page = await (await gateway.get(base, params={"limit": "5", "from": "2025-01-01"}, headers=DEV)).json()
    assert page["next_cursor"]
    resp = await gateway.get(base, params={"limit": "5", "from": "2025-06-01", "cursor": page["next_cursor"]},
                             headers=DEV)
    assert resp.status == 422
    assert "another list or query" in (await resp.json())["detail"]


async def test_unknown_route_and_method(gateway) -> None:  # type: ignore[no-untyped-def]
    assert (await _problem(await gateway.get("/v1/nothing", headers=DEV), 404))["code"] == "not_found"
    problem = await _problem(await gateway.delete("/v1/customers", headers=DEV), 405)
    assert problem["code"] == "method_not_allowed"
