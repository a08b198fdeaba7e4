"""The exported network wrapped with its pre- and post-processing in one ONNX graph, so a block job's
CPU moves only the imagery in and uint8 results out, and on a GPU every per-pixel step runs on the
device (bench/results/io_ceiling.json).

Inputs per tile stack (N tiles of ``tile`` px cores with ``halo`` px of context each side):

- ``pixels`` (N, C, tile + 2 halo, tile + 2 halo), the imagery's own dtype: cast and normalised in
  the graph, pixels without data (every band 0) set to 0 (:func:`l2h.model.norm.normalise`);
- with a label prior, the coarse class-set bits around each core, ``cells`` (N, R, S) uint16, and where
  each core pixel samples them (:class:`l2h.maps.label_prior.PriorTile`): ``rows`` / ``cols`` (N, tile)
  int64, the cell above / left of the pixel centre, and ``row_weight`` / ``col_weight`` (N, tile)
  float32, the share of the next cell (0 with nearest sampling); with 1 m roads, ``roads`` (N, tile,
  tile) uint8.

Outputs, each (N, tile, tile) uint8 over the cores: ``classes`` (class code, argmax + 1), ``valid``
(1 where the imagery has data), and optionally ``confidence`` (max softmax probability x 255, 1..255)
and ``network`` (the classes of the network's own logits, before the prior).

The normalisation and the network's logits (test-time flips: the network once per mirrored copy at
the stack's own batch size) are what numpy and the network's own session give, bit for bit; the
prior's bonus equals :meth:`l2h.maps.label_prior.LabelPrior.bonus` to float32 rounding (the strength
is folded into the interpolation matrix, and the bilinear fade is a matrix product), so a class can
differ only where the top two logits nearly tie (tests/maps/test_block_graph.py; on the demo, none of
12.6 M pixels: bench/results/map_parity.json).
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from l2h.core.classes import ROAD

# test-time flips: the spatial axes (of N, C, H, W) each pass mirrors; averaged after mirroring back
FLIPS = {1: ((),), 2: ((), (3,)), 4: ((), (3,), (2,), (2, 3))}
PIXEL_TYPES = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.uint16): TensorProto.UINT16,
               np.dtype(np.int16): TensorProto.INT16, np.dtype(np.float32): TensorProto.FLOAT}


class _Builder:
    """Nodes and constants of the wrapper graph, named uniquely."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"l2h/{stem}_{self._count}"

    def const(self, value, dtype=None, stem: str = "const") -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, stem: str | None = None, **attrs) -> str:
        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def reduce(self, op_type: str, x: str, axis: int, keepdims: int) -> str:
        """A Reduce* node across one axis, in the form of the graph's opset (axes became an input:
        ReduceSum at opset 13, the others at 18)."""
        since = 13 if op_type == "ReduceSum" else 18
        if self.opset >= since:
            return self.op(op_type, x, self.const([axis], np.int64), keepdims=keepdims)
        return self.op(op_type, x, axes=[axis], keepdims=keepdims)

    def slice(self, x: str, starts, ends, axes, steps=None) -> str:
        inputs = [x, self.const(starts, np.int64), self.const(ends, np.int64), self.const(axes, np.int64)]
        if steps is not None:
            inputs.append(self.const(steps, np.int64))
        return self.op("Slice", *inputs)

    def flip(self, x: str, axes) -> str:
        big = np.iinfo(np.int64).max
        return self.slice(x, [-1] * len(axes), [-big] * len(axes), list(axes), [-1] * len(axes))


def _inline(builder: _Builder, model: onnx.ModelProto, image: str, prefix: str) -> str:
    """Copy the network's nodes into the wrapper with ``image`` as its input; returns its logits' name.
    Weights are shared between copies (the initializers are added once, by :func:`block_graph`)."""
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    source = graph.input[0].name

    def rename(name: str) -> str:
        if not name or name in weights:
            return name
        return image if name == source else f"{prefix}/{name}"

    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"{prefix}/{node.name}"
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        builder.nodes.append(copy)
    return rename(graph.output[0].name)


