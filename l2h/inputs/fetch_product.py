"""Fetch one configured product's files into resources/raw/<product>/ and describe them in a
manifest (code table, files, expected grid) that harmonize reads; custom local files are listed in
place."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from l2h.core.classes import ProductCode
from l2h.core.errors import InputError
from l2h.core.io import atomic_path
from l2h.inputs.download import DownloadError, download_many
from l2h.inputs.products import Product

log = logging.getLogger(__name__)


@dataclass
class ProductFiles:
    """One product as harmonize sees it: its code table and the raster files it has locally."""

    id: str
    codes: dict[int, ProductCode]
    paths: list[str]
    labels: list[str] = field(default_factory=list)  # "<product> tile <name>" per path, for errors
    expected_crs: list[str | None] = field(default_factory=list)
    expected_resolution: list[float | None] = field(default_factory=list)
    nodata: tuple[int, ...] = (0,)
    manifest: str | None = None  # the manifest that listed the files; removed with a corrupt file
    refetchable: list[bool] = field(default_factory=list)  # downloaded copies (not the user's own files)


def fetch_product(product: Product, manifest_path: str | Path, *, max_workers: int = 4, retries: int = 5,
                  backoff: float = 1.0, timeout: float = 120, progress: bool = True) -> dict:
    """Download the product's files next to `manifest_path`, then write the manifest atomically.

    Tiles the server does not have (HTTP 404) are recorded as missing when the product allows it
    (open ocean); any other failure raises DownloadError naming each file, after the rest landed.
    """
    folder = Path(manifest_path).parent
    present: list[dict] = []
    missing: list[str] = []
    pending = list(product.files)
    if pending:
        jobs = [dict(url=f.url, dest=folder / f.name, label=f.label, retries=retries, backoff=backoff,
                     timeout=timeout, sha256=f.sha256, expected_size=f.expected_size) for f in pending]
        results = download_many(jobs, max_workers=max_workers, progress=progress, return_errors=True)
        errors = []
        for f, result in zip(pending, results):
            if isinstance(result, DownloadError):
                if product.missing_ok and result.not_found:
                    log.info("%s: not on the server (allowed for %s: no data there)", f.label, product.preset)
                    missing.append(f.label)
                else:
                    errors.append(str(result))
                continue
            present.append(dict(path=str(result), label=f.label, refetchable=True, expected_crs=f.expected_crs,
                                expected_resolution=f.expected_resolution))
        if errors:
            raise DownloadError(f"{len(errors)} of {len(jobs)} file(s) of product {product.id} failed:\n  - "
                                + "\n  - ".join(errors))
    for path in product.local_files:
        if not Path(path).is_file() and not str(path).startswith("/vsi"):
            raise InputError(f"product {product.id}: file not found: {path}")
        present.append(dict(path=str(path), label=f"{product.id} file {Path(path).name}", refetchable=False,
                            expected_crs=None, expected_resolution=None))
    if not present:
        raise InputError(f"product {product.id}: none of its {len(product.files)} tile(s) exist on the "
                         f"server ({', '.join(missing)}); the regions lie outside its coverage")
    manifest = dict(id=product.id, preset=product.preset, nodata=list(product.nodata),
                    codes={str(c): dict(name=pc.name, classes=sorted(pc.classes)) for c, pc in product.codes.items()},
                    files=present, missing=missing)
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(path: str | Path) -> ProductFiles:
    """The product described by a manifest written by `fetch_product`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"product manifest {path}: unreadable ({exc}); delete it to fetch again") from None
    try:
        codes = {int(c): ProductCode(int(c), e["name"], frozenset(e["classes"])) for c, e in data["codes"].items()}
        files = data["files"]
        return ProductFiles(id=data["id"], codes=codes, paths=[f["path"] for f in files],
                            refetchable=[f["refetchable"] for f in files],
                            labels=[f["label"] for f in files], expected_crs=[f["expected_crs"] for f in files],
                            expected_resolution=[f["expected_resolution"] for f in files],
                            nodata=tuple(data["nodata"]), manifest=str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"product manifest {path}: lacks or mangles {exc} (written by another l2h version?); "
                         f"delete it to fetch again") from None
