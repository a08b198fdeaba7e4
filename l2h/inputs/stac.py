"""STAC as a source of imagery and products: find the items of a collection over an area.

A source is a STAC API (searched with pystac-client), a static catalog or collection (walked with
pystac), or an ItemCollection file (a saved search). The search is the same for all three: the
collection, a bounding box in longitude/latitude, an optional datetime range and an optional filter
on item properties (applied here too, so it means the same whatever the server supports). Items
come back in a stated order (newest first by default; ties by id), each with the absolute href of
the asset asked for. A URL may name secrets as ``${VARIABLE}`` (:mod:`l2h.core.secrets`).
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pystac
import requests
import shapely.geometry
from pystac.utils import str_to_datetime

from l2h.core.errors import ConfigError, InputError
from l2h.core.secrets import expand, redact
from l2h.inputs.download import local_path

ORDERS = ("newest", "oldest")
OPERATORS = {"eq": operator.eq, "neq": operator.ne, "lt": operator.lt, "lte": operator.le,
             "gt": operator.gt, "gte": operator.ge}
_TIMEOUT = 60


class NoItems(InputError):
    """The search found nothing over the area."""


@dataclass(frozen=True)
class StacSearch:
    """What to look for: `url` of an API, catalog or ItemCollection; the `collection` and `asset`
    keys; `datetime` ("2020-01-01/2022-12-31", open ends as ".."); `filter` {property: {op: value}}
    with op one of eq, neq, lt, lte, gt, gte; `order` newest or oldest first; `asset_query` a query
    string added to every http(s) asset href (a storage signature: write it as ${VARIABLE});
    `what` names the config key in messages."""

    url: str
    asset: str
    collection: str | None = None
    datetime: str | None = None
    filter: dict = field(default_factory=dict)
    order: str = "newest"
    asset_query: str | None = None  # appended to http(s) asset hrefs, e.g. "${AZURE_SAS}" (a signature)
    what: str = "stac"

    @classmethod
    def from_config(cls, section: dict, what: str) -> StacSearch:
        """The search a config section describes; ConfigError naming `what` for a bad setting."""
        search = cls(url=section["url"], asset=section["asset"], collection=section.get("collection"),
                     datetime=section.get("datetime"), filter=section.get("filter") or {},
                     order=section.get("order") or "newest", asset_query=section.get("asset_query"), what=what)
        if search.order not in ORDERS:
            raise ConfigError(f"config key '{what}.order': {search.order!r} is not one of {', '.join(ORDERS)}")
        for prop, condition in search.filter.items():
            bad = ([op for op in (condition or {}) if op not in OPERATORS] if isinstance(condition, dict)
                   else [condition])
            if bad or not condition:
                raise ConfigError(f"config key '{what}.filter.{prop}': expected {{operator: value}} with "
                                  f"operators among {', '.join(OPERATORS)}, got {condition!r}")
        _datetime_range(search.datetime, what)
        return search

    def describe(self) -> str:
        """The search in words, secrets redacted."""
        parts = [f"collection {self.collection}" if self.collection else "every collection",
                 f"asset {self.asset!r}"]
        if self.datetime:
            parts.append(f"datetime {self.datetime}")
        if self.filter:
            parts.append(f"filter {json.dumps(self.filter, sort_keys=True)}")
        return f"STAC {redact(self.url)} ({', '.join(parts)})"


@dataclass(frozen=True)
class Found:
    """An item the search kept, with its footprint, the absolute href of its asset and what the
    catalog says of it."""

    item: pystac.Item
    footprint: object  # shapely geometry, longitude/latitude
    href: str
    checksum: str | None  # the asset's SHA-256 from file:checksum, hex, when the catalog gives one
    size: int | None  # file:size, bytes

    @property
    def id(self) -> str:
        """The item's id."""
        return self.item.id


