"""Inference's execution provider is decided loudly: `cuda` stops a job at its start unless the session
really runs on CUDA, `auto` says when it runs on the CPU and why, the chunk manifests record what ran,
and one onnxruntime build only. The sessions are real; what is faked is what onnxruntime advertises
(its providers) and, for the fallback, a CUDA provider that does not start (as onnxruntime-gpu on a
node without its libraries): the same on the CPU build and on a GPU node."""

import json
import logging
import subprocess
import sys
import threading

import onnxruntime as ort
import pytest
from helpers import CRS

from l2h.core.blocks import blocks_for_regions
from l2h.core.errors import L2HError
from l2h.inputs.regions import dissolved_regions, region_geometries
from l2h.maps import providers
from l2h.maps.chunks import MANIFEST_FORMAT, provider_counts
from l2h.maps.infer import OnnxModel, load_onnx, predict_chunk
from l2h.maps.providers import CPU, CUDA


@pytest.fixture
def cuda_listed_but_not_starting(monkeypatch):
    """onnxruntime-gpu on a node without its CUDA libraries: CUDA listed, sessions on the CPU."""
    real = ort.InferenceSession

    def falls_back(model, sess_options=None, providers=None, **kwargs):
        return real(model, sess_options=sess_options, providers=[p for p in providers or [CPU] if p != CUDA], **kwargs)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", falls_back)
    monkeypatch.setattr(providers, "_preload_cuda_libraries", lambda: "Failed to load libcudart.so.13: not found")


def test_cuda_without_a_cuda_build_stops_at_the_start(tiny_onnx, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["AzureExecutionProvider", CPU])
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
    found = providers.onnxruntime_distributions()
    assert len(found) == 1 and found[0] in ("onnxruntime", "onnxruntime-gpu"), found


def test_gpu_runs_are_held_to_gpu_concurrency(tiny_onnx):
    """On CUDA at most gpu_concurrency graph runs are on the device at once (the others wait); runs of a
    session on the CPU are not held."""
    cpu = load_onnx(tiny_onnx)
    assert cpu.runs is None
    slots, callers = 2, 5
    lock, inside, peak = threading.Lock(), [0], [0]
    entered, release = threading.Semaphore(0), threading.Event()
    attempts = threading.Semaphore(0)

    class Counted(threading.BoundedSemaphore):  # counts the callers that reached the gate
        def __enter__(self):
            attempts.release()
            return super().__enter__()

    class Session:
        def __init__(self, provider):
            self.provider = provider

        def get_providers(self):
            return [self.provider, CPU]

        def run(self, names, feed):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            entered.release()
            release.wait(timeout=60)
            with lock:
                inside[0] -= 1
            return ["out"]

    gpu = OnnxModel(cpu.session, cpu.metadata, cpu.path, cpu.options, [CUDA, CPU], "cuda", Counted(slots))
    threads = [threading.Thread(target=gpu.run, args=(Session(CUDA), ["x"], {})) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for _ in range(callers):  # every caller reached the gate ...
        assert attempts.acquire(timeout=60)
    for _ in range(slots):  # ... and as many as there are slots are running
        assert entered.acquire(timeout=60)
    with lock:
        assert inside[0] == slots  # the others wait at the gate
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert peak[0] == slots and gpu.runs._value == slots  # all released
    # a CPU session of the same model is not held: it runs while every slot is taken
    for _ in range(slots):
        gpu.runs.acquire()
    done = []
    cpu_run = threading.Thread(target=lambda: done.append(gpu.run(Session(CPU), ["x"], {})))
    cpu_run.start()
    cpu_run.join(timeout=60)
    assert done == [["out"]]
    with pytest.raises(L2HError, match="gpu_concurrency must be at least 1"):
        load_onnx(tiny_onnx, gpu_concurrency=0)


def test_provider_counts_of_a_region_and_of_its_own_chunks(tmp_path):
    """A region's map counts every block touching it, whoever's chunk holds it; summed over the regions,
    the blocks their own chunks hold count each block once. Blocks recorded before providers were: unknown."""
    def manifest(name, region, blocks):
        path = tmp_path / name
        path.write_text(json.dumps({"format": MANIFEST_FORMAT, "format_version": 1, "region": region,
                                    "blocks": blocks}))
        return str(path)

    a = manifest("a.json", "a", [{"id": "1", "touches": ["a"], "provider": CUDA},
                                 {"id": "2", "touches": ["a", "b"], "provider": CPU}])
    b = manifest("b.json", "b", [{"id": "3", "touches": ["b"], "provider": CUDA},
                                 {"id": "4", "touches": ["a", "b"]}])
    assert provider_counts([a, b], "a") == {"touching": {CPU: 1, CUDA: 1, "unknown": 1}, "owned": {CPU: 1, CUDA: 1}}
    assert provider_counts([a, b], "b") == {"touching": {CPU: 1, CUDA: 1, "unknown": 1}, "owned": {CUDA: 1, "unknown": 1}}


@pytest.mark.parametrize("command", [
    ["infer", "--model", "m.onnx", "--imagery", "i.tif", "--blocks", "c0_r0", "--block-size", "256",
     "--resolution", "1", "--crs", "EPSG:32650", "--mask", "r.gpkg", "--region", "r", "--out-dir", "o",
     "--manifest", "o/chunk_0.json"],
    ["export", "--model", "m.pt", "--out", "m.onnx", "--parity", "p.json"]], ids=["infer", "export"])
def test_no_onnxruntime_installed_is_one_line(tmp_path, command):
    """onnxruntime is an extra (cpu or gpu): without it `l2h infer` and `l2h export` say so in one line."""
    probe = ("import sys; sys.modules['onnxruntime'] = None; from l2h.cli import main; "
             f"sys.exit(main({command!r}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs the Python package providing onnxruntime" in lines[0] and "l2h[cpu]" in lines[0]
