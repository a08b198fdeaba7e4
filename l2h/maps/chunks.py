"""Inference chunks: several blocks of one region per inference job, and the manifest each job writes.

A national run has tens of thousands of blocks; one Snakemake job per block makes the DAG itself
take minutes to build (about 5 ms of CPU per job). :func:`chunk_blocks` cuts each region's blocks
(in :func:`l2h.core.blocks.blocks_for_regions` order) into runs of ``infer.blocks_per_job``; one job
predicts a chunk and writes:

* one class GeoTIFF per block (``<out_dir>/<block>.tif``, plus ``<block>_confidence.tif`` and
  ``<block>_network.tif``, the network's own map without the label prior, when asked), each
  written atomically;
* a progress file (``<out_dir>/.chunk_<n>.progress.json``) recording each block once its files are
  whole: a job killed half-way, run again with the same inputs (the same *key*), keeps the blocks
  it had recorded. The record is what makes a block finished: one whose files were whole when the
  kill came but not yet recorded is predicted again (the same files, rewritten);
* at the end the manifest (``chunk_<n>.json``, the job's declared output) listing every block, its
  bounds, the regions it touches, its files and the execution provider that mapped it, with the
  count of blocks per provider (``providers``). The mosaics read the blocks from the manifests.

A forced rerun (no progress file: the last attempt finished) predicts every block again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from l2h.core.blocks import Block
from l2h.core.errors import InputError
from l2h.core.io import atomic_path, is_readable, sha256_file

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "l2h-block-chunk"
MANIFEST_VERSION = 1
LAYERS = ("classes", "confidence", "network")  # the files a manifest lists per block


def chunk_blocks(blocks: Iterable[Block], per_job: int) -> dict[str, list[tuple[Block, ...]]]:
    """{region: [chunk, ...]}: each region's own blocks, in the given order, ``per_job`` at a time
    (the last chunk of a region may be shorter)."""
    if per_job < 1:
        raise ValueError(f"blocks per job must be >= 1, got {per_job}")
    by_region: dict[str, list[Block]] = {}
    for block in blocks:
        by_region.setdefault(block.region, []).append(block)
    return {region: [tuple(own[i:i + per_job]) for i in range(0, len(own), per_job)]
            for region, own in by_region.items()}


def chunk_manifest_path(region: str, chunk: int) -> str:
    """The manifest a chunk's job writes (relative to the working directory)."""
    return f"resources/pred/{region}/chunk_{chunk}.json"


def block_paths(out_dir: str | Path, block: str) -> dict[str, str]:
    """{layer: path} of a block's predictions in ``out_dir``."""
    return {"classes": str(Path(out_dir) / f"{block}.tif"),
            "confidence": str(Path(out_dir) / f"{block}_confidence.tif"),
            "network": str(Path(out_dir) / f"{block}_network.tif")}


def chunk_key(settings: Mapping, files: Sequence[str | Path], imagery: str | None = None) -> str:
    """What a chunk's blocks depend on: the job's settings, the contents of its input files (model,
    region masks, label sets) and, when `imagery` is a local file (a mosaic VRT, or a file rewritten
    since: too big to hash), its size and time stamp. A killed attempt's blocks are reused only
    under the same key."""
    settings = dict(settings)
    if imagery is not None and Path(imagery).is_file():
        stat = Path(imagery).stat()
        settings["imagery_file"] = [stat.st_size, stat.st_mtime_ns]
    text = json.dumps({"settings": settings, "files": [sha256_file(p) for p in files]}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _progress_path(manifest: str | Path) -> Path:
    manifest = Path(manifest)
    return manifest.with_name(f".{manifest.stem}.progress.json")


def _write_json(path: Path, data: Mapping) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1), encoding="utf-8")


class ChunkProgress:
    """The blocks a chunk job has finished so far, kept on disk (see the module doc)."""

    def __init__(self, manifest: str | Path, key: str):
        self.manifest = Path(manifest)
        self.key = key
        self.path = _progress_path(self.manifest)
        self.done: dict[str, dict] = {}
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); predicting every block again", self.path, exc)
            return
        if old.get("key") != key:
            log.info("%s: written for other inputs or settings; predicting every block again", self.path)
            return
        self.done = {b: e for b, e in old.get("blocks", {}).items()
                     if all(p is None or is_readable(p) for p in (e.get(layer) for layer in LAYERS))}
        if lost := len(old.get("blocks", {})) - len(self.done):
            log.warning("%s: %d finished block(s) no longer read back; predicting them again", self.path, lost)

    def record(self, entry: Mapping) -> None:
        """Mark a block finished (its files are already in place)."""
        self.done[entry["id"]] = dict(entry)
        _write_json(self.path, {"key": self.key, "blocks": self.done})

    def finish(self, region: str, order: Sequence[str]) -> dict:
        """Write the manifest (blocks in ``order``), then drop the progress file; the manifest."""
        missing = [b for b in order if b not in self.done]
        if missing:
            raise ValueError(f"chunk {self.manifest}: blocks {missing} were not predicted")
        blocks = [self.done[b] for b in order]
        providers = Counter(b.get("provider", "unknown") for b in blocks)
        manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "region": region,
                    "key": self.key, "providers": dict(sorted(providers.items())), "blocks": blocks}
        _write_json(self.manifest, manifest)
        self.path.unlink(missing_ok=True)
        return manifest


