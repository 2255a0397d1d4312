"""The OpenAPI contract: a valid document, the same routes as the app, served, and true of real responses."""
from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from gateway.api.app import create_app
from gateway.config import GatewayConfig
from tests.conftest import DEV
from tests.openapi_check import (
    METHODS,
    document,
    iter_refs,
    match_template,
    resolve,
    route_templates,
    validate_response,
)

PROVIDER_ID = "mastercard-us"

# --- (a) the document itself -------------------------------------------------------------------------------------


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, item[method]) for path, item in document()["paths"].items()
            for method in METHODS if method in item]


def test_document_is_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    try:
        from schemathesis.specs.openapi.definitions import OPENAPI_31
    except ImportError:  # pragma: no cover - the metaschema ships with schemathesis, a test dependency
        pytest.skip("no OpenAPI 3.1 metaschema available")
    errors = list(jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(doc))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:10])


def test_every_ref_resolves() -> None:
    refs = list(iter_refs(document()))
    assert refs
    for where, ref in refs:
        assert ref.startswith("#/"), f"{where}: only references inside the document are used, got {ref}"
        try:
            resolve(ref)
        except Exception as exc:  # noqa: BLE001 - the message names the broken reference
            pytest.fail(f"{where}: $ref {ref} does not resolve ({exc})")


