"""Platform error codes → canonical errors, as one table.

The platform answers errors in two shapes: `{code, message, …}` (code a number or a string) and, on newer
endpoints, `{Errors: {Error: [{Source, ReasonCode, Description, Recoverable, Details}]}}` (some services spell
the keys in camelCase, and the published examples carry stray trailing commas such as `"ReasonCode": "10026,"`).
Aggregation status codes (103, 108, 913, …) share the code space, so the same table reads them too.

A code in the table decides the canonical class; otherwise the HTTP status does. Every error keeps the upstream
code as `provider_code` and the parsed body as `provider_body` (for logs, never shown to callers). The `detail`
a caller sees says whose fault it is and whether retrying helps, and never echoes the upstream body.
"""
from __future__ import annotations

from typing import Any

import attrs
import orjson

from gateway.errors import (
    AccountUnavailable,
    Conflict,
    ConsentEndedUpstream,
    GatewayCredentialsRejected,
    GatewayError,
    GatewayRequestRejected,
    InstitutionNotSupported,
    InstitutionUnavailable,
    NotFound,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    UserActionRequired,
    ValidationFailed,
)


@attrs.frozen(slots=True)
class ErrorRule:
    error: type[GatewayError]
    code: str | None = None  # canonical code, when more precise than the class default
    retryable: bool | None = None  # overrides the class default and the body's Recoverable flag
    message: str = ""  # caller-facing; "{provider}" is filled in
    field: str | None = None  # the caller's field at fault, for errors[] (caller errors only)


# The client renews the app token once and retries when one of these comes back; after that they are final.
TOKEN_RENEW_CODES: frozenset[str] = frozenset({"10022", "10023", "10024", "1503"})
# A report asked for before it is ready.
REPORT_PENDING_CODES: frozenset[str] = frozenset({"18001"})

_CREDENTIALS = "{provider} rejected the gateway's {what}; an operator must fix the gateway configuration. " \
               "Retrying will not help."
_NO_APP_KEY = "{provider} received no app key from the gateway; an operator must fix the gateway configuration. " \
              "Retrying will not help."
_MALFORMED = "{provider} found the gateway's request malformed. This is a gateway defect; retrying will not help."
_ACCOUNT_GONE = "{provider} no longer has this account; the end user may need to connect it again. " \
                "Retrying will not help."
_CONNECTION_BROKEN = "{provider} cannot reach the institution for this connection and its support must fix it; " \
                     "retrying soon will not help."
_NOT_SUPPORTED = "{provider} does not support this institution for this data; retrying will not help."

