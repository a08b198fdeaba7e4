"""How fast is L2HNet itself on this machine, and how far from the hardware's limit?

One run measures, at each width, the training step (model + the real L2HLoss past warm-up,
AdamW) and tile inference (a batch of 4 tiles of 512 px plus the model's halo, as `l2h infer`
feeds it) for every variant tried:

* train: fp32 eager, channels-last, bf16 autocast, torch.compile of ``forward_features``, the function
  the step calls (inductor; its compile time, the first step's, is
  reported apart), and the network alone with a plain cross-entropy (what the L2H loss costs);
* inference: torch eager fp32 / channels-last / bf16 autocast, onnxruntime fp32 at 1 and 2
  threads, onnxruntime int8 (static QDQ quantisation, per-channel weights, calibrated on real
  imagery windows when --imagery is given, else on random ones).

Each number is pixels/s and GFLOP/s beside the matmul peak measured in the same run (fp32 and
bf16 2048^2 matmuls), as a share of peak. Training FLOPs count forward + backward as 3x forward.
Writes bench/results/model_speed.json.

Usage: python bench/model_speed.py [--widths 16 32 64] [--imagery DEMO_IMAGERY.tif] [--no-compile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import record
import torch
import torch.nn.functional as F
from gpu_check_ort import timed  # bench/: one timer for the benchmarks

from l2h.model.l2hnet import L2HNet, flops_per_pixel
from l2h.model.loss import L2HLoss

BANDS, CLASSES = 4, 11
TILE, TILE_BATCH = 512, 4
PATCH, BATCH = 128, 8


def _timed(fn, seconds: float = 4.0) -> float:
    """Median seconds per call after one warm-up call, repeated for about `seconds`."""
    return timed(fn, seconds, warmup=1)


def matmul_peak(dtype: torch.dtype, max_n: int = 2048) -> float:
    """GFLOP/s of a square matmul in `dtype` (the practical peak the network is compared to); the
    side shrinks from `max_n` where one call would take over a second (no native support)."""
    n = 256
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        t0 = time.perf_counter()
        a @ b
        one = time.perf_counter() - t0
        if n >= max_n or one * 8 > 1.0:
            break
        n *= 2
    return 2 * n ** 3 / _timed(lambda: a @ b, 2.0) / 1e9


def _train_step(model, loss_fn, optimiser, x, target, autocast: bool, plain_ce: bool):
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            features, logits = model.forward_features(x)
        if plain_ce:
            loss = F.cross_entropy(logits.float(), target, ignore_index=255)
        else:
            loss = loss_fn(logits.float(), features.float(), target, step=10**6)["total"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return step


def train_variants(width: int, compile_: bool, bf16: bool) -> dict:
    """Train-step pixels/s of each variant at `width` (bf16 only where the CPU computes it natively)."""
    variants = {"fp32": {}, "fp32_network_only": {"plain_ce": True}, "channels_last": {"channels_last": True}}
    if bf16:
        variants["bf16_autocast"] = {"autocast": True}
    if compile_:
        variants["torch_compile"] = {"compile": True}
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(BATCH, BANDS, PATCH, PATCH, generator=gen)
    # a blocky label with a quarter unlabelled, like the 10 m consensus upsampled to 1 m
    coarse = torch.randint(0, CLASSES, (BATCH, PATCH // 10 + 1, PATCH // 10 + 1), generator=gen)
    coarse[torch.rand(coarse.shape, generator=gen) < 0.25] = 255
    target = coarse.repeat_interleave(10, 1).repeat_interleave(10, 2)[:, :PATCH, :PATCH].contiguous()
    flops = flops_per_pixel(L2HNet(BANDS, CLASSES, width))
    out = {}
    for name, opts in variants.items():
        torch.manual_seed(0)
        model = L2HNet(BANDS, CLASSES, width).train()
        x = x0
        if opts.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
            x = x0.contiguous(memory_format=torch.channels_last)
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = L2HLoss(CLASSES, warmup_steps=0)
        compile_s = None
        if opts.get("compile"):
            from torch._dynamo.utils import counters

            # the step calls forward_features: compile that (torch.compile(model) compiles forward only,
            # and the step would run eagerly)
            model.forward_features = torch.compile(model.forward_features)
            t0 = time.perf_counter()
            _train_step(model, loss_fn, optimiser, x, target, False, False)()
            compile_s = time.perf_counter() - t0
            if counters["stats"]["unique_graphs"] < 1:
                raise SystemExit("torch.compile compiled no graph: the step would be timed eagerly")
        seconds = _timed(_train_step(model, loss_fn, optimiser, x, target, opts.get("autocast", False),
                                     opts.get("plain_ce", False)))
        px = BATCH * PATCH * PATCH / seconds
        print(f"width {width} train {name}: {px:,.0f} px/s", file=sys.stderr, flush=True)
        out[name] = {"pixels_per_s": px, "gflops_per_s": 3 * flops * px / 1e9, "step_s": seconds}
        if compile_s is not None:
            out[name]["compile_s"] = compile_s
    return out


def _export(model: L2HNet, path: Path) -> None:
    axes = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(model.eval(), torch.zeros(1, BANDS, 64, 64), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": axes, "logits": axes}, opset_version=17,
                      dynamo=False)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def calibration_windows(imagery: str | None, side: int, count: int = 16, seed: int = 0) -> list[np.ndarray]:
    """`count` (1, BANDS, side, side) float32 windows: normalised imagery windows (per-band mean/std
    of the windows themselves) when `imagery` is given, else standard-normal noise."""
    rng = np.random.default_rng(seed)
    if imagery is None:
        return [rng.standard_normal((1, BANDS, side, side), dtype=np.float32) for _ in range(count)]
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(imagery) as src:
        windows = []
        while len(windows) < count:
            col, row = int(rng.integers(0, src.width - side)), int(rng.integers(0, src.height - side))
            data = src.read(window=Window(col, row, side, side)).astype(np.float32)
            if (data != 0).all(axis=0).mean() > 0.9:
                windows.append(data)
    stack = np.stack(windows)
    mean, std = stack.mean(axis=(0, 2, 3), keepdims=True), stack.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return [((w[None] - mean[0]) / std[0]).astype(np.float32) for w in windows]


def quantise_int8(fp32: Path, out: Path, windows: list[np.ndarray]) -> None:
    """Static QDQ int8 quantisation (per-channel int8 weights, uint8 activations) calibrated on
    `windows`, after onnxruntime's pre-processing (shape inference, graph optimisation)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(windows)

        def get_next(self):
            window = next(self.items, None)
            return None if window is None else {"image": window}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def infer_variants(width: int, imagery: str | None, bf16: bool) -> dict:
    """Inference pixels/s (tile cores, not halos) of each variant at `width`, and how the int8
    logits' argmax agrees with fp32's on real tiles."""
    torch.manual_seed(0)
    model = L2HNet(BANDS, CLASSES, width).eval()
    flops = flops_per_pixel(model)
    side = TILE + 2 * 12
    x = torch.randn(TILE_BATCH, BANDS, side, side)
    core_px = TILE_BATCH * TILE * TILE
    out = {}

    def record(name, seconds):
        print(f"width {width} infer {name}: {core_px / seconds:,.0f} px/s", file=sys.stderr, flush=True)
        out[name] = {"pixels_per_s": core_px / seconds, "gflops_per_s": flops * TILE_BATCH * side * side / seconds / 1e9}

    with torch.inference_mode():
        record("torch_fp32", _timed(lambda: model(x)))
        cl = L2HNet(BANDS, CLASSES, width).eval()
        cl.load_state_dict(model.state_dict())
        cl = cl.to(memory_format=torch.channels_last)
        xcl = x.contiguous(memory_format=torch.channels_last)
        record("torch_channels_last", _timed(lambda: cl(xcl)))
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                record("torch_bf16_autocast", _timed(lambda: model(x)))
    array = x.numpy()
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "m.onnx", Path(tmp) / "m_int8.onnx"
        _export(model, fp32)
        for threads in (1, 2):
            session = _session(fp32, threads)
            record(f"onnxruntime_fp32_{threads}t", _timed(lambda: session.run(None, {"image": array})))
        t0 = time.perf_counter()
        quantise_int8(fp32, int8, calibration_windows(imagery, 256))
        quantise_s = time.perf_counter() - t0
        q = _session(int8, 2)
        record("onnxruntime_int8_qdq_2t", _timed(lambda: q.run(None, {"image": array})))
        out["onnxruntime_int8_qdq_2t"]["quantise_s"] = quantise_s
        tiles = np.concatenate(calibration_windows(imagery, side, count=TILE_BATCH, seed=1))
        ref = _session(fp32, 2).run(None, {"image": tiles})[0].argmax(1)
        got = q.run(None, {"image": tiles})[0].argmax(1)
        out["onnxruntime_int8_qdq_2t"]["argmax_agreement_random_init"] = float((ref == got).mean())
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--imagery", help="GeoTIFF to draw int8 calibration windows from (e.g. the demo's)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    args = parser.parse_args()
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    # without native bf16 (AVX512-BF16/AMX) torch emulates it, tens of times slower than fp32
    bf16 = peak["bf16"] >= 0.25 * peak["fp32"]
    widths = {}
    for width in args.widths:
        model = L2HNet(BANDS, CLASSES, width)
        entry = {"flops_per_pixel": flops_per_pixel(model), "train": train_variants(width, not args.no_compile, bf16),
                 "infer": infer_variants(width, args.imagery, bf16)}
        for part in ("train", "infer"):
            for result in entry[part].values():
                result["share_of_fp32_peak"] = result["gflops_per_s"] / peak["fp32"]
        widths[str(width)] = entry
        print(json.dumps({width: {p: {k: round(v["pixels_per_s"]) for k, v in entry[p].items()}
                                  for p in ("train", "infer")}}), flush=True)
    result = {
        "benchmark": "model_speed",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "onnxruntime": ort.__version__,
        "train_shape": {"batch": BATCH, "patch": PATCH}, "infer_shape": {"tiles": TILE_BATCH, "tile": TILE, "halo": 12},
        "matmul_peak_gflops": peak, "widths": widths,
        "bf16_variants": "measured" if bf16 else (f"skipped: bf16 matmul runs at {peak['bf16']:.1f} GFLOP/s against "
                                                  f"{peak['fp32']:.1f} for fp32 (no native bf16 on this CPU)"),
        "note": "train GFLOP/s = 3 x forward FLOPs; inference GFLOP/s counts the halo pixels the model computes",
    }
    out = Path(__file__).parent / "results" / "model_speed.json"
    record.write(out, result)
    return result


if __name__ == "__main__":
    main()
