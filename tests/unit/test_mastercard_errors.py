"""adapters.mastercard.errors: every table row, both body shapes, number or string codes, garbage, Retry-After."""
from __future__ import annotations

import orjson
import pytest

from adapters.mastercard import errors as mc
from gateway.errors import (
    ConsentEndedUpstream,
    AccountUnavailable,
    Conflict,
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

P = "mastercard-us"

# What each code must mean, written out independently of the table so the table cannot drift unnoticed:
# code → (class, canonical code, retryable)
EXPECTED: dict[str, tuple[type[GatewayError], str, bool]] = {
    "10001": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "24302": (GatewayCredentialsRejected, "gateway_credentials_locked", False),
    "10026": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "10027": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "1504": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "10022": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "10023": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "10024": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "1503": (GatewayCredentialsRejected, "gateway_credentials_rejected", False),
    "10005": (GatewayRequestRejected, "upstream_request_rejected", False),
    "10007": (GatewayRequestRejected, "upstream_request_rejected", False),
    "10009": (GatewayRequestRejected, "upstream_request_rejected", False),
    "14020": (GatewayRequestRejected, "upstream_request_rejected", False),
    "41003": (GatewayRequestRejected, "upstream_request_rejected", False),
    "41004": (GatewayRequestRejected, "upstream_request_rejected", False),
    "110039": (ValidationFailed, "validation_failed", False),
    "110002": (Conflict, "external_ref_taken", False),
    "10002": (NotFound, "not_found", False),
    "14001": (NotFound, "not_found", False),
    "14006": (NotFound, "institution_not_found", False),
    "38003": (AccountUnavailable, "account_unavailable", False),
    "38007": (AccountUnavailable, "account_unavailable", False),
    "913": (AccountUnavailable, "account_closed", False),
    "914": (AccountUnavailable, "account_not_found", False),
    "103": (UserActionRequired, "institution_credentials_invalid", False),
    "108": (UserActionRequired, "user_action_required", False),
    "109": (UserActionRequired, "user_action_required", False),
    "931": (UserActionRequired, "one_time_passcode_required", False),
    "936": (UserActionRequired, "user_action_required", False),
    "915": (InstitutionUnavailable, "institution_unavailable", True),
    "916": (InstitutionUnavailable, "institution_unavailable", True),
    "325": (InstitutionUnavailable, "account_being_aggregated", True),
    "5006": (InstitutionUnavailable, "account_being_aggregated", True),
    "3255006": (InstitutionUnavailable, "account_being_aggregated", True),
    "10040": (ConsentEndedUpstream, "consent_revoked_upstream", False),
    **{code: (InstitutionUnavailable, "institution_connection_broken", False)
       for code in ("102", "320", "580", "900", "901", "902", "903", "904", "905", "906", "907", "910")},
    **{str(code): (InstitutionNotSupported, "institution_not_supported", False) for code in range(920, 930)},
    "3300001": (ProviderRateLimited, "provider_rate_limited", True),
    "10030": (ProviderTimeout, "provider_timeout", True),
    "18001": (Conflict, "report_not_ready", True),
}


def test_the_table_is_exactly_what_is_expected() -> None:
    assert set(mc.ERRORS) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
@pytest.mark.parametrize("shape", ["code-string", "code-number", "errors-shape"])
def test_every_row(code: str, shape: str) -> None:
    cls, canonical, retryable = EXPECTED[code]
    secret_ish = "partnerSecret=s3cr3t-value token=abc"
    if shape == "code-string":
        body = {"code": code, "message": secret_ish}
    elif shape == "code-number":
        body = {"code": int(code), "message": secret_ish}
    else:
        body = {"Errors": {"Error": [{"Source": "Aggregation", "ReasonCode": code, "Description": secret_ish,
                                      "Recoverable": "false", "Details": secret_ish}]}}
    error = mc.error_from_response(400, orjson.dumps(body), provider=P, retry_after=None)
    assert type(error) is cls
    assert (error.code, error.provider_code) == (canonical, code)
    assert error.retryable is retryable  # Recoverable "false" does not override a row's own rule
    assert error.provider_body == body
    # the caller sees whose fault and whether to retry, never the upstream text
    assert "s3cr3t" not in error.detail and "s3cr3t" not in orjson.dumps(error.problem("req_1")).decode()
    assert P in error.detail or error.source == "institution"
    assert ("retry" in error.detail.lower()) or error.source in ("caller",) or cls is UserActionRequired


@pytest.mark.parametrize(("code", "field"), [("110039", "external_ref"), ("110002", "external_ref"),
                                             ("14006", "institution_id")])
def test_caller_rows_name_the_field(code: str, field: str) -> None:
    error = mc.error_from_response(400, orjson.dumps({"code": code}), provider=P, retry_after=None)
    assert error.source == "caller"
    assert error.errors and error.errors[0]["field"] == field


def test_token_renewal_marker() -> None:
    assert mc.TOKEN_RENEW_CODES == {"10022", "10023", "10024", "1503"}
    for code in mc.TOKEN_RENEW_CODES:
        error = mc.error_from_response(401, orjson.dumps({"code": code}), provider=P, retry_after=None)
        assert mc.needs_token_renewal(error) and isinstance(error, GatewayCredentialsRejected)
    locked = mc.error_from_response(401, b'{"code":"24302","message":"Bad credentials"}', provider=P,
                                    retry_after=None)
    assert not mc.needs_token_renewal(locked) and locked.retryable is False


def test_report_pending_marker() -> None:
    assert mc.REPORT_PENDING_CODES == {"18001"}
    error = mc.error_from_response(202, b'{"code": 18001, "message": "Report being generated"}', provider=P,
                                   retry_after=5)
    assert isinstance(error, Conflict) and error.retryable and error.retry_after == 5


# --- spec examples (components.examples) --------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "body", "cls", "code"), [
    (401, {"code": "10001", "message": "Invalid credentials"}, GatewayCredentialsRejected, "10001"),
    (401, {"code": "24302", "message": "Bad credentials"}, GatewayCredentialsRejected, "24302"),
    (401, {"code": "10023", "status": "401", "message": "Expired (Finicity-App-Token)",
           "user_message": "Your connection timed out due to inactivity."}, GatewayCredentialsRejected, "10023"),
    (401, {"code": "10022", "status": "401", "message": "Invalid (App-Token)", "user_message": ""},
     GatewayCredentialsRejected, "10022"),
    (401, {"code": "10026", "message": "Missing parameter (Finicity-App-Key)"}, GatewayCredentialsRejected, "10026"),
    (401, {"code": "10027", "message": "Invalid parameter (Finicity-App-Key)"}, GatewayCredentialsRejected, "10027"),
    (400, {"code": "10005", "message": "Missing parameter (partnerId)"}, GatewayRequestRejected, "10005"),
    (400, {"code": 10009, "message": "Missing parameter (settleByDate)"}, GatewayRequestRejected, "10009"),
    (400, {"code": "10007", "message": "[FIELD] is the incorrect type"}, GatewayRequestRejected, "10007"),
    (400, {"code": "14020", "message": "Bad request.", "externalTransactionId": "MAC1005061234"},
     GatewayRequestRejected, "14020"),
    (500, {"code": "110039", "message": "Username is not as per the policy."}, ValidationFailed, "110039"),
    (409, {"code": "110002", "message": "Username is not available."}, Conflict, "110002"),
    (404, {"code": "10002", "message": "Customer ID was not found.", "status": "404",
           "title": "Customer ID was not found.", "user_message": "Customer ID was not found."}, NotFound, "10002"),
    (400, {"code": "38003", "message": "customer does not have given account (customerId = 6018989036,    "
                                       "accountId = [6024048234])"}, AccountUnavailable, "38003"),
    (404, {"code": 38003, "message": "Customer does not have any accounts"}, AccountUnavailable, "38003"),
    (400, {"code": "38007", "message": "Customer does not have any accounts associated with institutionLoginId."},
     AccountUnavailable, "38007"),
    (429, {"code": "3300001", "message": "Too many request. Please try after some time"}, ProviderRateLimited,
     "3300001"),
    (408, {"code": "10030", "status": "408", "title": "Request timed out.", "level": "error",
           "message": "Please try again at a later time."}, ProviderTimeout, "10030"),
    (404, {"code": "14006", "message": "Institution not found."}, NotFound, "14006"),
    # the GoldStandard examples carry trailing commas inside the values
    (401, {"Errors": {"Error": [{"Source": "Connect-Components,", "ReasonCode": "10026,",
                                 "Description": "Missing parameter (Finicity-App-Key)", "Recoverable": "false,",
                                 "Details": "Missing parameter (Finicity-App-Key)"}]}},
     GatewayCredentialsRejected, "10026"),
    (401, {"Errors": {"Error": [{"Source": "Connect-Components,", "ReasonCode": "10023,",
                                 "Description": "Expired (Finicity-App-Token),", "Recoverable": "false,",
                                 "Details": "Expired (Finicity-App-Token)"}]}}, GatewayCredentialsRejected, "10023"),
    (404, {"Errors": {"Error": [{"Source": "Connect-Components,", "ReasonCode": "4041,",
                                 "Description": "The requested entity was not found,", "Recoverable": "false,",
                                 "Details": "The requested entity was not found"}]}}, NotFound, "4041"),
    # camelCase keys and numeric reason codes (event subscription service examples)
    (401, {"Errors": {"Error": [{"source": "Event Subscription Service", "reasonCode": 1503,
                                 "description": "Expired (App-Token)", "recoverable": False, "details": None}]}},
     GatewayCredentialsRejected, "1503"),
    (404, {"Errors": {"Error": [{"source": "Event Subscription Service", "reasonCode": 1501,
                                 "description": "Resource not found.", "recoverable": False, "details": None}]}},
     NotFound, "1501"),
    (400, {"Errors": {"Error": [{"source": "Event Subscription Service", "reasonCode": 1502,
                                 "description": "Bad Request.", "recoverable": False, "details": None}]}},
     ProviderRejected, "1502"),
])
def test_spec_examples(status: int, body: dict, cls: type[GatewayError], code: str) -> None:
    error = mc.error_from_response(status, orjson.dumps(body), provider=P, retry_after=None)
    assert type(error) is cls and error.provider_code == code and error.provider_body == body


