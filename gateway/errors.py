"""The canonical error hierarchy. Every failure a caller sees is one of these, rendered as RFC 9457 problem+json.

    GatewayError                      status, code, source, retryable
     ├── CallerError (source=caller)
     │    ├── MalformedRequest 400, ValidationFailed 422 (errors[] with field paths), PayloadTooLarge 413
     │    ├── Unauthenticated 401, Forbidden 403, NotFound 404, Conflict 409
     │    ├── ConsentNotActive 403, IdempotencyKeyReused 422, RequestInProgress 409, NotApplicable 422
     │    └── UnsupportedOperation 501
     ├── GatewayFault 500 (source=gateway), GatewayCredentialsRejected 502 (our upstream credentials),
     │   GatewayRequestRejected 502 (the upstream found our request malformed)
     ├── ProviderError (source=provider)
     │    ├── ProviderUnavailable 502, ProviderTimeout 504, ProviderRateLimited 503, CircuitOpen 503
     │    └── ProviderBadResponse 502
     └── InstitutionError (source=institution)
          ├── UserActionRequired 409, AccountUnavailable 410
          └── InstitutionUnavailable 503, InstitutionNotSupported 422

Adapters translate upstream errors into these through a table, `raise … from` the original, keeping
`provider_code` and the provider's body (never shown to callers, kept for logs with secrets redacted).
"""
from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"
    source: ClassVar[str] = "gateway"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        provider_code: str | None = None,
        provider_body: Any = None,
        retry_after: float | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.provider_code = provider_code
        self.provider_body = provider_body
        self.retry_after = retry_after
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        if retryable is not None:
            self.retryable = retryable  # type: ignore[misc]

    def problem(self, request_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://errors.gateway.local/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "retryable": self.retryable,
            "source": self.source,
            "request_id": request_id,
        }
        if self.provider_code is not None:
            body["provider_code"] = str(self.provider_code)
        if self.errors:
            body["errors"] = self.errors
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


# --- the caller's fault -------------------------------------------------------------------------------------------
class CallerError(GatewayError):
    source = "caller"
    status = 400
    code = "bad_request"
    title = "Bad request"


class MalformedRequest(CallerError):
    status, code, title = 400, "malformed_request", "The request could not be read"


class ValidationFailed(CallerError):
    status, code, title = 422, "validation_failed", "The request is not valid"

    @classmethod
    def of(cls, errors: list[dict[str, str]]) -> "ValidationFailed":
        """One problem naming every field error, the detail listing them as "field: message; …"."""
        return cls("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


class PayloadTooLarge(CallerError):
    status, code, title = 413, "payload_too_large", "The request body is too large"


class Unauthenticated(CallerError):
    status, code, title = 401, "unauthenticated", "Missing or invalid API key"


class Forbidden(CallerError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(CallerError):
    status, code, title = 404, "not_found", "No such resource"


class Conflict(CallerError):
    status, code, title = 409, "conflict", "The resource is not in a state that allows this"


class LicenceNotPermitted(CallerError):
    status, code, title = 403, "licence_not_permitted", "The gateway's licence does not permit this"


class ConsentNotActive(CallerError):
    status, code, title = 403, "consent_not_active", "The consent does not allow access"


class ConsentEndedUpstream(ConsentNotActive):
    """The provider no longer knows the consent (the end user revoked it there): the gateway records that."""
    code = "consent_revoked_upstream"

    def __init__(self, detail: str | None = None, *, consent_status: str = "revoked", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.consent_status = consent_status


class IdempotencyKeyReused(CallerError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key was used with another request"


class RequestInProgress(CallerError):
    status, code, title, retryable = 409, "request_in_progress", "A request with this key is in progress", True


class NotApplicable(CallerError):
    """The provider supports the operation, but not for this resource (e.g. ACH details of a credit card)."""
    status, code, title = 422, "not_applicable", "The operation does not apply to this resource"


class UnsupportedOperation(CallerError):
    status, code, title = 501, "unsupported_operation", "The provider does not support this operation"


class NotAcceptable(CallerError):
    status, code, title = 406, "not_acceptable", "The resource is not available in the media type asked for"


class MethodNotAllowed(CallerError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


# --- ours -----------------------------------------------------------------------------------------------------------
class GatewayFault(GatewayError):
    status, code, title, source = 500, "internal_error", "Internal error", "gateway"


class GatewayBusy(GatewayError):
    """Another replica holds what this request needs (a lease) for longer than the request may wait."""
    status, code, title, source, retryable = 503, "gateway_busy", "The gateway is busy with this resource", \
        "gateway", True


class GatewayCredentialsRejected(GatewayError):
    """The upstream refused the gateway's own credentials: an operator must fix the configuration."""
    status, code, title, source = 502, "gateway_credentials_rejected", "The provider rejected the gateway's credentials", "gateway"
    # Token brokers stop asking after such a refusal (providers lock accounts after repeated failures), unless the
    # refusal is only probably about the credentials.
    latch = True


class GatewayRequestRejected(GatewayError):
    """The upstream said the gateway's own request was malformed: a gateway defect, not the caller's."""
    status, code, title, source = 502, "upstream_request_rejected", "The provider rejected the gateway's request", "gateway"


# --- the provider's ---------------------------------------------------------------------------------------------------
class ProviderError(GatewayError):
    source = "provider"
    status, code, title = 502, "provider_error", "The provider failed"


class ProviderUnavailable(ProviderError):
    status, code, title, retryable = 502, "provider_unavailable", "The provider is unavailable", True


class ProviderTimeout(ProviderError):
    status, code, title, retryable = 504, "provider_timeout", "The provider did not answer in time", True


class ProviderRateLimited(ProviderError):
    status, code, title, retryable = 503, "provider_rate_limited", "The provider is rate limiting the gateway", True


class CircuitOpen(ProviderError):
    status, code, title, retryable = 503, "provider_circuit_open", "The provider is failing; calls are paused", True


class ProviderBadResponse(ProviderError):
    status, code, title = 502, "provider_bad_response", "The provider sent a response the gateway cannot read"


class ProviderRejected(ProviderError):
    """The provider refused a request the gateway believed valid (a 4xx we could not attribute to the caller)."""
    status, code, title = 502, "provider_rejected", "The provider refused the request"


# --- the institution's (the bank behind the provider) ---------------------------------------------------------------
class InstitutionError(GatewayError):
    source = "institution"
    status, code, title = 502, "institution_error", "The institution failed"


class UserActionRequired(InstitutionError):
    status, code, title = 409, "user_action_required", "The end user must act at the institution"


class AccountUnavailable(InstitutionError):
    status, code, title = 410, "account_unavailable", "The account is closed or no longer found"


class InstitutionUnavailable(InstitutionError):
    status, code, title, retryable = 503, "institution_unavailable", "The institution connection is being fixed", True


class InstitutionNotSupported(InstitutionError):
    status, code, title = 422, "institution_not_supported", "The institution is not supported"
