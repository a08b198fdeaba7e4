"""The low-to-high loss, part by part, on hand-made tensors with known values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from l2h.core.errors import ConfigError
from l2h.model.loss import (
    L2HLoss,
    class_balanced_weights,
    class_prototypes,
    codes_to_targets,
    confident_mask,
    dva_loss,
    set_members,
    set_nll,
    weights_from_counts,
)

IGN = 255


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs on one torch thread."""


def _toy_probs():
    """1x3x2x2 probabilities and labels:
    (0,0) p=[.7,.2,.1] label 0 -> p_label .7, argmax agrees
    (0,1) p=[.4,.35,.25] label 0 -> p_label .4, argmax agrees
    (1,0) p=[.1,.6,.3] label 2 -> p_label .3, argmax disagrees
    (1,1) p=[.2,.2,.6] label 255 (unlabelled)
    """
    p = torch.tensor([[.7, .2, .1], [.4, .35, .25], [.1, .6, .3], [.2, .2, .6]])
    probs = p.t().reshape(1, 3, 2, 2)
    label = torch.tensor([[[0, 0], [2, IGN]]])
    return probs, label


def test_codes_to_targets():
    codes = torch.tensor([0, 1, 5, 11, 255, 12], dtype=torch.uint8)
    assert codes_to_targets(codes).tolist() == [IGN, 0, 4, 10, IGN, IGN]


def test_confident_mask_by_tau():
    probs, label = _toy_probs()
    m = lambda tau, **kw: confident_mask(probs, label, tau, min_class_share=0.0, **kw)[0].tolist()  # noqa: E731
    assert m(0.5) == [[True, False], [False, False]]
    assert m(0.4) == [[True, True], [False, False]]   # >= tau
    assert m(0.3) == [[True, True], [True, False]]
    assert m(0.1) == [[True, True], [True, False]]    # unlabelled never confident
    assert m(0.8) == [[False, False], [False, False]]
    # Paraformer's rule: argmax == label, whatever tau
    assert m(0.99, mode="argmax") == [[True, True], [False, False]]


def test_confident_mask_floor_on_toy():
    probs, label = _toy_probs()
    # default floor 0.2: class 0 has 2 pixels, needs ceil(0.4) = 1 (has 1); class 2 has 1 pixel,
    # needs 1 (has 0) -> its only pixel is added
    assert confident_mask(probs, label, 0.5)[0].tolist() == [[True, False], [True, False]]
    # share 1.0: every labelled pixel
    assert confident_mask(probs, label, 0.5, min_class_share=1.0)[0].tolist() == [[True, True], [True, False]]


def test_minority_class_is_not_swallowed():
    """A class holding 5 % of the labels, all below tau, keeps its most confident 20 %."""
    torch.manual_seed(0)
    h = w = 20
    label = torch.zeros(1, h, w, dtype=torch.long)
    minority = torch.randperm(h * w)[:20]  # 20 of 400 pixels = 5 %
    label.view(-1)[minority] = 1
    probs = torch.zeros(1, 3, h, w)
    probs[0, 0] = 0.9                       # the majority is confidently class 0 everywhere ...
    probs[0, 2] = 0.1
    p1 = torch.linspace(0.05, 0.45, 20)[torch.randperm(20)]  # ... the minority's own class < tau
    flat1, flat0 = probs[0, 1].view(-1), probs[0, 0].view(-1)
    flat1[minority] = p1
    flat0[minority] = 0.9 - p1
    assert not bool(confident_mask(probs, label, 0.5, min_class_share=0.0)[label == 1].any())

    mask = confident_mask(probs, label, 0.5, min_class_share=0.2)
    chosen = mask.view(-1)[minority]
    assert int(chosen.sum()) == math.ceil(0.2 * 20) == 4
    assert sorted(p1[chosen].tolist()) == sorted(p1.topk(4).values.tolist())  # the most confident ones
    assert bool(mask[label == 0].all())  # the majority is untouched
    # Paraformer's rule suffers the same collapse and gets the same floor
    am = confident_mask(probs, label, 0.5, mode="argmax", min_class_share=0.2)
    assert int(am.view(-1)[minority].sum()) == 4