def test_error_code_helper_normalises() -> None:
    assert mc.error_code(b'{"code": 10023}') == "10023"
    assert mc.error_code(b'{"code": " 10023 "}') == "10023"
    assert mc.error_code(b'{"Errors":{"Error":[{"ReasonCode":"10023,"}]}}') == "10023"
    assert mc.error_code(b'{"Errors":{"Error":{"ReasonCode":"10023"}}}') == "10023"  # a single entry, not a list
    assert mc.error_code(b"Invalid (Finicity-App-Token)") == "10022"
    assert mc.error_code(b"") is None and mc.error_code(b"<html>") is None


# --- Recoverable --------------------------------------------------------------------------------------------------
def _errors_body(code: str, recoverable: object) -> bytes:
    return orjson.dumps({"Errors": {"Error": [{"Source": "x", "ReasonCode": code, "Description": "d",
                                               "Recoverable": recoverable, "Details": "d"}]}})


@pytest.mark.parametrize(("recoverable", "expected"), [(True, True), ("true", True), ("true,", True),
                                                       (False, False), ("false", False), (None, False),
                                                       ("maybe", False)])
def test_recoverable_sets_retryable(recoverable: object, expected: bool) -> None:
    error = mc.error_from_response(400, _errors_body("77777", recoverable), provider=P, retry_after=None)
    assert isinstance(error, ProviderRejected) and error.retryable is expected


