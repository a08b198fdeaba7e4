"""Training: it learns, it resumes exactly, it refuses foreign checkpoints, its model file is complete."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from helpers import demo_label

from l2h.core.errors import ConfigError, InputError
from l2h.model.data import PriorSettings, TrainingSpec
from l2h.model.l2hnet import UNSEEN_CLASS_BIAS, load_model, logits_to_codes
from l2h.model.train import TrainConfig, read_metrics, train

BANDS = ["red", "green", "blue", "nir"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread: fast for tiny nets, and CPU results are reproducible for a thread count."""


@pytest.fixture(scope="module")
def specs(small_demo_world, tmp_path_factory) -> list[TrainingSpec]:
    """Six 512 m training blocks over the small demo world; label = the truth mode-aggregated to
    10 m with 20 % of the cells set to 255 (not the workflow's consensus: only the format matters)."""
    label = demo_label(small_demo_world, tmp_path_factory.mktemp("train_data") / "label_10m.tif")
    with rasterio.open(small_demo_world / "truth/truth_1m.tif") as src:
        west, south, east, north = src.bounds
    image = str(small_demo_world / "imagery/demo_imagery.tif")
    return [TrainingSpec(f"b{int(x)}_{int(y)}", "demo", (x, y, x + 512, y + 512), label, image)
            for x in np.arange(west, east, 512) for y in np.arange(south, north, 512)]


def _cfg(**kw) -> TrainConfig:
    # the confident-area loss and L_DVA on, pixel-wise edge cells, no self-training: each test adds its own
    base = dict(width=8, patch_size=48, batch_size=4, steps=6, warmup_steps=2, checkpoint_every=3,
                stats_samples=16, device="cpu", tau=0.5, gamma=0.1, edge_cells="pixel", self_training_steps=0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def test_a_few_steps_lower_the_loss(specs, tmp_path):
    # warm-up over the whole run: the loss is the class-balanced CE on every labelled pixel, so
    # first and last steps measure the same thing
    cfg = _cfg(steps=40, warmup_steps=40, checkpoint_every=40)
    summary = train(specs, BANDS, cfg, tmp_path / "model.pt", tmp_path / "work", progress=False)
    rows = read_metrics(tmp_path / "work" / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(40))
    first = np.mean([r["total"] for r in rows[:8]])
    last = np.mean([r["total"] for r in rows[-8:]])
    assert last < 0.75 * first, (first, last)
    assert np.mean([r["agreement"] for r in rows[-8:]]) > np.mean([r["agreement"] for r in rows[:8]]) + 0.1
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == pytest.approx(cfg.lr) and all(a > b for a, b in zip(lrs, lrs[1:]))  # poly decay
    assert summary["complete"] and summary["steps"] == 40 and summary["pixels_per_s"] > 0
    final = np.mean([r["total"] for r in rows[-10:]])  # the summary averages the last 10 steps
    assert summary["metrics"]["final"]["total"] == pytest.approx(final, rel=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_gives_the_same_weights_as_a_straight_run(specs, tmp_path, optimizer):
    cfg = _cfg(optimizer=optimizer, lr=0.01 if optimizer == "sgd" else 0.002)  # 6 steps, checkpoint every 3, warm-up 2: the confident-area loss runs across the cut
    a, b = tmp_path / "a", tmp_path / "b"
    first = train(specs, BANDS, cfg, tmp_path / "a.pt", a, progress=False, stop_after=3)
    assert first["steps"] == 3 and not first["complete"] and not (tmp_path / "a.pt").exists()
    assert (a / "checkpoint.pt").is_file()
    # a crash after the checkpoint left rows of steps the checkpoint does not hold
    with open(a / "metrics.csv", "a", newline="") as f:
        csv.writer(f).writerows([[3, 0.1, 9, 9, 0, 1, 0.5, 0.1], [4, 0.1, 9, 9, 0, 1, 0.5, 0.1]])
    resumed = train(specs, BANDS, cfg, tmp_path / "a.pt", a, progress=False)
    assert resumed["resumed_from"] == 3 and resumed["steps_run"] == 3 and resumed["complete"]
    # what ran, over both calls: the device and arithmetic of every step
    assert resumed["device"] == "cpu" and resumed["precision"] == "fp32"
    assert resumed["steps_by_device"] == {"cpu fp32": 6}
    assert load_model(tmp_path / "a.pt")[1]["extra"]["steps_by_device"] == {"cpu fp32": 6}
    straight = train(specs, BANDS, cfg, tmp_path / "b.pt", b, progress=False)
    assert straight["resumed_from"] == 0 and straight["steps_run"] == 6

    wa, wb = _weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-5, msg=k)
    ra, rb = read_metrics(a / "metrics.csv"), read_metrics(b / "metrics.csv")
    assert [r["step"] for r in ra] == [r["step"] for r in rb] == list(range(6))
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in y.items() if k != "seconds"}, abs=1e-5)
    # the weights did change from the initial ones (the comparison above is not vacuous)
    torch.manual_seed(cfg.seed)
    from l2h.model.l2hnet import L2HNet
    init = L2HNet(4, 11, cfg.width).state_dict()
    assert not torch.allclose(init["stem.0.weight"], wa["stem.0.weight"])

    # a finished run rerun: nothing to train, the model is written again
    again = train(specs, BANDS, cfg, tmp_path / "a2.pt", a, progress=False)
    assert again["steps_run"] == 0 and again["complete"]
    assert len(read_metrics(a / "metrics.csv")) == 6
    torch.testing.assert_close(_weights(tmp_path / "a2.pt")["classifier.weight"], wa["classifier.weight"])