def test_class_balanced_weights_toy():
    label = torch.tensor([[0, 0, 0, 0, 1, IGN, IGN]])
    # counts [4, 1, 0] -> count^-0.5 = [0.5, 1] -> mean 0.75 -> [2/3, 4/3], absent class 0
    w = class_balanced_weights(label, 3, power=0.5)
    assert torch.allclose(w, torch.tensor([2 / 3, 4 / 3, 0.0]))
    # power 1: [0.25, 1] / 0.625
    assert torch.allclose(class_balanced_weights(label, 3, power=1.0), torch.tensor([0.4, 1.6, 0.0]))
    assert class_balanced_weights(label, 3, power=0.0).tolist() == [1.0, 1.0, 0.0]
    assert class_balanced_weights(torch.full((2, 2), IGN), 3).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="codes_to_targets"):
        class_balanced_weights(torch.tensor([0, 3]), 3)


def test_fixed_weights_from_label_counts():
    """train.class_weights: labels -- the same formula on counts taken once from the label."""
    assert torch.allclose(weights_from_counts([400, 100, 0], power=1.0), torch.tensor([0.4, 1.6, 0.0]))
    assert torch.equal(weights_from_counts([4, 1, 0], 0.5), class_balanced_weights(torch.tensor([0, 0, 0, 0, 1]), 3))
    with pytest.raises(ConfigError, match=">= 0"):
        weights_from_counts([3, -1], 1.0)
    # fixed weights replace the per-batch ones: a batch holding one pixel of a rare class gives it
    # the label-wide weight, not a weight set by that batch
    logits, label = torch.zeros(1, 2, 1, 4), torch.tensor([[[0, 0, 0, 1]]])
    fixed = L2HLoss(num_classes=2, warmup_steps=10, balance_power=1.0, class_weights=weights_from_counts([9, 1], 1.0))
    per_batch = L2HLoss(num_classes=2, warmup_steps=10, balance_power=1.0)
    feats = torch.zeros(1, 4, 1, 4)
    assert torch.isclose(fixed(logits, feats, label, 0)["ce"], per_batch(logits, feats, label, 0)["ce"])  # uniform logits
    logits[0, 0, 0, 3] = 2.0  # the rare pixel wrong: its share of the weighted mean decides the loss
    a, b = fixed(logits, feats, label, 0)["ce"], per_batch(logits, feats, label, 0)["ce"]
    assert a > b  # weight 9x the common class (label-wide) vs 3x (this batch): the error costs more


def _ce_setup():
    """logits (1,3,1,6), confident pixels 0,1,2 (p_label >= .5), vague 3,4, unlabelled 5."""
    logits = torch.tensor([
        [3.0, 0.0, 0.0],   # label 0, p ~ .91 confident
        [2.0, 0.0, 0.0],   # label 0, p ~ .79 confident
        [0.0, 2.5, 0.0],   # label 1, p ~ .86 confident
        [2.0, 0.0, 0.0],   # label 1, p ~ .11 vague
        [0.0, 0.0, 2.0],   # label 0, p ~ .11 vague
        [0.0, 0.0, 5.0],   # unlabelled
    ]).t().reshape(1, 3, 1, 6)
    label = torch.tensor([[[0, 0, 1, 1, 0, IGN]]])
    return logits, label


# Each pixel's cross-entropy, -log softmax(logits)[label], by hand: a logit z on the label against two
# zeros gives log(1 + 2 e^-z); a label logit 0 against (2, 0) gives log(e^2 + 2).
NLL = (math.log(1 + 2 * math.exp(-3)),    # pixel 0: (3, 0, 0), label 0
       math.log(1 + 2 * math.exp(-2)),    # pixel 1: (2, 0, 0), label 0
       math.log(1 + 2 * math.exp(-2.5)),  # pixel 2: (0, 2.5, 0), label 1
       math.log(math.exp(2) + 2),         # pixel 3: (2, 0, 0), label 1
       math.log(2 + math.exp(2)))         # pixel 4: (0, 0, 2), label 0