def test_recoverable_false_on_a_5xx() -> None:
    error = mc.error_from_response(502, _errors_body("77777", "false"), provider=P, retry_after=None)
    assert isinstance(error, ProviderUnavailable) and error.retryable is False


def test_recoverable_cannot_make_credentials_retryable() -> None:
    error = mc.error_from_response(401, _errors_body("10001", "true"), provider=P, retry_after=None)
    assert isinstance(error, GatewayCredentialsRejected) and error.retryable is False
    unknown = mc.error_from_response(401, _errors_body("77777", "true"), provider=P, retry_after=None)
    assert isinstance(unknown, GatewayCredentialsRejected) and unknown.retryable is False


def test_recoverable_applies_to_table_rows_without_their_own_rule() -> None:
    error = mc.error_from_response(404, _errors_body("10002", "true"), provider=P, retry_after=None)
    assert isinstance(error, NotFound) and error.retryable is True


# --- fallbacks by HTTP status -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "body", "cls", "retryable"), [
    (429, b"", ProviderRateLimited, True),
    (500, b"", ProviderUnavailable, True),
    (502, b"<html><body>Bad gateway</body></html>", ProviderUnavailable, True),
    (503, b'{"code": "99999", "message": "maintenance"}', ProviderUnavailable, True),
    (504, b"\x00\xff\xfe", ProviderUnavailable, True),
    (401, b"", GatewayCredentialsRejected, False),
    (401, b"Invalid (Finicity-App-Key)", GatewayCredentialsRejected, False),
    (403, b'{"code": "10405", "status": "403", "message": "An active security freeze for this customer exists."}',
     GatewayCredentialsRejected, False),
    (404, b"", NotFound, False),
    (404, b'{"code": "12017", "message": "No Account Owners Details Found."}', NotFound, False),
    (400, b'{"code": "10010", "message": "Customer ID does not exist or does not belong to this partner"}',
     ProviderRejected, False),
    (409, b"not json", ProviderRejected, False),
    (422, b"[1, 2, 3]", ProviderRejected, False),
    (200, b"garbage", ProviderBadResponse, False),
    (302, b"", ProviderBadResponse, False),
])
def test_status_fallbacks(status: int, body: bytes, cls: type[GatewayError], retryable: bool) -> None:
    error = mc.error_from_response(status, body, provider=P, retry_after=None)
    assert type(error) is cls and error.retryable is retryable
    assert error.provider_code  # always set
    assert P in error.detail