def test_checkpoint_of_another_width_or_setting_is_refused(specs, tmp_path):
    work = tmp_path / "work"
    train(specs, BANDS, _cfg(steps=2, warmup_steps=0), tmp_path / "m.pt", work, progress=False, stop_after=1)
    with pytest.raises(ConfigError, match=r"width 8.*width 12"):
        train(specs, BANDS, _cfg(steps=2, warmup_steps=0, width=12), tmp_path / "m.pt", work, progress=False)
    with pytest.raises(ConfigError, match=r"lr: checkpoint 0\.01, now 0\.02"):
        train(specs, BANDS, _cfg(steps=2, warmup_steps=0, lr=0.02), tmp_path / "m.pt", work, progress=False)
    with pytest.raises(ConfigError, match="bands"):
        train(specs, ["b1", "b2", "b3", "b4"], _cfg(steps=2, warmup_steps=0), tmp_path / "m.pt", work,
              progress=False)
    assert not (tmp_path / "m.pt").exists()


def test_model_file_carries_bands_normalisation_and_width(specs, tmp_path):
    summary = train(specs, BANDS, _cfg(steps=2, warmup_steps=1, width=12), tmp_path / "m.pt", tmp_path / "w",
                    progress=False)
    model, meta = load_model(tmp_path / "m.pt", expect_width=12, expect_in_channels=4)
    assert model.width == 12 and meta["width"] == 12 and meta["bands"] == BANDS
    norm = meta["normalisation"]
    assert norm == summary["normalisation"]
    assert all(20 < m < 230 for m in norm["mean"]) and all(5 < s < 128 for s in norm["std"])
    assert meta["extra"]["steps"] == 2 and meta["extra"]["train_config"]["width"] == 12
    assert set(meta["extra"]["metrics"]["final"]) >= {"total", "ce", "dva", "confident_share", "agreement"}
    assert meta["tau"] == 0.5 and meta["gamma"] == 0.1 and meta["l2h_version"]
    with torch.no_grad():
        assert model(torch.zeros(1, 4, 20, 30)).shape == (1, 11, 20, 30)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="width"):
        TrainConfig(width=10)
    with pytest.raises(ConfigError, match="confidence"):
        TrainConfig(confidence="sometimes")
    with pytest.raises(ConfigError, match="patch_size"):
        TrainConfig.from_dict({"patch_size": 0})
    with pytest.raises(ConfigError, match="unknown train setting"):
        TrainConfig.from_dict({"widht": 32})
    with pytest.raises(ConfigError, match="train.optimizer must be one of sgd, adamw"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ConfigError, match="balance_power"):
        TrainConfig(balance_power=-1)
    assert TrainConfig.from_dict({"width": 16}).width == 16


def test_classes_no_label_showed_are_never_predicted(specs, tmp_path):
    """A coarse label without some classes (e.g. no building in a forest tile): their untrained
    outputs must not win anywhere on the map; the model says which classes it suppressed."""
    with rasterio.open(specs[0].label) as src:
        label, profile = src.read(1), src.profile
    kept = (1, 4, 7)
    label[~np.isin(label, kept) & (label != 0)] = 255
    path = tmp_path / "label_3_classes.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(label, 1)
    narrow = [dataclasses.replace(s, label=str(path)) for s in specs]
    train(narrow, BANDS, _cfg(steps=4), tmp_path / "m.pt", tmp_path / "w", progress=False)
    model, meta = load_model(tmp_path / "m.pt")
    seen = {int(c): n for c, n in meta["extra"]["label_pixels"].items()}
    suppressed = meta["extra"]["suppressed_classes"]
    assert {c for c, n in seen.items() if n > 0} <= set(kept)
    assert suppressed == sorted(c for c, n in seen.items() if n == 0) and len(suppressed) >= 8
    torch.manual_seed(0)
    with torch.no_grad():
        codes = logits_to_codes(model(torch.randn(2, 4, 96, 96) * 5))
    assert not set(codes.unique().tolist()) & set(suppressed)
    assert torch.load(tmp_path / "w" / "checkpoint.pt", weights_only=False)["label_pixels"] == [
        seen[c] for c in range(1, 12)]  # a resumed run continues the count


