"""gateway.onboarding.applications.check_registration: the fields each CDR access model requires and allows, each
value's form, and the partner's configured access model; every problem named in ValidationFailed.errors."""
from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from gateway.errors import ValidationFailed
from gateway.onboarding.applications import ACCESS_MODELS, FIELDS, MAX_IMAGE_CHARS, check_registration

# A 1x1 PNG, base64-encoded as the provider expects an application image.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6364f8cf50010003860180"
    "5a347d6b0000000049454e44ae426082")).decode()

VALUES: dict[str, str] = {
    "name": "Budget Buddy",
    "description": "Shows your accounts and transactions in one place",
    "url": "https://budgetbuddy.example.com.au",
    "image": PNG,
    "legal_entity_name": "Budget Buddy Pty Ltd",
    "policy_url": "https://budgetbuddy.example.com.au/cdr-policy",
    "data_complaints_email": "complaints@budgetbuddy.example.com.au",
    "copyright_logo": PNG,
    "business_name": "Budget Buddy",
    "from_email": "noreply@budgetbuddy.example.com.au",
    "reply_to_email": "support@budgetbuddy.example.com.au",
    "organisation_id": "5d2f7a1e-3c4b-4e8f-9a6d-1b2c3d4e5f60",
    "software_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "disclosure_type": "BCDC",
}
URL_FIELDS = ("url", "policy_url")
EMAIL_FIELDS = ("data_complaints_email", "from_email", "reply_to_email")
IMAGE_FIELDS = ("image", "copyright_logo")


def required(model: str) -> tuple[str, ...]:
    return FIELDS[model][0]


def allowed(model: str) -> tuple[str, ...]:
    return FIELDS[model][0] + FIELDS[model][1]


def valid(model: str, *, optional: bool = False) -> dict[str, Any]:
    return {name: VALUES[name] for name in (allowed(model) if optional else required(model))}


def check(model: str, fields: dict[str, Any], configured: str | None = None) -> dict[str, str]:
    return check_registration(model, fields, configured_model=configured or model)


def failure(model: str, fields: dict[str, Any], configured: str | None = None) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        check(model, fields, configured)
    error = caught.value
    assert error.status == 422 and error.code == "validation_failed"
    assert error.errors, "a ValidationFailed must name its fields"
    for entry in error.errors:
        assert entry["location"] == "body" and entry["field"] and entry["message"]
        assert f"{entry['field']}: " in error.detail
    return error


def fields_named(error: ValidationFailed) -> list[str]:
    return [e["field"] for e in error.errors]


def message_for(error: ValidationFailed, field: str) -> str:
    return next(e["message"] for e in error.errors if e["field"] == field)


# --- the table ------------------------------------------------------------------------------------------------------
def test_every_access_model_has_fields() -> None:
    assert set(FIELDS) == set(ACCESS_MODELS) == {"ADR_OSP", "CDR_REPRESENTATIVE", "BCDC"}
    for model in ACCESS_MODELS:
        assert "name" in required(model) and "image" in required(model)
        assert not set(FIELDS[model][0]) & set(FIELDS[model][1])
        assert set(allowed(model)) <= set(VALUES)


# --- valid registrations --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ACCESS_MODELS)
def test_valid_registration(model: str) -> None:
    fields = valid(model)
    assert check(model, fields) == fields


def test_adr_osp_with_its_optional_fields() -> None:
    fields = valid("ADR_OSP", optional=True)
    assert {"description", "url", "reply_to_email"} <= set(fields)
    assert check("ADR_OSP", fields) == fields


@pytest.mark.parametrize("model", ACCESS_MODELS)
def test_none_values_are_dropped(model: str) -> None:
    fields = valid(model)
    extra_none = {name: None for name in VALUES if name not in fields}
    assert check(model, {**fields, **extra_none}) == fields


# --- required fields ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ACCESS_MODELS)
def test_every_missing_required_field_is_named(model: str) -> None:
    error = failure(model, {})
    assert fields_named(error) == list(required(model))
    assert all(message_for(error, f) == f"required under {model}" for f in required(model))


@pytest.mark.parametrize("model, missing", [(m, f) for m in ACCESS_MODELS for f in FIELDS[m][0]])
def test_one_missing_required_field(model: str, missing: str) -> None:
    fields = valid(model)
    del fields[missing]
    error = failure(model, fields)
    assert error.errors == [{"location": "body", "field": missing, "message": f"required under {model}"}]


