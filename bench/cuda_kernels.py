"""Which nodes of the block graph onnxruntime's CUDA execution provider has kernels for, asked of the
pinned onnxruntime-gpu itself: every variant `l2h infer` can build (l2h.maps.block_graph.variants) is
opened in a CUDA session with verbose logs, and each node the provider's partitioner reports as
"CUDA kernel not found in registries" is marked as having none.

Writes the table tests/maps/test_block_graph.py checks every variant against
(tests/maps/cuda_kernels.json: (domain, op, opset, input types, output types) -> has a CUDA kernel;
the signatures of an earlier table of the same onnxruntime version are kept),
and bench/results/cuda_placement.json: per variant, the nodes placed on the CPU with onnxruntime's
default optimisations (kernel-less nodes and the shape computations onnxruntime keeps on the CPU).

Needs onnxruntime-gpu (the version pyproject.toml pins) and onnx; no torch when --network is given. On a
machine without a GPU, --no-gpu preloads a small shim (compiled here with gcc) that answers the CUDA
runtime's device queries and keeps allocations in host memory: enough for onnxruntime to create the
CUDA provider and partition the graph, not to run it (the session fails after the placement is logged).

Usage: python bench/cuda_kernels.py --network tiny.onnx [--no-gpu]
       (a network: python -c "import sys; sys.path.insert(0, 'tests'); from helpers import export_tiny_model;
       export_tiny_model('tiny.onnx')")
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import record  # noqa: E402

from l2h.maps.block_graph import kernel_signatures, variants  # noqa: E402

TABLE = ROOT / "tests" / "maps" / "cuda_kernels.json"
RESULT = ROOT / "bench" / "results" / "cuda_placement.json"
MISSING = re.compile(r"CUDA kernel not found in registries for Op type: (\S+) node name: (\S*)")
ON_CPU = re.compile(r"Node\(s\) placed on \[CPUExecutionProvider\]\. Number of nodes: \d+\n((?:.*\]   \S+ \(.*\)\n)*)")
CPU_NODE = re.compile(r"\]   (\S+) \((.*)\)")

# What the CUDA provider asks of the runtime while it is created and partitions a graph, answered
# without a device (allocations in host memory). Nothing is computed through it.
SHIM = r"""
#include <stdlib.h>
#include <string.h>
typedef int E;
E cudaSetDevice(int d) { return 0; }
E cudaGetDevice(int *d) { *d = 0; return 0; }
E cudaGetDeviceCount(int *n) { *n = 1; return 0; }
E cudaGetDeviceProperties_v2(void *p, int d) { memset(p, 0, 1024); return 0; }
E cudaGetDeviceProperties(void *p, int d) { memset(p, 0, 1024); return 0; }
E cudaDeviceGetAttribute(int *v, int a, int d) { *v = 0; return 0; }
E cudaStreamCreateWithFlags(void **s, unsigned f) { *s = 0; return 0; }
E cudaStreamCreate(void **s) { *s = 0; return 0; }
E cudaStreamCreateWithPriority(void **s, unsigned f, int p) { *s = 0; return 0; }
E cudaStreamDestroy(void *s) { return 0; }
E cudaStreamSynchronize(void *s) { return 0; }
E cudaRuntimeGetVersion(int *v) { *v = 13000; return 0; }
E cudaDriverGetVersion(int *v) { *v = 13000; return 0; }
E cudaDeviceSynchronize(void) { return 0; }
E cudaMemGetInfo(size_t *f, size_t *t) { *f = (size_t)1 << 34; *t = (size_t)1 << 34; return 0; }
E cudaGetLastError(void) { return 0; }
E cudaPeekAtLastError(void) { return 0; }
E cudaEventCreate(void **e) { *e = 0; return 0; }
E cudaEventCreateWithFlags(void **e, unsigned f) { *e = 0; return 0; }
E cudaEventDestroy(void *e) { return 0; }
E cudaDeviceGetStreamPriorityRange(int *a, int *b) { *a = 0; *b = 0; return 0; }
E cudaDeviceGetPCIBusId(char *b, int l, int d) { strncpy(b, "0000:00:00.0", l); return 0; }
E cudaMalloc(void **p, size_t n) { *p = malloc(n ? n : 1); return 0; }
E cudaMallocHost(void **p, size_t n) { *p = malloc(n ? n : 1); return 0; }
E cudaHostAlloc(void **p, size_t n, unsigned f) { *p = malloc(n ? n : 1); return 0; }
E cudaFree(void *p) { return 0; }
E cudaFreeHost(void *p) { return 0; }
E cudaMemcpy(void *d, const void *s, size_t n, int k) { memcpy(d, s, n); return 0; }
E cudaMemcpyAsync(void *d, const void *s, size_t n, int k, void *st) { memcpy(d, s, n); return 0; }
E cudaMemset(void *d, int v, size_t n) { memset(d, v, n); return 0; }
E cudaMemsetAsync(void *d, int v, size_t n, void *s) { memset(d, v, n); return 0; }
/* libcuda.so.1 (the driver): the provider library links one symbol of it */
int cuTensorMapEncodeTiled(void) { return 100; }
"""

# run in a child per graph: the provider's verbose log goes to the child's stderr
PROBE = """
import sys, onnxruntime as ort
ort.preload_dlls()
options = ort.SessionOptions()
options.log_severity_level = 0
options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, sys.argv[2])
try:
    ort.InferenceSession(sys.argv[1], options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
except Exception as exc:  # without a device (--no-gpu) the session fails after partitioning
    print("session:", str(exc).splitlines()[-1][:200], file=sys.stderr)
"""


def _shim_environment(folder: Path) -> dict:
    source = folder / "shim.c"
    source.write_text(SHIM)
    for name, flags in (("libshim.so", []), ("libcuda.so.1", ["-Wl,-soname,libcuda.so.1"])):
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / name), *flags, str(source)], check=True)
    return {"LD_PRELOAD": str(folder / "libshim.so"),
            "LD_LIBRARY_PATH": f"{folder}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}"}


def partition(path: Path, level: str, env: dict) -> tuple[set[str], list[str]]:
    """(names of the nodes without a CUDA kernel, "op (name)" of the nodes placed on the CPU) of one graph."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(path), level], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)
    if "VerifyEachNodeIsAssignedToAnEp" not in done.stderr:
        raise SystemExit(f"onnxruntime logged no node placement for {path}:\n{done.stderr[-2000:]}")
    on_cpu = ON_CPU.search(done.stderr)
    placed = [f"{op} ({name})" for op, name in CPU_NODE.findall(on_cpu.group(1))] if on_cpu else []
    return {name for _, name in MISSING.findall(done.stderr)}, placed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", required=True, help="an exported L2HNet (ONNX)")
    parser.add_argument("--no-gpu", action="store_true", help="partition without a device (the CUDA runtime shim)")
    args = parser.parse_args()
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit(f"onnxruntime {ort.__version__} has no CUDA provider: install onnxruntime-gpu")
    network = onnx.load(args.network)
    table: dict[tuple, bool] = {}
    placement = []
    with tempfile.TemporaryDirectory() as tmp:
        env = _shim_environment(Path(tmp)) if args.no_gpu else {}
        path = Path(tmp) / "graph.onnx"
        for settings, graph in variants(network):
            onnx.save(graph, str(path))
            missing, _ = partition(path, "ORT_DISABLE_ALL", env)
            for node, signature in kernel_signatures(graph).items():
                table[signature] = table.get(signature, True) and node not in missing
            _, on_cpu = partition(path, "ORT_ENABLE_ALL", env)
            placement.append({**settings, "kernel_missing": sorted(missing), "on_cpu_optimised": on_cpu})
    if TABLE.exists() and (old := json.loads(TABLE.read_text()))["onnxruntime_gpu"] == ort.__version__:
        for r in old["kernels"]:  # the table keeps what earlier graphs asked (e.g. the uint8 Pad before its fix)
            table.setdefault((r["domain"], r["op"], r["opset"], tuple(r["inputs"]), tuple(r["outputs"])), r["cuda"])
    rows = [{"domain": d, "op": op, "opset": v, "inputs": list(i), "outputs": list(o), "cuda": ok}
            for (d, op, v, i, o), ok in sorted(table.items())]
    TABLE.write_text(json.dumps({"onnxruntime_gpu": ort.__version__, "provider": "CUDAExecutionProvider",
                                 "source": "bench/cuda_kernels.py" + (" --no-gpu" if args.no_gpu else ""),
                                 "date": time.strftime("%Y-%m-%d"), "kernels": rows}, indent=1) + "\n")
    record.write(RESULT, {"benchmark": "cuda_placement", "onnxruntime_gpu": ort.__version__, "no_gpu": args.no_gpu,
                          "variants": placement})
    print(f"{len(rows)} signatures, {sum(not r['cuda'] for r in rows)} without a CUDA kernel: "
          f"{[(r['op'], r['inputs']) for r in rows if not r['cuda']]}")


if __name__ == "__main__":
    main()
