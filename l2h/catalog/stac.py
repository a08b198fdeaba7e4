"""A STAC Collection of a run's maps: one Item per output COG (class map or confidence, per region and
national) with the ``proj``, ``raster``, ``classification`` and ``file`` extensions, and the model's
provenance (training settings, the ONNX model's metadata, the accuracy summary) on the Collection.

Items are built by rio-stac from the COGs (bounds, footprint, projection, band statistics read from an
overview of at most ``raster_max_size`` pixels, so a national map costs what a region does) and
written by pystac as a self-contained catalog: relative links, assets addressed relative to each
Item, every file written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.stac_io import DefaultStacIO
from rio_stac import create_stac_item

from l2h.core.classes import CLASSES, NODATA
from l2h.core.errors import InputError
from l2h.core.io import atomic_path, file_problem, sha256_file
from l2h.maps.chunks import PROVIDERS_TAG
from l2h.maps.gis_files import aux_xml_path, qml_path

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
LAYER_TITLES = {"classes": "1 m land cover", "confidence": "confidence of the 1 m land cover"}


@dataclass(frozen=True)
class MapFile:
    """One output COG: its path, layer (``classes`` or ``confidence``) and region (slug, display name);
    the national map has the slug ``national``."""
    path: Path
    layer: str
    region: str
    region_name: str

    @property
    def item_id(self) -> str:
        """The Item's id: ``map-<region>`` or ``confidence-<region>``."""
        return f"{'map' if self.layer == 'classes' else 'confidence'}-{self.region}"


class AtomicStacIO(DefaultStacIO):
    """pystac I/O that writes each JSON file to a temporary name, then renames it."""

    def write_text_to_href(self, href: str, txt: str) -> None:  # noqa: D102 - pystac's hook
        with atomic_path(href) as tmp:
            tmp.write_text(txt, encoding="utf-8")


def _checksummed(asset: pystac.Asset, path: Path) -> pystac.Asset:
    """Add the ``file`` extension's size and SHA-256 multihash of `path` to `asset`."""
    ext = FileExtension.ext(asset, add_if_missing=True)
    ext.size = path.stat().st_size
    ext.checksum = "1220" + sha256_file(path)  # multihash: sha2-256 (0x12), 32 bytes (0x20)
    return asset


def _classes() -> list[Classification]:
    return [Classification.create(value=NODATA, description="no data", name="nodata", nodata=True)] + [
        Classification.create(value=c.code, description=c.name, name=c.key, color_hint=c.colour.lstrip("#").upper())
        for c in CLASSES]


def map_item(entry: MapFile, collection_id: str) -> pystac.Item:
    """The STAC Item of one map COG, its assets' hrefs absolute (made relative on saving)."""
    problem = file_problem(entry.path)
    if problem is not None:
        raise InputError(f"stac: map {entry.path} does not read ({problem}); build it first")
    produced = dt.datetime.fromtimestamp(entry.path.stat().st_mtime, dt.UTC).replace(microsecond=0)
    title = f"{entry.region_name}: {LAYER_TITLES[entry.layer]}"
    item = create_stac_item(
        str(entry.path), input_datetime=produced, id=entry.item_id, collection=collection_id,
        properties={"title": title, "l2h:layer": entry.layer, "l2h:region": entry.region},
        asset_name="data", asset_roles=["data"], asset_media_type=COG_MEDIA_TYPE,
        asset_href=str(entry.path.resolve()), with_proj=True, with_raster=True)
    with rasterio.open(entry.path) as src:  # the execution providers that mapped its blocks (l2h mosaic)
        providers = json.loads(src.tags().get(PROVIDERS_TAG, "{}")).get("touching")
    if providers:
        item.properties["l2h:execution_providers"] = providers
    data = _checksummed(item.assets["data"], entry.path)
    data.title = title
    if entry.layer == "classes":
        ClassificationExtension.ext(data, add_if_missing=True).classes = _classes()
        _add_file(item, "metadata", aux_xml_path(entry.path), "GDAL sidecar: class names and attribute table")
    else:
        data.extra_fields["l2h:scale"] = "value / 255 = probability of the mapped class; 0 = no data"
    _add_file(item, "style", qml_path(entry.path), "QGIS style")
    return item