def search(query: StacSearch, bbox: tuple[float, float, float, float]) -> list[Found]:
    """The items of `query` whose geometry meets `bbox` (west, south, east, north in degrees), in
    the query's order. InputError (one line) when the source cannot be read, an item is not in
    longitude/latitude or lacks the asset, or nothing is found."""
    url = expand(query.url, f"config key '{query.what}.url'")
    root = _read_json(url, query)
    base = None  # what relative asset hrefs are relative to, when their item has no self link
    if root.get("type") == "FeatureCollection":
        items = list(pystac.ItemCollection.from_dict(root, preserve_dict=False))
        base = url
    elif any(link.get("rel") == "search" for link in root.get("links", [])):
        items = _api_search(url, query, bbox)
    elif root.get("type") in ("Catalog", "Collection"):
        items = _walk(root, url, query)
    else:
        raise InputError(f"{query.what}: {redact(query.url)} is not a STAC API, catalog, collection or "
                         f"ItemCollection (its JSON has type {root.get('type')!r})")
    area = shapely.geometry.box(*bbox)
    start, end = _datetime_range(query.datetime, query.what)
    kept = []
    for item in items:
        if query.collection and item.collection_id not in (None, query.collection):
            continue
        footprint = _lonlat_geometry(item, query)
        if not overlaps(footprint, area) or not _in_time(item, start, end) or not _passes(item, query.filter):
            continue
        kept.append(_found(item, footprint, query, base))
    if not kept:
        raise NoItems(f"{query.what}: the search found no items: {query.describe()} over "
                      f"[{', '.join(f'{v:.5f}' for v in bbox)}]; widen the datetime range or the filter, "
                      f"or check the collection")
    newest_first = query.order == "newest"
    kept.sort(key=lambda f: f.id)
    kept.sort(key=lambda f: _when(f.item), reverse=newest_first)
    return kept


def overlaps(footprint, area) -> bool:
    """Whether two lon/lat geometries share some area (an edge alone is no overlap)."""
    return footprint.intersects(area) and not footprint.touches(area)


def gdal_name(href: str) -> str:
    """The GDAL dataset name of an asset href: ``/vsicurl/`` for http(s) (GDAL reads the byte ranges
    it needs), a local path for file:// and plain paths."""
    local = local_path(href)
    if local is not None:
        return str(local)
    return f"/vsicurl/{href}" if urlsplit(href).scheme in ("http", "https") else href


def _read_json(url: str, query: StacSearch) -> dict:
    """The JSON at `url` (secrets filled in; messages name ``query.url``)."""
    try:
        if urlsplit(url).scheme in ("http", "https"):
            response = requests.get(url, timeout=_TIMEOUT)
            response.raise_for_status()
            text = response.text
        else:
            text = Path(gdal_name(url)).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, requests.RequestException) as exc:
        raise InputError(f"{query.what}: cannot read {redact(query.url)}: "
                         f"{redact(' '.join(str(exc).split()))}") from None
    except ValueError:
        raise InputError(f"{query.what}: {redact(query.url)} is not JSON (an HTML page or an error message?); "
                         f"expected a STAC API, catalog or ItemCollection") from None
    if not isinstance(data, dict):
        raise InputError(f"{query.what}: {redact(query.url)} is JSON but not a STAC object")
    return data


def _api_search(url: str, query: StacSearch, bbox) -> list[pystac.Item]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(url, timeout=_TIMEOUT)
        found = client.search(collections=[query.collection] if query.collection else None, bbox=list(bbox),
                              datetime=query.datetime, max_items=None)
        return list(found.items())
    except (APIError, requests.RequestException, OSError, ValueError) as exc:
        raise InputError(f"{query.what}: the search of {redact(query.url)} failed: "
                         f"{redact(' '.join(str(exc).split()))}") from None


def _walk(root: dict, url: str, query: StacSearch) -> list[pystac.Item]:
    """Every item under the static catalog `root` read from `url` (links resolved relative to it)."""
    try:
        catalog = pystac.read_dict(root, href=url)
        return list(catalog.get_items(recursive=True))
    except Exception as exc:  # noqa: BLE001 - pystac raises many kinds on a broken or unreachable link
        raise InputError(f"{query.what}: cannot walk the catalog {redact(query.url)}: "
                         f"{redact(' '.join(str(exc).split()))}") from None