def test_class_weights_from_the_label_need_its_class_areas(specs, tmp_path):
    cfg = _cfg(steps=2, warmup_steps=1, class_weights="labels", balance_power=1.0)
    with pytest.raises(ConfigError, match="class_weights: labels needs"):
        train(specs, BANDS, cfg, tmp_path / "m.pt", tmp_path / "w", progress=False)
    areas = [0.5, 0, 0.2, 0.3, 0, 0, 0.01, 0, 0, 0, 0]
    train(specs, BANDS, cfg, tmp_path / "m.pt", tmp_path / "w", progress=False, class_areas=areas)
    batch = _cfg(steps=2, warmup_steps=1, balance_power=1.0)
    train(specs, BANDS, batch, tmp_path / "b.pt", tmp_path / "wb", progress=False)
    fixed, per_batch = _weights(tmp_path / "m.pt"), _weights(tmp_path / "b.pt")
    assert any(not torch.equal(fixed[k], per_batch[k]) for k in fixed)  # the weights reached the loss


def test_a_checkpoint_from_before_label_counting_still_finishes(specs, tmp_path):
    """A finished run of an older l2h (its checkpoint has no label counts) whose model file is
    missing: training ends at once, without suppressing classes it cannot know were unseen."""
    cfg = _cfg(steps=2, warmup_steps=1, checkpoint_every=2)
    train(specs, BANDS, cfg, tmp_path / "m.pt", tmp_path / "w", progress=False)
    checkpoint = tmp_path / "w" / "checkpoint.pt"
    old = torch.load(checkpoint, weights_only=False)
    del old["label_pixels"], old["steps_by_device"]
    torch.save(old, checkpoint)
    (tmp_path / "m.pt").unlink()
    summary = train(specs, BANDS, cfg, tmp_path / "m.pt", tmp_path / "w", progress=False)
    _, meta = load_model(tmp_path / "m.pt")
    assert summary["steps_run"] == 0 and meta["extra"]["suppressed_classes"] == []
    assert meta["extra"]["label_pixels"] is None
    assert meta["extra"]["steps_by_device"] == {"unknown": 2}  # what ran before devices were recorded


@pytest.fixture(scope="module")
def specs_with_sets(specs, tmp_path_factory):
    """The same blocks with a class-set label (each labelled cell's own class; nothing where 255)."""
    label = specs[0].label
    with rasterio.open(label) as src:
        codes, profile = src.read(1), src.profile
    sets = np.where((codes >= 1) & (codes <= 11), 1 << codes.astype(np.int64), 0).astype(np.uint16)
    path = tmp_path_factory.mktemp("sets") / "sets.tif"
    with rasterio.open(path, "w", **{**profile, "dtype": "uint16"}) as dst:
        dst.write(sets, 1)
    return [TrainingSpec(s.block_id, s.region, s.bounds, s.label, s.imagery, label_sets=str(path)) for s in specs]


def test_self_training_follows_the_edge_cell_phase_and_resumes_across_the_boundary(specs_with_sets, tmp_path):
    """4 steps on the coarse label with the edge-cell loss, then 4 on the frozen teacher's pseudo-labels:
    the learning rate restarts at self_training_lr; a run cut inside the second phase (the teacher in
    its checkpoint) ends with the weights of a straight run."""
    cfg = _cfg(steps=4, self_training_steps=4, edge_cells="cell", tau=0.0, gamma=0.0, checkpoint_every=2,
               lr=0.004, self_training_lr=0.001)
    straight = train(specs_with_sets, BANDS, cfg, tmp_path / "b.pt", tmp_path / "b", progress=False)
    assert straight["complete"] and straight["steps"] == 8
    rows = read_metrics(tmp_path / "b" / "metrics.csv")
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == pytest.approx(0.004) and lrs[4] == pytest.approx(0.001) and lrs[3] < 0.004 and lrs[7] < 0.001
    assert all(r["dva"] == 0 for r in rows)
    first = train(specs_with_sets, BANDS, cfg, tmp_path / "a.pt", tmp_path / "a", progress=False, stop_after=6)
    assert first["steps"] == 6 and not first["complete"]
    assert "teacher" in torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    resumed = train(specs_with_sets, BANDS, cfg, tmp_path / "a.pt", tmp_path / "a", progress=False)
    assert resumed["resumed_from"] == 6 and resumed["complete"]
    wa, wb = _weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-5, msg=k)
    # the second phase did change the weights: a run of the first phase alone ends elsewhere
    alone = _cfg(steps=4, self_training_steps=0, edge_cells="cell", tau=0.0, gamma=0.0, checkpoint_every=2, lr=0.004)
    train(specs_with_sets, BANDS, alone, tmp_path / "c.pt", tmp_path / "c", progress=False)
    assert not torch.allclose(_weights(tmp_path / "c.pt")["classifier.weight"], wb["classifier.weight"])


