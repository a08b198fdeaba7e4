"""The block graph (network + normalisation, flips, label prior, argmax and confidence in one ONNX
graph) against the same steps done independently: the torch network it was exported from on
torch-flipped inputs, scipy's softmax, the label prior's own bonus; and on a tile worked out by hand."""

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import CRS, ROOT, sets_raster
from onnx import TensorProto, helper, numpy_helper
from rasterio.transform import from_origin
from scipy.special import softmax
from shapely.geometry import box

from l2h.labels.roads import write_roads
from l2h.maps.block_graph import _Builder, _prior_bonus, block_graph, kernel_signatures, variants
from l2h.maps.infer import _feed, load_onnx
from l2h.maps.label_prior import LabelPrior
from l2h.model.l2hnet import L2HNet
from l2h.model.norm import normalise

TILE = 48


@pytest.fixture(scope="module")
def prior_inputs(tmp_path_factory):
    """Two regions' class-set labels on one 10 m grid (random sets of one or two classes, some cells
    with every class or none) and a road surface crossing both."""
    tmp = tmp_path_factory.mktemp("prior")
    rng = np.random.default_rng(1)

    def random_sets(shape):
        sets = (1 << rng.integers(1, 12, shape)) | (1 << rng.integers(1, 12, shape))
        sets[rng.random(shape) < 0.05] = 0xFFE  # every class: no information
        sets[rng.random(shape) < 0.05] = 0
        return sets

    west = sets_raster(tmp / "w.tif", from_origin(0, 200, 10, 10), random_sets((20, 12)))
    east = sets_raster(tmp / "e.tif", from_origin(120, 200, 10, 10), random_sets((20, 10)))
    roads = gpd.GeoDataFrame({"highway": ["primary"], "name": ["Long Road"], "width_m": [7.0]},
                             geometry=[box(0, 120, 220, 127)], crs=CRS)
    write_roads(roads, tmp / "roads.gpkg")
    return [west, east], [str(tmp / "roads.gpkg")]


def _tile_origins():
    # tiles at odd offsets from the cells, across both labels, partly past their edges
    return [(3, 197), (117, 151), (150, 48), (181, 205)]


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("with_roads", [True, False], ids=["roads", "no roads"])
def test_the_prior_in_the_graph_is_the_label_prior(prior_inputs, interpolation, with_roads):
    """The graph's bonus for a batch of tiles (each with its own cell window, padded to the batch's
    largest) equals LabelPrior.bonus for each tile, to float32 rounding."""
    sets, roads = prior_inputs
    g = _Builder(17)
    bonus, inputs = _prior_bonus(g, 11, 2.5, with_roads, halo=0)
    g.nodes.append(helper.make_node("Identity", [bonus], ["bonus"]))
    graph = helper.make_graph(g.nodes, "prior", inputs, [helper.make_tensor_value_info("bonus", TensorProto.FLOAT, None)],
                              initializer=g.initializers)
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    with LabelPrior(sets, 2.5, interpolation=interpolation, roads=roads if with_roads else []) as prior:
        transforms = [from_origin(x, y, 1, 1) for x, y in _tile_origins()]
        tiles = [prior.tile(t, (TILE, TILE)) for t in transforms]
        assert len({t.cells.shape for t in tiles}) > 1  # the padding is exercised
        feed = _feed([(None, np.zeros((1, 1, 1), np.uint8), t) for t in tiles])
        del feed["pixels"]
        got = session.run(None, feed)[0]
        for t, tile_bonus in zip(transforms, got):
            expected = prior.bonus(t, (TILE, TILE))
            expected = np.zeros_like(tile_bonus) if expected is None else expected
            np.testing.assert_allclose(tile_bonus, expected, rtol=0, atol=2e-6)
    assert (got > 0).mean() > 0.1
    assert len(np.unique(np.round(got, 3))) > (10 if interpolation == "bilinear" else 1)  # graded across cells
    if with_roads:
        assert (got[:, 10] == 2.5).any()  # the road surface at 1 m


