"""ONNX export: torch/onnxruntime parity with dynamic sizes, metadata, and a failing check that fails."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import l2h.model.export as export_mod
from l2h.core.errors import InputError, L2HError
from l2h.core.onnx_metadata import onnx_metadata
from l2h.model.export import export_onnx
from l2h.model.l2hnet import L2HNet, load_model, model_metadata, save_checkpoint_model

BANDS = ["red", "green", "blue", "nir"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs on one torch thread."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model with trained weights and non-trivial BatchNorm statistics: a few SGD steps of
    class-balanced CE on random images whose class is a function of the pixels, then eval."""
    torch.manual_seed(0)
    model = L2HNet(4, 11, width=8, num_blocks=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(15):
        x = torch.randn(4, 4, 24, 24) * 2 + 1
        y = (x[:, 0] > 1).long() + 2 * (x[:, 3] > 0).long()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    meta = model_metadata(model, BANDS, {"mean": [90.0, 100.0, 80.0, 130.0], "std": [40.0, 35.0, 30.0, 38.0]},
                          tau=0.5, gamma=0.1, extra={"steps": 15})
    path = tmp_path_factory.mktemp("export") / "model.pt"
    save_checkpoint_model(path, model, meta)
    assert model.blocks[0].fuse[1].running_var.sub(1).abs().max() > 1e-3  # BN statistics were learnt
    return path


def test_parity_with_dynamic_sizes_and_metadata(trained, tmp_path):
    onnx_path, parity = tmp_path / "m.onnx", tmp_path / "parity.json"
    report = export_onnx(trained, onnx_path, parity, opset=17, tolerance=1e-4)
    written = json.loads(parity.read_text())
    assert written == report
    assert written["passed"] is True and written["max_abs_diff"] <= 1e-4
    assert written["tolerance"] == 1e-4 and written["opset"] == 17
    assert written["onnxruntime"] == ort.__version__ and written["input_shape"] == [2, 4, 67, 93]

    proto = onnx.load(str(onnx_path))
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["logits"]
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in proto.opset_import)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # N, H, W dynamic; C fixed

    model, meta = load_model(trained)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for shape in ((1, 4, 31, 57), (3, 4, 64, 40)):
        x = rng.standard_normal(shape, dtype=np.float32)
        got = session.run(["logits"], {"image": x})[0]
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        assert got.shape == (shape[0], 11, shape[2], shape[3])
        assert np.abs(got - expected).max() <= 1e-4

    stored = onnx_metadata(onnx_path)
    assert stored == json.loads(json.dumps(meta))  # JSON round trip (class codes become string keys)
    assert stored["bands"] == BANDS and stored["width"] == 8 and stored["normalisation"]["std"][3] == 38.0


def test_failing_parity_raises_and_reports(trained, tmp_path, monkeypatch):
    real = export_mod.run_onnxruntime
    monkeypatch.setattr(export_mod, "run_onnxruntime", lambda session, x: real(session, x) + 1e-3)
    onnx_path, parity = tmp_path / "m.onnx", tmp_path / "parity.json"
    with pytest.raises(L2HError, match="parity"):
        export_onnx(trained, onnx_path, parity, tolerance=1e-4)
    report = json.loads(parity.read_text())
    assert report["passed"] is False and report["max_abs_diff"] == pytest.approx(1e-3, rel=0.2)
    assert not onnx_path.exists()  # no unchecked model under the final name
    assert not list(tmp_path.glob(".*tmp*"))  # and no temporary left behind


def test_metadata_of_a_foreign_onnx_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        onnx_metadata(tmp_path / "none.onnx")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(InputError, match="no l2h metadata"):
        onnx_metadata(tmp_path / "plain.onnx")
