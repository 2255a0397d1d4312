"""The mastercard-us adapter: Mastercard Open Finance US on the shared Mastercard platform adapter.

Beyond the data calls it shares with AU it offers:
- reports (the decisioning API): `voa`, `voi` and `cash_flow` (the platform's Cash Flow Report - Personal, as US
  customers here are individuals), read as JSON or PDF; their consumer is created from the caller's name, contact,
  birth date or SSN, and address (the platform requires the consumer's state: without an address from the caller it
  is the one the institution reports for the account owner);
- webhooks: Connect events (channel `connect`, the URL sent with every Connect link) and report events (channel
  `reports`, each report's `callbackUrl`), both verified with `X-Signature` (HMAC-SHA256 keyed with the partner
  secret; a report event without any signature is only believed once the platform confirms the report's status).
  An `added` event authorises the consent awaiting the end user once the platform holds an ACTIVE consent
  receipt covering the added accounts (see `webhooks` for what each event means).
"""
from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import quote

import attrs

from adapters.base import CallContext, ConsentUpdate, CreateConsumerInput, CreateReportInput, InboundEvent
from adapters.mastercard import details
from adapters.mastercard import webhooks as platform_hooks
from adapters.mastercard.adapter import MastercardPlatformAdapter, MastercardSettings
from adapters.mastercard.decisioning import PlatformReports, address_fields
from adapters.mastercard.region import US
from adapters.mastercard.reports import constraints
from adapters.mastercard_us import webhooks as hooks
from gateway.errors import (
    ConsentNotActive, GatewayRequestRejected, NotFound, ProviderBadResponse, ProviderRejected, Unauthenticated,
    ValidationFailed,
)
from gateway.models import PostalAddress, ReportStatus
from gateway.models.time import utcnow
from gateway.store.records import ConsentRecord, CustomerRecord

# canonical report type -> the generate call's path segment
REPORT_SEGMENTS: dict[str, str] = {"voa": "voa", "voi": "voi", "cash_flow": "cashFlowPersonal"}
# What each report reads (the platform answers 14020 "Account type not supported" otherwise).
REPORT_ACCOUNTS: dict[str, str] = {
    "voa": "it reads checking, savings, money market and investment accounts",
    "voi": "it reads checking, savings and money market accounts",
    "cash_flow": "it reads deposit, investment, loan and card accounts",
}
ACCOUNT_TYPE_NOT_SUPPORTED = "14020"
# The states, DC and the territories (USPS codes), as the platform records a consumer's state.
US_STATE = re.compile(
    r"AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|"
    r"OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|AS|GU|MP|PR|VI")
# The report event a report status read from the platform amounts to.
CONFIRMED_REPORT_EVENTS = {ReportStatus.PENDING: "inProgress", ReportStatus.READY: "done",
                           ReportStatus.FAILED: "failed"}
# The platform's older documentation names the Connect signature header X-Finicity-Signature.
SIGNATURE_HEADERS = (platform_hooks.SIGNATURE_HEADER, "X-Finicity-Signature")


@attrs.frozen
class MastercardUSSettings(MastercardSettings):
    # The embedded simulator signs webhooks like the provider's sample ("compact") or over the raw bytes.
    sandbox_connect_signature: str = attrs.field(default="compact", validator=attrs.validators.in_(
        platform_hooks.SIGNATURE_MODES))


