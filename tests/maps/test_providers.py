"""Inference's execution provider is decided loudly: `cuda` stops a job at its start unless the session
really runs on CUDA, `auto` says when it runs on the CPU and why, the chunk manifests record what ran,
and one onnxruntime build only. The fallback is real: this machine's onnxruntime is the CPU build, so
a session asked for CUDA runs on the CPU, as onnxruntime-gpu does on a node without its libraries;
only the provider list onnxruntime advertises is faked."""

import json
import logging
import threading

import onnxruntime as ort
import pytest
from helpers import CRS

from l2h.core.blocks import blocks_for_regions
from l2h.core.errors import L2HError
from l2h.inputs.regions import dissolved_regions, region_geometries
from l2h.maps import providers
from l2h.maps.infer import OnnxModel, load_onnx, predict_chunk
from l2h.maps.providers import CPU, CUDA


@pytest.fixture
def cuda_listed_but_not_starting(monkeypatch):
    """onnxruntime-gpu on a node without its CUDA libraries: CUDA listed, sessions on the CPU."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(providers, "_preload_cuda_libraries", lambda: "Failed to load libcudart.so.13: not found")


def test_cuda_without_a_cuda_build_stops_at_the_start(tiny_onnx):
    with pytest.raises(L2HError, match=r"infer.device is cuda, but onnxruntime .* has no CUDA execution provider "
                                       r"\(the CPU build.*make install ONNXRUNTIME=gpu") as info:
        load_onnx(tiny_onnx, device="cuda")
    assert "\n" not in str(info.value)


def test_cuda_that_does_not_start_stops_at_the_start(tiny_onnx, cuda_listed_but_not_starting):
    with pytest.raises(L2HError, match=r"offers the CUDA execution provider but could not start it here \(it runs on "
                                       r"CPUExecutionProvider\).*CUDA_VISIBLE_DEVICES.*libcudart.so.13") as info:
        load_onnx(tiny_onnx, device="cuda")
    assert "\n" not in str(info.value)


def test_auto_names_the_cpu_and_why_and_the_manifest_records_it(tiny_onnx, small_demo_world, tmp_path, caplog,
                                                                 cuda_listed_but_not_starting):
    with caplog.at_level(logging.WARNING, logger="l2h"):
        model = load_onnx(tiny_onnx, device="auto")
    assert model.providers == [CPU] and model.runs is None
    assert any("infer.device auto: inference runs on the CPU" in r.getMessage() and "could not start" in r.getMessage()
               for r in caplog.records)
    regions = dissolved_regions(small_demo_world / "regions" / "provinces.gpkg", "name")
    geoms = region_geometries(regions, CRS)
    blocks = blocks_for_regions(geoms, 256)[:2]
    manifest = tmp_path / "pred" / "chunk_0.json"
    predict_chunk(model, str(small_demo_world / "imagery" / "demo_imagery.tif"), [(b.id, b.bounds) for b in blocks],
                  1.0, CRS, {b.region: geoms[b.region] for b in blocks}, tmp_path / "pred", manifest, key="k",
                  region=blocks[0].region, progress=False)
    written = json.loads(manifest.read_text())
    assert written["providers"] == {CPU: 2}
    assert [b["provider"] for b in written["blocks"]] == [CPU, CPU]


def test_cpu_asks_for_nothing_else(tiny_onnx, cuda_listed_but_not_starting, caplog):
    with caplog.at_level(logging.WARNING, logger="l2h"):
        model = load_onnx(tiny_onnx, device="cpu")
    assert model.providers == [CPU] and not caplog.records


def test_two_onnxruntime_builds_are_refused_by_name(tiny_onnx, monkeypatch):
    monkeypatch.setattr(providers, "packages_distributions",
                        lambda: {"onnxruntime": ["onnxruntime", "onnxruntime-gpu"], "numpy": ["numpy"]})
    with pytest.raises(L2HError, match=r"onnxruntime and onnxruntime-gpu are both installed .*pip uninstall -y "
                                       r"onnxruntime onnxruntime-gpu"):
        load_onnx(tiny_onnx, device="auto")


def test_this_environment_has_one_onnxruntime_build():
    assert providers.onnxruntime_distributions() == ["onnxruntime"]


def test_a_gpu_run_is_held_to_gpu_concurrency(tiny_onnx):
    """On CUDA each graph run holds the model's semaphore (gpu_concurrency runs at once); on the CPU none."""
    cpu = load_onnx(tiny_onnx)
    assert cpu.runs is None
    held = []

    class Session:
        def run(self, names, feed):
            held.append(gpu.runs._value)  # free slots while this run is on the device
            return ["out"]

    gpu = OnnxModel(cpu.session, cpu.metadata, cpu.path, cpu.options, [CUDA, CPU], "cuda",
                    threading.BoundedSemaphore(2))
    assert gpu.run(Session(), ["x"], {}) == ["out"] and held == [1]
    assert gpu.runs._value == 2  # released
    with pytest.raises(L2HError, match="gpu_concurrency must be at least 1"):
        load_onnx(tiny_onnx, gpu_concurrency=0)
