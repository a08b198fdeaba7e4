"""Training windows: determinism, geometry, label up-sampling, nodata, augmentation, workers, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from helpers import demo_label
from rasterio.transform import from_origin

from l2h.core.errors import InputError
from l2h.model.data import TrainingSpec, TrainingWindows, band_statistics, load_training_specs, training_class_areas
from l2h.model.loss import codes_to_targets

CRS = "EPSG:32650"
X0, Y0 = 500_000.0, 3_000_000.0  # north-west corner of the synthetic world (multiples of 10 m)
SIZE = 200  # m (= 1 m pixels) per side of the synthetic world
BLOCK = 100  # m, synthetic blocks
NODATA_BOX = (slice(120, 150), slice(120, 160))  # rows, cols of the imagery left empty (all bands 0)
UNLABELLED_COLS = 100  # label cells in the western half of the world are 255 (1 m columns 0..99)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs on one torch thread."""


def _write(path: Path, data: np.ndarray, res: float, nodata=0) -> str:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=CRS, transform=from_origin(X0, Y0, res, res), nodata=nodata) as dst:
        dst.write(data)
    return str(path)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 200 x 200 m world: a 10 m label of random codes (255 in the west half's every other cell),
    1 m imagery whose band 1 is the label code at that pixel (200 where the label is 255) and
    band 2 the column, band 3 the row, band 4 constant 7; a 30 x 40 px box without imagery."""
    d = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(1)
    label = rng.integers(1, 12, (SIZE // 10, SIZE // 10)).astype(np.uint8)
    label[:, : UNLABELLED_COLS // 10] = 255
    label[::2, 0] = 3  # a few labelled cells in the west half
    up = np.kron(label, np.ones((10, 10), np.uint8))
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    image = np.stack([np.where(up == 255, 200, up), cols % 251 + 1, rows % 251 + 1,
                      np.full_like(up, 7)]).astype(np.uint8)
    image[:, NODATA_BOX[0], NODATA_BOX[1]] = 0
    lpath = _write(d / "label.tif", label, 10.0, nodata=0)
    ipath = _write(d / "image.tif", image, 1.0)
    specs = [TrainingSpec(f"b{i}{j}", "synth", (X0 + i * BLOCK, Y0 - (j + 1) * BLOCK, X0 + (i + 1) * BLOCK,
                                                  Y0 - j * BLOCK), lpath, ipath)
             for j in range(2) for i in range(2)]
    return dict(specs=specs, label=label, up=up, image=image, dir=d)





def demo_specs(world: Path, workdir: Path, block: int = 512) -> list[TrainingSpec]:
    label = demo_label(world, workdir / "label_10m.tif")
    image = str(world / "imagery/demo_imagery.tif")
    with rasterio.open(image) as src:
        west, south, east, north = src.bounds
    return [TrainingSpec(f"c{int(x // block)}_r{int(y // block)}", "demo", (x, y, x + block, y + block), label, image)
            for x in np.arange(west, east, block) for y in np.arange(south, north, block)]


@pytest.fixture(scope="module")
def demo(small_demo_world, tmp_path_factory):
    return demo_specs(small_demo_world, tmp_path_factory.mktemp("demo_data"))


# ----------------------------------------------------------------------------------------------


def test_sample_is_a_function_of_seed_and_index(demo):
    a = TrainingWindows(demo, patch_size=48, seed=3)
    b = TrainingWindows(demo, patch_size=48, seed=3)  # another instance: no hidden state
    x0, y0 = a[5]
    assert x0.dtype == torch.float32 and x0.shape == (4, 48, 48)
    assert y0.dtype == torch.int64 and y0.shape == (48, 48)
    for i in (5, 0, 17):  # out of order too
        x, y = b[i]
        xa, ya = a[i]
        assert torch.equal(x, xa) and torch.equal(y, ya)
    x1, _ = a[6]
    assert not torch.equal(x0, x1)
    xs, _ = TrainingWindows(demo, patch_size=48, seed=4)[5]
    assert not torch.equal(x0, xs)  # the seed matters
    assert set(torch.unique(y0).tolist()) <= set(range(11)) | {255}


def test_windows_lie_inside_their_block_on_whole_pixels(demo):
    ds = TrainingWindows(demo, patch_size=64, seed=0)
    used = set()
    for i in range(40):
        d = ds.draw(i)
        xmin, ymin, xmax, ymax = demo[d.spec_index].bounds
        wx0, wy0, wx1, wy1 = d.bounds
        assert xmin <= wx0 < wx1 <= xmax and ymin <= wy0 < wy1 <= ymax
        assert (wx1 - wx0, wy1 - wy0) == (64, 64)
        assert (wx0 - xmin) == int(wx0 - xmin) and (ymax - wy1) == int(ymax - wy1)
        used.add(d.spec_index)
    assert len(used) >= 4  # several of the 6 blocks are drawn


def test_label_at_1m_is_the_10m_label_upsampled(synthetic):
    ds = TrainingWindows(synthetic["specs"], patch_size=40, seed=0, min_labelled=0.0, augment=False)
    expected_all = codes_to_targets(torch.from_numpy(synthetic["up"])).numpy()
    valid_all = synthetic["image"].any(axis=0)
    for i in range(30):
        _, target, _, (b, col, row, _, _) = ds.raw(i)
        spec = synthetic["specs"][b]
        c0 = int(spec.bounds[0] - X0) + col  # window offset in world pixels
        r0 = int(Y0 - spec.bounds[3]) + row
        expected = expected_all[r0:r0 + 40, c0:c0 + 40].copy()
        expected[~valid_all[r0:r0 + 40, c0:c0 + 40]] = 255
        np.testing.assert_array_equal(target, expected)
    # and a window exactly on the 10 m grid: a block of 40 m read whole
    spec = TrainingSpec("x", "synth", (X0 + 150, Y0 - 80, X0 + 190, Y0 - 40), synthetic["specs"][0].label,
                        synthetic["specs"][0].imagery)
    _, target, _, _ = TrainingWindows([spec], patch_size=40, min_labelled=0.0, augment=False).raw(0)
    cells = synthetic["label"][4:8, 15:19]
    np.testing.assert_array_equal(target, codes_to_targets(torch.from_numpy(np.kron(cells, np.ones((10, 10),
                                                                                          np.uint8)))).numpy())


def test_nodata_imagery_gives_ignore(synthetic):
    spec = TrainingSpec("x", "synth", (X0 + 100, Y0 - 160, X0 + 180, Y0 - 80), synthetic["specs"][0].label,
                        synthetic["specs"][0].imagery)  # rows 80..160, cols 100..180: holds the box
    image, target, valid, _ = TrainingWindows([spec], patch_size=80, min_labelled=0.0, augment=False).raw(0)
    box = np.zeros((80, 80), bool)
    box[40:70, 20:60] = True
    np.testing.assert_array_equal(~valid, box)
    assert (target[box] == 255).all()
    labelled_below = codes_to_targets(torch.from_numpy(synthetic["up"][80:160, 100:180])).numpy()
    assert (labelled_below[box] != 255).any()  # the label has classes there; the target does not
    np.testing.assert_array_equal(target[~box], labelled_below[~box])
    assert (image[:, box] == 0).all()


def test_window_outside_the_imagery_is_ignored(synthetic):
    # a block sticking out of the world to the east: outside pixels are nodata -> 255
    spec = TrainingSpec("x", "synth", (X0 + 180, Y0 - 40, X0 + 220, Y0), synthetic["specs"][0].label,
                        synthetic["specs"][0].imagery)
    _, target, valid, _ = TrainingWindows([spec], patch_size=40, min_labelled=0.0, augment=False).raw(0)
    assert valid[:, :20].all() and not valid[:, 20:].any()
    assert (target[:, 20:] == 255).all()


def test_augmentation_rotates_and_flips_image_and_target_together(synthetic):
    plain = TrainingWindows(synthetic["specs"], patch_size=32, seed=2, min_labelled=0.0, augment=False)
    aug = TrainingWindows(synthetic["specs"], patch_size=32, seed=2, min_labelled=0.0, augment=True)
    changed = set()
    for i in range(24):
        x, y = aug[i]
        xp, yp = plain[i]
        d = aug.draw(i)
        # alignment: band 1 holds the label code (200 where unlabelled, 0 where no imagery)
        band, tgt = x[0].numpy(), y.numpy()
        lab = tgt != 255
        np.testing.assert_array_equal(band[lab], tgt[lab] + 1)
        assert np.isin(band[~lab], (0, 200)).all()
        # the augmented sample is the plain one rotated/flipped as drawn
        ex, ey = np.rot90(xp.numpy(), d.rot90, axes=(1, 2)), np.rot90(yp.numpy(), d.rot90)
        if d.flip:
            ex, ey = ex[:, :, ::-1], ey[:, ::-1]
        np.testing.assert_array_equal(x.numpy(), ex)
        np.testing.assert_array_equal(tgt, ey)
        changed.add((d.rot90, d.flip))
        if (d.rot90, d.flip) != (0, False):
            assert not torch.equal(x, xp)  # column/row bands make every orientation distinct
    assert len(changed) >= 5  # most of the 8 orientations occur


def test_redraws_until_labelled_enough(synthetic):
    ds = TrainingWindows(synthetic["specs"], patch_size=40, seed=0, min_labelled=0.8, augment=False)
    draws = [ds.draw(i) for i in range(30)]
    assert any(d.attempt > 0 for d in draws)  # the west half is mostly unlabelled
    for i, d in enumerate(draws):
        shares = [float(np.mean(ds.raw(i, a)[1] != 255)) for a in range(d.attempt + 1)]
        assert shares[-1] == d.labelled_share
        if d.labelled_share >= 0.8:  # the first draw that is labelled enough
            assert all(s < 0.8 for s in shares[:-1])
        else:  # none was: every attempt made, the best one kept
            shares = [float(np.mean(ds.raw(i, a)[1] != 255)) for a in range(ds.max_attempts)]
            assert d.labelled_share == max(shares)
    lax = TrainingWindows(synthetic["specs"], patch_size=40, seed=0, min_labelled=0.0, augment=False)
    assert all(lax.draw(i).attempt == 0 for i in range(30))
    assert np.mean([d.labelled_share for d in draws]) > np.mean([lax.draw(i).labelled_share for i in range(30)])


def test_normalisation_and_band_statistics(synthetic, demo):
    stats = band_statistics(synthetic["specs"], patch_size=50, n_samples=40, seed=0)
    assert stats == band_statistics(synthetic["specs"], patch_size=50, n_samples=40, seed=0)
    # band 4 is constant 7 on valid pixels: mean 7, std falls back to 1; nodata zeros are not counted
    assert stats["mean"][3] == pytest.approx(7.0) and stats["std"][3] == 1.0
    # band 2 is the column + 1 (1..200 over the world): mean ~100, std ~58 for uniform columns
    assert 80 < stats["mean"][1] < 120 and 45 < stats["std"][1] < 70

    d = band_statistics(demo, patch_size=64, n_samples=48, seed=0)
    with rasterio.open(demo[0].imagery) as src:
        full = src.read().astype(np.float64)
    valid = full.any(axis=0)
    for b in range(4):
        pix = full[b][valid]
        assert abs(d["mean"][b] - pix.mean()) < 0.2 * pix.std()
        assert 0.6 < d["std"][b] / pix.std() < 1.4
    ds = TrainingWindows(demo, patch_size=64, seed=0, normalisation=d, min_labelled=0.0, augment=False)
    xs = torch.stack([ds[i][0] for i in range(16)])
    ys = torch.stack([ds[i][1] for i in range(16)])
    image = xs.permute(1, 0, 2, 3)[:, ys != 255]  # labelled pixels have imagery
    assert image.mean(dim=1).abs().max() < 0.6 and ((image.std(dim=1) - 1).abs() < 0.5).all()


def test_dataloader_with_workers_gives_the_same_batches(demo):
    ds = TrainingWindows(demo, patch_size=48, seed=1)
    ds[0]  # handles opened in the parent must not leak into the workers
    sampler = [list(range(s * 4, s * 4 + 4)) for s in range(3)]
    one = list(torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=0))
    two = list(torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=2))
    assert len(one) == len(two) == 3
    for (xa, ya), (xb, yb) in zip(one, two):
        assert xa.shape == (4, 4, 48, 48)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_band_count_mismatch_and_missing_label_are_named(synthetic, tmp_path):
    with pytest.raises(InputError, match=r"has 4 bands.*expects 3"):
        TrainingWindows(synthetic["specs"], patch_size=32, in_channels=3)
    with pytest.raises(InputError, match=r"has 4 bands.*expects 3"):
        band_statistics(synthetic["specs"], patch_size=32, n_samples=2, in_channels=3)
    missing = str(tmp_path / "labels" / "nowhere.tif")
    spec = TrainingSpec("x", "nowhere", synthetic["specs"][0].bounds, missing, synthetic["specs"][0].imagery)
    with pytest.raises(InputError, match="nowhere.tif"):
        TrainingWindows([spec], patch_size=32)


def test_specs_from_block_tables(synthetic, tmp_path):
    blocks = tmp_path / "blocks.csv"
    with open(blocks, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["block_id", "region", "area_km2", "labelled_share", "xmin", "ymin", "xmax", "ymax"])
        for s in synthetic["specs"]:
            w.writerow([s.block_id, s.region, 0.01, 0.5, *s.bounds])
    chosen = tmp_path / "training_blocks.csv"
    chosen.write_text("block_id\nb10\nb01\n")
    label_dir = Path(synthetic["specs"][0].label).parent
    specs = load_training_specs(blocks, chosen, labels=str(label_dir / "{region}.tif"),
                                imagery={"synth": synthetic["specs"][0].imagery})
    assert [s.block_id for s in specs] == ["b10", "b01"]
    assert specs[0].label == str(label_dir / "synth.tif")
    assert specs[0].bounds == synthetic["specs"][1].bounds
    chosen.write_text("block_id\nb99\n")
    with pytest.raises(InputError, match="b99"):
        load_training_specs(blocks, chosen, labels="x.tif", imagery="y.tif")


def test_training_class_areas_sum_the_chosen_blocks(tmp_path):
    blocks = tmp_path / "blocks.csv"
    shares = {"a": (2.0, 0.5, {1: 0.9, 4: 0.1}), "b": (1.0, 1.0, {4: 0.5, 3: 0.5}), "c": (5.0, 1.0, {7: 1.0})}
    with open(blocks, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["block_id", "region", "area_km2", "labelled_share", *(f"share_{c}" for c in range(1, 12))])
        for block, (area, labelled, by_class) in shares.items():
            w.writerow([block, "r", area, labelled, *(by_class.get(c, 0) for c in range(1, 12))])
    chosen = tmp_path / "training_blocks.csv"
    chosen.write_text("block_id\na\nb\n")  # c (all water) is not a training block
    areas = training_class_areas(blocks, chosen)
    assert areas == pytest.approx([0.9, 0, 0.5, 0.1 + 0.5, 0, 0, 0, 0, 0, 0, 0])  # index = code - 1
    chosen.write_text("block_id\nz\n")
    with pytest.raises(InputError, match="block z is not in"):
        training_class_areas(blocks, chosen)


def test_imagery_off_the_run_grid_is_warped(synthetic, tmp_path):
    # the same imagery at 2 m (every other pixel): read through a WarpedVRT onto the 1 m window
    coarse = synthetic["image"][:, ::2, ::2]
    with rasterio.open(tmp_path / "img2m.tif", "w", driver="GTiff", width=100, height=100, count=4, dtype="uint8",
                       crs=CRS, transform=from_origin(X0, Y0, 2.0, 2.0), nodata=0) as dst:
        dst.write(coarse)
    spec = TrainingSpec("x", "synth", (X0 + 100, Y0 - 200, X0 + 200, Y0 - 100), synthetic["specs"][0].label,
                        str(tmp_path / "img2m.tif"))  # world rows 100..200, cols 100..200
    image, target, valid, _ = TrainingWindows([spec], patch_size=100, min_labelled=0.0, augment=False).raw(0)
    assert image.shape == (4, 100, 100) and 0.8 < valid.mean() < 0.9
    np.testing.assert_allclose(image[3][valid], 7.0)  # the constant band stays constant
    assert not valid[25:45, 25:55].any() and (target[~valid] == 255).all()  # the empty box
    # band 2 is the world column + 1: interpolated from every other column it stays within 1
    np.testing.assert_allclose(image[1][5, 5:95], 100 + np.arange(5, 95) + 1, atol=1.0)


def test_band_statistics_redraw_windows_without_imagery(synthetic):
    """Imagery covering a small part of the blocks (scattered patches, e.g. examples/own-data.yaml):
    windows that miss it are drawn again, as training draws them, instead of failing the run."""
    image = synthetic["specs"][0].imagery  # the 200 x 200 m world in the north-west corner
    spec = TrainingSpec("big", "synth", (X0, Y0 - 1000, X0 + 1000, Y0), synthetic["specs"][0].label, image)
    first_draws = TrainingWindows([spec], patch_size=50, seed=0, min_labelled=0.0, augment=False)
    first = [int(first_draws.raw(i, 0)[2].sum()) for i in range(40)]
    first_draws.close()
    assert first.count(0) >= 20  # the first draw of most windows finds no imagery
    stats = band_statistics([spec], patch_size=50, n_samples=40, seed=0)
    assert stats["mean"][3] == pytest.approx(7.0)  # only imagery pixels are counted
    assert stats["pixels"] > 2 * sum(first)  # windows without imagery were drawn again
    far = TrainingSpec("far", "synth", (X0 + 5000, Y0 - 1000, X0 + 6000, Y0), spec.label, image)
    with pytest.raises(InputError, match=r"no imagery found in 3 windows \(\d+ draws each\)"):
        band_statistics([far], patch_size=50, n_samples=3, seed=0)



def test_class_sets_come_with_the_window_and_turn_with_it(synthetic, tmp_path):
    # the class-set label: {code} where labelled, {tree, grass} (codes 1, 4) where the label is 255
    label = synthetic["label"].astype(np.int64)
    sets = np.where(label == 255, (1 << 1) | (1 << 4), 1 << label).astype(np.uint16)
    spath = _write(tmp_path / "sets.tif", sets, 10.0)
    specs = [TrainingSpec(s.block_id, s.region, s.bounds, s.label, s.imagery, label_sets=spath)
             for s in synthetic["specs"]]
    ds = TrainingWindows(specs, patch_size=32, seed=2, min_labelled=0.0, augment=True, sets=True)
    for i in range(12):
        x, target, got = ds[i]
        valid = x.abs().sum(0) > 0
        lab = target != 255
        assert (got[lab] == (1 << target[lab])).all()  # class index bits: code c -> bit c - 1
        assert (got[~lab & valid] == (1 << 0) | (1 << 3)).all()
        assert (got[~valid] == 0).all()
    with pytest.raises(Exception, match="class-set label"):
        TrainingWindows(synthetic["specs"], patch_size=32, sets=True)


def test_rare_draws_favour_windows_of_rare_classes(synthetic):
    rarity = [0.0] * 11
    rarity[2] = 1.0  # only class index 2 (code 3) counts as rare
    plain = TrainingWindows(synthetic["specs"], patch_size=20, seed=0, min_labelled=0.0, augment=False)
    rare = TrainingWindows(synthetic["specs"], patch_size=20, seed=0, min_labelled=0.0, augment=False,
                           rare_draws=6, class_rarity=rarity)
    share = lambda ds: np.mean([(ds[i][1] == 2).float().mean() for i in range(60)])  # noqa: E731
    assert share(rare) > 2 * share(plain)
    again = TrainingWindows(synthetic["specs"], patch_size=20, seed=0, min_labelled=0.0, augment=False,
                            rare_draws=6, class_rarity=rarity)
    assert all(torch.equal(rare[i][1], again[i][1]) for i in range(10))  # still a function of (seed, i)
    with pytest.raises(Exception, match="rarity"):
        TrainingWindows(synthetic["specs"], patch_size=20, rare_draws=3)


def test_edge_cells_are_the_label_cells_next_to_another_label(tmp_path):
    """A 10 m label: class 3 in the west, class 4 in the east (the edge between cell columns 1 and 2),
    one cell without a class (255) and the raster's edge (no neighbour there: not an edge)."""
    label = np.full((4, 4), 3, np.uint8)
    label[:, 2:] = 4
    label[3, 0] = 255
    lpath = _write(tmp_path / "label.tif", label, 10.0)
    ipath = _write(tmp_path / "image.tif", np.full((4, 40, 40), 9, np.uint8), 1.0)
    spec = TrainingSpec("b", "r", (X0, Y0 - 40, X0 + 40, Y0), lpath, ipath)
    ds = TrainingWindows([spec], patch_size=40, min_labelled=0.0, augment=False, edge_cells=True)
    _, target, cells = ds[0]
    edge = np.array([[0, 1, 1, 0],
                     [0, 1, 1, 0],
                     [1, 1, 1, 0],
                     [0, 1, 1, 0]], bool)  # (3, 0) itself has no class: never an edge cell
    up = np.kron(edge, np.ones((10, 10), bool))
    assert ((cells >= 0).numpy() == up).all()
    # one number per cell, shared by its 100 pixels
    numbers = cells[cells >= 0].unique()
    assert len(numbers) == int(edge.sum()) and all(int((cells == n).sum()) == 100 for n in numbers)
    assert (target[cells >= 0] != 255).all()
