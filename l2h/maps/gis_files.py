"""Files beside each map COG that make GIS tools show class names instead of codes.

- ``<map>.tif.aux.xml``: GDAL's PAM sidecar with the band's category names and a thematic raster
  attribute table (value, class name, key, RGBA), which ``gdalinfo`` and QGIS read with the COG;
- ``<map>.qml``: a QGIS style (a paletted renderer with the class names and colours for a class map, a
  colour ramp over 0-1 for a confidence layer), which QGIS applies on opening ``<map>.tif``.

GDAL keeps category names and attribute tables of GeoTIFFs in the PAM sidecar, never inside the file;
the COG itself carries the colour table and the names as dataset metadata (``CLASS_<code>``, see
:func:`class_name_tags`), so a copy without its sidecar still says what its codes mean.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from l2h.core.classes import CLASSES, IGNORE, NODATA, hex_to_rgb
from l2h.core.io import atomic_path

# GDALRATFieldType and GDALRATFieldUsage (gdal.h)
_INTEGER, _STRING = 0, 2
_GENERIC, _NAME, _MINMAX, _RED, _GREEN, _BLUE, _ALPHA = 0, 2, 5, 6, 7, 8, 9
_RAT_FIELDS = [("Value", _INTEGER, _MINMAX), ("Class", _STRING, _NAME), ("Key", _STRING, _GENERIC),
               ("Red", _INTEGER, _RED), ("Green", _INTEGER, _GREEN), ("Blue", _INTEGER, _BLUE),
               ("Alpha", _INTEGER, _ALPHA)]
# the confidence layer stores the top class probability x 255; its ramp in QGIS (viridis stops)
_CONFIDENCE_RAMP = [(0, "#440154"), (64, "#3b528b"), (128, "#21918c"), (191, "#5ec962"), (255, "#fde725")]


def class_name_tags() -> dict[str, str]:
    """Dataset metadata naming every class code (``CLASS_1='tree cover'``...), written into the COG."""
    return {f"CLASS_{c.code}": c.name for c in CLASSES}


def aux_xml_path(cog: str | os.PathLike) -> Path:
    """Where GDAL looks for the PAM sidecar of `cog`."""
    return Path(f"{cog}.aux.xml")


def qml_path(cog: str | os.PathLike) -> Path:
    """Where QGIS looks for the default style of `cog`: the same name with ``.qml``."""
    return Path(cog).with_suffix(".qml")


def _write_xml(root: ET.Element, path: Path, doctype: str = "") -> None:
    ET.indent(root)
    text = doctype + ET.tostring(root, encoding="unicode") + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_category_sidecar(cog: str | os.PathLike) -> Path:
    """Write the PAM sidecar of a class COG: category names for codes 0..255 (empty where unused) and
    the thematic attribute table of the eleven classes. Returns its path."""
    names = {NODATA: "no data", IGNORE: "ignored"} | {c.code: c.name for c in CLASSES}
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    ET.SubElement(band, "Description").text = "land-cover class"
    categories = ET.SubElement(band, "CategoryNames")
    for code in range(max(names) + 1):
        ET.SubElement(categories, "Category").text = names.get(code, "")
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for index, (name, kind, usage) in enumerate(_RAT_FIELDS):
        field = ET.SubElement(rat, "FieldDefn", index=str(index))
        ET.SubElement(field, "Name").text = name
        ET.SubElement(field, "Type").text = str(kind)
        ET.SubElement(field, "Usage").text = str(usage)
    for index, c in enumerate(CLASSES):
        row = ET.SubElement(rat, "Row", index=str(index))
        for value in (c.code, c.name, c.key, *hex_to_rgb(c.colour), 255):
            ET.SubElement(row, "F").text = str(value)
    path = aux_xml_path(cog)
    _write_xml(root, path)
    return path


def _qgis_style(renderer: ET.Element) -> ET.Element:
    root = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    pipe.append(renderer)
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    return root


def write_qml(cog: str | os.PathLike, layer: str) -> Path:
    """Write the QGIS style of a map COG (``layer``: ``classes`` or ``confidence``). Returns its path."""
    if layer == "classes":
        renderer = ET.Element("rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1",
                              nodataColor="")
        ET.SubElement(renderer, "rasterTransparency")
        palette = ET.SubElement(renderer, "colorPalette")
        for c in CLASSES:
            ET.SubElement(palette, "paletteEntry", value=str(c.code), color=c.colour, alpha="255", label=c.name)
    elif layer == "confidence":
        renderer = ET.Element("rasterrenderer", type="singlebandpseudocolor", band="1", opacity="1",
                              alphaBand="-1", classificationMin="0", classificationMax="255", nodataColor="")
        ET.SubElement(renderer, "rasterTransparency")
        shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader",
                               colorRampType="INTERPOLATED", classificationMode="1", clip="0",
                               minimumValue="0", maximumValue="255")
        for value, colour in _CONFIDENCE_RAMP:
            ET.SubElement(shader, "item", value=str(value), color=colour, alpha="255",
                          label=f"{value / 255:.2f}")
    else:
        raise ValueError(f"map layer must be classes or confidence, got {layer!r}")
    path = qml_path(cog)
    _write_xml(_qgis_style(renderer), path, doctype="<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n")
    return path
