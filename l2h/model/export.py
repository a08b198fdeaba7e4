"""Export a trained model to ONNX and prove that onnxruntime computes what torch computes.

:func:`export_onnx` loads an l2h model (:func:`l2h.model.l2hnet.load_model`), exports it with the
TorchScript-based exporter (``dynamo=False``: no onnxscript needed) with input ``image``
(N, C, H, W) float32 and output ``logits`` (N, K, H, W), batch/height/width dynamic, stores the
model's metadata as JSON under the ONNX ``metadata_props`` key ``"l2h"`` (read it back with
:func:`onnx_metadata`), then runs a parity check: random normalised-looking inputs of two different
sizes through torch (eval) and onnxruntime (CPU); the largest absolute difference of the logits
must be <= ``tolerance``.

The parity report (JSON) is written in every case; the ONNX file only when parity passes -- a
failing check raises :class:`~l2h.core.errors.L2HError` (so the Snakemake rule fails) and leaves no
ONNX file under the final name. Both writes are atomic.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from l2h.core.errors import L2HError
from l2h.core.io import atomic_path
from l2h.core.onnx_metadata import METADATA_KEY
from l2h.model.l2hnet import load_model

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# (N, H, W) of the parity inputs: odd sizes, two different shapes to exercise the dynamic axes
PARITY_SHAPES = ((2, 67, 93), (1, 45, 130))


def _ort_session(path: str | os.PathLike):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnxruntime(session, image: np.ndarray) -> np.ndarray:
    """Logits of `image` (N, C, H, W) float32 from an onnxruntime session."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(image, dtype=np.float32)})[0]


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_onnx(model_path: str | os.PathLike, onnx_path: str | os.PathLike, parity_json: str | os.PathLike,
                opset: int = 17, tolerance: float = 1e-4, seed: int = 0) -> dict:
    """Export ``model_path`` to ``onnx_path``, check parity, write ``parity_json``; returns the
    parity report: max_abs_diff, tolerance, passed, opset, onnxruntime (version), input_shapes,
    input_shape (the first), torch (version). Raises L2HError when parity fails."""
    import onnx
    import onnxruntime as ort

    onnx_path, parity_json = Path(onnx_path), Path(parity_json)
    model, meta = load_model(model_path, map_location="cpu")
    model.eval()
    c = model.in_channels
    dummy = torch.zeros(1, c, 32, 32)
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(onnx_path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation + tracer warnings
            torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, export_params=True, opset_version=opset,
                              do_constant_folding=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
        proto.producer_name = "l2h"
        proto.doc_string = f"L2HNet width {meta['width']}, bands {', '.join(meta['bands'])}"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))

        rng = np.random.default_rng(seed)
        session = _ort_session(tmp)
        diffs, magnitude = [], 0.0
        for n, h, w in PARITY_SHAPES:
            x = rng.standard_normal((n, c, h, w), dtype=np.float32)
            with torch.no_grad():
                expected = model(torch.from_numpy(x)).numpy()
            got = run_onnxruntime(session, x)
            magnitude = max(magnitude, float(np.max(np.abs(expected))))
            if got.shape != expected.shape:
                diffs.append(float("inf"))
            else:
                diffs.append(float(np.max(np.abs(got.astype(np.float64) - expected))))
        del session
        max_diff = max(diffs)
        passed = bool(np.isfinite(max_diff) and max_diff <= tolerance)
        report = {
            "max_abs_diff": max_diff,
            "max_abs_diff_per_input": diffs,
            "max_abs_logit": magnitude,  # scale of the logits the difference is measured against
            "tolerance": float(tolerance),
            "passed": passed,
            "opset": int(opset),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
            "input_shape": [PARITY_SHAPES[0][0], c, *PARITY_SHAPES[0][1:]],
            "input_shapes": [[n, c, h, w] for n, h, w in PARITY_SHAPES],
            "model": str(model_path),
            "onnx": str(onnx_path),
        }
        _write_json(parity_json, report)
        if not passed:
            raise L2HError(f"ONNX parity check failed for {onnx_path}: onnxruntime and torch logits differ by "
                           f"up to {max_diff:.3g} (tolerance {tolerance:g}); report in {parity_json}")
    return report


__all__ = ["export_onnx", "run_onnxruntime", "INPUT_NAME", "OUTPUT_NAME"]
