"""L2HNet: shapes, no down-sampling, receptive field, cost, checkpoints, trainability."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from l2h.core.classes import BY_CODE, CLASS_CODES
from l2h.core.errors import ConfigError, InputError
from l2h.model.l2hnet import (
    L2HNet,
    count_parameters,
    flops_per_pixel,
    load_model,
    logits_to_codes,
    model_metadata,
    receptive_field,
    save_checkpoint_model,
)
from l2h.model.loss import L2HLoss


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs on one torch thread."""


def _meta(model, **kw):
    bands = [f"b{i}" for i in range(model.in_channels)]
    norm = {"mean": [0.1 * i for i in range(model.in_channels)], "std": [1.0 + i for i in range(model.in_channels)]}
    return model_metadata(model, bands, norm, tau=0.6, gamma=0.2, extra=kw or {"steps": 3})


@pytest.mark.parametrize("bands", [3, 4, 8])
def test_output_keeps_odd_input_size_for_any_band_count(bands):
    torch.manual_seed(0)
    model = L2HNet(bands, num_classes=11, width=8, num_blocks=2)
    x = torch.randn(2, bands, 37, 53)
    logits = model(x)
    assert logits.shape == (2, 11, 37, 53)
    features, logits2 = model.forward_features(x)
    assert features.shape == (2, 8, 37, 53)
    assert logits2.shape == (2, 11, 37, 53)


def test_no_down_sampling_anywhere():
    model = L2HNet(4, width=8, num_blocks=5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 5 * 4 + 1
    for conv in convs:
        assert tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
        assert tuple(conv.padding) == (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample)) for m in model.modules())
    # a 1-pixel-wide stripe stays 1 pixel wide in the output's sensitivity: resolution is kept
    x = torch.randn(1, 4, 9, 9)
    assert model(x).shape[-2:] == (9, 9)


def test_receptive_field_formula():
    assert receptive_field() == 23
    assert receptive_field(5) == 1 + 2 + 5 * 4
    assert receptive_field(2) == 11
    assert receptive_field(L2HNet(3, width=8, num_blocks=3)) == 15


@pytest.mark.parametrize("num_blocks", [2, 5])
def test_receptive_field_impulse(num_blocks):
    """Changing one input pixel changes exactly the outputs within +-(rf // 2) of it."""
    torch.manual_seed(1)
    rf = receptive_field(num_blocks)
    half = rf // 2
    model = L2HNet(3, num_classes=5, width=16, num_blocks=num_blocks).double().eval()
    size, c = 2 * rf + 7, rf + 3
    # several backgrounds and impulses: ReLUs may block one path, not all of them
    x = torch.randn(6, 3, size, size, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, c, c] += 10.0 * torch.randn(6, 3, dtype=torch.float64)
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs().amax(dim=(0, 1))
    changed = (diff > 1e-9).nonzero()
    rows, cols = changed[:, 0], changed[:, 1]
    # nothing changes outside the window ...
    assert int(rows.min()) == c - half and int(rows.max()) == c + half
    assert int(cols.min()) == c - half and int(cols.max()) == c + half
    assert float(diff[(diff <= 1e-9)].max()) < 1e-12
    # ... and the pixels exactly rf // 2 away (edges and corners) do change
    for dr, dc in ((half, 0), (-half, 0), (0, half), (0, -half), (half, half), (-half, -half), (half, -half)):
        assert diff[c + dr, c + dc] > 1e-6, (dr, dc)


def test_parameter_count_and_flops_match_hand_computation():
    model = L2HNet(4, num_classes=11, width=32, num_blocks=5)
    # conv weights (no bias before BN) per output pixel, i.e. multiply-adds:
    stem = 3 * 3 * 4 * 32                     # 1152
    block = (1 * 1 * 32 * 32                  # 1x1 branch -> 32: 1024
             + 3 * 3 * 32 * 16                # 3x3 branch -> 16: 4608
             + 5 * 5 * 32 * 8                 # 5x5 branch ->  8: 6400
             + 1 * 1 * (32 + 16 + 8) * 32)    # fuse 56 -> 32:    1792  => 13824
    classifier = 32 * 11                      # 352
    macs = stem + 5 * block + classifier
    assert macs == 70624
    assert flops_per_pixel(model) == 2 * macs == 141248
    bn = 2 * 32 + 5 * 2 * (32 + 16 + 8 + 32)  # gamma + beta per BN channel: 64 + 880
    params = macs + bn + 11                   # + classifier bias
    assert params == 71579
    assert count_parameters(model) == params
    # FLOPs scale ~ width^2: width 64 costs about 4x
    assert 3.5 < flops_per_pixel(L2HNet(4, width=64)) / flops_per_pixel(model) < 4.1


@pytest.mark.parametrize("width", [30, 6, 0, -4])
def test_width_must_be_divisible_by_4(width):
    with pytest.raises(ValueError, match="width"):
        L2HNet(4, width=width)
    with pytest.raises(ConfigError):  # printed by the CLI without a traceback
        L2HNet(4, width=width)


