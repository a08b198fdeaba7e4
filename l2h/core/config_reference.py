"""The configuration reference, rendered as Markdown from the JSON schema and the demo's configuration.

Every key of ``l2h/schemas/config.schema.yaml`` carries a ``description``; the docs build renders
``reference_markdown(schema, defaults)`` with ``defaults`` the parsed ``workflow_config.yaml``. Keys are
named by dotted path: ``imagery.xyz.zoom``; ``<name>`` stands for the keys of a mapping whose entries
share one schema (``products.<name>.preset``) and ``[]`` for the items of a list
(``products.<name>.urls[].sha256``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import yaml

_ABSENT = object()
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null",
               dict: "object", list: "array"}
_BOUNDS = (("minimum", "≥ {}"), ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"), ("exclusiveMaximum", "< {}"),
           ("minLength", "length ≥ {}"), ("maxLength", "length ≤ {}"), ("minItems", "≥ {} items"),
           ("maxItems", "≤ {} items"), ("minProperties", "≥ {} entries"), ("maxProperties", "≤ {} entries"))


def iter_properties(schema: dict) -> Iterator[tuple[str, dict, bool]]:
    """Yield (dotted path, property schema with its ``$ref`` resolved, whether required) of every
    property of `schema` at every depth, parents before their children, each path once."""
    seen: set[str] = set()
    for path, prop, required in _walk(schema, schema, ""):
        if path not in seen:
            seen.add(path)
            yield path, prop, required


def missing_descriptions(schema: dict) -> list[str]:
    """The dotted paths of the properties of `schema` that have no (or an empty) ``description``."""
    return [path for path, prop, _ in iter_properties(schema) if not str(prop.get("description") or "").strip()]


def reference_markdown(schema: dict, defaults: dict) -> str:
    """Markdown reference of `schema`: one ``##`` section per top-level key, holding a table of every
    key below it (type, allowed values, default, description). A default is the value at that path in
    `defaults` (e.g. the parsed workflow_config.yaml), else the schema's own ``default``."""
    rows: dict[str, list[str]] = {}
    for path, prop, required in iter_properties(schema):
        rows.setdefault(path.split(".")[0].split("[")[0], []).append(_row(schema, path, prop, required, defaults))
    out = [_text(schema.get("description", "")), ""] if schema.get("description") else []
    required = set(schema.get("required", []))
    for section, prop in schema.get("properties", {}).items():
        prop = _resolve(prop, schema)
        out += [f"## {section}", "", _text(prop.get("description", "")),
                "", "Required section." if section in required else "Optional section.", ""]
        if len(rows[section]) > 1:
            out += ["| Key | Type | Allowed | Default | Description |", "|---|---|---|---|---|", *rows[section][1:], ""]
    return "\n".join(out)


def _walk(node: dict, root: dict, prefix: str) -> Iterator[tuple[str, dict, bool]]:
    node = _resolve(node, root)
    for alternative in node.get("oneOf", []) + node.get("anyOf", []):
        yield from _walk(alternative, root, prefix)
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        yield path, _resolve(sub, root), key in required
        yield from _walk(sub, root, path)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield f"{prefix}.<name>", _resolve(extra, root), False
        yield from _walk(extra, root, f"{prefix}.<name>")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], root, f"{prefix}[]")


def _resolve(node: dict, root: dict) -> dict:
    """`node` with a local ``$ref`` (``#/$defs/...``) merged in; `node`'s own keys win."""
    if "$ref" not in node:
        return node
    target = root
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target, root), **{k: v for k, v in node.items() if k != "$ref"}}


def _types(node: dict, root: dict) -> list[str]:
    node = _resolve(node, root)
    declared = node.get("type", [])
    types = [declared] if isinstance(declared, str) else list(declared)
    if not types and "enum" in node:
        types = [_JSON_TYPES[type(v)] for v in node["enum"]]
    for alternative in node.get("oneOf", []) + node.get("anyOf", []):
        types += _types(alternative, root)
    if not types and ("properties" in node or "additionalProperties" in node):
        types = ["object"]
    return list(dict.fromkeys(types)) or ["any"]


def _allowed(node: dict) -> list[str]:
    parts = [template.format(_number(node[key])) for key, template in _BOUNDS if key in node]
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(_yaml(v)) for v in node["enum"]))
    if "pattern" in node:
        parts.append("matches " + _code(node["pattern"]))
    if node.get("uniqueItems"):
        parts.append("unique items")
    if isinstance(node.get("propertyNames"), dict) and (names := _allowed(node["propertyNames"])):
        parts.append(f"keys ({', '.join(names)})")
    if isinstance(node.get("items"), dict) and (each := _allowed(node["items"])):
        parts.append(f"items ({', '.join(each)})")
    return parts


def _row(root: dict, path: str, prop: dict, required: bool, defaults: dict) -> str:
    value: object = defaults
    for key in path.split("."):
        value = value.get(key, _ABSENT) if isinstance(value, dict) else _ABSENT
    if value is _ABSENT:
        value = prop.get("default", _ABSENT)
    default = "—" if value is _ABSENT else _code(_yaml(value))
    if required:
        default = "required" if value is _ABSENT else f"{default} (required)"
    cells = [_code(path), " or ".join(_types(prop, root)), ", ".join(_allowed(prop)) or "—", default,
             _text(prop.get("description", "")).replace("|", r"\|")]
    return "| " + " | ".join(cells) + " |"


def _yaml(value: object) -> str:
    """`value` in YAML flow style, on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _code(text: str) -> str:
    """Inline code; as HTML where it holds a `|`, which would end a Markdown table cell."""
    if "|" in text or "`" in text:
        return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"
    return f"`{text}`"


def _number(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _text(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()
