"""L2HNet: the resolution-preserving backbone of L2HNet / SinoLC-1 (docs/method.md §6), its cost and files.

Architecture (stride 1 everywhere, no down-sampling, so a 1 m input gives a 1 m output):

* stem: 3x3 conv (padding 1) ``in_channels -> C``, BatchNorm, ReLU;
* ``num_blocks`` resolution-preserving blocks in sequence. Each runs three parallel branches on its
  input -- 1x1 conv -> C, 3x3 conv (padding 1) -> C/2, 5x5 conv (padding 2) -> C/4, each followed by
  BatchNorm + ReLU -- concatenates them (C + C/2 + C/4 channels), fuses them with a 1x1 conv back to C
  (+ BatchNorm + ReLU) and adds the block input (residual);
* a 1x1 classifier conv ``C -> num_classes`` giving per-pixel logits.

Convolutions followed by BatchNorm have no bias (BatchNorm's shift makes it redundant); the
classifier has one.

**Class order.** Output channel (class index) ``k`` is our class code ``k + 1`` (codes 1..11 of
:mod:`l2h.core.classes`; 0 = nodata and 255 = ignore never appear as outputs). The training pipeline maps
label codes to indices the same way (:func:`l2h.model.loss.codes_to_targets`); :func:`logits_to_codes`
maps predictions back.

Checkpoints (:func:`save_checkpoint_model` / :func:`load_model`) are ``torch.save`` files holding
``{"format": "l2h-model", "format_version": 1, "metadata": {...}, "state_dict": {...}}``; the
architecture is rebuilt from the metadata (``in_channels``, ``num_classes``, ``width``,
``num_blocks``), so a checkpoint is self-describing. Only plain Python values and tensors are stored,
so files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from l2h.core.classes import BY_CODE, IGNORE, NODATA
from l2h.core.errors import ConfigError, InputError

STEM_KERNEL = 3
# (kernel size, output channels as a fraction of C) of a block's three parallel branches
BRANCHES: tuple[tuple[int, int], ...] = ((1, 1), (3, 2), (5, 4))  # kernel, divisor of C
CHECKPOINT_FORMAT = "l2h-model"
CHECKPOINT_FORMAT_VERSION = 1


class ArchitectureError(ConfigError, ValueError):
    """An impossible architecture setting (e.g. a width not divisible by 4).

    Both a :class:`~l2h.core.errors.ConfigError` (the CLI prints it without a traceback) and a
    :class:`ValueError` (what Python code expects for a bad argument).
    """


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=1, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class RPBlock(nn.Module):
    """One resolution-preserving block: 1x1 / 3x3 / 5x5 branches, concat, 1x1 fuse, residual add."""

    def __init__(self, width: int):
        super().__init__()
        self.branches = nn.ModuleList(_conv_bn_relu(width, width // div, k) for k, div in BRANCHES)
        cat = sum(width // div for _, div in BRANCHES)
        self.fuse = _conv_bn_relu(cat, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual: the input plus the fused branches."""
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return x + self.fuse(y)