# the mirrored copies of test-time flips (docs/method.md: 2 = left-right, 4 = left-right, up-down and both),
# as torch.flip dims of (N, C, H, W)
TORCH_FLIPS = {1: [[]], 2: [[], [3]], 4: [[], [3], [2], [2, 3]]}


def _tiny_torch_network():
    """The torch network `tiny_onnx` was exported from (helpers.export_tiny_model: seed 0, 4 bands, width 8)."""
    torch.manual_seed(0)
    return L2HNet(4, width=8).eval()


def _reference(net, pixels, mean, std, halo, flips, bonus):
    """The block outputs from an independent implementation: the torch network the ONNX file was
    exported from, run on each mirrored copy of the normalised input (torch.flip), mirrored back and
    averaged; the core cut out, the bonus added; argmax + 1 and the top probability of
    scipy.special.softmax x 255, rounded, as a byte (at least 1)."""
    x = torch.from_numpy(np.stack([normalise(p, mean, std) for p in pixels]))
    with torch.no_grad():
        passes = [net(torch.flip(x, dims) if dims else x) for dims in TORCH_FLIPS[flips]]
        logits = torch.stack([torch.flip(y, dims) if dims else y
                              for y, dims in zip(passes, TORCH_FLIPS[flips])]).mean(dim=0).double().numpy()
    logits = logits[:, :, halo:-halo, halo:-halo]
    network = logits.argmax(axis=1) + 1
    network_top2 = np.sort(logits, axis=1)[:, -2:]
    if bonus is not None:
        logits = logits + bonus
    scaled = 255 * softmax(logits, axis=1).max(axis=1)
    top2 = np.sort(logits, axis=1)[:, -2:]
    return {"classes": logits.argmax(axis=1) + 1, "network": network, "confidence": np.clip(np.round(scaled), 1, 255),
            "scaled": scaled, "valid": np.stack([p.any(axis=0)[halo:-halo, halo:-halo] for p in pixels]),
            "margin": top2[:, 1] - top2[:, 0], "network_margin": network_top2[:, 1] - network_top2[:, 0]}


@pytest.mark.parametrize("dtype,flips", [("uint8", 1), ("uint16", 2), ("float32", 4)])
def test_the_block_graph_gives_the_numpy_steps_results(tiny_onnx, prior_inputs, dtype, flips):
    """The graph's classes, the network's own classes, validity and confidence equal those of the
    torch network averaged over torch-flipped inputs, with the label prior's bonus and scipy's softmax
    (where float32 rounding cannot decide: the top two logits within 1e-2, 255 x the top probability
    within 0.15 of a rounding edge)."""
    sets, roads = prior_inputs
    model = load_onnx(tiny_onnx)
    norm = model.metadata["normalisation"]
    mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    halo = model.halo
    rng = np.random.default_rng(2)
    side = TILE + 2 * halo
    scale = {"uint8": 255, "uint16": 1000, "float32": 300}[dtype]
    pixels = (rng.random((4, model.in_channels, side, side)) * scale - (50 if dtype == "float32" else 0)).astype(dtype)
    pixels[0, :, :20, :30] = 0  # no imagery there
    graph = block_graph(onnx.load(tiny_onnx), tile=TILE, halo=halo, mean=mean, std=std, pixel_dtype=dtype,
                        num_classes=11, flips=flips, prior_strength=1.5, roads=True, confidence=True, network=True)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    with LabelPrior(sets, 1.5, interpolation="bilinear", roads=roads) as prior:
        transforms = [from_origin(x, y, 1, 1) for x, y in _tile_origins()]
        tiles = [prior.tile(t, (TILE, TILE)) for t in transforms]
        bonus = np.stack([prior.bonus(t, (TILE, TILE)) for t in transforms])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, _feed([(None, p, t) for p, t in zip(pixels, tiles)]))))
    net = _tiny_torch_network()
    # the torch network is the exported one: its logits (some hundreds) are the ONNX file's own to float32
    # rounding (the two sum in other orders): within 1e-3
    image = np.stack([normalise(p, mean, std) for p in pixels[:1]])
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(image)).numpy(),
                                   model.session.run(None, {"image": image})[0], rtol=0, atol=1e-3)
    want = _reference(net, pixels, mean, std, halo, flips, bonus)
    assert all(got[name].dtype == np.uint8 and got[name].shape == (4, TILE, TILE) for name in names)
    np.testing.assert_array_equal(got["valid"], want["valid"])
    for name, margin in (("network", "network_margin"), ("classes", "margin")):
        clear = want[margin] > 1e-2  # 5x the largest difference of two logits of the two implementations
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(got[name][clear], want[name][clear], err_msg=name)
    # a byte off only where 255 x the top probability p lies within 0.15 of a rounding edge (x.5): logits
    # within 1e-3 move p by at most p (1 - p) x 2e-3 <= 5e-4, 255 p by at most 0.13
    sharp = np.abs(want["scaled"] % 1 - 0.5) > 0.15
    assert sharp.mean() > 0.6  # most pixels (a fraction part evenly spread would leave 70 %)
    np.testing.assert_array_equal(got["confidence"][sharp], want["confidence"][sharp])
    assert np.abs(got["confidence"].astype(int) - want["confidence"]).max() <= 1
    assert (got["classes"] != got["network"]).any() and len(np.unique(got["classes"])) > 3