def _class_members(g: _Builder, cells: str, num_classes: int, roads: bool) -> str:
    """(N, K, R, S) float32 membership of class index k in the cells' class-set bits, as
    LabelPrior.members: bit c = class code c; a set of every class counts as empty; with 1 m roads,
    the road class is taken out of the cells."""
    bits = g.op("Div", g.op("Cast", cells, to=TensorProto.INT32), g.const(2, np.int32))  # bit 0 unused
    full = (1 << num_classes) - 1
    everything = g.op("Equal", g.op("Mod", bits, g.const(1 << num_classes, np.int32)), g.const(full, np.int32))
    bits = g.op("Where", everything, g.const(0, np.int32), bits)
    if roads:
        road = g.const(1 << (ROAD - 1), np.int32)
        bits = g.op("Sub", bits, g.op("Mul", g.op("Mod", g.op("Div", bits, road), g.const(2, np.int32)), road))
    powers = g.const((1 << np.arange(num_classes)).reshape(1, -1, 1, 1), np.int32)
    bit = g.op("Mod", g.op("Div", g.op("Unsqueeze", bits, g.const([1], np.int64)), powers), g.const(2, np.int32))
    return g.op("Cast", bit, to=TensorProto.FLOAT)


def _interpolation(g: _Builder, index: str, weight: str, length: str, scale: float) -> str:
    """(N, T, L) interpolation matrices: row t holds ``scale * (1 - weight[n, t])`` at ``index[n, t]``
    and ``scale * weight[n, t]`` at ``index[n, t] + 1`` (L: the cells along that axis)."""
    positions = g.op("Range", g.const(0, np.int64), length, g.const(1, np.int64))
    at = g.op("Unsqueeze", index, g.const([2], np.int64))
    first = g.op("Cast", g.op("Equal", positions, at), to=TensorProto.FLOAT)
    second = g.op("Cast", g.op("Equal", positions, g.op("Add", at, g.const(1, np.int64))), to=TensorProto.FLOAT)
    w = g.op("Unsqueeze", weight, g.const([2], np.int64))
    scale_ = g.const(np.float32(scale))
    return g.op("Add", g.op("Mul", first, g.op("Mul", g.op("Sub", g.const(np.float32(1)), w), scale_)),
                g.op("Mul", second, g.op("Mul", w, scale_)))