# The class-balanced mean sum(w_y nll) / sum(w_y) with w_c = count_c ** -0.5 (the scale to mean 1 cancels):
# pixels 0, 1, 2 (labels 0, 0, 1): w = (1/sqrt 2, 1); pixels 0..4 (labels 0, 0, 1, 1, 0): w = (1/sqrt 3, 1/sqrt 2)
CE_CONFIDENT = ((NLL[0] + NLL[1]) / math.sqrt(2) + NLL[2]) / (2 / math.sqrt(2) + 1)
CE_LABELLED = (((NLL[0] + NLL[1] + NLL[4]) / math.sqrt(3) + (NLL[2] + NLL[3]) / math.sqrt(2))
               / (3 / math.sqrt(3) + 2 / math.sqrt(2)))
CE_CONFIDENT_UNWEIGHTED = (NLL[0] + NLL[1] + NLL[2]) / 3  # power 0: every weight 1


def test_the_hand_computed_losses_are_torchs_cross_entropy():
    """The hand-computed values above are torch's (weighted) cross-entropy on the same pixels."""
    logits, label = _ce_setup()
    flat, targets = logits[0, :, 0].t(), label[0, 0]
    ce = lambda idx, w=None: float(F.cross_entropy(flat[idx], targets[idx], weight=w))  # noqa: E731
    assert ce([0, 1, 2], torch.tensor([2 ** -0.5, 1.0, 0.0])) == pytest.approx(CE_CONFIDENT, rel=1e-6)
    assert ce([0, 1, 2, 3, 4], torch.tensor([3 ** -0.5, 2 ** -0.5, 0.0])) == pytest.approx(CE_LABELLED, rel=1e-6)
    assert ce([0, 1, 2]) == pytest.approx(CE_CONFIDENT_UNWEIGHTED, rel=1e-6)


def test_ce_is_class_balanced_on_confident_pixels_only():
    logits, label = _ce_setup()
    features = torch.randn(1, 4, 1, 6)
    loss = L2HLoss(num_classes=3, tau=0.5, gamma=0.0, min_class_share=0.0)
    out = loss(logits, features, label, step=0)
    assert math.isclose(float(out["ce"]), CE_CONFIDENT, rel_tol=1e-5)  # float32 against float64
    assert not math.isclose(float(out["ce"]), CE_LABELLED, rel_tol=1e-3)
    assert math.isclose(float(out["confident_share"]), 3 / 5, rel_tol=1e-6)
    assert math.isclose(float(out["agreement"]), 3 / 5, rel_tol=1e-6)  # pixels 0, 1, 2 agree

    # relabelling vague pixels (to classes still below tau) or unlabelled ones leaves ce unchanged
    label2 = label.clone()
    label2[0, 0, 3], label2[0, 0, 4] = 2, 1
    out2 = loss(logits, features, label2, step=0)
    assert float(out2["ce"]) == pytest.approx(float(out["ce"]), rel=1e-6)
    assert float(out2["confident_share"]) == pytest.approx(3 / 5)

    # no gradient reaches the logits of vague or unlabelled pixels
    lg = logits.clone().requires_grad_(True)
    loss(lg, features, label, step=0)["ce"].backward()
    per_pixel = lg.grad.abs().sum(dim=1)[0, 0]
    assert (per_pixel[:3] > 0).all()
    assert per_pixel[3:].tolist() == [0.0, 0.0, 0.0]


def test_unweighted_ce_with_power_zero_and_fixed_weights():
    logits, label = _ce_setup()
    features = torch.zeros(1, 2, 1, 6)
    plain = L2HLoss(num_classes=3, gamma=0.0, min_class_share=0.0, balance_power=0.0)(logits, features, label, 0)
    assert math.isclose(float(plain["ce"]), CE_CONFIDENT_UNWEIGHTED, rel_tol=1e-5)
    fixed = L2HLoss(num_classes=3, gamma=0.0, min_class_share=0.0, class_weights=[1.0, 1.0, 1.0])
    assert float(fixed(logits, features, label, 0)["ce"]) == pytest.approx(float(plain["ce"]), rel=1e-6)


def test_no_confident_pixel_gives_zero_ce_not_nan():
    logits, _ = _ce_setup()
    label = torch.full((1, 1, 6), IGN)
    lg = logits.clone().requires_grad_(True)
    out = L2HLoss(num_classes=3)(lg, torch.randn(1, 2, 1, 6), label, step=10)
    assert float(out["total"].detach()) == 0.0 and float(out["confident_share"]) == 0.0
    out["total"].backward()  # still differentiable
    assert float(lg.grad.abs().sum()) == 0.0


