"""Requests of the webhook subscription and event routes, checked field by field before anything is written."""
from __future__ import annotations

from typing import Any

import attrs

from gateway.errors import ValidationFailed
from gateway.events.canonical import EVENT_TYPES
from gateway.validation.body import FieldValueError, field_error, structure

MAX_OVERLAP_SECONDS = 7 * 86400


def _url(_inst: Any, attr: attrs.Attribute, value: str) -> None:  # type: ignore[type-arg]
    if not 8 <= len(value) <= 2000:
        raise FieldValueError(attr.name, "must be 8 to 2000 characters long")


def _event_types(_inst: Any, attr: attrs.Attribute, value: tuple[str, ...]) -> None:  # type: ignore[type-arg]
    if not value:
        raise FieldValueError(attr.name, "must name at least one event type (or \"*\" for all)")
    unknown = sorted(set(value) - set(EVENT_TYPES) - {"*"})
    if unknown:
        raise FieldValueError(attr.name, f"unknown event type(s) {', '.join(unknown)}; known: "
                                         f"{', '.join(EVENT_TYPES)} or \"*\"")
    if len(set(value)) != len(value):
        raise FieldValueError(attr.name, "names an event type twice")


def _description(_inst: Any, attr: attrs.Attribute, value: str | None) -> None:  # type: ignore[type-arg]
    if value is not None and (len(value) > 200 or not value.isprintable()):
        raise FieldValueError(attr.name, "must be at most 200 printable characters")


@attrs.frozen
class CreateSubscriptionRequest:
    url: str = attrs.field(validator=_url)
    event_types: tuple[str, ...] = attrs.field(validator=_event_types)
    description: str | None = attrs.field(default=None, validator=_description)
    # Deliver a consent's (or payment's) events one at a time, in the order they happened.
    ordered: bool = False


@attrs.frozen
class UpdateSubscriptionRequest:
    url: str | None = attrs.field(default=None, validator=attrs.validators.optional(_url))
    event_types: tuple[str, ...] | None = attrs.field(default=None,
                                                      validator=attrs.validators.optional(_event_types))
    description: str | None = attrs.field(default=None, validator=_description)
    ordered: bool | None = None
    enabled: bool | None = None


def update_request(data: Any) -> tuple[UpdateSubscriptionRequest, frozenset[str]]:
    """The PATCH body and the fields it names (a field sent as null clears it where that means something)."""
    request = structure(data, UpdateSubscriptionRequest)
    named = frozenset(data)
    if not named:
        raise ValidationFailed.of([field_error("$", "names nothing to change (url, event_types, description, "
                                                    "ordered, enabled)")])
    nulls = [k for k in ("url", "event_types", "ordered", "enabled") if k in named and data[k] is None]
    if nulls:
        raise ValidationFailed.of([field_error(k, "must not be null") for k in nulls])
    return request, named


def _overlap(_inst: Any, attr: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    if value is not None and not 0 <= value <= MAX_OVERLAP_SECONDS:
        raise FieldValueError(attr.name, f"must be 0 to {MAX_OVERLAP_SECONDS} seconds")


@attrs.frozen
class RotateSecretRequest:
    # How long the current secret keeps signing beside the new one (default: events.secret_overlap_seconds).
    overlap_seconds: int | None = attrs.field(default=None, validator=_overlap)


@attrs.frozen
class RedeliverRequest:
    # Only to this subscription; default: every subscription with a failed delivery of the event.
    subscription_id: str | None = None
