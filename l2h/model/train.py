"""Train L2HNet on the coarse labels (docs/method.md §6, §11): resumable, reproducible, GPU or CPU.

:func:`train` builds :class:`l2h.model.l2hnet.L2HNet`, SGD with momentum or AdamW and a poly
learning-rate decay, and :class:`l2h.model.loss.L2HLoss`; after ``steps`` on the coarse label an
optional second phase self-trains on the frozen first-phase network's 1 m pseudo-labels
(``self_training_steps``). Batches come from
:class:`l2h.model.data.TrainingWindows`, where step ``s`` uses sample indices ``s*B .. s*B+B-1`` (no
data-loader state). ``work_dir`` holds:

* ``checkpoint.pt`` -- written atomically every ``checkpoint_every`` steps and at the end: model,
  optimiser and scheduler states, the number of completed steps, torch/NumPy/Python RNG states,
  the config, the bands, the normalisation, a digest of the training blocks and, in the second
  phase, the frozen teacher. When it exists, :func:`train` resumes from it; on CPU with the same
  thread count a resumed run ends with the same weights as an uninterrupted one. The checkpoint
  before it is kept as ``checkpoint.previous.pt``: one that does not read (a disk fault truncated
  it) is skipped for that one, with a warning.
* ``metrics.csv`` -- one row per step (step, lr, total, ce, dva, confident_share, agreement,
  seconds); rows beyond the checkpoint are dropped on resume.

Channels-last tensors everywhere; on CUDA also autocast in ``train.precision`` (:mod:`l2h.model.device`) and
``cudnn.benchmark``. The finished model is
written with :func:`l2h.model.l2hnet.save_checkpoint_model` and carries its bands, normalisation,
width, tau/gamma and a training summary in its metadata.

``agreement`` (share of labelled pixels where the prediction equals the coarse label) needs no
1 m truth; docs/method.md §11 warns that long runs memorise the coarse label, so watch it plateau.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2h.core.errors import ConfigError, InputError, L2HError
from l2h.core.io import atomic_path
from l2h.model import step as step_fns
from l2h.model.data import PriorSettings, TrainingSpec, TrainingWindows, band_statistics, specs_digest
from l2h.model.device import PRECISIONS, describe, resolve_device, resolve_precision
from l2h.model.l2hnet import (
    L2HNet,
    index_to_code,
    load_tagged_checkpoint,
    model_metadata,
    save_checkpoint_model,
    suppress_unseen_classes,
)
from l2h.model.loss import MODES, L2HLoss, weights_from_counts

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.previous.pt"  # the checkpoint before the last, kept in case the last cannot be read
METRICS_NAME = "metrics.csv"
CHECKPOINT_FORMAT = "l2h-train-checkpoint"
CHECKPOINT_VERSION = 1
METRIC_COLUMNS = ("step", "lr", "total", "ce", "dva", "confident_share", "agreement", "seconds")
# config fields that may change between a checkpoint and the run resuming it
RESUMABLE_FIELDS = ("steps", "checkpoint_every", "workers", "device", "precision")
SUMMARY_WINDOW = 10  # steps averaged for the "first" / "final" metrics
# settings a checkpoint of an older l2h lacks, with the behaviour that l2h had
SETTINGS_ADDED_LATER = {"edge_cells": "pixel", "self_training_steps": 0}


OPTIMIZERS = ("sgd", "adamw")
CLASS_WEIGHTS = ("batch", "labels")
EDGE_CELLS = ("pixel", "cell")


@dataclass
class TrainConfig:
    """Training settings (defaults suit the demo on a CPU; see docs/method.md §6 for the paper's).

    width: channels C of the L2HNet backbone (Paraformer: 64 "light" or 128).
    patch_size: side of a training window in pixels (Paraformer: 224).
    batch_size: windows per step.
    steps: optimiser steps on the coarse label (the first phase; the poly decay runs over them).
    optimizer: "sgd" (with momentum; Paraformer: lr 0.01, 0.9, 1e-4) or "adamw" (momentum unused;
        converges in fewer steps, suits short CPU runs).
    lr, momentum, weight_decay: learning rate, SGD momentum, weight decay.
    poly_power: in the first phase lr(step) = lr * (1 - step / steps) ** poly_power (the second
        decays self_training_lr the same way over self_training_steps).
    tau: confident-area threshold on the network's probability of the coarse class.
    gamma: weight of the dynamic vague-area loss L_DVA.
    confidence: confident-area rule, "label_prob" (p[label] >= tau) or "argmax" (Paraformer).
    min_class_share: per-class floor of the confident area (guards against majority collapse).
    balance_power: class weights of the cross-entropy = (class pixel count) ** -power; 0 = plain
        cross-entropy (the label's class frequencies act as the prior).
    class_weights: where the counts come from: "batch" (each batch's pixels in the loss: confident
        ones and, with ``edge_cells: cell``, edge-cell pixels) or "labels"
        (the label's class areas over all training blocks, fixed for the whole run: a rare class
        does not get a huge weight in the one batch where it has a few pixels).
    partial_labels: learn from ambiguous pixels too (their class set S, loss -log sum_{c in S} p_c;
        :mod:`l2h.model.loss`) instead of ignoring them; needs the class-set labels of the training blocks.
    edge_cells: how the labelled pixels of an edge cell (a coarse cell bordering a cell of another
        label, where the 1 m truth is most likely mixed) teach: "pixel" (each pixel as the cell's
        class, like every other pixel) or "cell" (the cell as a whole: -log of its mean probability
        of the class, :func:`l2h.model.loss.cell_nll`).
    self_training_steps: steps of a second phase after ``steps`` (0 = none) that learns from 1 m
        pseudo-labels: the phase-1 network (frozen, the teacher) plus the label prior
        (``self_training_prior`` nats, :mod:`l2h.maps.label_prior`) maps each window, and the student
        continues on those maps with class-balanced cross-entropy (Paraformer's pseudo-label-assisted
        training). Its learning rate starts at ``self_training_lr`` and decays (poly) over the phase.
    rare_draws: candidate windows per training sample; the one whose label holds the rarest classes
        (by the label's class areas) is used, so rare classes are seen more often (1 = plain draws).
    colour_jitter: radiometric augmentation of the training windows (brightness and per-band gains
        within 1 +- colour_jitter; 0 = off).
    ema: decay of an exponential moving average of the weights (and BatchNorm statistics) that
        becomes the trained model (0 = the last step's weights).
    warmup_steps: steps during which every labelled pixel counts as confident and L_DVA is off.
    min_labelled: windows with a smaller labelled share are re-drawn.
    checkpoint_every: steps between checkpoints (one is always written at the end).
    workers: DataLoader worker processes (0 = load in the training process).
    seed: seeds the model initialisation and the data windows.
    device: "auto" (cuda where torch can compute on it, else cpu with a warning), "cpu", "cuda" or
        "cuda:N" (an error at the start when torch cannot use that GPU): :mod:`l2h.model.device`.
    stats_samples: windows drawn to estimate the per-band normalisation.
    precision: the forward passes' arithmetic on a GPU: "bf16", "fp16" (with a gradient scaler), "fp32",
        or "auto" (bf16 where the GPU computes it natively, else fp16; fp32 on the CPU).
    """

    width: int = 16
    patch_size: int = 32
    batch_size: int = 128
    steps: int = 400
    optimizer: str = "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    tau: float = 0.0
    gamma: float = 0.0
    confidence: str = "label_prob"
    min_class_share: float = 0.2
    balance_power: float = 0.25
    class_weights: str = "batch"
    partial_labels: bool = False
    edge_cells: str = "cell"
    self_training_steps: int = 200
    self_training_lr: float = 0.003
    self_training_prior: float = 4.0
    rare_draws: int = 1
    colour_jitter: float = 0.0
    ema: float = 0.0
    warmup_steps: int = 50
    min_labelled: float = 0.3
    checkpoint_every: int = 50
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    stats_samples: int = 64
    precision: str = "auto"

    def __post_init__(self):
        ints = (("width", 4), ("patch_size", 1), ("batch_size", 1), ("steps", 1), ("warmup_steps", 0),
                ("self_training_steps", 0),
                ("rare_draws", 1), ("checkpoint_every", 1), ("workers", 0), ("seed", 0), ("stats_samples", 1))
        for name, minimum in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"train.{name} must be an integer >= {minimum}, got {value!r}")
        if self.width % 4:
            raise ConfigError(f"train.width must be divisible by 4, got {self.width}")
        floats = (("lr", 0.0, math.inf, False), ("momentum", 0.0, 1.0, True), ("weight_decay", 0.0, math.inf, True),
                  ("poly_power", 0.0, math.inf, True), ("tau", 0.0, 1.0, True), ("gamma", 0.0, math.inf, True),
                  ("min_class_share", 0.0, 1.0, True), ("min_labelled", 0.0, 1.0, True),
                  ("balance_power", 0.0, math.inf, True), ("colour_jitter", 0.0, 0.99, True),
                  ("ema", 0.0, 0.9999, True), ("self_training_lr", 0.0, math.inf, False),
                  ("self_training_prior", 0.0, math.inf, True))
        for name, low, high, low_ok in floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value > high or value < low or (value == low and not low_ok):
                raise ConfigError(f"train.{name} must be a number {'>=' if low_ok else '>'} {low}"
                                  f"{'' if high == math.inf else f' and <= {high}'}, got {value!r}")
        if not isinstance(self.partial_labels, bool):
            raise ConfigError(f"train.partial_labels must be true or false, got {self.partial_labels!r}")
        if self.edge_cells not in EDGE_CELLS:
            raise ConfigError(f"train.edge_cells must be one of {', '.join(EDGE_CELLS)}, got {self.edge_cells!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ConfigError(f"train.class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got "
                              f"{self.class_weights!r}")
        if self.confidence not in MODES:
            raise ConfigError(f"train.confidence must be one of {', '.join(MODES)}, got {self.confidence!r}")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def total_steps(self) -> int:
        """Steps of both phases: on the coarse labels, then on the pseudo-labels."""
        return self.steps + self.self_training_steps

    def lr_factor(self, step: int) -> float:
        """The learning rate of ``step`` over ``lr``: poly decay over each phase, the second from
        ``self_training_lr``."""
        if step < self.steps or not self.self_training_steps:
            return poly_factor(step, self.steps, self.poly_power)
        return self.self_training_lr / self.lr * poly_factor(step - self.steps, self.self_training_steps,
                                                             self.poly_power)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a mapping (e.g. the workflow config's ``train`` section); unknown keys ->
        ConfigError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown train setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)


def make_optimiser(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser the config names (SGD with momentum, or AdamW)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def poly_factor(step: int, steps: int, power: float) -> float:
    """Poly decay of the learning rate: (1 - step / steps) ** power (0 from `steps` on)."""
    return max(0.0, 1.0 - step / steps) ** power


# ---------------------------------------------------------------------------------- RNG states


def _rng_state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's global generator and Python's `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


# ---------------------------------------------------------------------------------- checkpoints


def _read_train_checkpoint(path: Path) -> dict:
    """The checkpoint, on the CPU (the optimiser moves its state to the parameters' device)."""
    return load_tagged_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "training",
                                  "delete it to start afresh")


def _resume_point(ckpt_path: Path) -> tuple[dict, Path] | None:
    """The checkpoint to resume from: the last one, or, when it cannot be read (a disk fault, a
    truncated file), the one before it, saying so in one line; None when there is none. When none
    of them reads, an InputError names the files to delete to start afresh."""
    previous = ckpt_path.with_name(PREVIOUS_NAME)
    candidates = [p for p in (ckpt_path, previous) if p.exists()]
    problems = []
    for path in candidates:
        try:
            payload = _read_train_checkpoint(path)
        except InputError as exc:
            problems.append(f"{path.name}: {' '.join(str(exc).split())[:300]}")
            continue
        if path == previous and problems:
            log.warning("training checkpoint %s cannot be read (%s); resuming from the one before it, %s (step %d)",
                        ckpt_path, problems[0], previous, int(payload.get("step", 0)))
        return payload, path
    if candidates:
        raise InputError(f"no training checkpoint in {ckpt_path.parent} can be read ({'; '.join(problems)}); delete "
                         f"{' and '.join(str(p) for p in candidates)} to start training afresh")
    return None


def _check_resumable(path: Path, payload: dict, cfg: TrainConfig, bands: list[str], digest: str,
                     prior: PriorSettings | None = None) -> None:
    """Raise ConfigError unless the checkpoint was written by a run with the same settings (and, once
    self-training has begun, the same pseudo-label prior)."""
    old = payload.get("cfg", {})
    hint = f"delete {path.parent} (or {path}) to start afresh, or restore the old setting"
    if old.get("width") != cfg.width:
        raise ConfigError(f"training checkpoint {path} was trained with width {old.get('width')}, this "
                          f"run has width {cfg.width}; {hint}")
    # a setting newer than the checkpoint behaved then as it does when off (edge cells pixel-wise, no
    # self-training); one added before had its default value
    defaults = {**asdict(TrainConfig()), **SETTINGS_ADDED_LATER}
    diffs = [f"{k}: checkpoint {old.get(k, defaults[k])!r}, now {v!r}" for k, v in asdict(cfg).items()
             if k not in RESUMABLE_FIELDS and old.get(k, defaults[k]) != v]
    if diffs:
        raise ConfigError(f"training checkpoint {path} was written with other settings ({'; '.join(diffs)}); {hint}")
    if list(payload.get("bands", [])) != list(bands):
        raise ConfigError(f"training checkpoint {path} was trained on bands {payload.get('bands')}, this run "
                          f"has {bands}; {hint}")
    if payload.get("data_digest") != digest:
        raise ConfigError(f"training checkpoint {path} was trained on other training blocks / labels / "
                          f"imagery than this run's; {hint}")
    if "teacher" in payload and payload.get("pseudo_prior") != _prior_record(prior):
        raise ConfigError(f"training checkpoint {path} is self-training with the label prior "
                          f"{payload.get('pseudo_prior')}, this run has {_prior_record(prior)} "
                          f"(infer.prior_interpolation, infer.prior_roads); {hint}")
    if "teacher" in payload and old.get("steps") != cfg.steps:
        raise ConfigError(f"training checkpoint {path} is past train.steps = {old.get('steps')} (self-training had "
                          f"begun): train.steps cannot change to {cfg.steps} now; {hint}")
    if payload["step"] > cfg.total_steps:
        raise ConfigError(f"training checkpoint {path} is at step {payload['step']}, beyond train.steps + "
                          f"train.self_training_steps = {cfg.total_steps}; {hint}")


def _prior_record(prior: PriorSettings | None) -> dict | None:
    """What of the pseudo-labels' prior a checkpoint records: strength, interpolation, road files' names."""
    if prior is None:
        return None
    return {"strength": prior.strength, "interpolation": prior.interpolation,
            "roads": sorted(Path(r).name for r in prior.roads)}


def _write_checkpoint(path: Path, model, optimiser, scheduler, step: int, cfg: TrainConfig, bands: list[str],
                      normalisation: dict, digest: str, elapsed_s: float, label_pixels: torch.Tensor,
                      ema=None, teacher=None, prior: PriorSettings | None = None, scaler=None,
                      steps_by_device: dict | None = None) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "step": int(step),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimiser": optimiser.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "cfg": asdict(cfg),
        "bands": list(bands),
        "normalisation": {"mean": list(normalisation["mean"]), "std": list(normalisation["std"])},
        "data_digest": digest,
        "elapsed_s": float(elapsed_s),
        "label_pixels": [int(n) for n in label_pixels],
        "steps_by_device": dict(steps_by_device or {}),
    }
    if scaler is not None:
        payload["scaler"] = scaler.state_dict()
    if ema is not None:
        payload["ema"] = {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()}
    if teacher is not None:
        payload["teacher"] = {k: v.detach().cpu().clone() for k, v in teacher.state_dict().items()}
        payload["pseudo_prior"] = _prior_record(prior)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        if path.exists():  # the last one becomes the previous: a fallback should the new one not read
            os.replace(path, path.with_name(PREVIOUS_NAME))


# ---------------------------------------------------------------------------------- metrics file


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a metrics.csv as dicts of numbers (step as int); [] when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = []
        for row in csv.DictReader(f):
            try:
                rows.append({k: (int(v) if k == "step" else float(v)) for k, v in row.items()})
            except (TypeError, ValueError):
                break  # a half-written last line after a crash
        return rows


def _reset_metrics(path: Path, keep_below: int) -> None:
    """Rewrite metrics.csv atomically with its rows of steps < keep_below (header only if none)."""
    rows = [r for r in read_metrics(path) if r["step"] < keep_below]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(METRIC_COLUMNS)
            for r in rows:
                writer.writerow([_fmt(r[c]) for c in METRIC_COLUMNS])


def _fmt(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.7g}"


def _summarise(rows: list[dict]) -> dict:
    if not rows:
        return {}
    keys = ("total", "ce", "dva", "confident_share", "agreement")
    n = min(SUMMARY_WINDOW, len(rows))
    first = {k: float(np.mean([r[k] for r in rows[:n]])) for k in keys}
    final = {k: float(np.mean([r[k] for r in rows[-n:]])) for k in keys}
    return {"first": first, "final": final, "window": n, "rows": len(rows)}


# ---------------------------------------------------------------------------------- training


def _batches(start: int, stop: int, batch: int):
    for s in range(start, stop):
        yield list(range(s * batch, (s + 1) * batch))


def train(specs: list[TrainingSpec], bands: list[str], cfg: TrainConfig, out_model: str | os.PathLike,
          work_dir: str | os.PathLike, progress: bool = True, stop_after: int | None = None,
          class_areas: list[float] | None = None, prior: PriorSettings | None = None) -> dict:
    """Train (or resume training) L2HNet and write ``out_model``; see the module doc.

    ``specs``: the training blocks; ``bands``: names of the imagery bands, in order (the imagery
    must have exactly this many); ``work_dir``: checkpoint + metrics (resumed when a checkpoint is
    there). ``stop_after``: stop after this many steps of *this call* (checkpointing, without
    writing ``out_model``) -- for wall-time-limited jobs that resume in the next one.
    ``class_areas``: labelled area per class index over the training blocks
    (:func:`l2h.model.data.training_class_areas`); needed by ``class_weights: labels``.
    ``prior``: how the pseudo-labels of self-training use the label prior (its interpolation and road
    surfaces; the strength is ``cfg.self_training_prior``); bilinear without roads when None.

    Returns a summary: steps (completed), steps_run (this call), resumed_from, complete,
    seconds, pixels_per_s (training pixels per second this call), device, normalisation and
    metrics (first/final means over the first/last 10 steps).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    bands = [str(b) for b in bands]
    if not bands:
        raise ConfigError("no band names given (train needs one name per imagery band)")
    if stop_after is not None and stop_after < 1:
        raise ConfigError(f"stop_after must be >= 1, got {stop_after}")
    needs_areas = [k for k, on in (("class_weights: labels", cfg.class_weights == "labels"),
                                   ("rare_draws > 1", cfg.rare_draws > 1)) if on]
    if needs_areas and (class_areas is None or not any(a > 0 for a in class_areas)):
        verb = "needs" if len(needs_areas) == 1 else "need"
        raise ConfigError(f"train.{' and train.'.join(needs_areas)} {verb} the training blocks' labelled class "
                          f"areas (got {class_areas})")
    out_model, work_dir = Path(out_model), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path = work_dir / CHECKPOINT_NAME, work_dir / METRICS_NAME
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    precision = resolve_precision(cfg.precision, device)
    ran_on = f"{describe(device)} {precision.name}"  # what this call's steps are recorded as
    digest = specs_digest(specs)

    if cfg.self_training_steps:  # the pseudo-labels' prior: the training's strength, inference's drawing
        prior = PriorSettings(cfg.self_training_prior, prior.interpolation if prior else "bilinear",
                              tuple(prior.roads) if prior else ())
    payload = None
    if (found := _resume_point(ckpt_path)) is not None:
        payload, path = found
        _check_resumable(path, payload, cfg, bands, digest, prior)
    seed_everything(cfg.seed)

    if payload is not None:
        normalisation = payload["normalisation"]
    else:
        normalisation = band_statistics(specs, cfg.patch_size, cfg.stats_samples, cfg.seed, in_channels=len(bands))
        normalisation = {"mean": normalisation["mean"], "std": normalisation["std"]}
    common = dict(in_channels=len(bands), normalisation=normalisation, min_labelled=cfg.min_labelled, augment=True,
                  colour_jitter=cfg.colour_jitter, rare_draws=cfg.rare_draws,
                  class_rarity=weights_from_counts(class_areas, 1.0).tolist() if cfg.rare_draws > 1 else None)
    dataset = TrainingWindows(specs, cfg.patch_size, cfg.seed, sets=cfg.partial_labels,
                              edge_cells=cfg.edge_cells == "cell", **common)
    pseudo_data = None
    if cfg.self_training_steps:
        pseudo_data = TrainingWindows(specs, cfg.patch_size, cfg.seed, prior=prior, **common)

    model = L2HNet(len(bands), 11, cfg.width)  # seeded above: the same init for the same seed
    if payload is not None:
        model.load_state_dict(payload["model"])
    if cuda:
        torch.backends.cudnn.benchmark = True
    # channels-last: NHWC convolutions, faster on CUDA (tensor cores) and on the CPU (oneDNN:
    # +25 % per training step at width 32, bench/results/model_speed.json)
    model = model.to(device, memory_format=torch.channels_last)
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema > 0 else None)
    if ema is not None and payload is not None:
        ema.load_state_dict(payload["ema"])
    optimiser = make_optimiser(model, cfg)
    scaler = precision.scaler()
    steps = cfg.total_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, cfg.lr_factor)
    teacher = None
    if payload is not None and "teacher" in payload:
        teacher = step_fns.frozen_copy(model, payload["teacher"])
    loss_fn = L2HLoss(num_classes=model.num_classes, tau=cfg.tau, gamma=cfg.gamma, mode=cfg.confidence,
                      min_class_share=cfg.min_class_share, warmup_steps=cfg.warmup_steps,
                      balance_power=cfg.balance_power,
                      class_weights=(weights_from_counts(class_areas, cfg.balance_power)
                                     if cfg.class_weights == "labels" else None))

    start, elapsed_before, steps_by_device = 0, 0.0, {}
    # labelled pixels per class index in the batches so far (classes never shown are suppressed)
    label_pixels = torch.zeros(model.num_classes, dtype=torch.int64)
    counted_all = payload is None or "label_pixels" in payload
    if payload is not None:
        if counted_all:
            label_pixels = torch.as_tensor(payload["label_pixels"], dtype=torch.int64)
        else:
            log.warning("%s predates label counting: which classes its first %d steps showed is unknown, so "
                        "no class will be suppressed", ckpt_path, int(payload["step"]))
        optimiser.load_state_dict(payload["optimiser"])
        scheduler.load_state_dict(payload["scheduler"])
        if scaler is not None and "scaler" in payload:
            scaler.load_state_dict(payload["scaler"])
        # a checkpoint from before devices were recorded: its steps ran on a device no record names
        steps_by_device = dict(payload.get("steps_by_device", {"unknown": int(payload["step"])}))
        if payload["cfg"].get("steps") != cfg.steps:
            log.warning("resuming %s (trained for steps=%s) with steps=%s: the learning-rate decay is "
                        "recomputed over the new total", ckpt_path, payload["cfg"].get("steps"), cfg.steps)
            for group, base in zip(optimiser.param_groups, scheduler.base_lrs):
                group["lr"] = base * cfg.lr_factor(payload["step"])
        _set_rng_state(payload["rng"])
        start, elapsed_before = int(payload["step"]), float(payload.get("elapsed_s", 0.0))
        log.info("resuming from %s at step %d of %d", path, start, steps)
        payload = None  # free the memory
    _reset_metrics(metrics_path, start)

    stop = steps if stop_after is None else min(steps, start + stop_after)

    def loader(data, first: int, last: int):
        if last <= first:
            return []
        return torch.utils.data.DataLoader(
            data, batch_sampler=list(_batches(first, last, cfg.batch_size)), num_workers=cfg.workers,
            pin_memory=cuda, generator=torch.Generator().manual_seed(cfg.seed),
            persistent_workers=False, prefetch_factor=4 if cfg.workers > 0 else None)

    batches = itertools.chain(loader(dataset, start, min(stop, cfg.steps)),
                              loader(pseudo_data, max(start, cfg.steps), stop) if pseudo_data else [])

    from tqdm import tqdm

    bar = tqdm(total=steps, initial=start, disable=not progress, file=sys.stderr, unit="step",
               desc="train", dynamic_ncols=True, leave=True)
    t_start = time.perf_counter()
    t_step = t_start
    step = start
    last: dict[str, float] = {}
    model.train()
    try:
        with open(metrics_path, "a", newline="", encoding="utf-8") as mf:
            writer = csv.writer(mf)
            for image, target, *extras in batches:
                image = image.to(device, non_blocking=cuda).contiguous(memory_format=torch.channels_last)
                target = target.to(device, non_blocking=cuda)
                extras = [e.to(device, non_blocking=cuda) for e in extras]
                lr = optimiser.param_groups[0]["lr"]
                if step < cfg.steps:
                    label_pixels += torch.bincount(target[target != loss_fn.ignore_index].flatten().long().cpu(),
                                                   minlength=model.num_classes)[:model.num_classes]
                    sets = extras.pop(0) if cfg.partial_labels else None
                    cells = extras.pop(0) if cfg.edge_cells == "cell" else None
                    losses = step_fns.coarse_label_losses(model, loss_fn, image, target, step, sets, cells,
                                                          amp=precision.dtype)
                else:
                    if teacher is None:  # the phase-1 network, frozen, maps the windows
                        teacher = step_fns.frozen_copy(model, (ema.module if ema is not None else model).state_dict())
                        if counted_all:  # its pseudo-labels never hold a class no coarse label showed
                            suppress_unseen_classes(teacher, label_pixels.tolist())
                    losses = step_fns.self_training_losses(model, teacher, image, target, *extras, cfg.balance_power,
                                                           amp=precision.dtype)
                total = losses["total"]
                if not torch.isfinite(total):
                    raise L2HError(f"training diverged: loss is {float(total)} at step {step} (lower train.lr, "
                                   f"now {cfg.lr}); the last good checkpoint is {ckpt_path}")
                step_fns.apply(losses, optimiser, scheduler, scaler)
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                steps_by_device[ran_on] = steps_by_device.get(ran_on, 0) + 1
                now = time.perf_counter()
                last = {k: float(v.detach()) for k, v in losses.items()}
                writer.writerow([_fmt(step - 1), _fmt(lr)] + [_fmt(last[k]) for k in METRIC_COLUMNS[2:7]]
                                + [_fmt(now - t_step)])
                mf.flush()
                t_step = now
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.3f}", agree=f"{last['agreement']:.3f}", refresh=False)
                if step % cfg.checkpoint_every == 0 or step == stop:
                    _write_checkpoint(ckpt_path, model, optimiser, scheduler, step, cfg, bands, normalisation,
                                      digest, elapsed_before + now - t_start, label_pixels, ema, teacher, prior,
                                      scaler, steps_by_device)
    finally:
        bar.close()
        dataset.close()
        if pseudo_data is not None:
            pseudo_data.close()
    seconds = time.perf_counter() - t_start
    if step == start and start < stop:  # pragma: no cover - the loader yielded nothing
        raise L2HError("training produced no batches")
    if start == stop and not ckpt_path.exists():  # pragma: no cover - defensive
        _write_checkpoint(ckpt_path, model, optimiser, scheduler, step, cfg, bands, normalisation, digest, 0.0,
                          label_pixels, ema, teacher, prior, scaler, steps_by_device)

    steps_run = step - start
    pixels = steps_run * cfg.batch_size * cfg.patch_size**2
    summary = _summarise(read_metrics(metrics_path))
    result = {
        "steps": step,
        "steps_run": steps_run,
        "resumed_from": start,
        "complete": step >= steps,
        "seconds": seconds,
        "seconds_total": elapsed_before + seconds,
        "pixels_per_s": pixels / seconds if seconds > 0 and steps_run else 0.0,
        "device": describe(device),
        "precision": precision.name,
        "steps_by_device": steps_by_device,
        "normalisation": normalisation,
        "metrics": summary,
        "checkpoint": str(ckpt_path),
    }
    if step < steps:
        log.info("stopped at step %d of %d; rerun to resume from %s", step, steps, ckpt_path)
        return result

    if ema is not None:
        model = ema.module
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    unseen = suppress_unseen_classes(model, label_pixels.tolist()) if counted_all else []
    if unseen:
        log.warning("no training label showed class(es) %s: the model will never predict them", unseen)
    extra = {
        "steps": step,
        "seed": cfg.seed,
        "train_config": asdict(cfg),
        "training_blocks": len(specs),
        "data_digest": digest,
        "metrics": summary,
        "seconds": elapsed_before + seconds,
        "device": describe(device),
        "precision": precision.name,
        "steps_by_device": steps_by_device,
        "label_pixels": ({index_to_code(k): int(n) for k, n in enumerate(label_pixels.tolist())}
                         if counted_all else None),
        "suppressed_classes": unseen,
    }
    meta = model_metadata(model, bands, normalisation, cfg.tau, cfg.gamma, extra=extra, unpredictable_classes=unseen)
    save_checkpoint_model(out_model, model, meta)
    result["model"] = str(out_model)
    return result


__all__ = ["TrainConfig", "train", "read_metrics", "poly_factor", "seed_everything",
           "CHECKPOINT_NAME", "METRICS_NAME"]