def _feat(*vectors):
    """Features (1, C, 1, len) from per-pixel vectors."""
    return torch.tensor(vectors, dtype=torch.float32).t().reshape(1, len(vectors[0]), 1, len(vectors))


def test_prototypes_are_means_of_normalised_features():
    f = _feat((2.0, 0.0), (0.0, 1.0), (5.0, 5.0))
    label = torch.tensor([[[0, 0, 1]]])
    protos, present = class_prototypes(f, label, torch.tensor([[[True, True, False]]]), num_classes=3)
    assert present.tolist() == [True, False, False]
    s = 1 / math.sqrt(2)
    assert torch.allclose(protos[0], torch.tensor([s, s]))  # not the direction of the raw mean (1, .5)


def test_dva_is_zero_on_prototypes_and_positive_elsewhere():
    # confident: class 0 at (2,0) and (0,1) -> prototype (1,1)/sqrt2; class 1 at (-1,0)
    f = _feat((2.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (3.0, 3.0), (1.0, 0.2))
    label = torch.tensor([[[0, 0, 1, 1, 1]]])
    confident = torch.tensor([[[True, True, True, False, False]]])
    on_proto = torch.tensor([[[False, False, False, True, False]]])
    off_proto = torch.tensor([[[False, False, False, False, True]]])
    assert float(dva_loss(f, label, confident, on_proto)) == pytest.approx(0.0, abs=1e-6)
    # (1, .2) is nearest to class 0's prototype (cos .832) though its coarse label is 1 (cos -.98)
    expected = 1 - (1.0 + 0.2) / math.sqrt(2) / math.hypot(1.0, 0.2)
    assert float(dva_loss(f, label, confident, off_proto)) == pytest.approx(expected, rel=1e-5)
    both = on_proto | off_proto
    assert float(dva_loss(f, label, confident, both)) == pytest.approx(expected / 2, rel=1e-5)
    # nothing vague, or no prototype -> 0
    none = torch.zeros_like(confident)
    assert float(dva_loss(f, label, confident, none)) == 0.0
    assert float(dva_loss(f, label, none, off_proto)) == 0.0


def test_dva_pulls_toward_the_nearest_prototype():
    f = _feat((1.0, 0.0), (0.0, 1.0), (0.9, 0.3)).requires_grad_(True)
    label = torch.tensor([[[0, 1, 1]]])  # the vague pixel's coarse label is 1 ...
    confident = torch.tensor([[[True, True, False]]])
    vague = ~confident
    dva_loss(f, label, confident, vague).backward()
    assert f.grad[0, :, 0, :2].abs().sum() == 0  # prototypes are detached
    moved = (f.detach() - 0.5 * f.grad)[0, :, 0, 2]
    cos0 = lambda v: float(v[0] / v.norm())  # noqa: E731
    assert cos0(moved) > cos0(f.detach()[0, :, 0, 2])  # ... yet it moves toward class 0's prototype


def test_warmup_makes_every_labelled_pixel_confident():
    logits, label = _ce_setup()
    features = torch.randn(1, 4, 1, 6)
    loss = L2HLoss(num_classes=3, tau=0.5, gamma=1.0, min_class_share=0.0, warmup_steps=5)
    warm = loss(logits, features, label, step=4)
    assert float(warm["confident_share"]) == 1.0
    assert float(warm["dva"]) == 0.0
    assert math.isclose(float(warm["ce"]), CE_LABELLED, rel_tol=1e-5)
    after = loss(logits, features, label, step=5)
    assert float(after["confident_share"]) == pytest.approx(3 / 5)
    assert float(after["dva"]) > 0


def test_gamma_scales_dva_in_total():
    torch.manual_seed(0)
    logits, label = _ce_setup()
    features = torch.randn(1, 4, 1, 6, requires_grad=True)
    a = L2HLoss(num_classes=3, gamma=0.0, min_class_share=0.0)(logits, features, label, step=0)
    v = lambda t: float(t.detach())  # noqa: E731
    b = L2HLoss(num_classes=3, gamma=0.5, min_class_share=0.0)(logits, features, label, step=0)
    assert v(a["dva"]) > 0 and v(a["dva"]) == pytest.approx(v(b["dva"]))
    assert v(a["total"]) == pytest.approx(v(a["ce"]))
    assert v(b["total"]) == pytest.approx(v(b["ce"]) + 0.5 * v(b["dva"]), rel=1e-6)
    b["total"].backward()
    assert float(features.grad.abs().sum()) > 0  # L_DVA trains the backbone's features


def test_bad_parameters_and_labels():
    for kw in ({"tau": 1.5}, {"gamma": -1}, {"mode": "mean"}, {"min_class_share": 2},
               {"warmup_steps": -1}, {"class_weights": [1.0, 2.0]}):
        with pytest.raises(ConfigError):
            L2HLoss(num_classes=3, **kw)
        with pytest.raises(ValueError):
            L2HLoss(num_classes=3, **kw)
    logits, _ = _ce_setup()
    codes = torch.tensor([[[1, 2, 3, 3, 1, IGN]]])  # codes, not indices: 3 is out of range
    with pytest.raises(ValueError, match="codes_to_targets"):
        L2HLoss(num_classes=3)(logits, torch.randn(1, 2, 1, 6), codes, step=0)


def test_vague_pixels_do_not_shape_the_prototypes():
    f = _feat((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
    label = torch.tensor([[[0, 1, 0]]])
    confident = torch.tensor([[[True, True, False]]])
    # the prototypes stay (1,0) and (0,1): the vague (1,1) is 45 degrees from both
    assert float(dva_loss(f, label, confident, ~confident)) == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-5)


# --- partial labels: ambiguous pixels learn from their class set --------------------------------


def _bits(*indices):
    return sum(1 << k for k in indices)


def test_set_nll_is_minus_log_of_the_sets_probability():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    members = torch.tensor([[True, True, False], [False, False, True]])
    p = logits.softmax(dim=1)
    expected = -torch.log(torch.stack([p[0, 0] + p[0, 1], p[1, 2]]))
    assert torch.allclose(set_nll(logits.log_softmax(dim=1), members), expected)
    assert set_members(torch.tensor([_bits(0, 2)]), 3).tolist() == [[True, False, True]]


def test_sets_of_single_classes_change_nothing():
    logits, label = _ce_setup()
    features = torch.randn(1, 2, 1, 6)
    sets = torch.where(label == IGN, torch.zeros_like(label), 1 << label.clamp(max=30))
    loss = L2HLoss(num_classes=3, gamma=0.0, warmup_steps=5)
    a, b = loss(logits, features, label, step=0), loss(logits, features, label, step=0, sets=sets)
    assert float(a["ce"]) == pytest.approx(float(b["ce"]), rel=1e-6)


def test_an_ambiguous_pixel_is_taught_its_set_not_one_class():
    # one labelled pixel of class 0 and one pixel that may be class 1 or 2 (e.g. NLCD 21 -> {grass, tree})
    label = torch.tensor([[[0, IGN]]])
    sets = torch.tensor([[[_bits(0), _bits(1, 2)]]])
    features = torch.zeros(1, 2, 1, 2)
    loss = L2HLoss(num_classes=3, gamma=0.0, warmup_steps=10, balance_power=0.0)
    logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 2.0]], [[0.0, -1.0]]]], requires_grad=True)
    out = loss(logits, features, label, step=0, sets=sets)
    p = logits.detach().softmax(dim=1)[0, :, 0]
    expected = (-torch.log(p[0, 0]) - torch.log(p[1, 1] + p[2, 1])) / 2
    assert float(out["ce"].detach()) == pytest.approx(float(expected), rel=1e-5)
    out["total"].backward()
    g = logits.grad[0, :, 0, 1]
    assert g[0] > 0 and g[1] < 0 and g[2] < 0  # class 0 is pushed down, both members of the set up
    # ignored without sets
    plain = loss(logits.detach(), features, label, step=0)
    assert float(plain["ce"]) == pytest.approx(float(-torch.log(p[0, 0])), rel=1e-5)


