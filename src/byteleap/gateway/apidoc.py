"""docs/api.md, generated from the gateway's OpenAPI spec (so the reference cannot drift).

    python -m byteleap.gateway.apidoc            # rewrite docs/api.md
    python -m byteleap.gateway.apidoc --check    # exit 1 if docs/api.md is stale

The app is built with every router the gateway serves (the network view included); nothing
is called, only described. ``render`` is pure: the same spec gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

DEFAULT_OUT = Path("docs/api.md")
_METHODS = ("get", "post", "put", "patch", "delete", "options", "head")


def gateway_spec() -> dict[str, Any]:
    """The spec of the app `byteleap gateway run` serves, services routes included."""
    from byteleap.config import GatewaySettings
    from byteleap.gateway.billing import Billing
    from byteleap.gateway.memory import InMemoryCloudService
    from byteleap.gateway.network import NetworkView
    from byteleap.gateway.rest import create_rest_app
    from byteleap.gateway.rest_billing import mount_billing
    from byteleap.gateway.rest_services import mount_services
    from byteleap.gateway.service_desk import ServiceDesk
    from byteleap.store import Store

    # Describing routes calls nothing: stand-ins with no store are enough for the spec.
    app = create_rest_app(InMemoryCloudService(), network=NetworkView(cast(Store, None)))
    mount_services(app, cast(ServiceDesk, SimpleNamespace(settings=GatewaySettings())))
    mount_billing(app, cast(Billing, None))
    return app.openapi()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return (
            f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{schema['$ref'].rsplit('/', 1)[-1].lower()})"
        )
    if "anyOf" in schema:
        return " \\| ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"map of {_type(extra) if isinstance(extra, dict) else 'any'}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    return str(schema.get("type", "any"))


def _bounds(schema: dict[str, Any]) -> str:
    marks = {
        "minimum": "≥",
        "exclusiveMinimum": ">",
        "maximum": "≤",
        "exclusiveMaximum": "<",
        "minLength": "length ≥",
        "maxLength": "length ≤",
    }
    parts = [f"{sign} {schema[key]}" for key, sign in marks.items() if key in schema]
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        lines.append(
            f"**{op['summary']}**"
            + (f": {_cell(op['description'])}" if op.get("description") else "")
        )
        lines.append("")
    auth = "API key (`Authorization: Bearer …`)" if op.get("security") else "none (public)"
    lines += [f"Authentication: {auth}.", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | constraints |", "|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema", {})
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_type(schema)} | "
                f"{'yes' if p.get('required') else 'no'} | {_bounds(schema)} |"
            )
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines += [f"Request body ({media}): {_type(content.get('schema', {}))}.", ""]
    lines += ["| status | answer |", "|---|---|"]
    for status, response in sorted(op.get("responses", {}).items()):
        kinds = [
            f"{_type(c['schema'])}" if c.get("schema") else media
            for media, c in response.get("content", {}).items()
        ]
        what = _cell(response.get("description", ""))
        lines.append(f"| {status} | {what}{': ' + ', '.join(kinds) if kinds else ''} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    props = schema.get("properties", {})
    if not props:
        return [*lines, f"{_type(schema)}", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | constraints | description |", "|---|---|---|---|---|"]
    for field, prop in props.items():
        lines.append(
            f"| `{field}` | {_type(prop)} | {'yes' if field in required else 'no'} | "
            f"{_bounds(prop)} | {_cell(prop.get('description', ''))} |"
        )
    return [*lines, ""]


def render(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    lines = [
        f"# {info.get('title', 'API')} — REST reference (version {info.get('version', '?')})",
        "",
        "Generated from the OpenAPI spec by `python -m byteleap.gateway.apidoc`; do not",
        "edit by hand (a test fails when this file is stale). The live spec is served at",
        '`/openapi.json`. Errors share one body: `{"error": reason, "detail": text, "field": …}`.',
        "Times (`created_at`, `ends_at`, …) are Unix epoch seconds, UTC, as numbers; the CLI",
        "prints them as ISO 8601 (its `--json` prints what the API sent).",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in _METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["general"])[0]
                by_tag.setdefault(tag, []).append((path, method, item[method]))
    for tag in sorted(by_tag):
        lines += [f"## {tag}", ""]
        for path, method, op in by_tag[tag]:
            lines += _operation(path, method, op)
    lines += ["## Schemas", ""]
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        lines += _schema(name, schema)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render(gateway_spec())
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m byteleap.gateway.apidoc", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
