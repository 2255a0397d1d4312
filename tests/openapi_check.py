"""Hold responses to the contract in gateway/api/openapi.yaml.

`validate_response(method, path, status, body, content_type)` finds the documented operation for a concrete path,
the response documented for the status (or `default`), checks the media type and validates the body with JSON
Schema 2020-12, resolving `$ref`s inside the document. A request that matches no documented operation (an unknown
path, or a known path with another method) is held to the shared error response for its status in
`components.responses`. Failures raise AssertionError with a message that says what differs and where.
"""
from __future__ import annotations

import functools
import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "gateway" / "api" / "openapi.yaml"
DOCUMENT_URI = "urn:gateway:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

format_checker = jsonschema.FormatChecker()


@format_checker.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@format_checker.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    date.fromisoformat(value)
    return True


@functools.cache
def document() -> dict[str, Any]:
    """The contract, parsed once."""
    loaded = yaml.safe_load(DOCUMENT_PATH.read_text())
    assert isinstance(loaded, dict), f"{DOCUMENT_PATH} is not a mapping"
    return loaded


@functools.cache
def registry() -> Registry:
    """The document as one JSON Schema resource, so `#/components/...` references resolve inside it."""
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def pointer(*parts: str) -> str:
    """A JSON pointer from unescaped parts: ("paths", "/v1/x", "get") -> "/paths/~1v1~1x/get"."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(ref: str) -> Any:
    """The target of a `$ref` (relative to the document)."""
    target = ref if ref.startswith(DOCUMENT_URI) else DOCUMENT_URI + ref
    return registry().resolver().lookup(target).contents


def iter_refs(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every `$ref` in the document with the JSON pointer of the object holding it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield where, ref
        for key, value in node.items():
            yield from iter_refs(value, where + pointer(str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_refs(value, f"{where}/{index}")


def _deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"])
    return node


def route_templates() -> set[tuple[str, str]]:
    """(METHOD, path template) of every documented operation, methods upper-case like aiohttp's."""
    out = set()
    for path, item in document()["paths"].items():
        for method in METHODS:
            if method in item:
                out.add((method.upper(), path))
    return out


@functools.cache
def _template_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in document()["paths"]:
        regex = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", template)
        )
        patterns.append((re.compile(f"^{regex}$"), template))
    # Literal templates first: "/v1/consents" wins over "/v1/consents/{consent_id}" style ambiguities.
    patterns.sort(key=lambda p: (p[1].count("{"), p[1]))
    return patterns


def match_template(path: str) -> str | None:
    """The documented path template a concrete path belongs to, or None."""
    path = path.split("?", 1)[0]
    for regex, template in _template_patterns():
        if regex.match(path):
            return template
    return None


@functools.cache
def _shared_responses_by_status() -> dict[int, str]:
    """components.responses entries that pin a single status (their Problem schema's `status` const)."""
    out: dict[int, str] = {}
    for name, response in document().get("components", {}).get("responses", {}).items():
        for media in response.get("content", {}).values():
            schema = media.get("schema", {})
            for part in schema.get("allOf", []):
                const = part.get("properties", {}).get("status", {}).get("const")
                if isinstance(const, int):
                    out[const] = name
    return out


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _pick_content(content: Mapping[str, Any], content_type: str) -> tuple[str, Any] | None:
    wanted = _media_type(content_type)
    for key, media in content.items():
        if key.lower() == wanted:
            return key, media
    major = wanted.split("/", 1)[0]
    for key, media in content.items():
        if key.lower() in (f"{major}/*", "*/*"):
            return key, media
    return None


def find_response(method: str, path: str, status: int) -> tuple[str, dict[str, Any]]:
    """(JSON pointer, response object) documented for this request and status; AssertionError when there is none."""
    template = match_template(path)
    doc = document()
    operation = doc["paths"][template].get(method.lower()) if template is not None else None
    if operation is None:
        # Not a documented operation: an unknown path (404, or 401 before authentication) or another method (405).
        name = _shared_responses_by_status().get(status)
        if name is None:
            raise AssertionError(
                f"{method.upper()} {path} matches no documented operation"
                + (f" (the path is {template!r})" if template else "")
                + f" and no shared response in components.responses pins status {status}"
            )
        return pointer("components", "responses", name), doc["components"]["responses"][name]
    responses = operation.get("responses", {})
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            where = pointer("paths", template, method.lower(), "responses", key)
            response = responses[key]
            while "$ref" in response:
                where = response["$ref"].removeprefix("#")
                response = resolve(response["$ref"])
            return where, response
    raise AssertionError(
        f"{method.upper()} {template}: status {status} is not documented "
        f"(documented: {', '.join(sorted(responses))})"
    )


def _describe(error: jsonschema.ValidationError) -> str:
    at = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"  at {at}: {error.message} (schema {'/'.join(str(p) for p in error.absolute_schema_path)})"


def validate_response(
    method: str,
    path: str,
    status: int,
    body: Any,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Check one real response against the contract.

    `path` is the concrete request path (`/v1/accounts/acc_x`); `body` the parsed JSON (or text for non-JSON media
    types); `content_type` the response's Content-Type header. With `headers`, the documented required response
    headers must be present and match their schemas.
    """
    where, response = find_response(method, path, status)
    label = f"{method.upper()} {path} -> {status}"
    content = response.get("content")
    if not content:
        assert body in (None, b"", ""), f"{label}: the contract documents no body, got {body!r:.200}"
        return
    picked = _pick_content(content, content_type)
    if picked is None:
        raise AssertionError(
            f"{label}: Content-Type {content_type!r} is not documented (documented: {', '.join(content)})"
        )
    media_key, media = picked
    schema_where = f"{where}{pointer('content', media_key, 'schema')}"
    if "schema" in media:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{DOCUMENT_URI}#{schema_where}"}, registry=registry(), format_checker=format_checker
        )
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            shown = json.dumps(body, default=str)[:800]
            raise AssertionError(
                f"{label}: the body does not match {schema_where}:\n"
                + "\n".join(_describe(e) for e in errors[:10])
                + f"\nbody: {shown}"
            )
    if headers is not None:
        lowered = {k.lower(): v for k, v in headers.items()}
        for name, header in response.get("headers", {}).items():
            header = _deref(header)
            value = lowered.get(name.lower())
            if value is None:
                assert not header.get("required"), f"{label}: the required header {name} is missing"
                continue
            schema = header.get("schema")
            if schema is not None:
                validator = jsonschema.Draft202012Validator(schema, registry=registry(), format_checker=format_checker)
                problems = [e.message for e in validator.iter_errors(value)]
                assert not problems, f"{label}: header {name}: {value!r} does not match: {'; '.join(problems)}"