ERRORS: dict[str, ErrorRule] = {
    # --- the gateway's own credentials: never retried -------------------------------------------------------------
    "10001": ErrorRule(GatewayCredentialsRejected, retryable=False,
                       message=_CREDENTIALS.replace("{what}", "partner credentials")),
    "24302": ErrorRule(GatewayCredentialsRejected, code="gateway_credentials_locked", retryable=False,
                       message="{provider} has locked the gateway's partner account after failed sign-ins; an "
                               "operator must have it unlocked. Retrying will not help."),
    "10026": ErrorRule(GatewayCredentialsRejected, retryable=False, message=_NO_APP_KEY),
    "10027": ErrorRule(GatewayCredentialsRejected, retryable=False,
                       message=_CREDENTIALS.replace("{what}", "app key")),
    "1504": ErrorRule(GatewayCredentialsRejected, retryable=False, message=_NO_APP_KEY),
    # Token problems: renewed once by the client (TOKEN_RENEW_CODES); seen here only when renewal did not help.
    **{code: ErrorRule(GatewayCredentialsRejected, retryable=False,
                       message=_CREDENTIALS.replace("{what}", "access token even after renewal"))
       for code in ("10022", "10023", "10024", "1503")},
    # --- the gateway's request was malformed (10005 also says "customer does not have the specified account" on
    # some endpoints; the gateway only asks for accounts it was given, so that is still its own mistake) -------------
    **{code: ErrorRule(GatewayRequestRejected, retryable=False, message=_MALFORMED)
       for code in ("10005", "10007", "10009", "14020", "41003", "41004")},
    # --- the caller's input ---------------------------------------------------------------------------------------
    "110039": ErrorRule(ValidationFailed, retryable=False, field="external_ref",
                        message="{provider} does not accept external_ref as a username: use 6 to 255 letters, "
                                "digits or ! @ . # $ % & * _ - +, unique per provider."),
    "110002": ErrorRule(Conflict, code="external_ref_taken", retryable=False, field="external_ref",
                        message="{provider} already has a customer with this external_ref; use another one."),
    "10002": ErrorRule(NotFound, message="{provider} no longer knows this customer."),
    "14001": ErrorRule(NotFound, message="{provider} does not know this resource."),
    "14006": ErrorRule(NotFound, code="institution_not_found", field="institution_id",
                       message="{provider} does not know this institution."),
    # --- the account ----------------------------------------------------------------------------------------------
    "38003": ErrorRule(AccountUnavailable, message=_ACCOUNT_GONE),
    "38007": ErrorRule(AccountUnavailable, message=_ACCOUNT_GONE),
    "913": ErrorRule(AccountUnavailable, code="account_closed",
                     message="The institution reports the account closed; retrying will not help."),
    "914": ErrorRule(AccountUnavailable, code="account_not_found",
                     message="The institution no longer finds the account; retrying will not help."),
    # --- the end user must act ------------------------------------------------------------------------------------
    "103": ErrorRule(UserActionRequired, code="institution_credentials_invalid",
                     message="The institution rejected the end user's sign-in; the end user must connect again."),
    "108": ErrorRule(UserActionRequired, code="user_action_required",
                     message="The institution needs the end user to sign in there and act on its prompts; "
                             "retry afterwards."),
    "109": ErrorRule(UserActionRequired, code="user_action_required",
                     message="The institution needs the end user to update their security details and connect "
                             "again."),
    "931": ErrorRule(UserActionRequired, code="one_time_passcode_required",
                     message="The institution asks the end user for a one-time passcode; the end user must "
                             "connect again."),
    "936": ErrorRule(UserActionRequired, code="user_action_required",
                     message="The institution needs the end user to set their language there to English."),
    # --- the institution, for now ---------------------------------------------------------------------------------
    "915": ErrorRule(InstitutionUnavailable, retryable=True,
                     message="{provider} is repairing the connection to the institution; retry later."),
    "916": ErrorRule(InstitutionUnavailable, retryable=True,
                     message="{provider} is repairing the connection to the institution; retry later."),
    "325": ErrorRule(InstitutionUnavailable, code="account_being_aggregated", retryable=True,
                     message="{provider} is refreshing this account right now; retry in a minute."),
    "5006": ErrorRule(InstitutionUnavailable, code="account_being_aggregated", retryable=True,
                      message="{provider} is refreshing this account right now; retry in a minute."),
    # AU documents this one as "325 5006"; it arrives without the space.
    "3255006": ErrorRule(InstitutionUnavailable, code="account_being_aggregated", retryable=True,
                         message="{provider} is refreshing this account right now; retry in a minute."),
    **{code: ErrorRule(InstitutionUnavailable, code="institution_connection_broken", retryable=False,
                       message=_CONNECTION_BROKEN)
       for code in ("102", "320", "580", "900", "901", "902", "903", "904", "905", "906", "907", "910")},
    **{str(code): ErrorRule(InstitutionNotSupported, message=_NOT_SUPPORTED) for code in range(920, 930)},
    # --- the provider ---------------------------------------------------------------------------------------------
    "3300001": ErrorRule(ProviderRateLimited, retryable=True,
                         message="{provider} is rate limiting the gateway; retry after a pause. If it persists, "
                                 "the gateway's app key may be wrong: the platform reports that as a rate limit."),
    # (The small-business report API reuses 10030 for a 400 "invalid data combination"; the gateway does not call it.)
    "10030": ErrorRule(ProviderTimeout, retryable=True, message="{provider} timed out; retry later."),
    # --- CDR (AU): the consent receipt named on a data call no longer allows it --------------------------------------
    "10040": ErrorRule(ConsentEndedUpstream, retryable=False,
                       message="{provider} reports that the end user's consent no longer covers this data; the "
                               "consent has been revoked or has expired there. A new consent is needed."),
    "18001": ErrorRule(Conflict, code="report_not_ready", retryable=True,
                       message="{provider} is still generating the report; retry later."),
}

# Plain-text bodies the platform sends instead of JSON (e.g. a 401 "Invalid (Finicity-App-Key)").
_TEXT_CODES: dict[str, str] = {
    "invalid (finicity-app-key)": "10027", "invalid (app-key)": "10027",
    "missing parameter (finicity-app-key)": "10026", "missing parameter (app-key)": "10026",
    "invalid (finicity-app-token)": "10022", "invalid (app-token)": "10022",
    "expired (finicity-app-token)": "10023", "expired (app-token)": "10023",
    "missing parameter (finicity-app-token)": "10024", "missing parameter (app-token)": "10024",
}

