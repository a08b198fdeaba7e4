"""The l2h metadata an exported ONNX model carries (bands, normalisation, classes, grid): written by
`l2h export` (l2h.model.export), read by inference and the benchmarks. Reading it needs the `onnx`
package only, not PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from l2h.core.errors import InputError

METADATA_KEY = "l2h"  # the ONNX metadata_props key holding the JSON


def onnx_metadata(path: str | os.PathLike) -> dict:
    """The l2h metadata stored in an exported ONNX model (InputError when absent)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX model {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an input problem
        raise InputError(f"cannot read ONNX model {path}: {exc}") from exc
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise InputError(f"ONNX model {path} has no l2h metadata (key {METADATA_KEY!r}); export it with l2h export")