class MastercardUSAdapter(PlatformReports, MastercardPlatformAdapter):
    provider_id = "mastercard-us"
    regions = frozenset({"US"})
    region = US
    settings_type = MastercardUSSettings
    capabilities = frozenset({
        "list_institutions", "create_customer", "create_consent", "complete_consent", "refresh_consent",
        "revoke_consent", "list_accounts", "get_balances", "get_live_balances", "list_transactions",
        "get_account_details", "get_account_owner", "create_consumer", "create_report", "get_report",
        "get_report_content",
    })
    webhook_channels: ClassVar[frozenset[str]] = frozenset({"connect", "reports"})
    report_read_version: ClassVar[str] = "v3"
    pdf_report_types: ClassVar[frozenset[str]] = frozenset(REPORT_SEGMENTS)

    @classmethod
    def create_sandbox(cls, config: Any) -> Any:
        from adapters.mastercard_us.sandbox import MastercardUSSandbox

        settings: MastercardUSSettings = config.settings
        return MastercardUSSandbox(partner_id=settings.partner_id, partner_secret=settings.partner_secret.reveal(),
                                   app_key=settings.app_key.reveal(), token_ttl=settings.sandbox_token_ttl,
                                   connect_signature=settings.sandbox_connect_signature)

    def connect_webhook(self) -> str | None:
        return self.settings.webhook_url or self.webhook_url("connect")

    # --- reports -----------------------------------------------------------------------------------------------------
    def validate_report(self, customer: CustomerRecord, data: CreateReportInput) -> None:
        errors = []
        if data.interval_types:
            errors.append({"location": "body", "field": "interval_types",
                           "message": f"{self.provider_id} income reports take no interval types"})
        if data.from_date is not None and data.from_date >= utcnow().date():
            errors.append({"location": "body", "field": "from_date", "message": "must be a day in the past"})
        if errors:
            raise ValidationFailed.of(errors)

    def report_segment(self, customer: CustomerRecord, data: CreateReportInput) -> str:
        return REPORT_SEGMENTS[data.type]

    def report_body(self, data: CreateReportInput) -> dict[str, Any]:
        return constraints(account_refs=data.account_refs, from_date=data.from_date)

    async def create_report(self, ctx: CallContext, customer: CustomerRecord, consent: ConsentRecord,
                            data: CreateReportInput) -> str:
        try:
            return await super().create_report(ctx, customer, consent, data)
        except GatewayRequestRejected as exc:
            if exc.provider_code != ACCOUNT_TYPE_NOT_SUPPORTED:
                raise
            # The caller's choice of report and accounts, not a malformed request: say which field.
            field = "account_ids" if data.account_refs else "type"
            what = "these accounts" if data.account_refs else "the accounts the consent shares"
            raise ValidationFailed.of([{"location": "body", "field": field, "message": (
                f"{self.provider_id} cannot make a {data.type} report of {what}: {REPORT_ACCOUNTS[data.type]}")}]) \
                from exc

    takes_ssn = True

    async def consumer_body(self, ctx: CallContext, customer: CustomerRecord, data: CreateConsumerInput) -> dict:
        # The platform's rules for a new consumer, checked before any call: one of email and phone, one of
        # birthday and SSN, and a US state (from the caller's address, or else from the account owner's).
        problems = []
        if not data.email and not data.phone:
            problems.append({"location": "body", "field": "email",
                             "message": f"{self.provider_id} needs the consumer's email or phone"})
        if data.birth_date is None and data.ssn is None:
            problems.append({"location": "body", "field": "birth_date",
                             "message": f"{self.provider_id} needs the consumer's birth_date or ssn"})
        if data.address is not None and not US_STATE.fullmatch(data.address.region or ""):
            problems.append({"location": "body", "field": "address.region",
                             "message": f"{self.provider_id} needs a US state or territory code such as UT"})
        if data.address is not None and data.address.country not in (None, "US"):
            problems.append({"location": "body", "field": "address.country",
                             "message": f"{self.provider_id} consumers live in the US"})
        if problems:
            raise ValidationFailed.of(problems)
        body = await super().consumer_body(ctx, customer, data)
        if data.address is None:
            body.update(address_fields(await self._owner_address(customer)))
        return body

    async def _owner_address(self, customer: CustomerRecord) -> PostalAddress:
        """Where the institution says the customer's account owner lives (the platform needs the consumer's state)."""
        listing = await self.client.call("GET", self.region.path(
            "/aggregation/v1/customers/{customer}/accounts", customer=customer.provider_ref, account=""),
                                         operation="list_accounts")
        accounts = [a for a in (listing or {}).get("accounts") or () if isinstance(a, dict) and a.get("id")]
        if not accounts:
            raise ConsentNotActive(f"{self.provider_id} takes the consumer's address from the owner of the customer's "
                                   "accounts: the customer must connect their accounts first")
        raw = await self.client.call("GET", self.region.path(
            "/aggregation/v3/customers/{customer}/accounts/{account}/owner", customer=customer.provider_ref,
            account=str(accounts[0]["id"])), operation="get_account_owner")
        owner = details.owner(raw, account_id=str(accounts[0]["id"]))
        address = next((a for a in owner.addresses if a.region), None)
        if address is None:
            raise ProviderBadResponse(f"{self.provider_id} reports no address with a state for the account owner")
        return address

    # --- webhooks ----------------------------------------------------------------------------------------------------
    async def receive_webhook(self, channel: str, headers: Any, body: bytes) -> InboundEvent:
        if channel == "reports" and not any(headers.get(name) for name in SIGNATURE_HEADERS):
            return await self._unsigned_report_event(body)
        platform_hooks.verify_partner_signature(self.settings.partner_secret, headers, body,
                                                header_names=SIGNATURE_HEADERS)
        parsed = platform_hooks.json_body(body)
        if channel == "reports" or (isinstance(parsed, dict) and "eventName" in parsed and "eventType" not in parsed):
            return platform_hooks.report_event(parsed)  # Connect may send the reports it generates to its own URL
        event = hooks.read_connect_event(parsed)
        authorisation = await self._authorisation(event) if event.adds_accounts and event.customer_ref else None
        return hooks.inbound_event(event, authorisation)

    async def _authorisation(self, event: hooks.ConnectEvent) -> ConsentUpdate | None:
        """What authorises the consent awaiting the end user: the ACTIVE receipt covering the accounts added."""
        receipt = hooks.covering_receipt(await self._receipts(event.customer_ref), event.account_refs)
        return self._receipt_update(receipt) if receipt is not None else None

    async def _unsigned_report_event(self, body: bytes) -> InboundEvent:
        """The platform's older documentation says report callbacks carry no signature. Such an event is trusted
        for nothing but the ids it names: the report's status is read from the platform, and an event naming no
        report the platform has is refused as unauthenticated."""
        event = platform_hooks.report_event(platform_hooks.json_body(body))
        path = f"/decisioning/{self.report_read_version}/customers/{quote(event.provider_ref, safe='')}/reports/" \
               f"{quote(event.report_ref or '', safe='')}"
        try:
            response = await self.client.call_raw("GET", path, operation="get_report")
        except (NotFound, ProviderRejected, GatewayRequestRejected):
            raise Unauthenticated("an unsigned report webhook must name a report of the provider") from None
        status = ReportStatus.PENDING if response.status == 202 else self._json_report_status(response)
        # Named after what the platform said, so that the event cannot take the id of the signed one it may precede.
        name = CONFIRMED_REPORT_EVENTS[status]
        return attrs.evolve(event, report_status=status, type=name, event_id=f"report:{event.report_ref}:{name}")
