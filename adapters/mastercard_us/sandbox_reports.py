"""Decisioning in the Finicity simulator: consumers (one per customer, never deleted) and the VOA, VOI and Cash Flow
(personal) reports, generated in the background.

A report is `inProgress` for the simulator's `report_delay` seconds, then `success`, or `failure` when it covers an
account of the test profile `FAILING_PROFILE` (its simulated institution stops answering while the report is
generated) or after `fail_next_report()`. With `callbackUrl`, the events inProgress and then done or failed go to
that URL. A report reads as JSON or, once done, as PDF (`Accept: application/pdf`); while in progress (or failed) it
reads as a minimal JSON report with that status, as upstream.

A new consumer must satisfy the schema (firstName, lastName, state, checked against the spec) and the spec's two
prose rules: `ssn` or `birthday`, and `phone` or `email`. The simulator also refuses an `ssn` that is not nine digits
(hyphens allowed) and a `birthday` that is no real date.
"""
from __future__ import annotations

import asyncio
import re
import string
from datetime import date
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.mastercard_us.sandbox_analytics import cash_flow, pdf, voa, voi
from adapters.mastercard_us.sandbox_common import SANDBOX, FinicityError, customer_of, json_response
from adapters.mastercard_us.sandbox_data import DEPOSIT_TYPES, INSTITUTIONS, INVESTMENT_TYPES
from adapters.mastercard_us.sandbox_world import Account, Consumer, Customer, Report, World

if TYPE_CHECKING:
    from adapters.mastercard_us.sandbox import MastercardUSSandbox

FAILING_PROFILE = "profile_02"
REQUESTER = "Sandbox US Partner"
TITLES = {"voa": "Mastercard Open Banking Verification of Assets",
          "voi": "Mastercard Open Banking Verification of Income",
          "cfrp": "Mastercard Open Banking Cash Flow Report - Personal"}
SUFFIXES = {"voa": "", "voi": "-voi", "cfrp": "-cfrp"}
# Which accounts each report reads, and how far back (days) when `fromDate` is not given, and at most.
ELIGIBLE: dict[str, frozenset[str] | None] = {"voa": DEPOSIT_TYPES | INVESTMENT_TYPES, "voi": DEPOSIT_TYPES - {"cd"},
                                              "cfrp": None}
HISTORY_DAYS = {"voa": 365, "voi": 730, "cfrp": 730}


def _bad_request(message: str = "Bad request.", code: str = "14020") -> FinicityError:
    return FinicityError(400, code, message)


# --- consumers ----------------------------------------------------------------------------------------------------
def _consumer_json(consumer: Consumer) -> dict[str, Any]:
    fields = consumer.fields
    ssn = str(fields.get("ssn") or "")
    return {"id": consumer.id, "firstName": fields["firstName"], "lastName": fields["lastName"],
            "customerId": int(consumer.customer_id), **{k: str(fields.get(k) or "") for k in (
                "address", "city", "state", "zip", "phone", "email")},
            "ssn": re.sub(r"\D", "", ssn)[-4:], "birthday": fields.get("birthday") or {},
            "createdDate": consumer.created, **({"suffix": fields["suffix"]} if fields.get("suffix") else {})}


