"""Reports and their consumer on the Mastercard platform (the decisioning API), as a mixin of the region adapters.

What the regions share: a consumer per customer, made once and never deleted (a second creation answers 409 and the
existing one is adopted); a report asked for with `POST /decisioning/v2/customers/{c}/<type>` (and `callbackUrl`
naming where its webhooks go), read back with `GET /decisioning/<version>/customers/{c}/reports/{r}` as JSON or PDF,
answering 202 or code 18001 while it is being generated. What differs is data or a hook below: the read's version,
the consumer body, each report type's path segment and body, which types render as PDF.

The mixin uses the adapter's platform client (`self.client`) and provider id.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar
from urllib.parse import quote

from adapters.base import CallContext, CreateConsumerInput, CreateReportInput, ReportContent, ReportUpdate
from adapters.mastercard.reports import REPORT_PENDING_CODE, report_status
from gateway.errors import Conflict, NotApplicable, ProviderBadResponse, ProviderRejected, ValidationFailed
from gateway.models import PostalAddress, ReportStatus
from gateway.store.records import ConsentRecord, CustomerRecord, ReportRecord


# The platform's code for "a consumer already exists for this customer" (its 409).
CONSUMER_EXISTS = "11000"


def address_fields(address: PostalAddress) -> dict[str, str]:
    """A postal address as the platform's consumer carries it: one street line, city, state, zip."""
    fields = {"address": ", ".join(address.lines), "city": address.city, "state": address.region,
              "zip": address.postal_code}
    return {key: value for key, value in fields.items() if value}


class PlatformReports(abc.ABC):
    client: Any
    provider_id: str
    # The version of the report read (`/decisioning/<version>/customers/{c}/reports/{r}`).
    report_read_version: ClassVar[str]
    # Canonical report types the platform also renders as PDF.
    pdf_report_types: ClassVar[frozenset[str]]

    # --- hooks ---------------------------------------------------------------------------------------------------
    takes_ssn: ClassVar[bool] = False  # the region's platform records a consumer's US Social Security number

    async def consumer_body(self, ctx: CallContext, customer: CustomerRecord, data: CreateConsumerInput) -> dict:
        """The consumer the platform records for the customer. An SSN is a US identifier: a region whose platform
        takes none refuses it here (the US adapter sends it)."""
        if data.ssn is not None and not self.takes_ssn:
            raise ValidationFailed.of([{"location": "body", "field": "ssn",
                                        "message": f"{self.provider_id} takes no US Social Security number"}])
        body: dict[str, Any] = {"firstName": data.first_name, "lastName": data.last_name}
        if data.email:
            body["email"] = data.email
        if data.phone:
            body["phone"] = data.phone
        if data.birth_date is not None:
            body["birthday"] = {"year": data.birth_date.year, "month": data.birth_date.month,
                                "dayOfMonth": data.birth_date.day}
        if data.ssn is not None:
            body["ssn"] = data.ssn
        if data.address is not None:
            body.update(address_fields(data.address))
        return body

    @abc.abstractmethod
    def report_segment(self, customer: CustomerRecord, data: CreateReportInput) -> str:
        """The last path segment of the generate call for the report's type (`voa`, `voi`, …)."""

    @abc.abstractmethod
    def report_body(self, data: CreateReportInput) -> dict[str, Any]:
        """The generate call's body for the report (each region's platform asks for different fields)."""

    # --- paths ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _decisioning(customer: CustomerRecord, version: str, tail: str) -> str:
        return f"/decisioning/{version}/customers/{quote(customer.provider_ref, safe='')}/{tail}"

    def _report_path(self, customer: CustomerRecord, report: ReportRecord) -> str:
        return self._decisioning(customer, self.report_read_version, f"reports/{quote(report.provider_ref, safe='')}")

    # --- operations ----------------------------------------------------------------------------------------------
    async def create_consumer(self, ctx: CallContext, customer: CustomerRecord, data: CreateConsumerInput) -> str:
        body = await self.consumer_body(ctx, customer, data)
        try:
            answer = await self.client.call("POST", self._decisioning(customer, "v1", "consumer"),
                                            operation="create_consumer", json=body)
        except (Conflict, ProviderRejected) as exc:
            if not isinstance(exc, Conflict) and exc.provider_code != CONSUMER_EXISTS:
                raise
            # One consumer per customer, and it cannot be deleted: adopt the one that exists.
            answer = await self.client.call("GET", self._decisioning(customer, "v1", "consumer"),
                                            operation="get_consumer")
        consumer = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(consumer, str) or not consumer:
            raise ProviderBadResponse(f"{self.provider_id} created a consumer without an id")
        return consumer

    async def create_report(self, ctx: CallContext, customer: CustomerRecord, consent: ConsentRecord,
                            data: CreateReportInput) -> str:
        params = {"callbackUrl": data.callback_url} if data.callback_url else None
        answer = await self.client.call(
            "POST", self._decisioning(customer, "v2", self.report_segment(customer, data)),
            operation="create_report", params=params, json=self.report_body(data))
        report = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(report, str) or not report:
            raise ProviderBadResponse(f"{self.provider_id} accepted a report without an id")
        return report

    async def get_report(self, ctx: CallContext, customer: CustomerRecord, report: ReportRecord) -> ReportUpdate:
        response = await self.client.call_raw("GET", self._report_path(customer, report), operation="get_report")
        body = response.json() if response.body else None
        if not isinstance(body, dict):
            raise ProviderBadResponse(f"{self.provider_id} answered a report that is not an object")
        if response.status == 202 or str(body.get("code", "")) == REPORT_PENDING_CODE:
            return ReportUpdate(ReportStatus.PENDING)
        status = report_status(body.get("status")) or ReportStatus.READY
        return ReportUpdate(status, reason="the provider could not generate the report"
                            if status is ReportStatus.FAILED else None)

    async def get_report_content(self, ctx: CallContext, customer: CustomerRecord, report: ReportRecord,
                                 media_type: str) -> ReportContent:
        if media_type == "application/pdf" and report.type not in self.pdf_report_types:
            raise NotApplicable(f"{self.provider_id} renders {report.type} reports as JSON only")
        response = await self.client.call_raw("GET", self._report_path(customer, report),
                                              operation="get_report_content", accept=media_type)
        got = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        status = self._json_report_status(response) if got == "application/json" else ReportStatus.READY
        if response.status == 202 or status is ReportStatus.PENDING:
            raise Conflict("the report is still being generated; retry later", code="report_not_ready", retryable=True)
        if status is ReportStatus.FAILED:
            raise Conflict("the provider could not generate this report; ask for a new one", code="report_failed")
        if got != media_type:
            raise ProviderBadResponse(f"{self.provider_id} answered {got or 'no content type'} for {media_type}")
        return ReportContent(media_type=media_type, body=response.body)

    @staticmethod
    def _json_report_status(response: Any) -> ReportStatus:
        """The status a JSON report answer states (a report still in progress comes back as a minimal report)."""
        body = response.json() if response.body else None  # ProviderBadResponse when it is not JSON
        if not isinstance(body, dict):
            return ReportStatus.READY
        if str(body.get("code", "")) == REPORT_PENDING_CODE:
            return ReportStatus.PENDING
        return report_status(body.get("status")) or ReportStatus.READY