def test_ambiguous_pixel_weighs_like_the_class_the_network_prefers_in_its_set():
    # fixed weights: class 1 weighs 3, class 2 weighs 1; the network puts 3x more mass on class 1
    label = torch.tensor([[[IGN]]])
    sets = torch.tensor([[[_bits(1, 2)]]])
    logits = torch.log(torch.tensor([0.2, 0.6, 0.2])).view(1, 3, 1, 1)
    loss = L2HLoss(num_classes=3, gamma=0.0, warmup_steps=10, class_weights=[1.0, 3.0, 1.0])
    out = loss(logits, torch.zeros(1, 2, 1, 1), label, step=0, sets=sets)
    # a single pixel: the weighted mean is its own NLL whatever its weight (0.75 * 3 + 0.25 * 1 > 0)
    assert float(out["ce"]) == pytest.approx(-math.log(0.8), rel=1e-5)
    assert float(out["confident_share"]) == 1.0


def test_confident_ambiguous_pixels_follow_the_rule():
    label = torch.tensor([[[0, IGN, IGN]]])
    sets = torch.tensor([[[_bits(0), _bits(1, 2), _bits(1, 2)]]])
    # pixel 1: p(S) = 0.7 and argmax in S; pixel 2: p(S) = 0.3, argmax outside S
    p = torch.tensor([[0.8, 0.1, 0.1], [0.3, 0.4, 0.3], [0.7, 0.2, 0.1]]).t().reshape(1, 3, 1, 3)
    features = torch.randn(1, 2, 1, 3)
    for mode in ("label_prob", "argmax"):
        out = L2HLoss(num_classes=3, tau=0.5, mode=mode, min_class_share=0.0)(
            torch.log(p), features, label, step=0, sets=sets)
        assert float(out["confident_share"]) == pytest.approx(2 / 3)  # pixel 2 is vague