def _shift_network(bands: int) -> onnx.ModelProto:
    """An ONNX "network" whose logits at (y, x) are its input at (y - 1, x - 1) (0 past the edge): not
    symmetric under mirroring, so each mirrored copy gives other logits, known by hand."""
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 0, 0], np.int64), "pads")
    starts, ends, axes = (numpy_helper.from_array(np.array(v, np.int64), n)
                          for v, n in (([0, 0], "starts"), ([-1, -1], "ends"), ([2, 3], "axes")))
    nodes = [helper.make_node("Pad", ["image", "pads"], ["padded"], name="pad"),
             helper.make_node("Slice", ["padded", "starts", "ends", "axes"], ["logits"], name="crop")]
    graph = helper.make_graph(nodes, "shift", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             ["n", bands, "h", "w"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
                              initializer=[pads, starts, ends, axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


# A 4 x 4 float32 tile (halo 1, core rows/cols 1..2), 3 bands = 3 classes, mean 0 and std 1 (the image is
# the pixels), zero but for I[0, 0] = (4 ln 3, 0, 0), I[0, 3] = (0, 4 ln 5, 0), I[3, 3] = (0, 0, 4 ln 4).
# The shift network's logits are I[y-1, x-1]; mirrored left-right, run and mirrored back, I[y-1, x+1];
# up-down, I[y+1, x-1]; both, I[y+1, x+1]. So per core pixel (y, x) = (1, 1), (1, 2), (2, 1), (2, 2):
# - 1 flip: only (1, 1) sees a spike, I[0, 0]: logits (4 ln 3, 0, 0), p = 81 / 83, 255 p = 248.86 -> 249;
#   the other pixels' logits are all 0: p = 1/3, 255 p = 85, class 1 (the first of equals);
# - 2 flips: (1, 1) = (I[0, 0] + I[0, 2]) / 2 = (2 ln 3, 0, 0): p = 9 / 11, 208.64 -> 209;
#   (1, 2) = (I[0, 1] + I[0, 3]) / 2 = (0, 2 ln 5, 0): class 2, p = 25 / 27, 236.11 -> 236; the rest 85;
# - 4 flips: the mean of the 4 diagonal neighbours: (1, 1) = I[0, 0] / 4 = (ln 3, 0, 0): p = 3 / 5, 153;
#   (1, 2) = I[0, 3] / 4 = (0, ln 5, 0): class 2, p = 5 / 7, 182.14 -> 182; (2, 1): 0, 85;
#   (2, 2) = I[3, 3] / 4 = (0, 0, ln 4): class 3, p = 4 / 6, 170.
SPIKES = {(0, 0): (4 * np.log(3), 0, 0), (0, 3): (0, 4 * np.log(5), 0), (3, 3): (0, 0, 4 * np.log(4))}
BY_HAND = {1: ([[1, 1], [1, 1]], [[249, 85], [85, 85]]),
           2: ([[1, 2], [1, 1]], [[209, 236], [85, 85]]),
           4: ([[1, 2], [1, 3]], [[153, 182], [85, 170]])}


@pytest.mark.parametrize("flips", [1, 2, 4])
def test_flips_and_confidence_on_a_hand_computed_tile(flips):
    """Through a network that shifts its input one pixel down-right, the block graph's classes and
    confidence are those worked out by hand (see BY_HAND): mirrored copies mirrored back, averaged, and
    the top softmax probability x 255 rounded."""
    pixels = np.zeros((1, 3, 4, 4), np.float32)
    for (y, x), values in SPIKES.items():
        pixels[0, :, y, x] = values
    graph = block_graph(_shift_network(3), tile=2, halo=1, mean=[0.0] * 3, std=[1.0] * 3, pixel_dtype="float32",
                        num_classes=3, flips=flips, confidence=True, network=True)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, (out[0].tolist() for out in session.run(names, {"pixels": pixels}))))
    classes, confidence = BY_HAND[flips]
    assert got == {"valid": [[0, 0], [0, 0]], "network": classes, "classes": classes, "confidence": confidence}


def test_the_block_graph_refuses_what_it_cannot_run(tiny_onnx):
    model = load_onnx(tiny_onnx)
    kwargs = dict(tile=TILE, halo=model.halo, mean=[0.0] * 4, std=[1.0] * 4, num_classes=11)
    with pytest.raises(ValueError, match="flips must be one of 1, 2, 4"):
        block_graph(onnx.load(tiny_onnx), pixel_dtype="uint8", flips=3, **kwargs)
    with pytest.raises(ValueError, match="imagery of type float64 is not supported"):
        block_graph(onnx.load(tiny_onnx), pixel_dtype="float64", **kwargs)


def _kernel_table():
    table = json.loads((Path(__file__).parent / "cuda_kernels.json").read_text())
    return table, {(r["domain"], r["op"], r["opset"], tuple(r["inputs"]), tuple(r["outputs"])): r["cuda"]
                   for r in table["kernels"]}


def test_every_block_graph_variant_has_cuda_kernels_for_every_node(tiny_onnx):
    """Each (op, input and output types) of every graph `l2h infer` can build has a kernel in the CUDA
    execution provider of the pinned onnxruntime-gpu (the table bench/cuda_kernels.py asks of it): no
    node falls back to the CPU with copies each batch. The uint8 Pad of the roads had none."""
    table, known = _kernel_table()
    pinned = re.search(r'"onnxruntime-gpu(?:\[[^]]*\])?==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert table["onnxruntime_gpu"] == pinned, "pyproject.toml pins another onnxruntime-gpu: rerun bench/cuda_kernels.py"
    unknown, on_cpu = set(), {}
    for settings, graph in variants(onnx.load(tiny_onnx)):
        for node, signature in kernel_signatures(graph).items():
            if signature not in known:
                unknown.add(signature)
            elif not known[signature]:
                on_cpu[signature] = (node, settings)
    assert not unknown, f"not in tests/maps/cuda_kernels.json (rerun bench/cuda_kernels.py): {sorted(unknown)}"
    assert not on_cpu, f"nodes without a CUDA kernel: {on_cpu}"


def test_the_kernel_table_knows_what_has_no_cuda_kernel(tiny_onnx):
    """The table records negatives (so the check above can fail): the uint8 Pad the roads input had."""
    _, known = _kernel_table()
    assert known[("ai.onnx", "Pad", 17, ("uint8", "int64"), ("uint8",))] is False
    assert known[("ai.onnx", "Pad", 17, ("float", "int64"), ("float",))] is True
    roads = block_graph(onnx.load(tiny_onnx), tile=TILE, halo=12, mean=[0.0] * 4, std=[1.0] * 4,
                        pixel_dtype="uint8", num_classes=11, prior_strength=4.0, roads=True)
    pads = [s for s in kernel_signatures(roads).values() if s[1] == "Pad"]
    assert pads and all(s[3][0] == "float" for s in pads)
