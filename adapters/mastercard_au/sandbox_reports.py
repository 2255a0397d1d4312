"""Decisioning in the AU simulator: consumers (one per customer, never deleted) and the VOA, VOI and Cash Flow
Business reports, generated in the background.

A report answers 18001 "being generated" for `report_delay` seconds, then is done (or failed, after
`fail_next_report()`). With `callbackUrl`, the events inProgress and then done or failed go to that URL, signed like
Connect events. VOA and cash flow reports are also offered as PDF (`Accept: application/pdf`); VOI is JSON only.
"""
from __future__ import annotations

import asyncio
import re
import string
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.mastercard_au.sandbox_analytics import INTERVAL_TYPES, cash_flow, tiny_pdf, voa, voi
from adapters.mastercard_au.sandbox_checks import (
    BOOLEAN, INTEGER, NUMERIC_ID, OBJECT, AUError, Param, invalid, list_of, object_with, one_of, opt, read_body,
    read_query, req, url,
)
from adapters.mastercard_au.sandbox_data import DEPOSIT_TYPES, INSTITUTIONS
from adapters.mastercard_au.sandbox_handlers import SANDBOX, customer_of, json_response
from adapters.mastercard_au.sandbox_world import Account, Consumer, Report, World

if TYPE_CHECKING:
    from adapters.mastercard_au.sandbox import MastercardAUSandbox

CONSUMER_FIELDS = (req("firstName"), req("lastName"), opt("address"), opt("city"), opt("state"), opt("zip"),
                   opt("phone"), opt("email"), opt("ssn"), opt("suffix"), opt("birthday", OBJECT))
_CUSTOM_FIELD = object_with((req("label"), req("value"), opt("shown", BOOLEAN)))


def _account_ids(value: Any) -> str | None:
    """A string of ids separated by spaces or commas, or an array of ids."""
    if isinstance(value, str):
        return None if re.fullmatch(r"[\d\s,]*\d[\d\s,]*", value) else "must be account ids"
    return list_of(NUMERIC_ID)(value)


REPORT_FIELDS = (opt("accountIds", _account_ids), opt("fromDate", INTEGER),
                 opt("reportCustomFields", list_of(_CUSTOM_FIELD)))
VOI_FIELDS = (*REPORT_FIELDS, opt("intervalTypes", list_of(one_of(*INTERVAL_TYPES))))
TITLES = {"voa": "Mastercard Open Banking Verification of Assets",
          "voi": "Mastercard Open Banking Verification of Income",
          "cfrb": "Mastercard Open Banking Cash Flow Report - Business"}
HISTORY_DAYS = {"voa": 180, "voi": 365, "cfrb": 365}
MAX_HISTORY_DAYS = 730


# --- consumers ----------------------------------------------------------------------------------------------------
def _consumer_json(consumer: Consumer) -> dict[str, Any]:
    return {"id": consumer.id, **consumer.fields, "customerId": int(consumer.customer_id),
            "createdDate": consumer.created}