def test_every_schema_is_valid_json_schema() -> None:
    for name, schema in document()["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            pytest.fail(f"components.schemas.{name}: {exc.message}")


def test_operations_are_complete() -> None:
    """Ids unique; every response says X-Request-Id; every /v1 route is authenticated; upstream use is marked."""
    seen: set[str] = set()
    for method, path, op in _operations():
        label = f"{method.upper()} {path}"
        assert op.get("operationId") and op["operationId"] not in seen, f"{label}: missing or repeated operationId"
        seen.add(op["operationId"])
        assert op.get("summary"), f"{label}: no summary"
        assert isinstance(op.get("x-calls-upstream"), bool), f"{label}: say whether it calls an upstream"
        responses = op["responses"]
        assert "500" in responses, f"{label}: 500 is not documented"
        for status, response in responses.items():
            if "$ref" in response:
                response = resolve(response["$ref"])
            assert "X-Request-Id" in response.get("headers", {}), f"{label} {status}: no X-Request-Id header"
            if status.startswith(("4", "5")) and not (path == "/readyz" and status == "503"):
                assert list(response.get("content", {})) == ["application/problem+json"], f"{label} {status}"
        public = op.get("security") == []
        assert public == (not path.startswith("/v1/")), f"{label}: /v1 routes need the key, others do not"
        if not public:
            assert "401" in responses, f"{label}: 401 is not documented"
        path_params = {p.strip("{}") for p in path.split("/") if p.startswith("{")}
        declared = {resolve(p["$ref"])["name"] if "$ref" in p else p["name"]
                    for p in op.get("parameters", []) if (resolve(p["$ref"]) if "$ref" in p else p)["in"] == "path"}
        assert declared == path_params, f"{label}: path parameters {declared} != {path_params}"
        if "requestBody" in op and not op.get("x-provider-body"):  # a provider's webhook body is the provider's
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            target = resolve(schema["$ref"]) if "$ref" in schema else schema
            assert target.get("additionalProperties") is False, f"{label}: the body must refuse unknown fields"
            assert "413" in responses and "400" in responses and "422" in responses, label


# --- (b) the document and the app have the same routes ----------------------------------------------------------


def _app_routes(config: GatewayConfig) -> set[tuple[str, str]]:
    app = create_app(config)
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        resource = route.resource
        assert resource is not None
        routes.add((route.method, resource.canonical))
    return routes


def test_every_app_route_is_documented_and_every_documented_route_exists(gateway_config: GatewayConfig) -> None:
    served = _app_routes(gateway_config)
    documented = route_templates()
    undocumented = sorted(served - documented)
    missing = sorted(documented - served)
    assert not undocumented, f"routes the app serves that the contract does not describe: {undocumented}"
    assert not missing, f"operations the contract describes that the app does not serve: {missing}"


def test_path_matching() -> None:
    assert match_template("/v1/accounts/acc_x") == "/v1/accounts/{account_id}"
    assert match_template("/v1/accounts/acc_x/transactions") == "/v1/accounts/{account_id}/transactions"
    assert match_template("/v1/consents") == "/v1/consents"
    assert match_template("/v1/nothing/here") is None


# --- (c) served -------------------------------------------------------------------------------------------------


async def test_openapi_json_is_served(gateway: Any) -> None:
    resp = await gateway.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == document()
    assert resp.headers["X-Request-Id"]
    validate_response("GET", "/openapi.json", 200, await resp.json(), resp.content_type, headers=resp.headers)


async def test_docs_page_is_served(gateway: Any) -> None:
    resp = await gateway.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "/openapi.json" in page
    for method, path, _ in _operations():
        assert f"{method.upper()} {path}" in page, f"the docs page does not list {method.upper()} {path}"
    validate_response("GET", "/docs", 200, page, resp.content_type, headers=resp.headers)


# --- (d) real responses match -----------------------------------------------------------------------------------


async def _check(resp: Any, method: str, path: str) -> Any:
    body = await resp.json() if "json" in resp.content_type else await resp.text()
    validate_response(method, path, resp.status, body, resp.headers.get("Content-Type", ""), headers=resp.headers)
    return body


async def test_operational_routes_match(gateway: Any) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        resp = await gateway.get(path)
        assert resp.status == 200, (path, await resp.text())
        await _check(resp, "GET", path)


async def test_providers_list_matches(gateway: Any) -> None:
    resp = await gateway.get("/v1/providers", headers=DEV)
    assert resp.status == 200
    body = await _check(resp, "GET", "/v1/providers")
    assert body["data"] and body["next_cursor"] is None


async def test_missing_key_is_a_documented_401(gateway: Any) -> None:
    resp = await gateway.get("/v1/providers")
    assert resp.status == 401 and resp.content_type == "application/problem+json"
    body = await _check(resp, "GET", "/v1/providers")
    assert body["code"] == "unauthenticated" and body["request_id"] == resp.headers["X-Request-Id"]


async def test_unknown_route_is_a_documented_404(gateway: Any) -> None:
    resp = await gateway.get("/v1/no-such-thing", headers={**DEV, "X-Request-Id": "trace-404.a:b"})
    assert resp.status == 404
    body = await _check(resp, "GET", "/v1/no-such-thing")
    assert body["code"] == "not_found" and body["request_id"] == "trace-404.a:b"


async def test_wrong_method_is_a_documented_405(gateway: Any) -> None:
    resp = await gateway.delete("/v1/providers", headers=DEV)
    assert resp.status == 405 and "GET" in resp.headers["Allow"]
    await _check(resp, "DELETE", "/v1/providers")


@pytest.mark.parametrize("body", [
    {"provider": PROVIDER_ID},
    {"external_ref": "valid_user1", "provider": PROVIDER_ID, "nickname": "x"},
    {"external_ref": "", "provider": PROVIDER_ID},
    {"external_ref": "valid_user1", "provider": PROVIDER_ID, "type": "vip"},
    {"external_ref": "valid_user1", "provider": PROVIDER_ID, "first_name": 7},
])
async def test_customer_validation_problem_matches(gateway: Any, body: dict[str, Any]) -> None:
    resp = await gateway.post("/v1/customers", json=body, headers=DEV)
    assert resp.status == 422, await resp.text()
    problem = await _check(resp, "POST", "/v1/customers")
    assert problem["code"] == "validation_failed" and problem["errors"]


async def test_malformed_body_is_a_documented_400(gateway: Any) -> None:
    resp = await gateway.post("/v1/customers", data=b"{not json", headers={**DEV, "Content-Type": "application/json"})
    assert resp.status == 400
    await _check(resp, "POST", "/v1/customers")


@pytest.mark.parametrize("path, params, maximum", [
    ("/v1/consents", {}, 100),
    ("/v1/accounts", {"consent_id": "con_missing"}, 500),
    ("/v1/accounts/acc_missing/transactions", {}, 500),
    ("/v1/institutions", {"provider": PROVIDER_ID}, 100),
])
async def test_documented_limits_are_the_enforced_limits(gateway: Any, path: str, params: dict[str, str],
                                                         maximum: int) -> None:
    template = match_template(path)
    assert template is not None
    op = document()["paths"][template]["get"]
    limit = next(resolve(p["$ref"]) if "$ref" in p else p for p in op["parameters"]
                 if (resolve(p["$ref"]) if "$ref" in p else p)["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == maximum
    for value, refused in ((0, True), (maximum + 1, True), (1, False), (maximum, False)):
        resp = await gateway.get(path, params={**params, "limit": str(value)}, headers=DEV)
        body = await _check(resp, "GET", path)
        fields = [e["field"] for e in body.get("errors", [])] if isinstance(body, dict) else []
        assert ("limit" in fields) is refused, (path, value, resp.status, body)


_TXN = "/v1/accounts/acc_missing/transactions"
def _edge(path: str, params: dict[str, str], status: int) -> Any:
    shown = "&".join(f"{k}={v if len(v) <= 12 else v[:6] + '...'}" for k, v in params.items())
    return pytest.param(path, params, status, id=f"{path}?{shown}")


@pytest.mark.parametrize("path, params, status", [
    _edge(_TXN, {"from": "2026-02-01", "to": "2026-01-01"}, 422),
    _edge(_TXN, {"from": "2020-01-01", "to": "2026-01-01"}, 422),
    _edge(_TXN, {"from": "2026-13-01"}, 422),
    _edge(_TXN, {"to": "26-01-01"}, 422),
    _edge(_TXN, {"from": "9999-12-31", "to": "9999-12-31"}, 404),
    _edge(_TXN, {"include_removed": "yes"}, 422),
    _edge(_TXN, {"include_pending": "0"}, 404),
    _edge(_TXN, {"cursor": "abc.def"}, 404),  # the account is looked up before the cursor is read
    _edge(_TXN, {"page": "2"}, 400),
    _edge(_TXN, {"to": "0001-01-01"}, 422),  # before 1970: no upstream counts time from there
    _edge(_TXN, {"to": "2024-W01-1"}, 422),  # an ISO week date is not YYYY-MM-DD
    _edge("/v1/consents", {"limit": "abc"}, 422),
    _edge("/v1/consents", {"limit": "+5"}, 422),
    _edge("/v1/consents", {"cursor": "abc.def"}, 422),
    _edge("/v1/consents", {"customer_id": ""}, 422),
    _edge("/v1/consents", {"limit": "²"}, 422),
    _edge("/v1/consents", {"limit": "١٠"}, 422),
    _edge("/v1/consents", {"limit": "1" * 5000}, 422),
    _edge("/v1/consents/con_missing", {"refresh": "maybe"}, 422),
    _edge("/v1/accounts", {}, 422),
    _edge("/v1/accounts/acc_missing/balances", {"live": "2"}, 422),
    _edge("/v1/institutions", {}, 422),
    _edge("/v1/institutions", {"provider": "nowhere"}, 422),
    _edge("/v1/institutions", {"region": "MARS"}, 422),
    _edge("/v1/institutions", {"provider": PROVIDER_ID, "country": "USA"}, 422),
])
async def test_edge_values_get_documented_answers(gateway: Any, path: str, params: dict[str, str],
                                                  status: int) -> None:
    resp = await gateway.get(path, params=params, headers=DEV)
    body = await _check(resp, "GET", path)
    assert resp.status == status, (path, params, resp.status, body)
