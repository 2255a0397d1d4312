"""HTTP plumbing the Stripe UK simulator's handlers share: the app key, the client certificate, the error answers.

Errors are exceptions, one per shape; the simulator's gate renders them:

    OAuthError   RFC 6749 / OIDC / DCR `{"error", "error_description"}` (token, authorize, register)
    BearerError  RFC 6750: no body, a `WWW-Authenticate: Bearer error=...` challenge (DCR management endpoints)
    OBError      Open Banking OBErrorResponse1 `{Code, Id, Message, Errors: [{ErrorCode, Message, Path?}]}` (AIS, PIS)
"""
from __future__ import annotations

import base64
import hashlib
import uuid
from http import HTTPStatus
from typing import Any

import attrs
import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.sandbox_kit import Problem

SANDBOX: web.AppKey[Any] = web.AppKey("stripe_uk_sandbox")
CLIENT_CERT = web.RequestKey("stripe_uk_client_cert", x509.Certificate)  # what the TLS layer verified
SIGNATURE_HEADER = "x-jws-signature"  # Open Banking's detached JWS of a message body


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return x509.load_der_x509_certificate(der) if der else None


def cert_thumbprint(cert: x509.Certificate) -> str:
    """RFC 8705 x5t#S256 of a certificate: what a certificate-bound access token remembers."""
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def challenge(error: str, description: str) -> str:
    return f'Bearer error="{error}", error_description="{description.replace(chr(34), chr(39))}"'


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status, self.error, self.description = status, error, description

    def response(self) -> web.Response:
        return json_response({"error": self.error, "error_description": self.description}, self.status,
                             headers={"Cache-Control": "no-store"})


class BearerError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status, self.error, self.description = status, error, description

    def response(self) -> web.Response:
        return web.Response(status=self.status, headers={"WWW-Authenticate": challenge(self.error, self.description)})


@attrs.frozen
class Detail:
    error_code: str  # a UK.OBIE.* code of the spec's OBError1 enum
    message: str
    path: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"ErrorCode": self.error_code, "Message": self.message[:500]}
        if self.path:
            out["Path"] = self.path[:500]
        return out


class OBError(Exception):
    def __init__(self, status: int, error_code: str, message: str, *, path: str | None = None,
                 details: list[Detail] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.message = message
        self.details = details or [Detail(error_code, message, path)]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return ob_error_body(self.status, self.message, self.details)

    def response(self) -> web.Response:
        return json_response(self.body(), self.status, headers=self.headers)


def ob_error_body(status: int, message: str, details: list[Detail]) -> dict[str, Any]:
    return {"Code": str(status), "Id": str(uuid.uuid4()), "Message": message[:500],
            "Errors": [d.to_json() for d in details]}


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _detail(problem: Problem) -> Detail:
    if problem.location == "header" and problem.name == SIGNATURE_HEADER and problem.kind == "missing":
        code = "UK.OBIE.Signature.Missing"  # the standard's own code for an absent x-jws-signature
    elif problem.location == "header":
        code = "UK.OBIE.Header.Missing" if problem.kind == "missing" else "UK.OBIE.Header.Invalid"
    elif problem.location == "body" and problem.name == "" and problem.kind == "invalid":
        code = "UK.OBIE.Resource.InvalidFormat"
    else:
        code = "UK.OBIE.Field.Missing" if problem.kind == "missing" else "UK.OBIE.Field.Invalid"
    name = problem.name or "request body"
    return Detail(code, f"{name} {problem.reason}", problem.name or None)


def problems_error(problems: list[Problem]) -> OBError:
    """A 400 naming every problem the spec check found."""
    details = [_detail(p) for p in problems]
    return OBError(400, details[0].error_code, "The request does not conform to the API specification",
                   details=details)


def ob_bearer_error(err: BearerError) -> OBError:
    """A bearer-token refusal on an Open Banking resource: OBErrorResponse1 plus the RFC 6750 challenge."""
    code = "UK.OBIE.Header.Missing" if err.error == "invalid_request" else "UK.OBIE.Header.Invalid"
    return OBError(err.status, code, err.description, path="Authorization",
                   headers={"WWW-Authenticate": challenge(err.error, err.description)})


def insufficient_scope(description: str) -> OBError:
    """The wrong kind of access token for an Open Banking resource (403, as the AIS gate answers it)."""
    return OBError(403, "UK.OBIE.Header.Invalid", description, path="Authorization",
                   headers={"WWW-Authenticate": challenge("insufficient_scope", description)})
