"""The low-to-high loss of L2HNet (docs/method.md §6, with the guards of §11), in testable parts.

Labels here are **class indices**, not codes: index k = class code k + 1 (codes 1..11 -> 0..10),
and ``ignore_index`` (255) marks unlabelled pixels (the consensus' 255 *and* nodata 0). The data
pipeline converts code rasters with :func:`codes_to_targets`; :class:`l2h.model.l2hnet.L2HNet`'s output
channel k is the same class k.

L = L_CE + gamma * L_DVA, where

* the labelled pixels are split into a confident area CA and a vague area VA by
  :func:`confident_mask` -- confidence = the network's (detached) probability of the coarse
  label's class, CA = confidence >= tau (``mode="label_prob"``) or network argmax == coarse label
  (``mode="argmax"``, Paraformer's rule) -- with a per-class floor so the majority class cannot
  swallow the rest (§11: a plain tau collapsed maps to the majority class);
* L_CE is class-balanced cross-entropy on CA only (VA and ignored pixels contribute nothing);
  weights are inverse class frequencies to a power (:func:`class_balanced_weights`), counted over
  the pixels that enter the CE (the confident ones) unless fixed weights are given;
* L_DVA (:func:`dva_loss`) is a feature-similarity loss pulling each VA pixel's feature toward the
  nearest CA class prototype.

**Partial labels.** Given the class sets of the pixels (``sets``: int64 bitmasks, bit k = class
index k possible, from the class-set label of :mod:`l2h.labels.harmonize`), a pixel without a single
class but with a set S of two or more classes (NLCD 21 developed open space -> {grass, tree};
products that disagree -> the union of their sets) is not ignored: its loss is
-log sum_{c in S} p_c (:func:`set_nll`), so the network may choose any class of S but is taught
that the others are wrong. Its weight is the class weight it would get as a pixel of the class
the network currently prefers within S (the weights averaged with the network's detached
probabilities renormalised over S; with per-batch weights a class without single-class pixels in
the batch counts with the mean weight, 1); it is confident when sum_{c in S} p_c >= tau
(``label_prob``) or the argmax is in S (``argmax``), and the per-class floor counts single-class
pixels only.

**Edge cells.** Given ``cells`` (:meth:`l2h.model.data.TrainingWindows._read_edge_cells`: the number of
the coarse cell a pixel lies in where that cell borders a cell of another label, -1 elsewhere), the
labelled pixels of an edge cell leave the pixel terms (CE, confident area, L_DVA) and the cell as a
whole is taught instead (:func:`cell_nll`): -log of the cell's mean probability of its label, i.e.
"some of this cell is class c", a multiple-instance loss. A 10 m label says what most of a cell
holds; at a class edge or on a building, forcing every 1 m pixel to it teaches the network the
10 m blocks, while the cell loss leaves the pixels the network confidently sees as another class
(gradient ~ p(1 - p)) free. A cell weighs its class weight times its pixels, in the same weighted
mean as the pixel CE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from l2h.core.errors import ConfigError

MODES = ("label_prob", "argmax")


class LossConfigError(ConfigError, ValueError):
    """A loss parameter out of range (a ConfigError the CLI prints plainly, and a ValueError)."""


def codes_to_targets(codes: torch.Tensor, num_classes: int = 11, ignore_index: int = 255) -> torch.Tensor:
    """Class-code label raster -> int64 class indices: code c in 1..num_classes -> c - 1; anything
    else (0 nodata, 255 ignore, unknown codes) -> ignore_index."""
    codes = codes.long()
    valid = (codes >= 1) & (codes <= num_classes)
    return torch.where(valid, codes - 1, torch.full_like(codes, ignore_index))


def _check_label(label: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    label = label.long()
    bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
    if bool(bad.any()):
        values = sorted(set(label[bad].unique().tolist()))[:10]
        raise ValueError(f"label holds values {values} outside class indices 0..{num_classes - 1} "
                         f"and ignore {ignore_index}; convert codes with l2h.model.loss.codes_to_targets")
    return label


@torch.no_grad()
def confident_mask(probs: torch.Tensor, label: torch.Tensor, tau: float, mode: str = "label_prob",
                   min_class_share: float = 0.2, ignore_index: int = 255) -> torch.Tensor:
    """Confident-area mask (N, H, W) bool over the labelled pixels (label != ignore_index).

    ``probs``: (N, K, H, W) class probabilities (softmax of the logits; gradients are not used).
    ``label``: (N, H, W) class indices 0..K-1 or ignore_index.

    * ``mode="label_prob"``: confident where p[label] >= tau.
    * ``mode="argmax"``: confident where argmax(p) == label (tau is not used).

    Per-class floor (the guard of docs/method.md §11): for every class c present among the labelled pixels
    (n_c of them), if fewer than ``ceil(min_class_share * n_c)`` are confident, the
    ``ceil(min_class_share * n_c)`` pixels of class c with the highest p[label] are made confident
    (in addition to those already confident). ``min_class_share=0`` disables the floor.
    """
    if mode not in MODES:
        raise LossConfigError(f"confident-area mode must be one of {MODES}, got {mode!r}")
    if not 0.0 <= min_class_share <= 1.0:
        raise LossConfigError(f"min_class_share must be within [0, 1], got {min_class_share}")
    if probs.dim() != 4 or label.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"probs (N, K, H, W) and label (N, H, W) expected, got {tuple(probs.shape)} "
                         f"and {tuple(label.shape)}")
    num_classes = probs.shape[1]
    label = _check_label(label, num_classes, ignore_index)
    labelled = label != ignore_index
    safe = torch.where(labelled, label, torch.zeros_like(label))
    p_label = probs.detach().gather(1, safe.unsqueeze(1)).squeeze(1)
    if mode == "label_prob":
        confident = p_label >= tau
    else:
        confident = probs.detach().argmax(dim=1) == label
    confident &= labelled
    if min_class_share > 0:
        flat_label, flat_conf, flat_p = label.reshape(-1), confident.reshape(-1), p_label.reshape(-1)
        for c in flat_label[labelled.reshape(-1)].unique().tolist():
            idx = (flat_label == c).nonzero(as_tuple=True)[0]
            need = math.ceil(min_class_share * idx.numel() - 1e-9)
            if int(flat_conf[idx].sum()) >= need:
                continue
            top = flat_p[idx].topk(need).indices
            flat_conf[idx[top]] = True
        confident = flat_conf.reshape(label.shape)
    return confident


def class_balanced_weights(label: torch.Tensor, num_classes: int, ignore_index: int = 255,
                           power: float = 0.5) -> torch.Tensor:
    """Per-class weights (num_classes,) = count_c ** -power, scaled to mean 1 over present classes.

    Classes absent from ``label`` (ignoring ``ignore_index``) get weight 0; ``power=0`` gives 1 for
    every present class. Float32 on the label's device.
    """
    label = _check_label(label.reshape(-1), num_classes, ignore_index)
    label = label[label != ignore_index]
    return weights_from_counts(torch.bincount(label, minlength=num_classes), power)


def weights_from_counts(counts: Sequence[int] | torch.Tensor, power: float = 0.5) -> torch.Tensor:
    """Per-class weights = count_c ** -power, scaled to mean 1 over the classes with a count; 0 for
    the others (float32, on the counts' device when a tensor)."""
    if power < 0:
        raise LossConfigError(f"balance power must be >= 0, got {power}")
    counts = torch.as_tensor(counts).to(torch.float32)
    if counts.dim() != 1 or bool((counts < 0).any()):
        raise LossConfigError(f"class counts must be a list of numbers >= 0, got {counts.tolist()}")
    present = counts > 0
    weights = torch.zeros(counts.numel(), dtype=torch.float32, device=counts.device)
    if bool(present.any()):
        w = counts[present].pow(-power)
        weights[present] = w / w.mean()
    return weights


def class_prototypes(features: torch.Tensor, label: torch.Tensor, confident: torch.Tensor,
                     num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(prototypes (K, C) unit vectors, present (K,) bool): per class, the normalised mean of the
    L2-normalised features of its confident pixels; detached (prototypes are targets)."""
    f = F.normalize(features.detach().permute(0, 2, 3, 1)[confident], dim=1)  # (M, C): the confident pixels only
    lab = label.long()[confident]
    if num_classes is None:
        num_classes = int(lab.max()) + 1 if lab.numel() else 0
    sums = torch.zeros(num_classes, f.shape[1], dtype=f.dtype, device=f.device).index_add_(0, lab, f)
    counts = torch.bincount(lab, minlength=num_classes)[:num_classes]
    present = counts > 0
    protos = F.normalize(sums, dim=1)  # the mean's direction; rows of absent classes stay 0
    return protos, present


def dva_loss(features: torch.Tensor, label: torch.Tensor, confident: torch.Tensor,
             vague: torch.Tensor) -> torch.Tensor:
    """Dynamic vague-area loss: mean over vague pixels of (1 - max_c cos(f_pixel, prototype_c)).

    ``features`` (N, C, H, W); ``label`` (N, H, W) class indices; ``confident`` and ``vague``
    (N, H, W) bool masks (the caller passes vague = labelled & ~confident).

    The paper leaves L_DVA's exact form open; the choice made here: class prototypes are the (detached)
    mean L2-normalised features of each class's confident pixels in the batch; each vague pixel's
    normalised feature is pulled toward the prototype it is **most similar to** -- whatever its
    coarse label says, since in the vague area that label is the thing not trusted. The loss thus
    tightens vague pixels around the class clusters the confident area defines (a feature-space
    self-training step) without pushing them to the coarse class. Gradients reach only the vague
    pixels' features. Returns 0 (still attached to ``features``) with no vague pixels or no
    prototypes.
    """
    zero = features.sum() * 0.0
    if not bool(vague.any()) or not bool(confident.any()):
        return zero
    protos, present = class_prototypes(features, label, confident)
    protos = protos[present]  # (P, C)
    fv = F.normalize(features.permute(0, 2, 3, 1)[vague], dim=1)  # (V, C): the vague pixels only
    similarity = fv @ protos.t()  # (V, P) cosine similarities
    return (1.0 - similarity.max(dim=1).values).mean()


def set_members(sets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(...,) int64 bitmasks -> (..., K) bool: class k is in the pixel's set."""
    bits = torch.arange(num_classes, device=sets.device)
    return ((sets.unsqueeze(-1) >> bits) & 1).bool()


def set_nll(log_p: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """-log sum_{c in S} p_c per pixel from log-probabilities (M, K) and sets (M, K) bool (each
    non-empty); for a set of one class it is the cross-entropy."""
    return -log_p.masked_fill(~members, float("-inf")).logsumexp(dim=-1)


def cell_nll(probs: torch.Tensor, label: torch.Tensor, cells: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multiple-instance loss of coarse cells: per cell, -log (mean over its pixels of p[label]).

    ``probs`` (N, K, H, W) (with gradients), ``label`` (N, H, W) class indices, ``cells`` (N, H, W)
    cell numbers (unique within a sample), ``mask`` (N, H, W) the pixels taking part (each cell's
    pixels must share one label). Returns (nll (M,), class (M,), pixels (M,)) of the M cells.
    """
    n = torch.arange(cells.shape[0], device=cells.device).view(-1, 1, 1).expand_as(cells)
    key = (n * (int(cells.max()) + 1) + cells)[mask]
    _, inverse = torch.unique(key, return_inverse=True)
    m = int(inverse.max()) + 1 if inverse.numel() else 0
    p = probs.permute(0, 2, 3, 1)[mask]  # (P, K)
    sums = torch.zeros(m, p.shape[1], dtype=p.dtype, device=p.device).index_add(0, inverse, p)
    pixels = torch.bincount(inverse, minlength=m)
    cls = torch.zeros(m, dtype=torch.int64, device=p.device).scatter(0, inverse, label[mask])
    mean = sums.gather(1, cls.unsqueeze(1)).squeeze(1) / pixels.to(p.dtype)
    return -torch.log(mean.clamp(min=1e-8)), cls, pixels


def pseudo_label_ce(logits: torch.Tensor, pseudo: torch.Tensor, valid: torch.Tensor,
                    balance_power: float = 0.5) -> torch.Tensor:
    """Class-balanced cross-entropy against 1 m pseudo-labels (N, H, W) on the ``valid`` pixels, the
    loss of self-training: weights (pixels of the class in the batch) ** -balance_power."""
    if not bool(valid.any()):
        return logits.sum() * 0.0
    target = torch.where(valid, pseudo, torch.full_like(pseudo, 255))
    weights = class_balanced_weights(target, logits.shape[1], 255, balance_power).to(logits.dtype)
    return F.cross_entropy(logits, target, weight=weights, ignore_index=255)


_POPCOUNT = torch.tensor([bin(v).count("1") for v in range(1 << 12)], dtype=torch.int64)


def _popcount(bits: torch.Tensor) -> torch.Tensor:
    """Number of set bits of int64 bitmasks below 2**12."""
    return _POPCOUNT.to(bits.device)[bits]


class L2HLoss:
    """L = class-balanced CE on the confident area + gamma * L_DVA (see the module doc).

    ``loss(logits, features, label, step)`` -> dict of tensors: ``total`` (differentiable),
    ``ce``, ``dva``, ``confident_share`` (confident / labelled pixels) and ``agreement`` (share of
    labelled pixels where argmax == label; a 1 m-truth-free signal for early stopping, docs/method.md §11).

    ``warmup_steps``: while ``step < warmup_steps`` every labelled pixel is confident and dva = 0.
    ``balance_power``: exponent of the inverse-frequency class weights (0 = unweighted CE).
    ``class_weights``: fixed per-class weights (e.g. from the whole region's label statistics)
    used instead of the per-batch ones.
    """

    def __init__(self, num_classes: int = 11, tau: float = 0.5, gamma: float = 0.1, mode: str = "label_prob",
                 min_class_share: float = 0.2, warmup_steps: int = 0, balance_power: float = 0.5,
                 ignore_index: int = 255, class_weights: Sequence[float] | torch.Tensor | None = None):
        if mode not in MODES:
            raise LossConfigError(f"confident-area mode must be one of {MODES}, got {mode!r}")
        checks = (("tau", tau, 0.0 <= tau <= 1.0, "within [0, 1]"),
                  ("gamma", gamma, gamma >= 0, ">= 0"),
                  ("min_class_share", min_class_share, 0.0 <= min_class_share <= 1.0, "within [0, 1]"),
                  ("warmup_steps", warmup_steps, warmup_steps >= 0, ">= 0"),
                  ("balance_power", balance_power, balance_power >= 0, ">= 0"),
                  ("num_classes", num_classes, num_classes >= 1, ">= 1"))
        for name, value, ok, rule in checks:
            if not ok:
                raise LossConfigError(f"loss parameter {name} must be {rule}, got {value}")
        self.num_classes = int(num_classes)
        self.tau = float(tau)
        self.gamma = float(gamma)
        self.mode = mode
        self.min_class_share = float(min_class_share)
        self.warmup_steps = int(warmup_steps)
        self.balance_power = float(balance_power)
        self.ignore_index = int(ignore_index)
        self.class_weights = None
        if class_weights is not None:
            cw = torch.as_tensor(class_weights, dtype=torch.float32).reshape(-1)
            if cw.numel() != self.num_classes or bool((cw < 0).any()) or not bool(torch.isfinite(cw).all()):
                raise LossConfigError(f"class_weights needs {self.num_classes} finite values >= 0, got {cw.tolist()}")
            self.class_weights = cw

    def __call__(self, logits: torch.Tensor, features: torch.Tensor, label: torch.Tensor,
                 step: int, sets: torch.Tensor | None = None, cells: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        """The losses of one batch; ``sets`` (N, H, W) int64 class-set bitmasks switch on the
        partial-label loss of the ambiguous pixels, ``cells`` (N, H, W) int64 edge-cell numbers
        (-1 = not in an edge cell) the cell loss (see the module doc)."""
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits (N, {self.num_classes}, H, W) expected, got {tuple(logits.shape)}")
        full_label = _check_label(label, self.num_classes, self.ignore_index)
        in_cell = torch.zeros_like(full_label, dtype=torch.bool)
        if cells is not None:
            if cells.shape != full_label.shape:
                raise ValueError(f"cells {tuple(cells.shape)} and label {tuple(full_label.shape)} must have one shape")
            in_cell = (cells >= 0) & (full_label != self.ignore_index)
        label = torch.where(in_cell, torch.full_like(full_label, self.ignore_index), full_label)
        labelled = label != self.ignore_index
        probs = logits.detach().softmax(dim=1)
        ambiguous = torch.zeros_like(labelled)
        if sets is not None:
            if sets.shape != label.shape:
                raise ValueError(f"sets {tuple(sets.shape)} and label {tuple(label.shape)} must have one shape")
            size = _popcount(sets & ((1 << self.num_classes) - 1))
            ambiguous = (full_label == self.ignore_index) & (size >= 2) & (size < self.num_classes)
        members = set_members(sets[ambiguous], self.num_classes) if bool(ambiguous.any()) else None
        if step < self.warmup_steps:
            confident = labelled
            confident_set = ambiguous
            dva = features.sum() * 0.0
        else:
            confident = confident_mask(probs, label, self.tau, self.mode, self.min_class_share, self.ignore_index)
            confident_set = ambiguous.clone()
            if members is not None:
                confident_set[ambiguous] = self._set_confident(probs.permute(0, 2, 3, 1)[ambiguous], members)
            vague = (labelled & ~confident) | (ambiguous & ~confident_set)
            dva = dva_loss(features, label, confident, vague)

        if self.class_weights is not None:
            weights = self.class_weights.to(logits.device, logits.dtype)
        else:  # counted over the pixels the CE teaches: confident ones and those of edge cells
            counted = torch.where(confident | in_cell, full_label, torch.full_like(full_label, self.ignore_index))
            weights = class_balanced_weights(counted, self.num_classes, self.ignore_index,
                                             self.balance_power).to(logits.dtype)
        log_p = logits.log_softmax(dim=1)
        num, den = self._pixel_ce(log_p, label, confident, weights)
        if members is not None:
            set_num, set_den = self._partial_ce(log_p, probs, ambiguous, confident_set, members, weights)
            num, den = num + set_num, den + set_den
        if bool(in_cell.any()):
            nll, cls, pixels = cell_nll(log_p.exp(), full_label, cells, in_cell)
            cell_w = weights[cls] * pixels.to(weights.dtype)
            num, den = num + (cell_w * nll).sum(), den + cell_w.sum()
        ce = num / den if bool(den > 0) else logits.sum() * 0.0
        total = ce + self.gamma * dva

        n_labelled = (labelled | in_cell).sum().clamp(min=1).to(torch.float32)
        confident = confident | in_cell
        if members is not None:
            confident = confident | confident_set
            n_labelled = (labelled | in_cell | ambiguous).sum().clamp(min=1).to(torch.float32)
        confident_share = confident.sum().to(torch.float32) / n_labelled
        all_labelled = full_label != self.ignore_index
        agreement = (((probs.argmax(dim=1) == full_label) & all_labelled).sum().to(torch.float32)
                     / all_labelled.sum().clamp(min=1).to(torch.float32))
        return {"total": total, "ce": ce, "dva": dva, "confident_share": confident_share,
                "agreement": agreement}

    def _pixel_ce(self, log_p, label, confident, weights) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of w * nll, sum of w) over the confident single-class pixels (w = their class weight)."""
        safe = torch.where(confident, label, torch.zeros_like(label))
        nll = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)[confident]
        w = weights[label[confident]]
        return (w * nll).sum(), w.sum()

    def _set_confident(self, probs: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """Confident ambiguous pixels ((M, K) probabilities and sets): p(S) >= tau, or the argmax in S
        (``argmax`` mode)."""
        if self.mode == "argmax":
            return members.gather(1, probs.argmax(dim=1, keepdim=True)).squeeze(1)
        return (probs * members).sum(dim=1) >= self.tau

    def _partial_ce(self, log_p, probs, ambiguous, confident_set, members,
                    weights) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of w * set NLL, sum of w) over the confident ambiguous pixels; an ambiguous pixel weighs
        sum_c q_c w_c, q = the network's (detached) probabilities renormalised over its set."""
        keep = confident_set[ambiguous]  # which ambiguous pixels are confident, in ambiguous order
        set_members_ = members[keep]
        q = probs.permute(0, 2, 3, 1)[ambiguous][keep] * set_members_
        q = q / q.sum(dim=1, keepdim=True).clamp(min=1e-12)
        if self.class_weights is None:  # a class without confident single-class pixels here: mean weight
            weights = torch.where(weights > 0, weights, torch.ones_like(weights))
        set_w = (q * weights).sum(dim=1)
        set_nll_ = set_nll(log_p.permute(0, 2, 3, 1)[ambiguous][keep], set_members_)
        return (set_w * set_nll_).sum(), set_w.sum()
