"""bench/gpu_check.py, the check prepared for a GPU node, runs here on the CPU at its small size: with
torch and numpy alone (no GDAL, rasterio or Snakemake imported), every part present in its JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

HEAVY = ("rasterio", "osgeo", "snakemake", "pulp", "geopandas", "pyogrio", "shapely")


def test_the_gpu_check_runs_on_the_cpu_without_the_geo_stack(tmp_path):
    out = tmp_path / "gpu_check.json"
    script = ROOT / "bench" / "gpu_check.py"
    # run the script as __main__, then list the heavy packages it imported (none may be)
    probe = (f"import runpy, sys; sys.argv = [{str(script)!r}, '--quick', '--out', sys.argv[1]]; "
             f"runpy.run_path({str(script)!r}, run_name='__main__'); "
             f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout, done.stdout[-500:]
    doc = json.loads(out.read_text())
    assert doc["environment"]["device"] == "cpu" and doc["environment"]["torch"]
    assert doc["peak"]["fp32_tflops"] > 0
    step = doc["train_step"]["width_16"]
    assert step["fp32"]["pixels_per_s"] > 0 and 0 < step["fp32"]["share_of_peak"] < 5
    compiled = step["torch_compile"]
    if "skipped" not in compiled:  # compiled for real: dynamo made graphs, eager timed beside it
        assert compiled["graphs_compiled"] >= 1 and compiled["eager_pixels_per_s_same_process"] > 0
        assert compiled["speedup_over_eager"] == pytest.approx(
            compiled["pixels_per_s"] / compiled["eager_pixels_per_s_same_process"], rel=0.01)
    assert doc["environment"]["tf32"] == {"cudnn_convolutions": True, "matmul": False}
    assert doc["resume"]["passed"] and doc["resume"]["max_weight_difference"] <= 1e-5
    agreement = doc["agreement"]
    assert "skipped" in agreement or 0.5 < agreement["argmax_agreement"] <= 1.0
    inference = doc["inference"]["width_16"]
    assert inference["fp32"]["argmax_agreement_with_fp32"] == 1.0 and inference["bf16"]["pixels_per_s"] > 0
    onnx = inference["onnxruntime"]
    # onnxruntime ran in a process without torch, its sessions opened as `l2h infer` opens them
    assert onnx["torch_imported"] is False and "skipped" not in onnx
    assert onnx["providers"] == ["CPUExecutionProvider"] == onnx["block_graph"]["providers"]
    assert onnx["max_abs_diff_vs_torch"] < 1e-3 and onnx["argmax_agreement"] > 0.999
    graph = onnx["block_graph"]  # the block graph l2h infer runs, here on the CPU against itself
    assert graph["pixels_per_s"] > 0 and graph["flips"] == 4
    assert graph["class_agreement_with_cpu"] == 1.0 and graph["confidence_max_difference_with_cpu"] == 0
    assert doc["block_job"]["cores_to_keep_the_gpu_busy"] >= 1
    assert set(doc["goals"]) >= {"width_64_bf16_share_of_peak", "bf16_map_agreement"}