_STATUS_MESSAGES = {
    429: "{provider} is rate limiting the gateway; retry after a pause.",
    401: _CREDENTIALS.replace("{what}", "credentials"),
    404: "{provider} does not know this resource.",
}


@attrs.frozen(slots=True)
class UpstreamError:
    """What an error body said, whichever shape it had."""
    code: str | None
    message: str | None
    recoverable: bool | None
    body: Any  # the parsed JSON, or the text when it was not JSON, or None when empty


def _clean(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip().rstrip(",").strip()
    return text or None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _clean(value)
    if text is None:
        return None
    return {"true": True, "false": False}.get(text.lower())


def _pick(entry: dict[str, Any], name: str) -> Any:
    for key in (name, name[0].lower() + name[1:]):
        if key in entry:
            return entry[key]
    return None


def parse_error_body(body: bytes) -> UpstreamError:
    """Read either error shape; never raises."""
    if not body or not body.strip():
        return UpstreamError(None, None, None, None)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:512].decode("utf-8", "replace").strip()
        return UpstreamError(_TEXT_CODES.get(text.lower()), None, None, text)
    if not isinstance(parsed, dict):
        return UpstreamError(None, None, None, parsed)
    if "code" in parsed:
        message = _clean(parsed.get("message")) or _clean(parsed.get("title"))
        return UpstreamError(_clean(parsed["code"]), message, None, parsed)
    errors = parsed.get("Errors", parsed.get("errors"))
    if isinstance(errors, dict):
        errors = errors.get("Error", errors.get("error"))
    if isinstance(errors, dict):
        errors = [errors]
    if isinstance(errors, list):
        for entry in errors:
            if isinstance(entry, dict):
                return UpstreamError(_clean(_pick(entry, "ReasonCode")), _clean(_pick(entry, "Description")),
                                     _flag(_pick(entry, "Recoverable")), parsed)
    return UpstreamError(None, None, None, parsed)


def error_code(body: bytes) -> str | None:
    """The platform's code in an error body, normalised to a string ("10023", not 10023 or "10023,")."""
    return parse_error_body(body).code


def needs_token_renewal(error: GatewayError) -> bool:
    return error.provider_code in TOKEN_RENEW_CODES


def error_for_code(code: str | int | None, *, provider: str, provider_body: Any = None,
                   retry_after: float | None = None, recoverable: bool | None = None) -> GatewayError | None:
    """The canonical error for a platform code in the table, or None when the table does not know it."""
    key = _clean(code)
    rule = ERRORS.get(key) if key is not None else None
    if rule is None:
        return None
    retryable = rule.retryable if rule.retryable is not None else recoverable
    errors = None
    if rule.field is not None and rule.error.source == "caller":
        errors = [{"location": "body", "field": rule.field, "message": rule.message.format(provider=provider)}]
    error = rule.error(rule.message.format(provider=provider), errors=errors, provider_code=key,
                       provider_body=provider_body, code=rule.code, retryable=retryable)
    if retry_after is not None and error.retryable:
        error.retry_after = retry_after
    return error


def error_from_response(status: int, body: bytes, *, provider: str, retry_after: float | None) -> GatewayError:
    """The canonical error for a non-2xx upstream answer."""
    parsed = parse_error_body(body)
    known = error_for_code(parsed.code, provider=provider, provider_body=parsed.body, retry_after=retry_after,
                           recoverable=parsed.recoverable)
    if known is not None:
        return known
    provider_code = parsed.code or f"http_{status}"
    cls: type[GatewayError]
    if status == 429:
        cls, message = ProviderRateLimited, _STATUS_MESSAGES[429]
    elif status >= 500:
        cls, message = ProviderUnavailable, f"{{provider}} failed (HTTP {status}); retry later."
    elif status in (401, 403):
        cls, message = GatewayCredentialsRejected, _STATUS_MESSAGES[401]
    elif status == 404:
        cls, message = NotFound, _STATUS_MESSAGES[404]
    elif 400 <= status < 500:
        cls, message = ProviderRejected, f"{{provider}} refused the request (HTTP {status}); retrying it " \
                                         "unchanged will not help."
    else:
        cls, message = ProviderBadResponse, f"{{provider}} sent an answer the gateway cannot use (HTTP {status})."
    retryable = False if cls is GatewayCredentialsRejected else parsed.recoverable
    error = cls(message.format(provider=provider), provider_code=provider_code, provider_body=parsed.body,
                retryable=retryable)
    if retry_after is not None and error.retryable:
        error.retry_after = retry_after
    return error