@pytest.mark.parametrize("model", ACCESS_MODELS)
def test_a_required_field_given_as_none_is_missing(model: str) -> None:
    error = failure(model, {**valid(model), "name": None})
    assert fields_named(error) == ["name"] and "required" in message_for(error, "name")


@pytest.mark.parametrize("model", ACCESS_MODELS)
def test_an_empty_required_field_is_refused(model: str) -> None:
    error = failure(model, {**valid(model), "name": ""})
    assert fields_named(error) == ["name"] and "1 to 255" in message_for(error, "name")


# --- fields not part of the model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model, extra", [(m, f) for m in ACCESS_MODELS for f in VALUES if f not in allowed(m)])
def test_a_field_not_part_of_the_model_is_named(model: str, extra: str) -> None:
    error = failure(model, {**valid(model), extra: VALUES[extra]})
    assert error.errors == [{"location": "body", "field": extra,
                             "message": f"not part of a {model} registration"}]


def test_every_out_of_place_field_is_named() -> None:
    extras = {"legal_entity_name": "Budget Buddy Pty Ltd", "software_id": "abc", "reply_to_email": "x@y.example"}
    error = failure("CDR_REPRESENTATIVE", {**valid("CDR_REPRESENTATIVE"), **extras})
    assert sorted(fields_named(error)) == sorted(extras)
    assert all("not part of a CDR_REPRESENTATIVE registration" == e["message"] for e in error.errors)


def test_an_out_of_place_field_is_not_also_checked_for_form() -> None:
    error = failure("CDR_REPRESENTATIVE", {**valid("CDR_REPRESENTATIVE"), "policy_url": "http://not-https.example"})
    assert error.errors == [{"location": "body", "field": "policy_url",
                             "message": "not part of a CDR_REPRESENTATIVE registration"}]


def test_an_unknown_field_name_is_named() -> None:
    error = failure("BCDC", {**valid("BCDC"), "colour": "blue"})
    assert fields_named(error) == ["colour"]


def test_missing_and_out_of_place_together() -> None:
    fields = valid("BCDC")
    del fields["disclosure_type"], fields["policy_url"]
    fields["software_id"] = VALUES["software_id"]
    error = failure("BCDC", fields)
    assert fields_named(error) == ["disclosure_type", "policy_url", "software_id"]  # table order, then extras


# --- urls -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "http://budgetbuddy.example.com.au", "budgetbuddy.example.com.au", "/relative/path", "https://", "https:///path",
    "https:budgetbuddy.example.com.au", "ftp://budgetbuddy.example.com.au", "", "javascript:alert(1)",
])
@pytest.mark.parametrize("model, field", [(m, f) for m in ACCESS_MODELS for f in URL_FIELDS if f in allowed(m)])
def test_url_must_be_absolute_https(model: str, field: str, value: str) -> None:
    fields = {**valid(model, optional=True), field: value}
    error = failure(model, fields)
    assert fields_named(error) == [field]
    assert message_for(error, field) == "must be an absolute https URL"


@pytest.mark.parametrize("value", ["https://a.example", "https://budgetbuddy.example.com.au:8443/app?x=1#top",
                                   "HTTPS://BUDGETBUDDY.EXAMPLE.COM.AU"])
def test_https_urls_are_accepted(value: str) -> None:
    fields = {**valid("CDR_REPRESENTATIVE"), "url": value}
    assert check("CDR_REPRESENTATIVE", fields)["url"] == value


# --- emails ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "complaints", "complaints@", "@example.com.au", "complaints@localhost", "two@@example.com.au",
    "com plaints@example.com.au", "complaints@example.c", "a@b@example.com.au", "", "x" * 65 + "@example.com.au",
])
@pytest.mark.parametrize("model, field", [(m, f) for m in ACCESS_MODELS for f in EMAIL_FIELDS if f in allowed(m)])
def test_email_fields_are_checked(model: str, field: str, value: str) -> None:
    fields = {**valid(model, optional=True), field: value}
    error = failure(model, fields)
    assert fields_named(error) == [field]
    assert message_for(error, field) == "must be an email address"


@pytest.mark.parametrize("value", ["a@b.co", "first.last+cdr@mail.example.com.au", "x" * 64 + "@example.com"])
def test_emails_are_accepted(value: str) -> None:
    fields = {**valid("BCDC"), "data_complaints_email": value}
    assert check("BCDC", fields)["data_complaints_email"] == value