async def create_consumer(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    customer = customer_of(world, request.match_info["customerId"])
    body = await request.json()
    if not body.get("phone") and not body.get("email"):
        raise FinicityError(400, "10005", "Missing parameter (phone or email)")
    if not body.get("ssn") and not body.get("birthday"):
        raise FinicityError(400, "10005", "Missing parameter (ssn or birthday)")
    if body.get("ssn") and not re.fullmatch(r"\d{3}-?\d{2}-?\d{4}", str(body["ssn"])):
        raise _bad_request("Invalid parameter - ssn", "10100")
    if body.get("birthday") and _birth_date(body["birthday"]) is None:
        raise _bad_request("Invalid parameter - birthday", "10100")
    if customer.id in world.consumers:
        raise FinicityError(409, "11000", f"A consumer already exists for customer {customer.id}")
    consumer = Consumer(world.token(32, string.hexdigits[:16]), customer.id, body, world.now_epoch())
    world.consumers[customer.id] = consumer
    return json_response({"id": consumer.id, "createdDate": consumer.created, "customerId": int(customer.id)}, 201)


def _birth_date(value: Any) -> date | None:
    """A `Birthday` object ({year, month, dayOfMonth}) as a date, or None when it names no real day."""
    if not isinstance(value, dict) or not all(type(value.get(k)) is int for k in ("year", "month", "dayOfMonth")):
        return None
    try:
        return date(value["year"], value["month"], value["dayOfMonth"])
    except ValueError:
        return None


def _consumer_of(world: World, customer: Customer) -> Consumer:
    consumer = world.consumers.get(customer.id)
    if consumer is None:
        raise FinicityError(404, "10100", f"Cannot find consumer for customer with id {customer.id}.")
    return consumer


async def get_consumer(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    return json_response(_consumer_json(_consumer_of(world, customer_of(world, request.match_info["customerId"]))))


# --- generating reports -------------------------------------------------------------------------------------------
def _report_accounts(world: World, customer_id: str, type_: str, wanted: str | None) -> list[Account]:
    kinds = ELIGIBLE[type_]
    available = world.available_accounts(customer_id)
    eligible = {a.id: a for a in available if kinds is None or a.template.type in kinds}
    if wanted is None:
        chosen = list(eligible.values())
    else:
        ids = wanted.split()
        if not ids or any(i not in eligible for i in ids):
            raise _bad_request("Bad request. (Account type not supported).")
        chosen = [eligible[i] for i in dict.fromkeys(ids)]
    if not chosen:
        raise _bad_request("Bad request. (Account type not supported).")
    return chosen


def ack_json(world: World, report: Report) -> dict[str, Any]:
    customer = world.customers[report.customer_id]
    consumer = world.consumers[report.customer_id]
    return {"id": report.id, "portfolioId": f"{report.request_id}-1-port", "customerType": customer.type,
            "customerId": int(report.customer_id), "requestId": report.request_id, "requesterName": REQUESTER,
            "createdDate": report.created, "title": TITLES[report.type], "consumerId": report.consumer_id,
            "consumerSsn": _consumer_json(consumer)["ssn"], "type": report.type, "status": report.status,
            "constraints": report.constraints}


async def _request_report(request: web.Request, type_: str) -> web.Response:
    sandbox = request.app[SANDBOX]
    world = sandbox.world
    customer = customer_of(world, request.match_info["customerId"])
    body = await request.json()
    consumer = _consumer_of(world, customer)
    accounts = _report_accounts(world, customer.id, type_, body.get("accountIds"))
    now = world.now_epoch()
    from_date = max(int(body.get("fromDate", 0)), now - HISTORY_DAYS[type_] * 86_400)
    if from_date >= now:
        raise FinicityError(400, "1618", "Negative or invalid value entered. (fromDate must be in the past)")
    constraints: dict[str, Any] = {"accountIds": [a.id for a in accounts], "fromDate": from_date}
    for key in ("reportCustomFields", "showNsf", "incomeStreamConfidenceMinimum"):
        if key in body:
            constraints[key] = body[key]
    report = Report(world.token(12) + SUFFIXES[type_], world.token(10), customer.id, consumer.id, type_, now,
                    constraints, [a.id for a in accounts], request.query.get("callbackUrl") or None)
    world.reports[report.id] = report
    fail = sandbox.fail_reports > 0 or any(a.profile == FAILING_PROFILE for a in accounts)
    if sandbox.fail_reports > 0:
        sandbox.fail_reports -= 1
    sandbox.notify.report(report, "inProgress")
    sandbox.outbox.spawn(_finish(sandbox, report, fail))
    return json_response(ack_json(world, report), 202)


async def _finish(sandbox: MastercardUSSandbox, report: Report, fail: bool) -> None:
    await asyncio.sleep(sandbox.report_delay)
    world = sandbox.world
    if fail:
        report.status = "failure"
    else:
        accounts = [world.accounts[i] for i in report.account_ids]
        low, high = report.constraints["fromDate"], world.now_epoch()
        if report.type == "voa":
            report.document = voa(world, accounts, low, high)
        elif report.type == "voi":
            report.document = voi(world, report.id, accounts, low, high)
        else:
            report.document = cash_flow(world, accounts, low, high)
        report.status = "success"
    sandbox.notify.report(report, "done" if report.status == "success" else "failed")


async def request_voa(request: web.Request) -> web.Response:
    return await _request_report(request, "voa")


async def request_voi(request: web.Request) -> web.Response:
    return await _request_report(request, "voi")


async def request_cash_flow_personal(request: web.Request) -> web.Response:
    return await _request_report(request, "cfrp")


# --- reading reports ----------------------------------------------------------------------------------------------
def _pdf(world: World, report: Report) -> bytes:
    assert report.document is not None
    lines = [f"Report {report.id} for customer {report.customer_id}, consumer {report.consumer_id}",
             f"Created {world.now().date().isoformat()} - currency USD", ""]
    for institution in report.document["institutions"]:
        for account in institution["accounts"]:
            lines.append(f"{INSTITUTIONS[institution['id']].name} - {account['name']} x{account['number']}: "
                         f"balance {account['balance']:,.2f}")
    return pdf(TITLES[report.type], lines)


async def get_report(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    customer = customer_of(world, request.match_info["customerId"])
    report = world.reports.get(request.match_info["reportId"])
    if report is None or report.customer_id != customer.id:
        raise FinicityError(404, "14001", "Resource not found.")
    if report.status == "success" and "application/pdf" in request.headers.get("Accept", ""):
        return web.Response(body=_pdf(world, report), content_type="application/pdf")
    return json_response({**ack_json(world, report), **(report.document or {})})


async def list_reports(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    customer = customer_of(world, request.match_info["customerId"])
    return json_response({"reports": [
        {"id": r.id, "requestId": r.request_id, "requesterName": REQUESTER, "createdDate": r.created,
         "consumerId": r.consumer_id, "consumerSsn": ack_json(world, r)["consumerSsn"], "type": r.type,
         "status": r.status}
        for r in world.reports.values() if r.customer_id == customer.id]})


REPORT_ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("POST", "/decisioning/v1/customers/{customerId}/consumer", create_consumer),
    ("GET", "/decisioning/v1/customers/{customerId}/consumer", get_consumer),
    ("POST", "/decisioning/v2/customers/{customerId}/voa", request_voa),
    ("POST", "/decisioning/v2/customers/{customerId}/voi", request_voi),
    ("POST", "/decisioning/v2/customers/{customerId}/cashFlowPersonal", request_cash_flow_personal),
    ("GET", "/decisioning/v3/customers/{customerId}/reports/{reportId}", get_report),
    ("GET", "/decisioning/v1/customers/{customerId}/reports", list_reports),
)
