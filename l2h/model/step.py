"""One optimisation step of L2HNet, in torch alone (no raster I/O): the step :func:`l2h.model.train.train`
takes on each batch, and that `bench/gpu_check.py` times on a GPU node where only torch is installed.

:func:`coarse_label_losses` is phase 1 (the low-to-high loss against the coarse label),
:func:`self_training_losses` phase 2 (class-balanced cross-entropy against a frozen teacher's map plus
the label prior); :func:`apply` back-propagates a step's loss. On CUDA the forward passes run under
the autocast dtype the training's precision gives (:mod:`l2h.model.device`; None: fp32) and the losses
in fp32.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from l2h.model.l2hnet import L2HNet
from l2h.model.loss import L2HLoss, pseudo_label_ce


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on CUDA (None: off), nothing on the CPU (training there is fp32)."""
    if device.type == "cuda" and dtype is not None:
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def coarse_label_losses(model: L2HNet, loss_fn: L2HLoss, image: torch.Tensor, target: torch.Tensor, step: int,
                        sets: torch.Tensor | None = None, cells: torch.Tensor | None = None,
                        amp: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The losses of a phase-1 batch (``image`` channels-last on the model's device)."""
    with autocast(image.device, amp):
        features, logits = model.forward_features(image)
    return loss_fn(logits.float(), features.float(), target, step, sets=sets, cells=cells)


def frozen_copy(model: L2HNet, state: dict) -> L2HNet:
    """A frozen copy of ``model`` (same architecture, device and layout) holding ``state``, in eval mode."""
    teacher = copy.deepcopy(model)
    teacher.load_state_dict(state)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def self_training_losses(model: L2HNet, teacher: L2HNet, image: torch.Tensor, target: torch.Tensor,
                         bonus: torch.Tensor, valid: torch.Tensor, balance_power: float,
                         amp: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The losses of a self-training batch: the teacher's map plus the label prior ``bonus`` is the
    target of the ``valid`` pixels; ``agreement`` is still measured against the coarse ``target``."""
    with torch.no_grad(), autocast(image.device, amp):
        pseudo = (teacher(image).float() + bonus).argmax(dim=1)
    with autocast(image.device, amp):
        logits = model(image)
    valid = valid.bool()
    ce = pseudo_label_ce(logits.float(), pseudo, valid, balance_power)
    labelled = target != 255
    agreement = ((logits.detach().argmax(dim=1) == target) & labelled).sum() / labelled.sum().clamp(min=1)
    zero = torch.zeros((), device=ce.device)
    return {"total": ce, "ce": ce, "dva": zero, "confident_share": valid.float().mean(),
            "agreement": agreement.float()}


def apply(losses: dict[str, torch.Tensor], optimiser: torch.optim.Optimizer, scheduler=None,
          scaler: torch.amp.GradScaler | None = None) -> None:
    """Back-propagate the step's total loss and take the optimiser (and scheduler) step; with ``scaler``
    (fp16) the loss is scaled and a step whose gradients overflowed is skipped."""
    optimiser.zero_grad(set_to_none=True)
    if scaler is None:
        losses["total"].backward()
        optimiser.step()
    else:
        scaler.scale(losses["total"]).backward()
        scaler.step(optimiser)
        scaler.update()
    if scheduler is not None:
        scheduler.step()
