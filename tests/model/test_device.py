"""Training's device and arithmetic are decided loudly: `cuda` stops at the start naming why torch
cannot use the GPU, `auto` warns when it trains on the CPU, and `precision` follows what the GPU
computes natively (bf16 from Ampere on, else fp16 with a gradient scaler). The CPU build of torch here
is the real "no CUDA" case (faked on a CUDA build); the GPU cases fake torch's answers about the device."""

import logging

import pytest
import torch

from l2h.core.errors import ConfigError
from l2h.model import device as dev
from l2h.model.step import apply
from l2h.model.train import TrainConfig

CUDA = torch.device("cuda")


@pytest.fixture
def cpu_build(monkeypatch):
    """torch without CUDA (this machine's wheel; faked where torch is a CUDA build)."""
    monkeypatch.setattr(torch.version, "cuda", None)


def test_cuda_on_a_cpu_build_of_torch_stops_at_the_start(cpu_build):
    with pytest.raises(ConfigError, match=r"train.device is 'cuda', but torch .* is a CPU build") as info:
        dev.resolve_device("cuda")
    assert "\n" not in str(info.value)


def test_auto_on_a_cpu_build_warns_and_names_why(cpu_build, caplog):
    with caplog.at_level(logging.WARNING, logger="l2h"):
        assert dev.resolve_device("auto") == torch.device("cpu")
    assert any("train.device auto: training runs on the CPU" in r.getMessage() and "CPU build" in r.getMessage()
               for r in caplog.records)


def test_cpu_is_quiet(caplog):
    with caplog.at_level(logging.WARNING, logger="l2h"):
        assert dev.resolve_device("cpu") == torch.device("cpu")
    assert not caplog.records


def test_a_cuda_build_that_sees_no_gpu_names_the_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match=r"built for CUDA 13.0\) finds no usable GPU \(CUDA_VISIBLE_DEVICES=;"):
        dev.resolve_device("cuda:0")


def test_a_gpu_torch_cannot_compute_on_is_refused(monkeypatch, caplog):
    """torch sees the GPU but has no kernels for it (or the driver fails): the first computation says so."""
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def no_kernel(*args, **kwargs):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    monkeypatch.setattr(torch, "ones", no_kernel)
    with pytest.raises(ConfigError, match=r"torch cannot compute on cuda: CUDA error: no kernel image"):
        dev.resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"this job sees 1 GPU\(s\) \(cuda:0 to cuda:0\)"):
        dev.resolve_device("cuda:3")
    with caplog.at_level(logging.WARNING, logger="l2h"):
        assert dev.resolve_device("auto") == torch.device("cpu")
    assert "no kernel image" in caplog.text


@pytest.mark.parametrize("capability,auto,scaled", [((9, 0), "bf16", False), ((8, 0), "bf16", False),
                                                    ((7, 5), "fp16", True), ((7, 0), "fp16", True)])
def test_precision_auto_follows_native_bf16(monkeypatch, capability, auto, scaled):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    chosen = dev.resolve_precision("auto", CUDA)
    assert (chosen.name, chosen.scaled) == (auto, scaled)
    assert chosen.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[auto]
    assert dev.resolve_precision("fp32", CUDA) == dev.Precision("fp32", None, False)
    assert dev.resolve_precision("fp16", CUDA).scaled
    if auto == "fp16":
        with pytest.raises(ConfigError, match=rf"precision is bf16, but cuda:0 \(Test GPU\) \(compute capability "
                                              rf"{capability[0]}.{capability[1]}\) has no native bf16"):
            dev.resolve_precision("bf16", CUDA)
    else:
        assert dev.resolve_precision("bf16", CUDA).dtype == torch.bfloat16


def test_precision_on_the_cpu_is_fp32():
    assert dev.resolve_precision("auto", torch.device("cpu")).name == "fp32"
    for name in ("bf16", "fp16"):
        with pytest.raises(ConfigError, match=rf"train.precision is {name}, which l2h uses on CUDA only"):
            dev.resolve_precision(name, torch.device("cpu"))
    with pytest.raises(ConfigError, match="train.precision must be one of auto, bf16, fp16, fp32"):
        TrainConfig(precision="fp8")


def _tiny_step(scaler, poison=False):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    loss = model(x).pow(2).mean() * (float("inf") if poison else 1.0)
    apply({"total": loss}, optimiser, scaler=scaler)
    return model.weight.detach().clone()


def test_a_scaled_step_equals_the_plain_one_and_skips_overflow():
    """fp16's gradient scaler (here on the CPU, the same GradScaler code) scales the loss and unscales the
    gradients before the step: the same update; a step whose gradients overflowed is skipped."""
    plain = _tiny_step(None)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    assert torch.allclose(_tiny_step(scaler), plain, atol=1e-6)
    torch.manual_seed(0)
    untouched = torch.nn.Linear(3, 2).weight.detach().clone()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    assert torch.equal(_tiny_step(scaler, poison=True), untouched)
    assert scaler.get_scale() < 2.0 ** 12  # backed off
