"""stripe-uk configuration: the adapter's settings and the key material they name (or make, locally)."""
from __future__ import annotations

from pathlib import Path

import attrs

from adapters.stripe_uk.events import EVENT_TYPES
from gateway.certificates.keys import SigningKey, load_signing_key
from gateway.onboarding.dcr import AUTH_METHODS
from gateway.secrets import Secret


@attrs.frozen
class StripeUKSettings:
    software_id: str
    organisation_id: str
    redirect_uris: tuple[str, ...]
    # Local environment only: generate throw-away keys, certificates and a software statement here on first start.
    local_material: str | None = None
    software_statement: Secret | None = None
    transport_cert: str | None = None
    transport_key: str | None = None
    signing_key: str | None = None
    signing_kid: str | None = None
    trust_ca: str | None = None  # CA bundle for the ASPSP's server certificate (None: the system's roots)
    token_endpoint_auth_method: str = attrs.field(default="private_key_jwt", validator=attrs.validators.in_(AUTH_METHODS))
    register_on_start: bool = False
    aisp_path: str = "/open-banking/v3.1/aisp"
    pisp_path: str = "/open-banking/v3.1/pisp"
    # Message signing (x-jws-signature): the trust anchor named in signatures, whether the bank's answers must be
    # signed, and (when known) the signer id the bank's signatures must name.
    jws_trust_anchor: str = "openbanking.org.uk"
    verify_response_signatures: bool = True
    aspsp_signing_issuer: str | None = None
    # Event notifications (OB Event Notification API): subscribe at start (when the gateway has a public URL) to
    # these event types in this notification version, under events_path; refuse notifications issued longer ago
    # than event_max_age seconds (the bank retries one for a while; replays are recognised by their jti anyway).
    subscribe_events: bool = True
    events_path: str = "/open-banking/v3.1"
    event_version: str = "3.1"
    event_types: tuple[str, ...] = EVENT_TYPES
    event_max_age: float = attrs.field(default=86400.0, validator=attrs.validators.gt(0))
    # Payments through this adapter move real money (tagged `live` in their records).
    live: bool = False
    sandbox_access_token_ttl: float = 300.0
    # The simulator's payments: seconds after submission until AcceptedSettlementInProcess, then Completed.
    sandbox_payment_timeline: tuple[float, float] = (2.0, 6.0)

    def __attrs_post_init__(self) -> None:
        if self.local_material is None and not all((self.software_statement, self.transport_cert,
                                                    self.transport_key, self.signing_key)):
            raise ValueError("set software_statement, transport_cert, transport_key and signing_key "
                             "(or local_material in the local environment)")


@attrs.frozen
class Material:
    transport_cert: Path
    transport_key: Path
    trust_ca: Path | None
    signing: SigningKey
    software_statement: Secret


def resolve_material(settings: StripeUKSettings) -> Material:
    if settings.local_material is not None:
        from gateway.certificates.local import ensure_local_material

        local = ensure_local_material(Path(settings.local_material), software_id=settings.software_id,
                                      organisation_id=settings.organisation_id, redirect_uris=settings.redirect_uris)
        return Material(local.transport_cert, local.transport_key, local.ca_cert,
                        load_signing_key(local.signing_key, settings.signing_kid),
                        Secret(local.software_statement.read_text().strip()))
    assert settings.software_statement and settings.transport_cert and settings.transport_key and settings.signing_key
    return Material(Path(settings.transport_cert), Path(settings.transport_key),
                    Path(settings.trust_ca) if settings.trust_ca else None,
                    load_signing_key(Path(settings.signing_key), settings.signing_kid), settings.software_statement)