def read_manifest(path: str | Path) -> list[dict]:
    """The block entries of a chunk manifest; a missing or foreign file -> InputError naming it."""
    return list(_read_manifest(path)["blocks"])


def _read_manifest(path: str | Path) -> dict:
    """A chunk manifest, checked (see :func:`read_manifest`)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"chunk manifest {path}: cannot be read ({exc}); delete it and rerun to predict "
                         f"its blocks again") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputError(f"chunk manifest {path}: not an l2h chunk manifest (format {MANIFEST_FORMAT!r} "
                         f"expected); delete it and rerun")
    if int(data.get("format_version", 0)) > MANIFEST_VERSION:
        raise InputError(f"chunk manifest {path}: format version {data.get('format_version')} is newer "
                         f"than this l2h reads ({MANIFEST_VERSION}); update l2h or delete it and rerun")
    return data


# the GeoTIFF tag of a mosaic holding provider_counts (JSON: touching/owned -> provider -> blocks)
PROVIDERS_TAG = "L2H_EXECUTION_PROVIDERS"


def provider_counts(paths: Sequence[str | Path], region: str) -> dict[str, dict[str, int]]:
    """Blocks per execution provider in the chunk manifests among ``paths``: of the blocks touching
    ``region`` (``touching``: what its map is made of) and of those its own chunks hold (``owned``: summed
    over the regions, each block once). Blocks an l2h older than this record count as "unknown"."""
    touching, owned = Counter(), Counter()
    for path in (p for p in map(str, paths) if p.endswith(".json")):
        data = _read_manifest(path)
        for block in data["blocks"]:
            provider = block.get("provider", "unknown")
            touching[provider] += region in block.get("touches", [region])
            owned[provider] += data.get("region") == region
    return {"touching": {k: v for k, v in sorted(touching.items()) if v},
            "owned": {k: v for k, v in sorted(owned.items()) if v}}


def discard_broken_block(block_file: str | Path, manifests: Mapping[str, str]) -> list[str]:
    """Remove an unreadable block prediction and the chunk manifest listing it, so that the next run
    predicts its chunk again; the removed paths.

    Only a file this project wrote and recorded is removed: one a chunk manifest (in ``manifests``,
    file -> manifest) lists under the name l2h gives a block's layer. Anything else is left alone
    (the empty list): a user's file is never deleted.
    """
    manifest = manifests.get(str(block_file))
    if manifest is None:
        return []
    folder = Path(block_file).parent
    recorded = {p for entry in read_manifest(manifest) for p in block_paths(folder, entry["id"]).values()}
    if str(block_file) not in recorded:
        return []
    Path(block_file).unlink(missing_ok=True)
    Path(manifest).unlink(missing_ok=True)
    return [str(block_file), str(manifest)]


def expand_manifests(paths: Sequence[str | Path], layer: str = "classes",
                     region: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Block files of ``layer`` listed by chunk manifests (``.json``); other paths pass through.

    ``region``: keep only the blocks touching this region. Returns (files, {file: manifest}).
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    files: list[str] = []
    origin: dict[str, str] = {}
    for path in map(str, paths):
        if not path.endswith(".json"):
            files.append(path)
            continue
        for entry in read_manifest(path):
            if region is not None and region not in entry.get("touches", [region]):
                continue
            file = entry.get(layer)
            if file is None:
                setting = "infer.confidence" if layer == "confidence" else "evaluation.pixels.network"
                raise InputError(f"chunk manifest {path}: block {entry.get('id')} has no {layer} layer "
                                 f"({setting} was off when it was predicted); delete it and rerun")
            files.append(file)
            origin[file] = path
    return files, origin


__all__ = ["chunk_blocks", "chunk_manifest_path", "block_paths", "chunk_key", "ChunkProgress",
           "read_manifest", "expand_manifests", "provider_counts", "discard_broken_block", "MANIFEST_FORMAT",
           "PROVIDERS_TAG"]
