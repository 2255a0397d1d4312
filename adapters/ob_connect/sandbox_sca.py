"""The bank's SCA page behind `_links.scaRedirect`, played by tests as the end user (no browser).

GET describes the page; POST `{"outcome": "approve" | "reject", "accounts": [...]}` decides and answers where the
browser would be sent: the consent's tppRedirectURI with `code` and `state` (or `error` and `state`) appended.
"""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from adapters.ob_connect.sandbox_data import CROSS_BORDER, Account
from adapters.ob_connect.sandbox_http import SANDBOX, json_response
from adapters.ob_connect.sandbox_world import AIS, AisConsent, PaymentConsent
from adapters.sandbox_kit import with_query


def _error(status: int, text: str) -> web.Response:
    return json_response({"error": text}, status=status)


def _find(request: web.Request) -> tuple[Any, str, Any] | web.Response:
    sandbox = request.app[SANDBOX]
    ticket = request.match_info["ticket"]
    found = sandbox.world.tickets.get(ticket)
    if found is None:
        return _error(404, "unknown SCA ticket")
    flow, consent_request_id = found
    consent = (sandbox.world.consents if flow == AIS else sandbox.world.payment_consents)[consent_request_id]
    return sandbox, flow, consent


def _offered(sandbox: Any, consent: AisConsent | PaymentConsent) -> list[Account]:
    own: list[Account] = sandbox.data.by_bank[consent.aspsp_id]
    if isinstance(consent, AisConsent):
        return [a for a in own if consent.requested_accounts is None or a.resource_id in consent.requested_accounts]
    if consent.debtor_account_id is not None:
        return [sandbox.data.accounts[consent.debtor_account_id]]
    currency = consent.payments["instructedAmount"]["currency"]
    return [a for a in own if consent.type == CROSS_BORDER or a.currency == currency]


async def page(request: web.Request) -> web.Response:
    found = _find(request)
    if isinstance(found, web.Response):
        return found
    sandbox, flow, consent = found
    aspsp = sandbox.aspsps[consent.aspsp_id]
    offered = _offered(sandbox, consent)
    default = [a.resource_id for a in offered] if flow == AIS else [a.resource_id for a in offered[:1]]
    out: dict[str, Any] = {"aspspId": aspsp.id, "aspspName": aspsp.name, "kind": "ais" if flow == AIS else "pis",
                           "consentRequestId": consent.consent_request_id,
                           "accounts": [a.page_entry() for a in offered],
                           "complete": {"method": "POST", "url": str(request.url), "outcomes": ["approve", "reject"],
                                        "body": {"outcome": "approve", "accounts": default}}}
    if flow == AIS:
        out["permissions"] = consent.permissions
    else:
        p = consent.payments
        out["payment"] = {"type": consent.type, "instructedAmount": p["instructedAmount"],
                          "creditorName": p["creditorName"], "creditorAccount": p["creditorAccount"]}
    return web.Response(body=orjson.dumps(out, default=float), content_type="application/json")


async def complete(request: web.Request) -> web.Response:
    found = _find(request)
    if isinstance(found, web.Response):
        return found
    sandbox, flow, consent = found
    ticket = request.match_info["ticket"]
    raw = await request.read()
    try:
        choice = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        choice = None
    if not isinstance(choice, dict):
        return _error(400, "the body must be a JSON object: outcome, accounts")
    outcome = choice.get("outcome", "approve")
    if outcome not in ("approve", "reject"):
        return _error(400, "outcome must be approve or reject")
    if ticket in sandbox.world.used_tickets:
        return _error(400, "ticket already used")
    offered = {a.resource_id for a in _offered(sandbox, consent)}
    chosen = choice.get("accounts")
    if outcome == "approve":
        if chosen is None:
            chosen = sorted(offered) if flow == AIS else [a.resource_id for a in _offered(sandbox, consent)[:1]]
        if (not isinstance(chosen, list) or not chosen or any(a not in offered for a in chosen)
                or (flow != AIS and len(chosen) != 1)):
            return _error(400, "accounts must name " + ("accounts offered on this page" if flow == AIS
                                                         else "exactly one offered account, the payer"))
    sandbox.world.used_tickets.add(ticket)
    if outcome == "reject":
        consent.status = "rejected"
        target = with_query(consent.tpp_redirect_uri, error="access_denied",
                            error_description="The PSU refused the consent", state=consent.state)
        return json_response({"outcome": "reject", "redirect_to": target})
    if isinstance(consent, AisConsent):
        order = [a.resource_id for a in sandbox.data.by_bank[consent.aspsp_id]]
        consent.account_ids = [a for a in order if a in chosen]
    else:
        consent.debtor_account_id = chosen[0]
    consent.status = "authorised"
    code = sandbox.world.issue_code(flow, consent.consent_request_id, consent.aspsp_id)
    return json_response({"outcome": "approve",
                          "redirect_to": with_query(consent.tpp_redirect_uri, code=code, state=consent.state)})


ROUTES: list[tuple[str, str, Any]] = [("GET", "/sca/{ticket}", page), ("POST", "/sca/{ticket}", complete)]