def _prior_bonus(g: _Builder, num_classes: int, strength: float, roads: bool, halo: int) -> tuple[str, list]:
    """(N, K, tile, tile) logit bonus of the label prior and the graph inputs it reads: the cells'
    class membership interpolated across the columns, then the rows, each a matrix product with
    the tiles' interpolation matrices (so the 1 m bonus is written once, in the logits' layout)."""
    inputs = [helper.make_tensor_value_info("cells", TensorProto.UINT16, ["n", "cell_rows", "cell_cols"]),
              helper.make_tensor_value_info("rows", TensorProto.INT64, ["n", "tile"]),
              helper.make_tensor_value_info("row_weight", TensorProto.FLOAT, ["n", "tile"]),
              helper.make_tensor_value_info("cols", TensorProto.INT64, ["n", "tile"]),
              helper.make_tensor_value_info("col_weight", TensorProto.FLOAT, ["n", "tile"])]
    members = _class_members(g, "cells", num_classes, roads)  # (N, K, R, S)
    shape = g.op("Shape", "cells")
    n_rows, n_cols = (g.op("Squeeze", g.slice(shape, [i], [i + 1], [0]), g.const([0], np.int64)) for i in (1, 2))
    margin = g.const([0, halo, 0, 0, halo, 0], np.int64)  # the halo's pixels get no bonus (they are cut off)
    across_cols = g.op("Transpose", g.op("Pad", _interpolation(g, "cols", "col_weight", n_cols, 1.0), margin),
                       perm=[0, 2, 1])  # (N, S, x)
    across = g.op("MatMul", members, g.op("Unsqueeze", across_cols, g.const([1], np.int64)))  # (N, K, R, x)
    down_rows = g.op("Unsqueeze", g.op("Pad", _interpolation(g, "rows", "row_weight", n_rows, strength), margin),
                     g.const([1], np.int64))
    if not roads:
        return g.op("MatMul", down_rows, across), inputs  # (N, K, y, x)
    # the 1 m surfaces stand for the road class (its cells' bit is cleared above): the other classes'
    # planes and the road surfaces joined in class order
    inputs.append(helper.make_tensor_value_info("roads", TensorProto.UINT8, ["n", "tile", "tile"]))
    # cast before padding: onnxruntime's CUDA provider has no Pad kernel for uint8 (tests/maps/cuda_kernels.json)
    roads_ = g.op("Cast", g.op("Unsqueeze", "roads", g.const([1], np.int64)), to=TensorProto.FLOAT)
    framed = g.op("Pad", roads_, g.const([0, 0, halo, halo, 0, 0, halo, halo], np.int64))
    surface = g.op("Mul", framed, g.const(np.float32(strength)))
    planes = [g.op("MatMul", down_rows, g.slice(across, [0], [ROAD - 1], [1])), surface]
    if ROAD < num_classes:  # no empty product when roads are the last class (onnxruntime 1.31 refuses it)
        planes.append(g.op("MatMul", down_rows, g.slice(across, [ROAD], [num_classes], [1])))
    return g.op("Concat", *planes, axis=1), inputs


def _class_codes(g: _Builder, logits: str, stem: str) -> str:
    """(N, H, W) uint8 class codes: argmax over the classes (first of equals) + 1."""
    index = g.op("ArgMax", logits, axis=1, keepdims=0)
    return g.op("Cast", g.op("Add", index, g.const(1, np.int64)), to=TensorProto.UINT8, stem=stem)


