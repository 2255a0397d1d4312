"""Check requests (and, for tests, responses) against the upstream's OpenAPI 3.0 document.

A simulator must refuse what its upstream refuses, before any handler runs. The spec is parsed once per process and
shared by every simulator instance (tests start many); each operation's checks are compiled on first use: parameter
checks are small closures, body and response schemas become jsonschema Draft 4 validators (OpenAPI 3.0's schema
dialect is Draft 4 plus `nullable`, `readOnly` and `writeOnly`, which are rewritten here). `$ref`s are inlined; a
recursive one is left as a reference into a lazily filled registry.

Problems name the parameter (or the body field path) and a reason; the simulator turns them into its provider's own
error body. Security schemes are not checked here: `Operation.security` lists the header names each alternative
needs, so the simulator can apply its provider's own authentication errors first.
"""
from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import orjson
import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_ANNOTATIONS = frozenset({"description", "example", "examples", "externalDocs", "xml", "deprecated", "discriminator",
                          "title", "nullable", "readOnly", "writeOnly"})
_REF_URN = "urn:openapi:"
_INTEGER = re.compile(r"-?\d+\Z")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as JSON would see it: timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


@attrs.frozen
class Problem:
    location: str  # "path" | "query" | "header" | "body"
    name: str  # the parameter name, or the body field path ("" = the whole body)
    kind: str  # "missing" | "invalid"
    reason: str


@attrs.frozen
class _Param:
    location: str
    name: str
    required: bool
    check: Callable[[Any], str | None]
    array: bool


# One wording for parameter and body problems.
_REASONS = {"enum": "must be one of {}", "minimum": "must be at least {}", "maximum": "must be at most {}",
            "minLength": "must be at least {} characters", "maxLength": "must be at most {} characters",
            "pattern": "must match {}", "minItems": "must have at least {} items",
            "maxItems": "must have at most {} items"}


def _reason_for(keyword: str, limit: Any) -> str:
    if keyword == "type":
        return "must be of type " + " or ".join(limit if isinstance(limit, list) else [limit])
    return _REASONS[keyword].format(", ".join(map(str, limit)) if isinstance(limit, list) else limit)


def _reason(error: Any) -> str:
    if error.validator == "type" or error.validator in _REASONS:
        return _reason_for(error.validator, error.validator_value)
    return str(error.message)


def _number(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "integer": lambda raw: int(raw) if _INTEGER.match(raw) else None,
    "number": _number,
    "boolean": lambda raw: {"true": True, "false": False}.get(raw.lower()),
}


def _breaks(keyword: str, limit: Any, value: Any, exclusive: bool) -> bool:
    if keyword == "enum":
        return value not in limit
    if keyword == "minimum":
        return value < limit or (exclusive and value == limit)
    if keyword == "maximum":
        return value > limit or (exclusive and value == limit)
    if not isinstance(value, str):
        return False
    if keyword == "minLength":
        return len(value) < limit
    if keyword == "maxLength":
        return len(value) > limit
    return re.search(limit, value) is None  # pattern


def _scalar_check(schema: Mapping[str, Any]) -> Callable[[str], str | None]:
    """A check of one raw parameter value: None when acceptable, else the reason."""
    kind = schema.get("type", "string")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    parse = _PARSERS.get(kind)
    rules = [(k, schema[k], schema.get("exclusive" + k.title()) is True)
             for k in ("enum", "minimum", "maximum", "minLength", "maxLength", "pattern") if k in schema]

    def check(raw: str) -> str | None:
        value = parse(raw) if parse else raw
        if value is None:
            return _reason_for("type", kind)
        broken = (_reason_for(k, limit) for k, limit, exclusive in rules if _breaks(k, limit, value, exclusive))
        return next(broken, None)

    return check


def _param_check(schema: Mapping[str, Any]) -> tuple[Callable[[Any], str | None], bool]:
    if schema.get("type") != "array":
        return _scalar_check(schema), False
    item = _scalar_check(schema.get("items", {}))
    min_items, max_items = schema.get("minItems"), schema.get("maxItems")

    def check(values: list[str]) -> str | None:
        if min_items is not None and len(values) < min_items:
            return _reason_for("minItems", min_items)
        if max_items is not None and len(values) > max_items:
            return _reason_for("maxItems", max_items)
        return next((reason for reason in map(item, values) if reason), None)

    return check, True


