"""mastercard-au reports, their consumer, and application registration (the decisioning and onboarding APIs).

A mixin of `MastercardAUAdapter`: it uses the adapter's platform client (`self.client`) and provider id.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from adapters.base import (
    CallContext,
    CreateConsumerInput,
    CreateReportInput,
    RegisterApplicationInput,
    ReportContent,
    ReportUpdate,
)
from adapters.mastercard_au import translate as au
from gateway import ids
from gateway.errors import Conflict, NotApplicable, NotFound, ProviderBadResponse, ValidationFailed
from gateway.models import ReportStatus
from gateway.models.time import utcnow
from gateway.store.records import ApplicationRecord, ConsentRecord, CustomerRecord, ReportRecord


class DecisioningAndApplications:
    client: Any
    provider_id: str

    # --- reports -------------------------------------------------------------------------------------------------------
    def _decisioning(self, customer: CustomerRecord, tail: str) -> str:
        return f"/decisioning/{tail.split('/', 1)[0]}/customers/{quote(customer.provider_ref, safe='')}/" \
               f"{tail.split('/', 1)[1]}"

    async def create_consumer(self, ctx: CallContext, customer: CustomerRecord, data: CreateConsumerInput) -> str:
        body: dict[str, Any] = {"firstName": data.first_name, "lastName": data.last_name}
        if data.email:
            body["email"] = data.email
        if data.phone:
            body["phone"] = data.phone
        try:
            answer = await self.client.call("POST", self._decisioning(customer, "v1/consumer"),
                                            operation="create_consumer", json=body)
        except Conflict:
            # One consumer per customer, and it cannot be deleted: adopt the one that exists.
            answer = await self.client.call("GET", self._decisioning(customer, "v1/consumer"),
                                            operation="get_consumer")
        consumer = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(consumer, str) or not consumer:
            raise ProviderBadResponse(f"{self.provider_id} created a consumer without an id")
        return consumer

    def validate_report(self, customer: CustomerRecord, data: CreateReportInput) -> None:
        errors = []
        if data.type == "cash_flow" and customer.category != "business":
            errors.append({"location": "body", "field": "type",
                           "message": "cash flow reports are for business customers"})
        if data.interval_types and data.type != "voi":
            errors.append({"location": "body", "field": "interval_types",
                           "message": "only verification of income (voi) reports take interval types"})
        if len(data.interval_types) > au.MAX_INTERVAL_TYPES:
            errors.append({"location": "body", "field": "interval_types",
                           "message": f"at most {au.MAX_INTERVAL_TYPES} interval types (the default is "
                                      f"{au.DEFAULT_INTERVAL_TYPES[0]})"})
        unknown = [t for t in data.interval_types if t not in au.INTERVAL_TYPES]
        if unknown:
            errors.append({"location": "body", "field": "interval_types",
                           "message": f"unknown: {', '.join(unknown)}; allowed: {', '.join(au.INTERVAL_TYPES)}"})
        if errors:
            raise ValidationFailed.of(errors)

    async def create_report(self, ctx: CallContext, customer: CustomerRecord, consent: ConsentRecord,
                            data: CreateReportInput) -> str:
        segment, _ = au.REPORT_TYPES[data.type]
        params = {"callbackUrl": data.callback_url} if data.callback_url else None
        answer = await self.client.call(
            "POST", self._decisioning(customer, f"v2/{segment}"), operation="create_report", params=params,
            json=au.report_body(account_refs=data.account_refs, from_date=data.from_date,
                                interval_types=data.interval_types, report_type=data.type))
        report = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(report, str) or not report:
            raise ProviderBadResponse(f"{self.provider_id} accepted a report without an id")
        return report

    def _report_path(self, customer: CustomerRecord, report: ReportRecord) -> str:
        return self._decisioning(customer, f"v4/reports/{quote(report.provider_ref, safe='')}")

    async def get_report(self, ctx: CallContext, customer: CustomerRecord, report: ReportRecord) -> ReportUpdate:
        response = await self.client.call_raw("GET", self._report_path(customer, report), operation="get_report")
        body = response.json() if response.body else None
        if not isinstance(body, dict):
            raise ProviderBadResponse(f"{self.provider_id} answered a report that is not an object")
        if response.status == 202 or str(body.get("code", "")) in ("18001",):
            return ReportUpdate(ReportStatus.PENDING)
        status = au.report_status(body.get("status")) or ReportStatus.READY
        return ReportUpdate(status, reason="the provider could not generate the report"
                            if status is ReportStatus.FAILED else None)

    async def get_report_content(self, ctx: CallContext, customer: CustomerRecord, report: ReportRecord,
                                 media_type: str) -> ReportContent:
        if media_type == "application/pdf" and report.type not in au.PDF_REPORT_TYPES:
            raise NotApplicable(f"{self.provider_id} renders {report.type} reports as JSON only")
        response = await self.client.call_raw("GET", self._report_path(customer, report),
                                              operation="get_report_content", accept=media_type)
        if response.status == 202:
            raise Conflict("the report is still being generated; retry later", code="report_not_ready", retryable=True)
        got = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if got != media_type:
            raise ProviderBadResponse(f"{self.provider_id} answered {got or 'no content type'} for {media_type}")
        return ReportContent(media_type=media_type, body=response.body)

    # --- applications --------------------------------------------------------------------------------------------------
    async def register_application(self, ctx: CallContext, data: RegisterApplicationInput) -> ApplicationRecord:
        answer = await self.client.call("POST", "/applications", operation="register_application",
                                        json=au.application_body(data.fields))
        ref = answer.get("applicationId") if isinstance(answer, dict) else None
        if not isinstance(ref, (str, int)) or not str(ref):
            raise ProviderBadResponse(f"{self.provider_id} registered an application without an id")
        now = utcnow()
        return ApplicationRecord(id=ids.new_id("app"), tenant=ctx.tenant, provider=self.provider_id,
                                 provider_ref=str(ref), access_model=data.access_model, name=data.fields["name"],
                                 status=str(answer.get("status") or "Pending").lower(), created_at=now, updated_at=now)

    async def get_application(self, ctx: CallContext, application: ApplicationRecord) -> str:
        answer = await self.client.call("GET", "/applications", operation="get_application",
                                        params={"application_id": application.provider_ref})
        for entry in (answer or {}).get("applications") or []:
            if isinstance(entry, dict) and str(entry.get("applicationId")) == application.provider_ref:
                return str(entry.get("status") or "unknown").lower()
        raise NotFound(f"{self.provider_id} no longer knows this application")

    async def list_application_institutions(self, ctx: CallContext,
                                            application: ApplicationRecord) -> list[dict[str, Any]]:
        answer = await self.client.call(
            "GET", f"/applications/{quote(application.provider_ref, safe='')}/institutions",
            operation="list_application_institutions")
        out = []
        for entry in (answer or {}).get("institutions") or []:
            if isinstance(entry, dict) and "institutionId" in entry:
                out.append({"institution_id": str(entry["institutionId"]), "name": entry.get("name"),
                            "status": str(entry.get("status") or "unknown").lower()})
        return out
