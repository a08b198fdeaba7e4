"""Model cost and speed on this machine: parameters, FLOPs/pixel, training pixels/s, inference
pixels/s in torch eager vs onnxruntime (same model, same input), and the float32 matmul peak the
achieved GFLOP/s compare to. Writes bench/results/model_throughput.json.

Usage: python bench/model_throughput.py [width ...]   (default: 32 64)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from l2h.loss import L2HLoss
from l2h.model import L2HNet, count_parameters, flops_per_pixel, receptive_field

THREADS = torch.get_num_threads()


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / _timed(lambda: a @ b, repeat) / 1e9


def measure(width: int, bands: int = 4, patch: int = 128, batch: int = 8, tile: int = 512) -> dict:
    torch.manual_seed(0)
    model = L2HNet(bands, width=width)
    flops = flops_per_pixel(model)
    loss_fn = L2HLoss(warmup_steps=10**9)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, bands, patch, patch)
    target = torch.randint(0, 11, (batch, patch, patch))

    def step():
        features, logits = model.forward_features(x)
        loss = loss_fn(logits, features, target, step=0)["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    train_s = _timed(step, 5)
    model.eval()
    image = torch.randn(1, bands, tile, tile)
    with torch.inference_mode():
        torch_s = _timed(lambda: model(image), 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        torch.onnx.export(model, image, str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}}, opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        array = image.numpy()
        ort_s = _timed(lambda: session.run(None, {"image": array}), 3)
    pixels = tile * tile
    return {
        "width": width, "bands": bands, "parameters": count_parameters(model), "flops_per_pixel": flops,
        "receptive_field_px": receptive_field(model),
        "train": {"patch": patch, "batch": batch, "pixels_per_s": batch * patch * patch / train_s,
                  "gflops_per_s": 3 * flops * batch * patch * patch / train_s / 1e9},
        "infer_torch_eager": {"tile": tile, "pixels_per_s": pixels / torch_s, "gflops_per_s": flops * pixels / torch_s / 1e9},
        "infer_onnxruntime": {"tile": tile, "pixels_per_s": pixels / ort_s, "gflops_per_s": flops * pixels / ort_s / 1e9},
        "ort_over_torch": torch_s / ort_s,
    }


def main(widths: list[int]) -> dict:
    result = {"benchmark": "model_throughput", "date": time.strftime("%Y-%m-%d"), "device": "cpu",
              "torch_threads": THREADS, "torch": torch.__version__, "onnxruntime": ort.__version__,
              "matmul_peak_gflops_fp32": matmul_peak_gflops(), "models": [measure(w) for w in widths],
              "note": "train GFLOP/s counts forward + backward as 3x the forward FLOPs"}
    out = Path(__file__).parent / "results" / "model_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    print(json.dumps(main([int(w) for w in sys.argv[1:]] or [32, 64]), indent=1))