def _lonlat_geometry(item: pystac.Item, query: StacSearch):
    """The item's footprint; STAC geometries are WGS84 longitude/latitude, anything else is refused."""
    if item.geometry is None:
        raise InputError(f"{query.what}: item {item.id} of {redact(query.url)} has no geometry")
    geometry = shapely.geometry.shape(item.geometry)
    west, south, east, north = geometry.bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise InputError(f"{query.what}: item {item.id} of {redact(query.url)} has a geometry outside "
                         f"longitude/latitude ({west:.6g}, {south:.6g}, {east:.6g}, {north:.6g}): the catalog is "
                         f"in another CRS, but STAC geometries must be WGS84 (EPSG:4326)")
    return geometry


def _datetime_range(text: str | None, what: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(start, end) of a datetime or range; a date, month or year alone spans all of it."""
    if not text:
        return None, None
    ends = str(text).split("/")
    if len(ends) > 2:
        raise ConfigError(f"config key '{what}.datetime': {text!r} is not a date, datetime or start/end range")
    try:
        first, last = ends[0], ends[-1]
        start = None if first in ("", "..") else _parse_time(first, end=False)
        end = None if last in ("", "..") else _parse_time(last, end=True)
    except ValueError:
        raise ConfigError(f"config key '{what}.datetime': {text!r} is not a date, datetime or start/end "
                          f"range such as 2020-01-01/2022-12-31") from None
    return start, end


def _parse_time(text: str, end: bool) -> dt.datetime:
    """A year, month, date or RFC 3339 datetime (UTC unless it says otherwise); with `end`, the last
    moment of the year, month or day it names."""
    text = str(text).strip()
    partial = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
    if partial:
        year, month, day = int(partial[1]), int(partial[2] or 1), int(partial[3] or 1)
        start = dt.datetime(year, month, day, tzinfo=dt.UTC)
        if not end:
            return start
        following = (start + dt.timedelta(days=1) if partial[3] else
                     start.replace(year=year + month // 12, month=month % 12 + 1) if partial[2] else
                     start.replace(year=year + 1))
        return following - dt.timedelta(microseconds=1)
    moment = str_to_datetime(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _aware(value) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else str_to_datetime(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _when(item: pystac.Item) -> dt.datetime:
    """The item's time for ordering: datetime, else end_datetime, else start_datetime."""
    for value in (item.datetime, item.properties.get("end_datetime"), item.properties.get("start_datetime")):
        if value:
            return _aware(value)
    return dt.datetime.min.replace(tzinfo=dt.UTC)


def _in_time(item: pystac.Item, start, end) -> bool:
    if start is None and end is None:
        return True
    first = _aware(item.datetime or item.properties.get("start_datetime") or "0001-01-01T00:00:00Z")
    last = _aware(item.datetime or item.properties.get("end_datetime") or "9999-12-31T00:00:00Z")
    return (start is None or last >= start) and (end is None or first <= end)


def _passes(item: pystac.Item, conditions: dict) -> bool:
    """Whether the item has every filtered property and each condition holds."""
    for prop, condition in conditions.items():
        if prop not in item.properties:
            return False
        value = item.properties[prop]
        try:
            if not all(OPERATORS[op](value, bound) for op, bound in condition.items()):
                return False
        except TypeError:  # e.g. a string compared with a number: the condition does not hold
            return False
    return True


def _found(item: pystac.Item, footprint, query: StacSearch, base: str | None) -> Found:
    asset = item.assets.get(query.asset)
    if asset is None:
        raise InputError(f"{query.what}: item {item.id} has no asset {query.asset!r} (it has: "
                         f"{', '.join(sorted(item.assets)) or 'none'}); set {query.what}.asset")
    href = asset.get_absolute_href() or asset.href
    if base and not urlsplit(href).scheme and not Path(href).is_absolute():
        href = urljoin(base, href)
    if query.asset_query and urlsplit(href).scheme in ("http", "https"):
        href += ("&" if urlsplit(href).query else "?") + query.asset_query.lstrip("?&")
    checksum = asset.extra_fields.get("file:checksum")
    sha256 = None
    if checksum:
        if not re.fullmatch(r"1220[0-9a-fA-F]{64}", str(checksum)):
            raise InputError(f"{query.what}: item {item.id} asset {query.asset!r}: file:checksum {checksum!r} "
                             f"is not a SHA-256 multihash (1220 + 64 hex digits)")
        sha256 = str(checksum)[4:].lower()
    return Found(item=item, footprint=footprint, href=href, checksum=sha256, size=asset.extra_fields.get("file:size"))