def test_wrong_band_count_is_a_clear_error():
    model = L2HNet(4, width=8, num_blocks=1)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        model(torch.randn(1, 3, 8, 8))


def test_class_index_maps_to_code_plus_one():
    logits = torch.zeros(1, 11, 1, 11)
    for k in range(11):
        logits[0, k, 0, k] = 5.0
    assert logits_to_codes(logits)[0, 0].tolist() == list(CLASS_CODES)
    meta = _meta(L2HNet(4, width=8, num_blocks=1))
    assert meta["classes"] == {code: BY_CODE[code].name for code in CLASS_CODES}
    assert meta["class_index_to_code"] == list(CLASS_CODES)


def test_metadata_validates_bands_and_normalisation():
    model = L2HNet(4, width=8, num_blocks=1)
    with pytest.raises(ConfigError, match="4 input channels"):
        model_metadata(model, ["r", "g", "b"], {"mean": [0] * 3, "std": [1] * 3}, 0.5, 0.1, {})
    with pytest.raises(ConfigError, match="one mean and one std"):
        model_metadata(model, list("rgbn"), {"mean": [0] * 4, "std": [1] * 3}, 0.5, 0.1, {})
    with pytest.raises(ConfigError, match="std"):
        model_metadata(model, list("rgbn"), {"mean": [0] * 4, "std": [1, 1, 0, 1]}, 0.5, 0.1, {})


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(2)
    model = L2HNet(4, num_classes=11, width=8, num_blocks=2)
    model.train()
    model(torch.randn(2, 4, 16, 16))  # moves BatchNorm running statistics away from their init
    model.eval()
    meta = _meta(model, steps=7, seed=42, note="x")
    path = save_checkpoint_model(tmp_path / "sub" / "model.pt", model, meta)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary left behind
    loaded, meta2 = load_model(path, expect_width=8, expect_in_channels=4)
    assert not loaded.training
    assert meta2 == meta
    for key in ("classes", "bands", "in_channels", "width", "num_blocks", "normalisation", "tau",
                "gamma", "l2h_version"):
        assert key in meta2
    assert meta2["tau"] == 0.6 and meta2["gamma"] == 0.2 and meta2["extra"] == {"steps": 7, "seed": 42, "note": "x"}
    x = torch.randn(1, 4, 21, 19)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_save_overwrites_atomically(tmp_path):
    model = L2HNet(3, width=4, num_blocks=1)
    path = tmp_path / "m.pt"
    save_checkpoint_model(path, model, _meta(model))
    model2 = L2HNet(3, width=8, num_blocks=1)
    save_checkpoint_model(path, model2, _meta(model2))
    assert load_model(path)[1]["width"] == 8
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    with pytest.raises(ValueError, match="width"):
        save_checkpoint_model(path, model, _meta(model2))


def test_load_with_other_width_or_bands_names_both(tmp_path):
    model = L2HNet(4, width=16, num_blocks=1)
    path = tmp_path / "x.pt"
    save_checkpoint_model(path, model, _meta(model))
    with pytest.raises(InputError, match=r"x\.pt was trained with width 16, this run expects width 32"):
        load_model(path, expect_width=32)
    with pytest.raises(InputError, match=r"in_channels 4, this run expects in_channels 3"):
        load_model(path, expect_in_channels=3)


def test_load_rejects_inconsistent_missing_and_foreign_files(tmp_path):
    small, big = L2HNet(4, width=8, num_blocks=1), L2HNet(4, width=16, num_blocks=1)
    payload = {"format": "l2h-model", "format_version": 1, "metadata": _meta(big),
               "state_dict": small.state_dict()}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=r"bad\.pt.*width 16.*width 8"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an l2h model"):
        load_model(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        load_model(tmp_path / "junk.pt")


def test_a_few_sgd_steps_lower_the_loss():
    """Tiny synthetic problem: the class is a function of the bands; 30 SGD steps must learn it."""
    torch.manual_seed(3)
    x = torch.randn(4, 3, 24, 24)
    label = x[:, :2].argmax(dim=1)  # class 0 or 1: which of the first two bands is larger
    label[x[:, 2] > 1.0] = 2
    label[:, :2] = 255  # some unlabelled pixels
    model = L2HNet(3, num_classes=3, width=8, num_blocks=2)
    loss_fn = L2HLoss(num_classes=3, tau=0.5, gamma=0.1, warmup_steps=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    def eval_ce():
        model.eval()
        with torch.no_grad():
            out = nn.functional.cross_entropy(model(x), label, ignore_index=255)
        model.train()
        return float(out)

    before = eval_ce()
    totals, agreement = [], []
    for step in range(30):
        features, logits = model.forward_features(x)
        parts = loss_fn(logits, features, label, step)
        opt.zero_grad()
        parts["total"].backward()
        opt.step()
        totals.append(float(parts["total"].detach()))
        agreement.append(float(parts["agreement"]))
    assert sum(totals[-3:]) / 3 < 0.5 * sum(totals[:3]) / 3
    assert eval_ce() < 0.5 * before
    assert agreement[-1] > agreement[0] + 0.3