# --- images ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "not base64!", "data:image/png;base64," + PNG, "aGVsbG8=\x00", "aGVs bG8=", "aGVsbG8===", "aG=VsbG8", "",
    "\u00e9t\u00e9", "-_-_",  # url-safe alphabet is not the standard alphabet
])
@pytest.mark.parametrize("model, field", [(m, f) for m in ACCESS_MODELS for f in IMAGE_FIELDS if f in allowed(m)])
def test_image_must_be_base64(model: str, field: str, value: str) -> None:
    error = failure(model, {**valid(model), field: value})
    assert fields_named(error) == [field]
    assert "base64" in message_for(error, field) and str(MAX_IMAGE_CHARS) in message_for(error, field)


@pytest.mark.parametrize("field", IMAGE_FIELDS)
def test_image_size_is_bounded(field: str) -> None:
    at_limit = "A" * MAX_IMAGE_CHARS
    assert check("ADR_OSP", {**valid("ADR_OSP"), field: at_limit})[field] == at_limit
    over = "A" * (MAX_IMAGE_CHARS + 4)
    error = failure("ADR_OSP", {**valid("ADR_OSP"), field: over})
    assert fields_named(error) == [field]


def test_base64_with_line_breaks_is_accepted() -> None:
    wrapped = base64.encodebytes(bytes(range(256)) * 3).decode()  # MIME style, 76 columns with \n
    assert "\n" in wrapped
    assert check("CDR_REPRESENTATIVE", {**valid("CDR_REPRESENTATIVE"), "image": wrapped.rstrip("\n")})


@pytest.mark.parametrize("value", ["abcde", "A", "A=="])
def test_undecodable_base64_is_refused(value: str) -> None:
    with pytest.raises(ValidationFailed):
        check("CDR_REPRESENTATIVE", {**valid("CDR_REPRESENTATIVE"), "image": value})


# --- plain text fields ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, field", [
    (m, f) for m in ACCESS_MODELS for f in allowed(m) if f not in URL_FIELDS + EMAIL_FIELDS + IMAGE_FIELDS])
def test_text_fields_are_1_to_255_characters(model: str, field: str) -> None:
    fields = valid(model, optional=True)
    assert check(model, {**fields, field: "x" * 255})[field] == "x" * 255
    for value in ("", "x" * 256):
        error = failure(model, {**fields, field: value})
        assert fields_named(error) == [field]
        assert message_for(error, field) == "must be 1 to 255 characters long"


# --- many problems at once ------------------------------------------------------------------------------------------
def test_every_problem_is_named_in_one_answer() -> None:
    fields = {**valid("ADR_OSP", optional=True), "url": "http://insecure.example", "from_email": "nobody",
              "image": "%%%", "name": "", "disclosure_type": "BCDC"}
    del fields["software_id"]
    error = failure("ADR_OSP", fields)
    assert sorted(fields_named(error)) == sorted(["software_id", "url", "from_email", "image", "name",
                                                  "disclosure_type"])
    assert fields_named(error)[0] == "software_id"  # missing fields come first
    assert error.detail == "; ".join(f"{e['field']}: {e['message']}" for e in error.errors)


# --- the configured access model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, configured", [(a, b) for a, b in itertools.permutations(ACCESS_MODELS, 2)])
def test_another_access_model_than_the_configured_one_is_refused(model: str, configured: str) -> None:
    error = failure(model, valid(model), configured)
    assert error.errors == [{"location": "body", "field": "access_model", "message": (
        f"the gateway's partner account is registered under {configured}; applications must use that access model")}]


@pytest.mark.parametrize("model", ["OSP", "adr_osp", "", "CDR-REPRESENTATIVE"])
def test_an_unknown_access_model_is_refused(model: str) -> None:
    error = failure(model, valid("CDR_REPRESENTATIVE"), "CDR_REPRESENTATIVE")
    assert fields_named(error) == ["access_model"]


def test_access_model_is_checked_before_the_fields() -> None:
    # Fields wrong for both models: only the access model is reported (the fields depend on it).
    error = failure("BCDC", {"url": "http://x", "software_id": "s"}, "ADR_OSP")
    assert fields_named(error) == ["access_model"]