async def create_consumer(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    customer = customer_of(world, request.match_info["customerId"])
    body = await read_body(request, CONSUMER_FIELDS)
    if customer.id in world.consumers:
        raise AUError(409, "11000", "A consumer already exists for this customer")
    consumer = Consumer(world.token(32, string.hexdigits[:16]), customer.id, body, world.now_epoch())
    world.consumers[customer.id] = consumer
    return json_response({"id": consumer.id, "createdDate": consumer.created, "customerId": int(customer.id)}, 201)


async def get_consumer(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    consumer = world.consumers.get(customer_of(world, request.match_info["customerId"]).id)
    if consumer is None:
        raise AUError(404, "14001", "Consumer not found")
    return json_response(_consumer_json(consumer))


# --- generating reports -------------------------------------------------------------------------------------------
def _report_accounts(world: World, customer_id: str, type_: str, wanted: Any) -> list[Account]:
    eligible = [a for a in world.available_accounts(customer_id)
                if type_ == "cfrb" or a.template.type in DEPOSIT_TYPES]
    if wanted is None:
        chosen = eligible
    else:
        ids = re.findall(r"\d+", wanted) if isinstance(wanted, str) else [str(i) for i in wanted]
        by_id = {a.id: a for a in eligible}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise invalid("accountIds", f"account {unknown[0]} has no active consent or is not a deposit account")
        chosen = [by_id[i] for i in dict.fromkeys(ids)]
    if not chosen:
        raise AUError(400, "10005", "No accounts with an active consent for this customer")
    return chosen


def ack_json(world: World, report: Report) -> dict[str, Any]:
    customer = world.customers[report.customer_id]
    return {"id": report.id, "requestId": report.request_id, "consumerId": report.consumer_id,
            "customerId": int(report.customer_id), "customerType": customer.type,
            "requesterName": "Sandbox AU Partner", "type": report.type, "status": report.status,
            "title": TITLES[report.type], "createdDate": report.created, "constraints": report.constraints}


async def _request_report(request: web.Request, type_: str) -> web.Response:
    sandbox = request.app[SANDBOX]
    world = sandbox.world
    customer = customer_of(world, request.match_info["customerId"])
    callback = read_query(request, (Param("callbackUrl", url),))["callbackUrl"]
    body = await read_body(request, VOI_FIELDS if type_ == "voi" else REPORT_FIELDS)
    constraints: dict[str, Any] = {}
    if type_ == "voi":
        intervals = body.get("intervalTypes") or ["MONTHLY_CALENDAR"]
        if len(intervals) > 2:
            raise AUError(400, "10005", "More than 2 intervalTypes passed request.")
        constraints["intervalTypes"] = intervals
    if type_ == "cfrb" and customer.category != "BUSINESS":
        raise AUError(400, "10005", "Cash flow business reports are only available for BUSINESS customers")
    consumer = world.consumers.get(customer.id)
    if consumer is None:
        raise AUError(400, "14001", "Consumer not found")
    accounts = _report_accounts(world, customer.id, type_, body.get("accountIds"))
    now = world.now_epoch()
    from_date = body.get("fromDate", now - HISTORY_DAYS[type_] * 86_400)
    if not now - MAX_HISTORY_DAYS * 86_400 <= from_date < now:
        raise invalid("fromDate", f"must be in the past, at most {MAX_HISTORY_DAYS} days ago")
    constraints.update(accountIds=[a.id for a in accounts], fromDate=from_date)
    if "reportCustomFields" in body:
        constraints["reportCustomFields"] = body["reportCustomFields"]
    report = Report(world.token(12), world.token(10), customer.id, consumer.id, type_, now, constraints,
                    [a.id for a in accounts], callback)
    world.reports[report.id] = report
    fail = sandbox.fail_reports > 0
    if fail:
        sandbox.fail_reports -= 1
    sandbox.notify.report(report, "inProgress")
    sandbox.outbox.spawn(_finish(sandbox, report, fail))
    return json_response(ack_json(world, report), 202)


async def _finish(sandbox: MastercardAUSandbox, report: Report, fail: bool) -> None:
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
            report.document = voi(world, report.id, accounts, low, high, report.constraints["intervalTypes"])
        else:
            report.document = cash_flow(world, report.id, accounts, low, high)
        report.status = "success"
    sandbox.notify.report(report, "done" if report.status == "success" else "failed")


async def request_voa(request: web.Request) -> web.Response:
    return await _request_report(request, "voa")


async def request_voi(request: web.Request) -> web.Response:
    return await _request_report(request, "voi")


async def request_cash_flow_business(request: web.Request) -> web.Response:
    return await _request_report(request, "cfrb")


# --- reading reports ----------------------------------------------------------------------------------------------
def _pdf(world: World, report: Report) -> bytes:
    assert report.document is not None
    lines = [TITLES[report.type], f"Report {report.id} for customer {report.customer_id}",
             f"Created {world.now().date().isoformat()} - currency AUD", ""]
    for institution in report.document["institutions"]:
        for account in institution["accounts"]:
            lines.append(f"{INSTITUTIONS[institution['id']].name} - {account['name']} {account['number']}: "
                         f"balance {account['balance']:,.2f}")
    return tiny_pdf(lines)


async def get_report(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    customer = customer_of(world, request.match_info["customerId"])
    report = world.reports.get(request.match_info["reportId"])
    if report is None or report.customer_id != customer.id:
        raise AUError(404, "14001", "Report not found")
    pdf = "application/pdf" in request.headers.get("Accept", "")
    if pdf and report.type == "voi":
        raise AUError(400, "10005", "PDF format is not supported for this report type")
    if report.status == "inProgress":
        return json_response({"code": "18001", "message": "Report is being generated", "id": report.id,
                              "status": "inProgress"}, 202)
    if report.status == "success" and pdf:
        return web.Response(body=_pdf(world, report), content_type="application/pdf")
    return json_response({**ack_json(world, report), **(report.document or {})})


async def list_reports(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    customer = customer_of(world, request.match_info["customerId"])
    return json_response({"reports": [
        {"id": r.id, "type": r.type, "status": r.status, "createdDate": r.created, "consumerId": r.consumer_id}
        for r in world.reports.values() if r.customer_id == customer.id]})


_CUSTOMER = "/decisioning/{version}/customers/{customerId}"
REPORT_ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("POST", _CUSTOMER.replace("{version}", "v1") + "/consumer", create_consumer),
    ("GET", _CUSTOMER.replace("{version}", "v1") + "/consumer", get_consumer),
    ("POST", _CUSTOMER.replace("{version}", "v2") + "/voa", request_voa),
    ("POST", _CUSTOMER.replace("{version}", "v2") + "/voi", request_voi),
    ("POST", _CUSTOMER.replace("{version}", "v2") + "/cashFlowBusiness", request_cash_flow_business),
    ("GET", _CUSTOMER.replace("{version}", "v4") + "/reports/{reportId}", get_report),
    ("GET", _CUSTOMER.replace("{version}", "v1") + "/reports", list_reports),
)