def _add_file(item: pystac.Item, role: str, path: Path, title: str) -> None:
    """Add the sidecar file `path`, when it exists, as an asset with checksum."""
    if path.is_file():
        item.add_asset(role, pystac.Asset(str(path.resolve()), title=title, media_type=pystac.MediaType.XML,
                                          roles=[role]))
        _checksummed(item.assets[role], path)


def _summary(accuracy: dict) -> dict:
    """The headline numbers of `l2h evaluate`'s accuracy.json: the map's and each product's, on the same
    reference points."""
    keys = ("oa", "oa_ci95", "kappa", "miou", "n_points")
    try:
        return {"map": {k: accuracy["map"][k] for k in keys if k in accuracy["map"]},
                "products": {p: {k: e[k] for k in keys if k in e} for p, e in accuracy.get("products", {}).items()}}
    except (KeyError, TypeError) as exc:
        raise InputError(f"stac: the accuracy summary has no map scores ({exc})") from None


def _derived_from(item: pystac.Item, sources: dict) -> None:
    """Record the imagery items a map was made from ({id: {"item": href, "asset": href}}, hrefs already
    redacted): their ids as ``l2h:imagery_items``, a ``derived_from`` link to each item's JSON."""
    item.properties["l2h:imagery_items"] = sorted(sources)
    for item_id, where in sorted(sources.items()):
        if where.get("item"):
            item.add_link(pystac.Link("derived_from", where["item"], media_type=pystac.MediaType.JSON,
                                      title=item_id))


def write_collection(maps: list[MapFile], out: str | os.PathLike, run_name: str, provenance: dict,
                     accuracy_json: str | os.PathLike | None = None,
                     imagery_items: dict[str, dict] | None = None) -> pystac.Collection:
    """Write ``out`` (the Collection's JSON) and one Item per map beside it (``<id>/<id>.json``).

    ``provenance``: what made the maps (training settings, model metadata), stored as ``l2h:provenance``;
    ``accuracy_json``: `l2h evaluate`'s result, summarised as ``l2h:accuracy``; ``imagery_items``:
    region -> the STAC imagery items its blocks were made from (see :func:`_derived_from`); the
    national map derives from all of them.
    """
    if not maps:
        raise InputError("stac: no maps to describe")
    out = Path(out)
    collection_id = f"l2h-{run_name}"
    items = [map_item(m, collection_id) for m in maps]
    if imagery_items:
        everything = {k: v for sources in imagery_items.values() for k, v in sources.items()}
        for entry, item in zip(maps, items):
            sources = everything if entry.region == "national" else imagery_items.get(entry.region)
            if sources:
                _derived_from(item, sources)
    extent = pystac.Extent(
        pystac.SpatialExtent([[min(i.bbox[0] for i in items), min(i.bbox[1] for i in items),
                               max(i.bbox[2] for i in items), max(i.bbox[3] for i in items)]]),
        pystac.TemporalExtent([[min(i.datetime for i in items), max(i.datetime for i in items)]]))
    collection = pystac.Collection(
        id=collection_id, title=f"l2h 1 m land cover: {run_name}", extent=extent, license="other",
        description="1 m land-cover maps made by l2h (L2HNet trained on the agreement of 10 m products and "
                    "OpenStreetMap roads), with the confidence of each pixel. Item datetimes are when each "
                    "map was produced.",
        keywords=["land cover", "1 m", "L2HNet", "SinoLC-1"],
        extra_fields={"l2h:provenance": provenance})
    ClassificationExtension.add_to(collection)
    collection.summaries.add("classification:classes", [c.to_dict() for c in _classes()])
    if accuracy_json is not None:
        try:
            accuracy = json.loads(Path(accuracy_json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"stac: cannot read accuracy summary {accuracy_json}: {exc}") from None
        collection.extra_fields["l2h:accuracy"] = _summary(accuracy)
    for item in items:
        collection.add_item(item)
    collection.normalize_hrefs(str(out.parent.resolve()))
    collection.set_self_href(str(out.resolve()))
    for item in items:
        item.make_asset_hrefs_relative()
    collection.save(pystac.CatalogType.SELF_CONTAINED, stac_io=AtomicStacIO())
    return collection
