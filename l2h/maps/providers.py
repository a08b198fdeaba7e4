"""Which onnxruntime execution provider an inference job runs on, decided loudly.

``device: cuda`` stops the job at its start, in one line, unless the session really runs on CUDA:
onnxruntime-gpu lists the CUDA provider whenever it was built with it, and when the node lacks its
CUDA or cuDNN libraries (or no GPU is visible) it warns and runs on the CPU, which a national block
job would not survive. ``auto`` takes CUDA where it starts and says at the start when it runs on the
CPU and why. The providers that really ran are what the chunk manifests record.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from importlib.metadata import packages_distributions

import onnxruntime as ort

from l2h.core.errors import L2HError

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
GPU_INSTALL = "make install ONNXRUNTIME=gpu, or pip install 'l2h[gpu]' after pip uninstall onnxruntime"


def onnxruntime_distributions() -> list[str]:
    """The installed distributions that provide the ``onnxruntime`` module (onnxruntime, onnxruntime-gpu...)."""
    return sorted(set(packages_distributions().get("onnxruntime", [])))


def check_one_onnxruntime() -> None:
    """Two onnxruntime builds in one environment overwrite each other's files in one module, and which
    one runs is an accident of install order: refuse, naming them and the way out."""
    found = onnxruntime_distributions()
    if len(found) > 1:
        raise L2HError(f"{' and '.join(found)} are both installed and share the onnxruntime module: "
                       f"pip uninstall -y {' '.join(found)}, then install one (make install ONNXRUNTIME=cpu|gpu)")


def requested_providers(device: str) -> list[str]:
    """The providers to ask a session for: CUDA first unless ``device`` is cpu or onnxruntime lacks it
    (then ``cuda`` is an error and ``auto`` a warning)."""
    if device not in DEVICES:
        raise L2HError(f"infer.device must be one of {', '.join(DEVICES)}, got {device!r}")
    check_one_onnxruntime()
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA not in available:
        why = (f"onnxruntime {ort.__version__} has no CUDA execution provider (the CPU build; providers: "
               f"{', '.join(available)}); for the GPU: {GPU_INSTALL}")
        if device == "cuda":
            raise L2HError(f"infer.device is cuda, but {why}")
        log.warning("infer.device auto: inference runs on the CPU: %s", why)
        return [CPU]
    problem = _preload_cuda_libraries()
    if problem:
        log.debug("onnxruntime.preload_dlls: %s", problem)
    return [CUDA, CPU]


def check_active(session: ort.InferenceSession, requested: list[str], device: str) -> list[str]:
    """The providers ``session`` really runs on; an error (``cuda``) or a warning (``auto``) when CUDA was
    asked for and did not start."""
    active = list(session.get_providers())
    if requested[0] == CUDA and active[:1] != [CUDA]:
        why = (f"onnxruntime {ort.__version__} offers the CUDA execution provider but could not start it here "
               f"(it runs on {', '.join(active)}): {_cuda_hint()}; onnxruntime's own warning is in the job's "
               f"stderr")
        if device == "cuda":
            raise L2HError(f"infer.device is cuda, but {why}")
        log.warning("infer.device auto: inference runs on the CPU: %s", why)
    elif requested[0] == CUDA:
        log.info("inference runs on %s (device %s)", CUDA, _visible_devices())
    return active


@functools.cache
def _preload_cuda_libraries() -> str:
    """Load the CUDA and cuDNN libraries onnxruntime-gpu needs from the nvidia-* wheels of its [cuda,cudnn]
    extras when they are installed, else from the system's library path (onnxruntime.preload_dlls); what
    it reports, '' if nothing."""
    if not hasattr(ort, "preload_dlls"):  # onnxruntime < 1.21: the system's libraries only
        return ""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            ort.preload_dlls()
        except (OSError, RuntimeError) as exc:
            print(exc)
    return " ".join(out.getvalue().split())


def _cuda_hint() -> str:
    """Why a CUDA provider onnxruntime lists may not start: what it was built against and what it found."""
    built = getattr(ort, "cuda_version", "") or "?"
    problem = _preload_cuda_libraries()
    found = f"; loading its libraries reported: {problem[:300]}" if problem else ""
    return (f"it needs a visible GPU (CUDA_VISIBLE_DEVICES={_visible_devices()}), an NVIDIA driver for CUDA "
            f"{built} and the CUDA {built.split('.')[0]} and cuDNN 9 libraries (pip install "
            f"'onnxruntime-gpu[cuda,cudnn]=={ort.__version__}' provides them){found}")


def _visible_devices() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