def test_the_teacher_never_teaches_a_class_no_label_showed(specs_with_sets, tmp_path):
    """Tree (code 1) removed from the coarse label: the frozen teacher that makes the pseudo-labels
    has tree suppressed like the final model, so the second phase cannot teach it either; once it
    exists, neither train.steps (the phase boundary) nor the pseudo-labels' prior may change."""
    with rasterio.open(specs_with_sets[0].label) as src:
        codes, profile = src.read(1), src.profile
    assert (codes == 1).any()
    codes[codes == 1] = 255
    sets = np.where((codes >= 1) & (codes <= 11), 1 << codes.astype(np.int64), 0).astype(np.uint16)
    label, label_sets = tmp_path / "label.tif", tmp_path / "sets.tif"
    with rasterio.open(label, "w", **profile) as dst:
        dst.write(codes, 1)
    with rasterio.open(label_sets, "w", **{**profile, "dtype": "uint16"}) as dst:
        dst.write(sets, 1)
    specs = [TrainingSpec(s.block_id, s.region, s.bounds, str(label), s.imagery, label_sets=str(label_sets))
             for s in specs_with_sets]
    cfg = _cfg(steps=2, self_training_steps=2, edge_cells="cell", tau=0.0, gamma=0.0, checkpoint_every=1)
    train(specs, BANDS, cfg, tmp_path / "m.pt", tmp_path / "w", progress=False, stop_after=3)
    teacher = torch.load(tmp_path / "w" / "checkpoint.pt", weights_only=False)["teacher"]
    assert teacher["classifier.bias"][0] == UNSEEN_CLASS_BIAS and (teacher["classifier.bias"][1:] > -100).any()
    # past the phase boundary, train.steps may no longer move it
    with pytest.raises(ConfigError, match="train.steps cannot change"):
        train(specs, BANDS, dataclasses.replace(cfg, steps=3), tmp_path / "m.pt", tmp_path / "w", progress=False)
    # nor may the pseudo-labels' prior change
    with pytest.raises(ConfigError, match="self-training with the label prior"):
        train(specs, BANDS, cfg, tmp_path / "m.pt", tmp_path / "w", progress=False,
              prior=PriorSettings(4.0, "nearest"))


def test_self_training_needs_the_class_set_labels(specs, tmp_path):
    with pytest.raises(ConfigError, match="class-set label"):
        train(specs, BANDS, _cfg(self_training_steps=2), tmp_path / "m.pt", tmp_path / "w", progress=False)


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(specs, tmp_path, caplog):
    """A disk fault truncated the last checkpoint: training resumes from the one before it, saying so
    in one line, and ends with a straight run's weights; when no checkpoint reads, the error names the
    files to delete."""
    cfg = _cfg(steps=6, checkpoint_every=2)
    work = tmp_path / "a"
    train(specs, BANDS, cfg, tmp_path / "a.pt", work, progress=False, stop_after=4)
    assert (work / "checkpoint.previous.pt").is_file()  # step 2, kept beside step 4
    data = (work / "checkpoint.pt").read_bytes()
    (work / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    with caplog.at_level("WARNING"):
        resumed = train(specs, BANDS, cfg, tmp_path / "a.pt", work, progress=False)
    assert resumed["resumed_from"] == 2 and resumed["complete"]
    lines = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(lines) == 1 and "checkpoint.previous.pt (step 2)" in lines[0] and "\n" not in lines[0]
    train(specs, BANDS, cfg, tmp_path / "b.pt", tmp_path / "b", progress=False)
    wa, wb = _weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-5, msg=k)
    # both unreadable: the message says which files to delete
    for name in ("checkpoint.pt", "checkpoint.previous.pt"):
        (work / name).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"delete .*checkpoint\.pt and .*checkpoint\.previous\.pt to start "
                                         r"training afresh"):
        train(specs, BANDS, cfg, tmp_path / "a.pt", work, progress=False)