def _field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Operation:
    """One method of one path template, with its checks compiled on first use."""

    def __init__(self, spec: OpenAPISpec, method: str, template: str, path_item: Mapping[str, Any]) -> None:
        self.spec = spec
        self.method = method.upper()
        self.template = template
        raw = path_item[method]
        self.raw = raw
        self.operation_id: str | None = raw.get("operationId")
        self._shared_params = path_item.get("parameters", [])
        names = re.findall(r"{([^}/]+)}", template)
        pattern = re.escape(template)
        for name in names:
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{_group(name)}>[^/]+)")
        self.regex = re.compile(pattern + r"\Z")
        self.path_names = {_group(n): n for n in names}
        self._response_validators: dict[int, Draft4Validator] = {}
        requirements = raw.get("security", spec.doc.get("security", []))
        schemes = spec.doc.get("components", {}).get("securitySchemes", {})
        self.security: tuple[frozenset[str], ...] = tuple(
            frozenset(schemes[n]["name"] for n in alt if schemes.get(n, {}).get("type") == "apiKey"
                      and schemes[n].get("in") == "header")
            for alt in requirements
        )

    def __repr__(self) -> str:
        return f"<Operation {self.method} {self.template}>"

    @functools.cached_property
    def _params(self) -> list[_Param]:
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for param in [*self._shared_params, *self.raw.get("parameters", [])]:
            param = self.spec.deref(param)
            merged[(param["in"], param["name"])] = param
        out = []
        for (location, name), param in merged.items():
            schema = self.spec.schema(param.get("schema", {}), "request")
            check, array = _param_check(schema)
            out.append(_Param(location, name, bool(param.get("required")) or location == "path", check, array))
        return out

    @functools.cached_property
    def _body(self) -> tuple[bool, Draft4Validator | None]:
        body = self.raw.get("requestBody")
        if body is None:
            return False, None
        body = self.spec.deref(body)
        media = _json_media(body.get("content", {}))
        schema = media.get("schema") if media else None
        validator = self.spec.validator(schema, "request") if schema is not None else None
        return bool(body.get("required")), validator

    def check(self, path_params: Mapping[str, str], query: Any, headers: Any, body: bytes | None) -> list[Problem]:
        """Problems with one request; `query` and `headers` are multidicts (headers case-insensitive)."""
        problems: list[Problem] = []
        for param in self._params:
            if param.location == "path":
                values = [path_params[param.name]] if param.name in path_params else []
            elif param.location == "query":
                values = query.getall(param.name, [])
            elif param.location == "header":
                values = headers.getall(param.name, [])
            else:
                continue  # cookies: no upstream here uses them
            if not values or values == [""]:
                if param.required:
                    problems.append(Problem(param.location, param.name, "missing", "is required"))
                continue
            if param.array:
                values = [[v for value in values for v in value.split(",")]]
            reason = next((r for r in map(param.check, values) if r), None)
            if reason:
                problems.append(Problem(param.location, param.name, "invalid", reason))
        required, validator = self._body
        if not body:
            if required:
                problems.append(Problem("body", "", "missing", "a request body is required"))
            return problems
        if validator is None:
            return problems
        try:
            instance = orjson.loads(body)
        except orjson.JSONDecodeError:
            problems.append(Problem("body", "", "invalid", "is not valid JSON"))
            return problems
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
            where = list(error.absolute_path)
            if error.validator == "required":
                present = error.instance if isinstance(error.instance, dict) else {}
                missing = [p for p in error.validator_value if p not in present]
                problems.extend(Problem("body", _field_path([*where, p]), "missing", "is required") for p in missing)
            else:
                problems.append(Problem("body", _field_path(where), "invalid", _reason(error)))
        return list(dict.fromkeys(problems))

    def response_schema_name(self, status: int) -> str | None:
        """The component name of the JSON schema the spec gives for this status (e.g. "ErrorMessage")."""
        response = self.response(status)
        media = _json_media(response.get("content", {})) if response else None
        schema = media.get("schema") if media else None
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        return ref.rsplit("/", 1)[-1] if ref else None

    def response(self, status: int) -> Mapping[str, Any] | None:
        """The spec's response object for a status (exact, `4XX`-style, or `default`), if it declares one."""
        responses = self.raw.get("responses", {})
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        return self.spec.deref(response) if response is not None else None

    def check_response(self, status: int, body: bytes | Any, content_type: str = "application/json") -> list[str]:
        """Problems with a response, as messages; a body may be raw bytes or already parsed JSON."""
        response = self.response(status)
        if response is None:
            return [f"{self.method} {self.template}: the spec declares no {status} response"]
        content = response.get("content", {})
        if not content:
            return [] if body in (b"", None) else [f"{status} must have no body"]
        media = content.get(content_type.split(";")[0].strip()) or _json_media(content)
        if media is None:
            return [f"{status}: content type {content_type} is not declared"]
        if "schema" not in media:
            return []
        instance = orjson.loads(body) if isinstance(body, (bytes, str)) else body
        validator = self._response_validators.get(status)
        if validator is None:
            validator = self._response_validators[status] = self.spec.validator(media["schema"], "response")
        return [f"{_field_path(e.absolute_path) or '$'}: {e.message}" for e in validator.iter_errors(instance)]


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def _json_media(content: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for media_type, media in content.items():
        if media_type == "application/json" or media_type.endswith("+json") or media_type == "*/*":
            return media
    return None


class OpenAPISpec:
    """An OpenAPI 3.0 document, its operations, and schema compilation with `$ref`s resolved."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._by_template: dict[tuple[str, str], Operation] = {}
        for template, item in doc.get("paths", {}).items():
            for method in HTTP_METHODS:
                if method in item:
                    self._by_template[(method.upper(), template)] = Operation(self, method, template, item)
        # Literal paths win over templated ones when both match.
        self._search_order = sorted(self._by_template.values(), key=lambda o: (len(o.path_names), -len(o.template)))
        self._registry = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]

    @classmethod
    def load(cls, path: str | Path, patches: Mapping[str, Any] | None = None) -> OpenAPISpec:
        """The spec in a YAML/JSON file, shared per (file, patches). A patch replaces the node at a JSON pointer
        (e.g. `/components/schemas/ErrorMessage/properties/code`): for an upstream whose spec contradicts its own
        examples, say so where the patch is defined."""
        key = tuple(sorted((p, orjson.dumps(v, option=orjson.OPT_SORT_KEYS)) for p, v in (patches or {}).items()))
        return _load(str(Path(path).resolve()), key)

    def operations(self) -> list[Operation]:
        return list(self._by_template.values())

    def operation(self, method: str, template: str) -> Operation | None:
        return self._by_template.get((method.upper(), template))

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation whose path template matches a concrete path, with its path parameters."""
        method = method.upper()
        for op in self._search_order:
            if op.method == method:
                match = op.regex.match(path)
                if match:
                    return op, {op.path_names[g]: unquote(v) for g, v in match.groupdict().items()}
        return None

    def operation_for(self, request: Any) -> Operation | None:
        """The operation an aiohttp request is for: by its route's template when the route was registered with the
        spec's template, else by matching the path."""
        resource = getattr(request.match_info.route, "resource", None)
        template = getattr(resource, "canonical", None)
        op = self.operation(request.method, template) if template else None
        if op is None:
            found = self.find(request.method, request.path)
            op = found[0] if found else None
        return op

    async def validate_request(self, request: Any, op: Operation | None = None) -> list[Problem]:
        """Problems with an aiohttp request (empty when it conforms or no operation matches)."""
        op = op or self.operation_for(request)
        if op is None:
            return []
        found = op.regex.match(request.path)
        path_params = {op.path_names[g]: unquote(v) for g, v in found.groupdict().items()} if found else {}
        body = await request.read() if request.body_exists else None
        return op.check(path_params, request.query, request.headers, body)

    def validate_response(self, method: str, path: str, status: int, body: bytes | Any,
                          content_type: str = "application/json") -> list[str]:
        op = self.operation(method, path)
        if op is None:
            found = self.find(method, path)
            if found is None:
                return [f"{method.upper()} {path} is not in the spec"]
            op = found[0]
        return op.check_response(status, body, content_type)

    # --- schemas -------------------------------------------------------------------------------------------------
    def deref(self, node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported: {ref}")
        node: Any = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def schema(self, node: Any, direction: str, _stack: tuple[str, ...] = ()) -> Any:
        """A JSON Schema (Draft 4) for an OpenAPI schema object: refs inlined, annotations dropped, `nullable`
        turned into a null type, `readOnly` (request) or `writeOnly` (response) properties no longer required."""
        if not isinstance(node, Mapping):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if ref in _stack:
                return {"$ref": f"{_REF_URN}{direction}:{ref[2:]}"}  # no "#": it would read as a fragment
            return self.schema(self._pointer(ref), direction, (*_stack, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS:
                continue
            if key in ("properties", "patternProperties"):
                out[key] = {name: self.schema(sub, direction, _stack) for name, sub in value.items()}
            elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
                out[key] = self.schema(value, direction, _stack)
            elif key in ("allOf", "anyOf", "oneOf"):
                out[key] = [self.schema(sub, direction, _stack) for sub in value]
            else:
                out[key] = copy.deepcopy(value)
        if node.get("nullable") is True:
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        hidden = "readOnly" if direction == "request" else "writeOnly"
        if "required" in out and "properties" in node:
            skip = {name for name, sub in node["properties"].items() if self.deref(sub).get(hidden) is True}
            out["required"] = [name for name in out["required"] if name not in skip]
            if not out["required"]:
                del out["required"]
        return out

    def validator(self, node: Any, direction: str) -> Draft4Validator:
        return Draft4Validator(self.schema(node, direction), registry=self._registry)

    def _retrieve(self, uri: str) -> Resource:
        direction, pointer = uri[len(_REF_URN):].split(":", 1)
        return Resource(contents=self.schema({"$ref": "#/" + pointer}, direction, ()), specification=DRAFT4)


@functools.lru_cache(maxsize=16)
def _load(path: str, patches: tuple[tuple[str, bytes], ...]) -> OpenAPISpec:
    doc = load_yaml(Path(path).read_text(encoding="utf-8"))
    for pointer, value in patches:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/")]
        node = doc
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = orjson.loads(value)
    return OpenAPISpec(doc)
