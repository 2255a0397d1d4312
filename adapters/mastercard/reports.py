"""Decisioning reports on the Mastercard platform (US and AU): their statuses and the parts of a report request
both regions share. No I/O.

A report is generated asynchronously: the generate call answers 202 with the report's id and status `inProgress`;
the report then ends `success` or `failure`. Report webhooks say the same with event names (inProgress, generating,
done, failed). Both vocabularies map onto the gateway's pending / ready / failed here.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from gateway.models import ReportStatus
from gateway.models.time import UTC

_REPORT_STATUS = {
    "inprogress": ReportStatus.PENDING, "generating": ReportStatus.PENDING, "pending": ReportStatus.PENDING,
    "success": ReportStatus.READY, "done": ReportStatus.READY, "complete": ReportStatus.READY,
    "failure": ReportStatus.FAILED, "failed": ReportStatus.FAILED, "error": ReportStatus.FAILED,
}
# The code a report read answers while the report is still being generated.
REPORT_PENDING_CODE = "18001"


def report_status(value: Any) -> ReportStatus | None:
    """A report status or report event name of either region, or None when it names no status."""
    return _REPORT_STATUS.get(str(value or "").replace("_", "").lower())


def epoch_day(day: date) -> int:
    """A report's `fromDate`: the start of the day, UTC, in epoch seconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def constraints(*, account_refs: tuple[str, ...], from_date: date | None) -> dict[str, Any]:
    """What every generate call's body may say: which accounts (whitespace-separated ids; all when absent) and how
    far back (all the history the report type reads when absent)."""
    body: dict[str, Any] = {}
    if account_refs:
        body["accountIds"] = " ".join(account_refs)
    if from_date is not None:
        body["fromDate"] = epoch_day(from_date)
    return body