class L2HNet(nn.Module):
    """The L2HNet backbone + 1x1 classifier. Output channel k = class code k + 1 (see module doc).

    ``forward(x)`` -> logits ``(N, num_classes, H, W)``; ``forward_features(x)`` -> ``(features
    (N, width, H, W), logits)``. Any H, W (odd included): nothing is down-sampled.
    """

    def __init__(self, in_channels: int, num_classes: int = 11, width: int = 64, num_blocks: int = 5):
        super().__init__()
        for name, value, minimum in (("in_channels", in_channels, 1), ("num_classes", num_classes, 1),
                                     ("width", width, 4), ("num_blocks", num_blocks, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ArchitectureError(f"L2HNet {name} must be an integer >= {minimum}, got {value!r}")
        if width % 4:
            raise ArchitectureError(
                f"L2HNet width must be divisible by 4 (its branches have width/2 and width/4 "
                f"channels), got {width}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        self.num_blocks = num_blocks
        self.stem = _conv_bn_relu(in_channels, width, STEM_KERNEL)
        self.blocks = nn.Sequential(*(RPBlock(width) for _ in range(num_blocks)))
        self.classifier = nn.Conv2d(width, num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features before the classifier (N, width, H, W), logits (N, num_classes, H, W))."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ValueError(f"L2HNet expects input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        features = self.blocks(self.stem(x))
        return features, self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, K, H, W) for an image batch (N, C, H, W)."""
        return self.forward_features(x)[1]

    def extra_repr(self) -> str:
        """The hyper-parameters, as PyTorch prints them."""
        return (f"in_channels={self.in_channels}, num_classes={self.num_classes}, width={self.width}, "
                f"num_blocks={self.num_blocks}")


# ---------------------------------------------------------------------------------------------
# class index <-> code


def index_to_code(index: int) -> int:
    """Class index (output channel) -> our class code: k -> k + 1."""
    return int(index) + 1


def logits_to_codes(logits: torch.Tensor) -> torch.Tensor:
    """Logits (N, K, H, W) -> uint8 class codes (N, H, W), argmax + 1 (never 0 or 255)."""
    return (logits.argmax(dim=1) + 1).to(torch.uint8)


# Logit bias of a class no training label ever showed the network: it can never win the argmax
# (exp(-1e4) is 0 in float32 and bfloat16) and gets no softmax confidence.
UNSEEN_CLASS_BIAS = -1.0e4


def suppress_unseen_classes(model: L2HNet, label_pixels: Sequence[int]) -> list[int]:
    """Make the classes with no labelled training pixel impossible to predict; their codes.

    ``label_pixels``: labelled pixels per class index the network was trained on. A class the
    coarse labels never showed (e.g. no building in a forest tile) has an untrained output that can
    still win the argmax on pixels unlike anything in the labels; its classifier bias is set to
    :data:`UNSEEN_CLASS_BIAS`, which the exported ONNX model carries too.
    """
    counts = [int(n) for n in label_pixels]
    if len(counts) != model.num_classes:
        raise ValueError(f"label_pixels needs {model.num_classes} counts, got {len(counts)}")
    unseen = [k for k, n in enumerate(counts) if n <= 0]
    if len(unseen) == model.num_classes:
        raise ValueError("the network saw no labelled pixel of any class")
    with torch.no_grad():
        for k in unseen:
            model.classifier.weight[k].zero_()
            model.classifier.bias[k] = UNSEEN_CLASS_BIAS
    return [index_to_code(k) for k in unseen]


# ---------------------------------------------------------------------------------------------
# cost


def receptive_field(num_blocks: int | L2HNet = 5) -> int:
    """Receptive field in pixels (side of the square window one output pixel sees).

    Each stride-1 conv of kernel k widens it by k - 1; along the widest path that is the 3x3 stem
    and one 5x5 branch per block (the 1x1 fuse and classifier add nothing): 1 + 2 + 4 * num_blocks
    (23 for 5 blocks). Accepts a model too.
    """
    if isinstance(num_blocks, L2HNet):
        num_blocks = num_blocks.num_blocks
    widest = max(k for k, _ in BRANCHES)
    return 1 + (STEM_KERNEL - 1) + num_blocks * (widest - 1)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_pixel(model: nn.Module) -> int:
    """FLOPs per output pixel: 2 x the multiply-adds of every conv (all run at full resolution).

    A conv with kernel kh x kw, cin inputs, cout outputs and g groups costs kh*kw*(cin/g)*cout
    multiply-adds per pixel. BatchNorm (foldable into the conv at inference), ReLU, bias, the
    residual add and the concatenation are not counted. Raises ValueError for a strided or
    dilated conv (then the cost per pixel would not be uniform).
    """
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if tuple(m.stride) != (1, 1) or tuple(m.dilation) != (1, 1):
                raise ValueError(f"flops_per_pixel assumes stride 1 and dilation 1, got {m}")
            kh, kw = m.kernel_size
            total += 2 * kh * kw * (m.in_channels // m.groups) * m.out_channels
    return total


# ---------------------------------------------------------------------------------------------
# metadata and checkpoints


def _plain(value: Any, where: str) -> Any:
    """Plain Python copy of `value` (numpy scalars/arrays, tuples, Paths converted) for torch.save."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if hasattr(value, "tolist") and type(value).__module__.startswith("numpy"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {(k if isinstance(k, (int, str)) else str(k)): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"model metadata {where}: cannot store a {type(value).__name__} ({value!r})")


def class_names(num_classes: int) -> dict[int, str]:
    """{code: name} of the classes a model with `num_classes` outputs predicts (code = index + 1)."""
    return {index_to_code(k): BY_CODE[index_to_code(k)].name if index_to_code(k) in BY_CODE
            else f"class {index_to_code(k)}" for k in range(num_classes)}


def model_metadata(model: L2HNet, bands: Sequence[str], normalisation: Mapping[str, Sequence[float]],
                   tau: float, gamma: float, extra: Mapping[str, Any] | None = None,
                   unpredictable_classes: Sequence[int] = ()) -> dict:
    """The metadata stored beside a model's weights.

    Keys: ``classes`` ({code: name}, code = output index + 1), ``class_index_to_code`` (list),
    ``bands``, ``in_channels``, ``num_classes``, ``width``, ``num_blocks``, ``receptive_field``,
    ``normalisation`` ({"mean": [...], "std": [...]}, one value per band), ``tau``, ``gamma``,
    ``l2h_version``, ``unpredictable_classes`` (codes of the classes the model can never predict: no
    training label showed them, :func:`suppress_unseen_classes`) and ``extra`` (the caller's dict,
    e.g. training steps, seed, config digest; stored as given under ``extra``, converted to plain
    Python values).
    """
    from l2h import __version__

    bands = [str(b) for b in bands]
    if len(bands) != model.in_channels:
        raise ConfigError(f"model has {model.in_channels} input channels but {len(bands)} band names "
                          f"were given: {bands}")
    try:
        mean = [float(v) for v in normalisation["mean"]]
        std = [float(v) for v in normalisation["std"]]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"normalisation must be a mapping with 'mean' and 'std' lists, "
                          f"got {normalisation!r}") from exc
    if len(mean) != len(bands) or len(std) != len(bands):
        raise ConfigError(f"normalisation needs one mean and one std per band ({len(bands)}), got "
                          f"{len(mean)} means and {len(std)} stds")
    if any(not math.isfinite(s) or s <= 0 for s in std) or any(not math.isfinite(m) for m in mean):
        raise ConfigError(f"normalisation std must be finite and > 0 and mean finite, got mean={mean} std={std}")
    return {
        "architecture": "L2HNet",
        "classes": class_names(model.num_classes),
        "unpredictable_classes": sorted(int(c) for c in unpredictable_classes),
        "class_index_to_code": [index_to_code(k) for k in range(model.num_classes)],
        "nodata": NODATA,
        "ignore": IGNORE,
        "bands": bands,
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "width": model.width,
        "num_blocks": model.num_blocks,
        "receptive_field": receptive_field(model.num_blocks),
        "normalisation": {"mean": mean, "std": std},
        "tau": float(tau),
        "gamma": float(gamma),
        "l2h_version": __version__,
        "extra": _plain(dict(extra or {}), "extra"),
    }


def save_checkpoint_model(path: str | os.PathLike, model: L2HNet, metadata: Mapping[str, Any]) -> Path:
    """Write model weights + metadata atomically (temporary file in the same folder, then rename)."""
    from l2h.core.io import atomic_path  # lazy: l2h.core.io imports rasterio

    for key in ("in_channels", "num_classes", "width", "num_blocks"):
        if metadata.get(key) != getattr(model, key):
            raise ValueError(f"metadata {key}={metadata.get(key)!r} does not match the model's "
                             f"{getattr(model, key)!r}; build it with model_metadata(model, ...)")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "metadata": _plain(dict(metadata), "metadata"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_tagged_checkpoint(path: Path, fmt: str, max_version: int, kind: str, remedy: str,
                           map_location="cpu") -> dict:
    """A torch checkpoint dict carrying `format` == fmt and a readable `format_version`; InputError
    naming the file (and `remedy`) otherwise. Shared by model files and training checkpoints."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an input problem
        raise InputError(f"cannot read {kind} checkpoint {path}: {exc} ({remedy})") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise InputError(f"{path} is not an l2h {kind} checkpoint (no '{fmt}' format tag; {remedy})")
    if payload.get("format_version", 0) > max_version:
        raise InputError(f"{kind} checkpoint {path} has format version {payload.get('format_version')}; "
                         f"this l2h reads up to {max_version} ({remedy})")
    return payload


def _read_checkpoint(path: Path, map_location) -> dict:
    if not path.is_file():
        raise InputError(f"model checkpoint {path} does not exist")
    payload = load_tagged_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, "model",
                                     "export or train it again, or upgrade l2h", map_location)
    meta = payload.get("metadata")
    if not isinstance(meta, dict) or not isinstance(payload.get("state_dict"), dict):
        raise InputError(f"model checkpoint {path} lacks its metadata or weights")
    missing = [k for k in ("in_channels", "num_classes", "width", "num_blocks") if not isinstance(meta.get(k), int)]
    if missing:
        raise InputError(f"model checkpoint {path}: metadata lacks {', '.join(missing)}")
    return payload


def _state_dict_shape(state: Mapping[str, torch.Tensor]) -> tuple[int | None, int | None]:
    """(width, in_channels) the weights were trained with, read from the stem conv."""
    w = state.get("stem.0.weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        return None, None
    return int(w.shape[0]), int(w.shape[1])


def _check_expected(path: Path, what: str, trained: int | None, expected: int | None) -> None:
    if expected is not None and trained is not None and trained != expected:
        raise InputError(f"checkpoint {path.name} was trained with {what} {trained}, this run expects "
                         f"{what} {expected} ({path})")


def load_model(path: str | os.PathLike, map_location="cpu", expect_width: int | None = None,
               expect_in_channels: int | None = None) -> tuple[L2HNet, dict]:
    """Rebuild the model a checkpoint describes and load its weights -> (model in eval mode, metadata).

    ``expect_width`` / ``expect_in_channels``: what this run is configured for; a checkpoint trained
    otherwise -> InputError such as "checkpoint x.pt was trained with width 64, this run expects
    width 32". Weights that do not match the checkpoint's own metadata -> InputError as well.
    """
    path = Path(path)
    payload = _read_checkpoint(path, map_location)
    meta, state = payload["metadata"], payload["state_dict"]
    _check_expected(path, "width", meta["width"], expect_width)
    _check_expected(path, "in_channels", meta["in_channels"], expect_in_channels)
    sd_width, sd_in = _state_dict_shape(state)
    if (sd_width, sd_in) != (meta["width"], meta["in_channels"]):
        raise InputError(f"checkpoint {path.name}: its metadata says width {meta['width']} and "
                         f"{meta['in_channels']} input channels but its weights have width {sd_width} "
                         f"and {sd_in} input channels ({path})")
    try:
        model = L2HNet(meta["in_channels"], meta["num_classes"], meta["width"], meta["num_blocks"])
    except ArchitectureError as exc:
        raise InputError(f"checkpoint {path}: {exc}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"checkpoint {path.name} weights do not fit the architecture its metadata "
                         f"describes: {exc}") from exc
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    model.eval()
    return model, meta
