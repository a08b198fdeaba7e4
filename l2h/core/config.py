"""Validate the workflow configuration against its JSON schema and resolve its paths.

`load_config` is what the Snakefile calls at parse time: it collects *every* problem (unknown key,
wrong type, missing file) into one `ConfigError` whose lines name the key and what was expected.
"""

from __future__ import annotations

import copy
import glob
import math
import re
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from l2h.core.errors import ConfigError
from l2h.core.secrets import literal_secret, redact

SCHEMA_RESOURCE = "schemas/config.schema.yaml"
PATH_KEYWORD = "x-l2h-path"  # schema annotation: "input" (must exist) or "input-glob" (may be a glob)
_REMOTE_PREFIXES = ("/vsi", "http://", "https://", "ftp://", "file://", "s3://", "gs://")
_JSON_TYPE_NAMES = {
    dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number",
    type(None): "null",
}


@cache
def load_schema() -> dict:
    """The configuration's JSON schema (a YAML file shipped inside the package)."""
    return yaml.safe_load(files("l2h").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8"))


def validate_config(config: dict) -> None:
    """Raise ConfigError listing every schema violation of `config`; first, in one line, any number
    that is not finite (YAML's ``.nan``, ``.inf``, ``-.inf``), which the schema's checks let through."""
    check_finite(config)
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = sorted({_describe(err) for err in validator.iter_errors(config)})
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def check_finite(config: dict) -> None:
    """Raise ConfigError, in one line naming each key (dotted, ``[i]`` for a list item), where `config`
    holds a float that is not finite: YAML reads ``.nan``, ``.inf`` and ``-.inf`` as floats, and a JSON
    Schema ``minimum`` or ``maximum`` lets NaN through (every comparison with it is false), as it does
    infinity where the other bound is missing."""
    bad = [f"config key '{_key(key)}' is {_yaml_float(value)}" for key, value in _non_finite(config, ())]
    if bad:
        raise ConfigError(f"{'; '.join(bad)}; expected {'a finite number' if len(bad) == 1 else 'finite numbers'}")


def _non_finite(node: Any, key: tuple) -> Iterator[tuple[tuple, float]]:
    if isinstance(node, float) and not math.isfinite(node):
        yield key, node
    elif isinstance(node, dict):
        for name, value in node.items():
            yield from _non_finite(value, (*key, name))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _non_finite(value, (*key, i))


def _yaml_float(value: float) -> str:
    """A non-finite float as YAML writes it."""
    return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")


def resolve_paths(config: dict, root: str | Path) -> dict:
    """Return a copy of `config` with its input paths made absolute (relative to `root`).

    Paths marked in the schema must exist; globs must match at least one file and are expanded to
    the sorted list of matches. Remote paths (/vsicurl/, http(s)://, ...) are kept as they are.
    """
    resolved = copy.deepcopy(config)
    missing: list[str] = []
    _walk_paths(resolved, load_schema(), (), Path(root), missing)
    if missing:
        raise ConfigError("missing input files:\n  - " + "\n  - ".join(missing))
    return resolved


def is_complete(config: dict) -> bool:
    """Whether `config` holds every required top-level section (a whole configuration, not overrides)."""
    return bool(config) and set(load_schema()["required"]) <= set(config)


def fill_defaults(config: dict) -> dict:
    """A copy of `config` where keys a section leaves out take the schema's `default` (e.g. the
    `train` settings a complete configuration such as examples/own-data.yaml does not set)."""
    filled = copy.deepcopy(config)
    for section, spec in load_schema()["properties"].items():
        if isinstance(filled.get(section), dict):
            for key, prop in spec.get("properties", {}).items():
                if "default" in prop and key not in filled[section]:
                    filled[section][key] = copy.deepcopy(prop["default"])
    return filled


def coerce_scalars(config: dict) -> dict:
    """A copy of `config` where text that spells a number, or true/false, becomes one wherever the schema
    wants a number or a boolean (and no text): Snakemake hands nested ``--config`` values over as
    text (``--config train='{width: 32}'`` gives width '32'). Other text is left for validation to refuse."""
    out = copy.deepcopy(config)
    _coerce(out, load_schema())
    return out


def _coerce(node, schema: dict) -> None:
    if isinstance(node, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in node:
                continue
            types = sub.get("type", [])
            types = [types] if isinstance(types, str) else list(types)
            value = node[key]
            if isinstance(value, str) and "string" not in types:
                node[key] = _scalar(value, types)
            else:
                _coerce(value, sub)


def _scalar(text: str, types: list[str]):
    """`text` as the first of `types` it spells (integer, number, boolean), else unchanged."""
    word = text.strip()
    if "integer" in types and re.fullmatch(r"[+-]?\d+", word):
        return int(word)
    if "number" in types:
        try:
            number = float(word)
        except ValueError:
            pass
        else:  # "nan" and "inf" stay text: the schema then names the key and the number it wants
            if math.isfinite(number):
                return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", word) else number
    if "boolean" in types and word.lower() in ("true", "false"):
        return word.lower() == "true"
    return text


def load_config(config: dict, root: str | Path) -> dict:
    """Validate `config`, fill schema defaults and resolve its paths; the one call the Snakefile makes."""
    config = coerce_scalars(config)
    validate_config(config)
    config = fill_defaults(config)
    check_rules(config)
    return resolve_paths(config, root)


_CUSTOM_ONLY = ("files", "urls", "codes", "nodata")
IMAGERY_SOURCES = ("paths", "xyz", "stac", "wmts")
_PRESET_ONLY = ("edition", "base_url")


def check_rules(config: dict) -> None:
    """Rules between keys that the schema does not express."""
    for product, spec in config["products"].items():
        custom = spec["preset"] == "custom"
        misplaced = [k for k in (_PRESET_ONLY if custom else _CUSTOM_ONLY) if spec.get(k) is not None]
        if misplaced:
            kind = "a custom product" if custom else f"the {spec['preset']} preset"
            raise ConfigError(f"config keys {', '.join(f'products.{product}.{k}' for k in misplaced)} do not "
                              f"apply to {kind} (presets take edition/base_url; custom products take "
                              f"files/urls/codes/nodata)")
        if spec.get("stac") is not None:
            clash = [k for k in ("base_url", "files", "urls") if spec.get(k)]
            if clash:
                raise ConfigError(f"config keys {', '.join(f'products.{product}.{k}' for k in clash)} and "
                                  f"'products.{product}.stac': give the files one way (a STAC search, or URLs/files)")
            if custom and not (spec["stac"].get("url") and spec["stac"].get("asset")):
                raise ConfigError(f"config key 'products.{product}.stac': a custom product's search needs url "
                                  f"and asset (presets know theirs)")
    _check_download_urls(config)
    imagery = config["imagery"]
    given = [k for k in IMAGERY_SOURCES if imagery.get(k)]
    if len(given) != 1:
        raise ConfigError(f"config keys {', '.join(f'imagery.{k}' for k in IMAGERY_SOURCES)}: give exactly one "
                          f"of them (files, an XYZ tile service, a STAC search or a WMTS layer); "
                          f"got {', '.join(given) or 'none'}")
    points = (config.get("evaluation") or {}).get("points")
    if points:
        _check_mapping("evaluation.points", points)
        if points.get("crs_column") and points.get("crs"):
            raise ConfigError("config keys 'evaluation.points.crs_column' and 'evaluation.points.crs': "
                              "give at most one of them (a CRS column, or one CRS for every point)")
    pixels = (config.get("evaluation") or {}).get("pixels")
    if pixels:
        own = [k for k in ("legend", "mapping") if pixels.get(k)]
        if len(own) == 1 or (not own and not points):
            raise ConfigError("config key 'evaluation.pixels': give both legend and mapping (the reference "
                              "rasters' classes and where ours go), or neither to use evaluation.points'")
        if own:
            _check_mapping("evaluation.pixels", pixels)
        bad = [k for k in (pixels.get("recode") or {}) if not str(k).strip().isdigit()]
        if bad:
            raise ConfigError(f"config key 'evaluation.pixels.recode': keys must be integer class codes, got {bad}")


def _check_mapping(key: str, section: dict) -> None:
    """Every class of ``section``'s mapping (ours -> reference) must be one of its legend's."""
    legend = {str(k) for k in section["legend"]}
    unknown = {ours: v for ours, v in section["mapping"].items() if str(v) not in legend}
    if unknown:
        raise ConfigError(f"config key '{key}.mapping': {unknown} map to class(es) missing from {key}.legend; "
                          f"expected some of: {', '.join(sorted(legend))}")


def _download_urls(config: dict) -> Iterator[tuple[str, str]]:
    """(config key, URL) of everything the workflow downloads or requests."""
    for product, spec in config["products"].items():
        if spec.get("base_url"):
            yield f"products.{product}.base_url", spec["base_url"]
        for i, item in enumerate(spec.get("urls") or []):
            yield f"products.{product}.urls[{i}]", item["url"] if isinstance(item, dict) else item
    if (config.get("roads") or {}).get("osm") and "://" in config["roads"]["osm"]:
        yield "roads.osm", config["roads"]["osm"]
    services = [(f"imagery.{name}", config["imagery"].get(name)) for name in ("stac", "wmts")]
    services += [(f"products.{product}.stac", spec.get("stac")) for product, spec in config["products"].items()]
    for key, section in services:
        if (section or {}).get("url"):
            yield f"{key}.url", section["url"]
        if (section or {}).get("asset_query"):  # a query string: checked for secrets like a URL's
            yield f"{key}.asset_query", "?" + section["asset_query"].lstrip("?&")


def _check_download_urls(config: dict) -> None:
    """Every URL has a scheme l2h fetches, and no secret typed into it (it would reach command lines
    and logs): secrets go in environment variables, named in the URL as ${VARIABLE}."""
    from l2h.inputs.download import check_url  # lazy: the Snakefile validates before anything else loads

    xyz = config["imagery"].get("xyz") or {}
    urls = list(_download_urls(config)) + ([("imagery.xyz.url", xyz["url"])] if xyz.get("url") else [])
    for key, url in urls:
        # an XYZ template and a STAC url are not fetched by `download`; an asset_query is no URL
        if key != "imagery.xyz.url" and not key.endswith((".asset_query", "stac.url")):
            check_url(url, key)
        if what := literal_secret(url):
            raise ConfigError(f"config key '{key}': {redact(url)} holds a secret written out ({what}); "
                              "put it in an environment variable and write ${VARIABLE} in its place"
                              + (" (or {api_key} with imagery.xyz.api_key_env)" if key == "imagery.xyz.url" else ""))


def _describe(err: jsonschema.ValidationError) -> str:
    key = _key(err.absolute_path)
    schema, value = err.schema, err.instance
    if err.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(known))
        where = f"under '{key}'" if key else "at the top level"
        return (f"unknown key(s) {', '.join(repr(_join(key, u)) for u in unknown)} {where}; "
                f"expected one of: {', '.join(known)}")
    if err.validator == "required":
        missing = [name for name in schema["required"] if name not in value]
        return "; ".join(f"config key '{_join(key, m)}' is required but missing" for m in missing)
    if err.validator == "type":
        expected = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        return (f"config key '{key}': expected {' or '.join(expected)}, "
                f"got {value!r} ({_type_name(value)})")
    if err.validator == "enum":
        return f"config key '{key}': expected one of {err.validator_value}, got {value!r}"
    return f"config key '{key}': {err.message}"


def _walk_paths(node: Any, schema: dict, key: tuple, root: Path, missing: list[str]) -> None:
    if isinstance(node, dict):
        for name in node:
            sub = schema.get("properties", {}).get(name, schema.get("additionalProperties"))
            if not isinstance(sub, dict):
                continue
            if sub.get(PATH_KEYWORD) and isinstance(node[name], str):
                node[name] = _resolve_one(node[name], sub[PATH_KEYWORD], (*key, name), root, missing)
            else:
                _walk_paths(node[name], sub, (*key, name), root, missing)
    elif isinstance(node, list) and "items" in schema:
        items = schema["items"]
        if items.get(PATH_KEYWORD):
            expanded: list[str] = []
            for i, item in enumerate(node):
                out = _resolve_one(item, items[PATH_KEYWORD], (*key, i), root, missing)
                expanded.extend(out if isinstance(out, list) else [out])
            node[:] = expanded
        else:
            for i, item in enumerate(node):
                _walk_paths(item, items, (*key, i), root, missing)


def _resolve_one(value: str, kind: str, key: tuple, root: Path, missing: list[str]) -> str | list[str]:
    if value.startswith(_REMOTE_PREFIXES):
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    if kind == "input-glob" and glob.has_magic(str(path)):
        matches = sorted(glob.glob(str(path)))
        if not matches:
            missing.append(f"config key '{_key(key)}': no file matches the pattern {path}")
        return matches
    if not path.exists():
        missing.append(f"config key '{_key(key)}': file not found: {path}")
    return str(path)


def _key(path) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
