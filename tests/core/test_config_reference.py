"""The configuration reference: every schema key is described, and the rendered Markdown lists them all."""

import yaml
from helpers import ROOT

from l2h.core.config import load_schema
from l2h.core.config_reference import iter_properties, missing_descriptions, reference_markdown

SMALL = {
    "description": "A small schema.",
    "type": "object",
    "required": ["net"],
    "properties": {
        "net": {
            "description": "Network settings.",
            "type": "object",
            "required": ["port"],
            "properties": {
                "port": {"description": "TCP port.", "type": "integer", "minimum": 1, "maximum": 65535},
                "mode": {"description": "Either fast | safe.", "enum": ["fast", "safe"]},
                "proxy": {"description": "Proxy; null = none.", "type": ["string", "null"], "pattern": "^(http|https)://"},
                "timeout": {"description": "Seconds.", "type": "number", "exclusiveMinimum": 0, "default": 5},
                "tls": {"description": "TLS.", "type": "object",
                        "properties": {"cert": {"description": "Certificate file.", "type": "string", "minLength": 1}}},
                "peers": {"description": "Peers.", "type": "array", "minItems": 1,
                          "items": {"type": "object", "required": ["host"],
                                    "properties": {"host": {"description": "Peer host.", "type": "string"}}}},
                "aliases": {"description": "Aliases.", "type": "object",
                            "additionalProperties": {"description": "An alias and its target.", "type": "string"}},
                "retry": {"description": "Retries; null = none.", "oneOf": [{"type": "null"}, {"$ref": "#/$defs/retry"}]},
            },
        },
        "log": {"description": "Logging.", "type": "object", "properties": {}},
    },
    "$defs": {"retry": {"type": "object", "properties": {"count": {"description": "Tries.", "type": "integer"}}}},
}
SMALL_DEFAULTS = {"net": {"port": 8080, "mode": "fast", "proxy": None, "aliases": {"a": "b"}, "retry": {"count": 3}}}
SMALL_EXPECTED = """\
A small schema.

## net

Network settings.

Required section.

| Key | Type | Allowed | Default | Description |
|---|---|---|---|---|
| `net.port` | integer | ≥ 1, ≤ 65535 | `8080` (required) | TCP port. |
| `net.mode` | string | one of `fast`, `safe` | `fast` | Either fast \\| safe. |
| `net.proxy` | string or null | matches <code>^(http&#124;https)://</code> | `null` | Proxy; null = none. |
| `net.timeout` | number | > 0 | `5` | Seconds. |
| `net.tls` | object | — | — | TLS. |
| `net.tls.cert` | string | length ≥ 1 | — | Certificate file. |
| `net.peers` | array | ≥ 1 items | — | Peers. |
| `net.peers[].host` | string | — | required | Peer host. |
| `net.aliases` | object | — | `{a: b}` | Aliases. |
| `net.aliases.<name>` | string | — | — | An alias and its target. |
| `net.retry` | null or object | — | `{count: 3}` | Retries; null = none. |
| `net.retry.count` | integer | — | `3` | Tries. |

## log

Logging.

Optional section.
"""


def _real() -> tuple[dict, dict]:
    return load_schema(), yaml.safe_load((ROOT / "workflow_config.yaml").read_text(encoding="utf-8"))


def test_every_key_of_the_real_schema_has_a_description():
    assert missing_descriptions(load_schema()) == []


def test_missing_descriptions_names_each_undescribed_key():
    schema = {"properties": {
        "a": {"description": "A.", "properties": {"b": {"type": "integer"}, "c": {"description": " "}}},
        "d": {"description": "D.", "type": "array", "items": {"properties": {"e": {"type": "string"}}}},
        "f": {"description": "F.", "additionalProperties": {"type": "number"}},
    }}
    assert missing_descriptions(schema) == ["a.b", "a.c", "d[].e", "f.<name>"]


def test_small_schema_renders_exactly():
    assert reference_markdown(SMALL, SMALL_DEFAULTS) == SMALL_EXPECTED


def test_real_reference_lists_every_key():
    schema, defaults = _real()
    text = reference_markdown(schema, defaults)
    paths = [path for path, _, _ in iter_properties(schema)]
    assert len(paths) > 150
    for path in paths:
        assert (f"## {path}\n" if "." not in path else f"| `{path}` |") in text, path
    assert "| `imagery.xyz.zoom` | integer | ≥ 0, ≤ 24 | required |" in text
    assert "| `grid.block_size` | integer | ≥ 64, ≤ 65536 | `512` (required) |" in text
