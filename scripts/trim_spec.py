"""Cut an OpenAPI 3.0 document down to a few operations and every component they reference.

The provider simulators validate requests against their upstream's published spec. The published files are large
(the Finicity one is 2 MB); a simulator only needs the operations it serves, so we keep a trimmed copy next to it.

Usage:
    python scripts/trim_spec.py INPUT OUTPUT OPERATION [OPERATION ...] [--note TEXT ...]

An OPERATION is a path (`/a/{b}`: every method of that path) or `METHOD /a/{b}` (one method). The output keeps
`openapi`, `info`, `servers`, `security`, the used `tags`, the chosen operations and, transitively, the components
their `$ref`s and security requirements name. Each `--note` becomes a comment line at the top of the output (use it
for the source and licence), followed by the command that regenerates the file.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from adapters.sandbox_kit.specvalidate import load_yaml

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def parse_operation(text: str) -> tuple[str | None, str]:
    """`"/p"` -> (None, "/p"); `"get /p"` -> ("get", "/p")."""
    parts = text.split()
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2 and parts[0].lower() in HTTP_METHODS:
        return parts[0].lower(), parts[1]
    raise ValueError(f"not an operation: {text!r} (expected '/path' or 'METHOD /path')")


def _pointer_parts(ref: str) -> list[str]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported: {ref}")
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _security_schemes(requirements: Any) -> set[str]:
    return {name for alternative in requirements or () for name in alternative}


def trim(doc: dict[str, Any], operations: list[str]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for text in operations:
        method, path = parse_operation(text)
        item = doc["paths"].get(path)
        if item is None:
            raise KeyError(f"path not in the spec: {path}")
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k not in HTTP_METHODS})
        methods = [method] if method else [m for m in HTTP_METHODS if m in item]
        for m in methods:
            if m not in item:
                raise KeyError(f"{m.upper()} {path} is not in the spec")
            kept[m] = item[m]

    schemes = _security_schemes(doc.get("security"))
    tags: set[str] = set()
    for item in paths.values():
        for m in HTTP_METHODS:
            if m in item:
                schemes |= _security_schemes(item[m].get("security"))
                tags.update(item[m].get("tags", ()))

    # Follow $refs to a fixed point: a component may reference further components.
    components: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    _refs(paths, pending)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = _pointer_parts(ref)
        if parts[0] != "components" or len(parts) != 3:
            raise ValueError(f"unsupported $ref target: {ref}")
        node = doc["components"][parts[1]][parts[2]]
        components.setdefault(parts[1], {})[parts[2]] = node
        _refs(node, pending)
    if schemes:
        available = doc.get("components", {}).get("securitySchemes", {})
        components["securitySchemes"] = {name: available[name] for name in sorted(schemes)}

    # Keep the upstream's section order inside components.
    ordered = {
        section: {name: components[section][name] for name in doc["components"][section] if name in components[section]}
        for section in doc.get("components", {})
        if section in components
    }
    out: dict[str, Any] = {}
    for key in ("openapi", "info", "servers"):
        if key in doc:
            out[key] = doc[key]
    if "tags" in doc:
        out["tags"] = [t for t in doc["tags"] if t.get("name") in tags]
    if "security" in doc:
        out["security"] = doc["security"]
    out["paths"] = paths
    out["components"] = ordered
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("operations", nargs="+", help="'/path' or 'METHOD /path'")
    parser.add_argument("--note", action="append", default=[], help="a comment line for the output's header")
    args = parser.parse_args(argv)

    doc = load_yaml(args.input.read_text(encoding="utf-8"))
    trimmed = trim(doc, args.operations)
    words = [shlex.quote(w) for w in (str(args.input), str(args.output), *args.operations)]
    words += [f"--note {shlex.quote(note)}" for note in args.note]
    header = [f"# {line}" for note in args.note for line in note.splitlines()]
    header.append("# Regenerate with:")
    header.append("#   python scripts/trim_spec.py \\")
    header.extend(f"#     {w} \\" for w in words[:-1])
    header.append(f"#     {words[-1]}")
    body = yaml.safe_dump(trimmed, sort_keys=False, allow_unicode=True, width=120)
    args.output.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    counts = {k: len(v) for k, v in trimmed["components"].items()}
    print(f"{args.output}: {sum(len([m for m in i if m in HTTP_METHODS]) for i in trimmed['paths'].values())} "
          f"operations, components {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
