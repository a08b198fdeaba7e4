"""bench/gpu_check.py, the check prepared for a GPU node, runs here on the CPU at its small size: with
torch and numpy alone (no GDAL, rasterio or Snakemake imported), every part present in its JSON.

Functional only: its speeds are measured, not judged (a timing belongs in bench/, where the GPU node
runs this check): rates must be numbers, and only what does not depend on the machine's speed is
compared (parities, agreements, a resumed run against a straight one)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from helpers import ROOT

HEAVY = ("rasterio", "osgeo", "snakemake", "pulp", "geopandas", "pyogrio", "shapely")


def _rate(value) -> bool:
    """A measured rate or share: a finite number >= 0 (its size is the machine's, not the test's)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def test_the_gpu_check_runs_on_the_cpu_without_the_geo_stack(tmp_path):
    out = tmp_path / "gpu_check.json"
    script = ROOT / "bench" / "gpu_check.py"
    # run the script as __main__, then list the heavy packages it imported (none may be); --compile-limit 0:
    # torch.compile's step is always reported as skipped (compiling alone takes ~20 s here, and whether it
    # made a limit would depend on the machine), so the run is shorter and takes the same path everywhere
    probe = (f"import runpy, sys; sys.argv = [{str(script)!r}, '--quick', '--compile-limit', '0', "
             f"'--out', sys.argv[1]]; "
             f"runpy.run_path({str(script)!r}, run_name='__main__'); "
             f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout, done.stdout[-500:]
    doc = json.loads(out.read_text())
    assert doc["environment"]["device"] == "cpu" and doc["environment"]["torch"]
    assert _rate(doc["peak"]["fp32_tflops"])
    step = doc["train_step"]["width_16"]
    assert _rate(step["fp32"]["pixels_per_s"]) and _rate(step["fp32"]["share_of_peak"])
    compiled = step["torch_compile"]
    if "skipped" in compiled:  # with a 0 s limit: not compiled in time, or compiled in more than 0 s
        assert isinstance(compiled["skipped"], str) and compiled["skipped"]
    else:  # compiled for real (in no time at all): dynamo made graphs, eager timed beside it
        assert compiled["graphs_compiled"] >= 1 and _rate(compiled["eager_pixels_per_s_same_process"])
        assert compiled["speedup_over_eager"] == pytest.approx(
            compiled["pixels_per_s"] / compiled["eager_pixels_per_s_same_process"], rel=0.01)
    assert doc["environment"]["tf32"] == {"cudnn_convolutions": True, "matmul": False}
    assert doc["resume"]["passed"] and doc["resume"]["max_weight_difference"] <= 1e-5
    agreement = doc["agreement"]
    assert "skipped" in agreement or 0.5 < agreement["argmax_agreement"] <= 1.0
    inference = doc["inference"]["width_16"]
    assert inference["fp32"]["argmax_agreement_with_fp32"] == 1.0 and _rate(inference["bf16"]["pixels_per_s"])
    onnx = inference["onnxruntime"]
    # onnxruntime ran in a process without torch, its sessions opened as `l2h infer` opens them
    assert onnx["torch_imported"] is False and "skipped" not in onnx
    assert onnx["providers"] == ["CPUExecutionProvider"] == onnx["block_graph"]["providers"]
    assert onnx["max_abs_diff_vs_torch"] < 1e-3 and onnx["argmax_agreement"] > 0.999
    graph = onnx["block_graph"]  # the block graph l2h infer runs, here on the CPU against itself
    assert _rate(graph["pixels_per_s"]) and graph["flips"] == 4
    assert graph["class_agreement_with_cpu"] == 1.0 and graph["confidence_max_difference_with_cpu"] == 0
    job = doc["block_job"]  # cores = ceil(model rate / one core's pipeline rate): >= 1 for any positive rate
    assert isinstance(job["cores_to_keep_the_gpu_busy"], int) and job["cores_to_keep_the_gpu_busy"] >= 1
    assert set(doc["goals"]) >= {"width_64_bf16_share_of_peak", "bf16_map_agreement"}