def test_cell_nll_is_minus_log_of_the_cells_mean_probability():
    from l2h.model.loss import cell_nll

    # one sample, 1 x 4 pixels: cell 0 = pixels 0-1 (label 0), cell 5 = pixels 2-3 (label 1)
    p = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.3, 0.7]]).t().reshape(1, 2, 1, 4)
    label = torch.tensor([[[0, 0, 1, 1]]])
    cells = torch.tensor([[[0, 0, 5, 5]]])
    nll, cls, pixels = cell_nll(p, label, cells, torch.ones_like(label, dtype=torch.bool))
    assert cls.tolist() == [0, 1] and pixels.tolist() == [2, 2]
    assert nll.tolist() == pytest.approx([-math.log(0.5), -math.log(0.6)])
    # the same cell number in two samples is two cells
    nll2, _, pixels2 = cell_nll(torch.cat([p, p]), torch.cat([label, label]), torch.cat([cells, cells]),
                                torch.ones(2, 1, 4, dtype=torch.bool))
    assert len(nll2) == 4 and pixels2.tolist() == [2, 2, 2, 2]


def test_an_edge_cell_teaches_that_some_of_it_is_its_class_not_every_pixel():
    """A cell labelled 0 whose second pixel the network sees as class 1: with the cell loss the
    confident class-1 pixel is barely pushed, while the pixel loss pushes it hard towards 0."""
    label = torch.tensor([[[0, 0]]])
    cells = torch.tensor([[[3, 3]]])
    logits = torch.tensor([[[[4.0, -4.0]], [[0.0, 0.0]]]], requires_grad=True)  # pixel 0: class 0; pixel 1: class 1
    features = torch.zeros(1, 2, 1, 2)
    loss = L2HLoss(num_classes=2, gamma=0.0, warmup_steps=10, balance_power=0.0)
    out = loss(logits, features, label, step=0, cells=cells)
    p = logits.detach().softmax(dim=1)[0, 0, 0]  # p(class 0) of both pixels
    assert float(out["ce"].detach()) == pytest.approx(-math.log(float(p.mean())), rel=1e-5)
    out["total"].backward()
    cell_grad = logits.grad[0, :, 0, 1].abs().sum()
    logits.grad = None
    loss(logits, features, label, step=0)["total"].backward()  # no cells: every pixel is taught class 0
    assert logits.grad[0, :, 0, 1].abs().sum() > 20 * cell_grad
    # pixels outside edge cells (-1) keep the pixel loss; the agreement counts every labelled pixel
    mixed = loss(logits.detach(), features, label, step=0, cells=torch.tensor([[[-1, 3]]]))
    expected_num = -math.log(float(p[0])) - math.log(float(p[1]))  # the cell of one pixel: its own NLL
    assert float(mixed["ce"]) == pytest.approx(expected_num / 2, rel=1e-5)
    assert float(mixed["agreement"]) == pytest.approx(0.5)