def test_provider_code_without_an_upstream_code() -> None:
    assert mc.error_from_response(503, b"", provider=P, retry_after=None).provider_code == "http_503"
    assert mc.error_from_response(401, b"Invalid (Finicity-App-Key)", provider=P,
                                  retry_after=None).provider_code == "10027"
    assert mc.error_from_response(503, b'{"code": "99999"}', provider=P, retry_after=None).provider_code == "99999"


@pytest.mark.parametrize("body", [
    b"\x00\xff", b"<html>oops</html>", b"[1,2]", b'{"code": {"nested": 1}}', b'{"code": null}', b'{"code": true}',
    b'"string"', b"null", b"{", b"{}", b'{"Errors": "none"}', b'{"Errors": {"Error": []}}',
    b'{"Errors": {"Error": [null, 1]}}', b"x" * 100_000, "\u00e9\u00e8".encode("latin-1"), b"   ",
])
def test_garbage_bodies_never_raise(body: bytes) -> None:
    for status in (400, 401, 404, 429, 500, 200):
        error = mc.error_from_response(status, body, provider=P, retry_after=None)
        assert isinstance(error, GatewayError) and error.provider_code
        assert len(error.detail) < 300
        if isinstance(error.provider_body, str):
            assert len(error.provider_body) <= 512


def test_parsed_body_is_kept_for_logs_not_shown() -> None:
    body = {"code": "99999", "message": "internal: partnerSecret=s3cr3t"}
    error = mc.error_from_response(400, orjson.dumps(body), provider=P, retry_after=None)
    assert error.provider_body == body
    problem = error.problem("req_1")
    assert "s3cr3t" not in orjson.dumps(problem).decode()
    assert problem["provider_code"] == "99999" and problem["source"] == "provider"


# --- Retry-After --------------------------------------------------------------------------------------------------
def test_retry_after_on_429() -> None:
    error = mc.error_from_response(429, b"", provider=P, retry_after=30.0)
    assert isinstance(error, ProviderRateLimited) and error.retry_after == 30.0
    assert error.problem("r")["retry_after"] == 30.0
    coded = mc.error_from_response(429, b'{"code":"3300001","message":"Too many request."}', provider=P,
                                   retry_after=2.5)
    assert isinstance(coded, ProviderRateLimited) and coded.retry_after == 2.5 and coded.provider_code == "3300001"


def test_retry_after_kept_on_retryable_errors_only() -> None:
    assert mc.error_from_response(503, b"", provider=P, retry_after=7).retry_after == 7
    assert mc.error_from_response(500, b'{"code": "915"}', provider=P, retry_after=60).retry_after == 60
    assert mc.error_from_response(401, b"", provider=P, retry_after=7).retry_after is None
    assert mc.error_from_response(400, b'{"code": "10005"}', provider=P, retry_after=7).retry_after is None


def test_retry_after_absent() -> None:
    assert mc.error_from_response(429, b"", provider=P, retry_after=None).retry_after is None


# --- error_for_code (aggregation status codes outside an HTTP error) ----------------------------------------------
def test_error_for_code() -> None:
    error = mc.error_for_code(103, provider="mastercard-au")
    assert isinstance(error, UserActionRequired) and error.code == "institution_credentials_invalid"
    assert error.provider_code == "103"
    assert mc.error_for_code("0", provider=P) is None
    assert mc.error_for_code(None, provider=P) is None
    assert mc.error_for_code(12345678, provider=P) is None


def test_detail_names_the_provider() -> None:
    error = mc.error_from_response(401, b'{"code": "10001"}', provider="mastercard-au", retry_after=None)
    assert error.detail.startswith("mastercard-au ")
    assert "{provider}" not in error.detail
    for rule in mc.ERRORS.values():
        text = rule.message.format(provider=P)
        assert "{" not in text and text.endswith(".")
