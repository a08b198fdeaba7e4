"""The device and arithmetic of a training job, decided loudly at its start.

``train.device: cuda`` (or ``cuda:N``) stops the job in one line when torch cannot compute on that GPU
(a CPU build of torch, no visible GPU, a driver too old for torch's CUDA, a GPU torch has no kernels
for); ``auto`` takes the GPU where it works and warns, naming why, when it trains on the CPU.
``train.precision`` (:func:`resolve_precision`) picks the forward passes' arithmetic on the device
that runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from l2h.core.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BF16_CAPABILITY = (8, 0)  # Ampere: native bf16 tensor cores; older GPUs emulate it slowly


@dataclass(frozen=True)
class Precision:
    """How the forward passes compute: ``name`` (bf16, fp16, fp32), the autocast dtype (None: fp32) and
    whether the loss is scaled (fp16's gradients underflow without it)."""

    name: str
    dtype: torch.dtype | None
    scaled: bool

    def scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for fp16, else None."""
        return torch.amp.GradScaler("cuda") if self.scaled else None


def resolve_device(name: str) -> torch.device:
    """The torch device of ``train.device`` ("auto", "cpu", "cuda", "cuda:N"), checked by computing on it."""
    if name == "cpu":
        return torch.device("cpu")
    device = torch.device("cuda" if name == "auto" else name)
    why = _cuda_problem(device)
    if why is None:
        log.info("training runs on %s (%s)", device, torch.cuda.get_device_name(device))
        return device
    if name == "auto":
        log.warning("train.device auto: training runs on the CPU: %s", why)
        return torch.device("cpu")
    raise ConfigError(f"train.device is {name!r}, but {why}")


def describe(device: torch.device) -> str:
    """The device in words for the records: "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)"."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The arithmetic of ``train.precision`` on ``device``: auto = bf16 where the GPU computes it natively,
    else fp16 (with a gradient scaler) on CUDA, fp32 on the CPU."""
    if name not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if device.type != "cuda":
        if name in ("bf16", "fp16"):
            raise ConfigError(f"train.precision is {name}, which l2h uses on CUDA only; on the CPU ({device}) "
                              f"training runs in fp32 (set auto or fp32)")
        return Precision("fp32", None, False)
    native_bf16 = torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    if name == "bf16" and not native_bf16:
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(f"train.precision is bf16, but {describe(device)} (compute capability {major}.{minor}) "
                          f"has no native bf16 (Ampere, 8.0, and newer have); set fp16 or auto")
    if name == "auto":
        name = "bf16" if native_bf16 else "fp16"
    return {"bf16": Precision("bf16", torch.bfloat16, False), "fp16": Precision("fp16", torch.float16, True),
            "fp32": Precision("fp32", None, False)}[name]


def _cuda_problem(device: torch.device) -> str | None:
    """Why torch cannot train on ``device`` (one line), or None when a small computation on it works."""
    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU build: install a CUDA build of torch (docs/gpu.md)")
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no usable GPU "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}; no GPU in this job, "
                f"or an NVIDIA driver older than CUDA {torch.version.cuda} needs)")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"this job sees {count} GPU(s) (cuda:0 to cuda:{count - 1})"
    try:
        (torch.ones(8, device=device) * 2).sum().item()
    except RuntimeError as exc:
        return f"torch cannot compute on {device}: {' '.join(str(exc).split())[:300]}"
    return None
