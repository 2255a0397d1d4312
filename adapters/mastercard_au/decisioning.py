"""mastercard-au reports, their consumer, and application registration (the decisioning and onboarding APIs).

A mixin of `MastercardAUAdapter`: it uses the adapter's platform client (`self.client`) and provider id. What the
report calls share with the US deployment is in `adapters.mastercard.decisioning`; this module adds the AU rules
(interval types, cash flow for business customers, the v4 report read) and the CDR application registration.
"""
from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from adapters.base import CallContext, CreateReportInput, RegisterApplicationInput
from adapters.mastercard.decisioning import PlatformReports
from adapters.mastercard_au import translate as au
from gateway import ids
from gateway.errors import NotFound, ProviderBadResponse, ValidationFailed
from gateway.models.time import utcnow
from gateway.store.records import ApplicationRecord, CustomerRecord


class DecisioningAndApplications(PlatformReports):
    client: Any
    provider_id: str
    report_read_version: ClassVar[str] = "v4"
    pdf_report_types: ClassVar[frozenset[str]] = au.PDF_REPORT_TYPES

    # --- reports -------------------------------------------------------------------------------------------------------
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

    def report_segment(self, customer: CustomerRecord, data: CreateReportInput) -> str:
        return au.REPORT_TYPES[data.type][0]

    def report_body(self, data: CreateReportInput) -> dict[str, Any]:
        return au.report_body(account_refs=data.account_refs, from_date=data.from_date,
                              interval_types=data.interval_types, report_type=data.type)

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