def block_graph(model: onnx.ModelProto, *, tile: int, halo: int, mean, std, pixel_dtype, num_classes: int,
                flips: int = 1, prior_strength: float | None = None, roads: bool = False,
                confidence: bool = True, network: bool = False) -> onnx.ModelProto:
    """The wrapper graph around an exported network (see the module's docstring). ``prior_strength``:
    None for no label prior; ``roads``: the prior takes 1 m road surfaces as an input."""
    if flips not in FLIPS:
        raise ValueError(f"flips must be one of {', '.join(map(str, FLIPS))}, got {flips}")
    pixel_dtype = np.dtype(pixel_dtype)
    if pixel_dtype not in PIXEL_TYPES:
        raise ValueError(f"imagery of type {pixel_dtype} is not supported "
                         f"({', '.join(str(t) for t in PIXEL_TYPES)})")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        raise ValueError(f"the block graph needs a network exported at ONNX opset 13 or later, not {opset}")
    g = _Builder(opset)
    side = tile + 2 * halo
    bands = len(mean)
    inputs = [helper.make_tensor_value_info("pixels", PIXEL_TYPES[pixel_dtype], ["n", bands, side, side])]

    # normalise: (x - mean) / std per band, 0 where no band has data
    x = g.op("Cast", "pixels", to=TensorProto.FLOAT)
    magnitude = x if pixel_dtype.kind == "u" else g.op("Abs", x)
    has_data = g.op("Greater", g.reduce("ReduceMax", magnitude, 1, 1), g.const(0, np.float32))  # (N, 1, H, W)
    scaled = g.op("Div", g.op("Sub", x, g.const(np.asarray(mean, np.float32).reshape(1, -1, 1, 1))),
                  g.const(np.asarray(std, np.float32).reshape(1, -1, 1, 1)))
    image = g.op("Where", has_data, scaled, g.const(0, np.float32), stem="image")

    # the network, once per mirrored copy, mirrored back and averaged
    total = None
    for i, axes in enumerate(FLIPS[flips]):
        logits = _inline(g, model, g.flip(image, axes) if axes else image, f"net{i}")
        logits = g.flip(logits, axes) if axes else logits
        total = logits if total is None else g.op("Add", total, logits)
    if flips > 1:
        total = g.op("Div", total, g.const(np.float32(len(FLIPS[flips]))))
    core = total  # (N, K, tile + 2 halo, tile + 2 halo): the halo is cut off the uint8 outputs

    valid = g.slice(g.op("Cast", g.op("Squeeze", has_data, g.const([1], np.int64)), to=TensorProto.UINT8),
                    [halo, halo], [halo + tile, halo + tile], [1, 2])
    outputs = {"valid": valid}
    if network:
        outputs["network"] = _class_codes(g, core, "network")
    if prior_strength is not None:
        bonus, prior_inputs = _prior_bonus(g, num_classes, prior_strength, roads, halo)
        inputs += prior_inputs
        core = g.op("Add", core, bonus)
    outputs["classes"] = _class_codes(g, core, "classes")
    if confidence:  # the top class's softmax probability, 1 / sum(exp(logit - max)), as a byte
        shifted = g.op("Exp", g.op("Sub", core, g.reduce("ReduceMax", core, 1, 1)))
        top = g.op("Reciprocal", g.reduce("ReduceSum", shifted, 1, 0))
        byte = g.op("Clip", g.op("Round", g.op("Mul", top, g.const(np.float32(255)))),
                    g.const(np.float32(1)), g.const(np.float32(255)))
        outputs["confidence"] = g.op("Cast", byte, to=TensorProto.UINT8)

    for name, tensor in outputs.items():  # the graph's outputs under their own names, the halo cut off
        if name != "valid":
            tensor = g.slice(tensor, [halo, halo], [halo + tile, halo + tile], [1, 2])
        g.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"l2h/output_{name}"))
    graph = helper.make_graph(
        g.nodes, "l2h_block", inputs,
        [helper.make_tensor_value_info(name, TensorProto.UINT8, ["n", "tile", "tile"]) for name in outputs],
        initializer=list(model.graph.initializer) + g.initializers)
    wrapped = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    onnx.checker.check_model(wrapped)
    return wrapped


def variants(model: onnx.ModelProto, *, tile: int = 64, halo: int = 12, num_classes: int = 11):
    """Every block graph `l2h infer` can build around ``model`` (each pixel type, flip count, prior with
    and without roads or none, confidence and the network's own map on or off), as (settings, graph)."""
    bands = next(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:2])
    for pixel_dtype, flips, prior, confidence, network in itertools.product(
            PIXEL_TYPES, FLIPS, ((None, False), (4.0, False), (4.0, True)), (False, True), (False, True)):
        settings = dict(pixel_dtype=pixel_dtype.name, flips=flips, prior_strength=prior[0], roads=prior[1],
                        confidence=confidence, network=network)
        yield settings, block_graph(model, tile=tile, halo=halo, mean=[0.0] * bands, std=[1.0] * bands,
                                    num_classes=num_classes, **settings)


def kernel_signatures(model: onnx.ModelProto) -> dict[str, tuple[str, str, int, tuple[str, ...], tuple[str, ...]]]:
    """Node name -> what an execution provider's kernel must match for that node: (domain, op type, the
    model's opset of that domain, input element types, output element types), types by ONNX name
    ("uint8", "float"; "" for an omitted optional input)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    opsets = {o.domain or "ai.onnx": o.version for o in inferred.opset_import}

    def names(values) -> tuple[str, ...]:
        return tuple(TensorProto.DataType.Name(types[v]).lower() if v else "" for v in values)

    return {node.name: (node.domain or "ai.onnx", node.op_type, opsets[node.domain or "ai.onnx"], names(node.input),
                        names(node.output)) for node in graph.node}
