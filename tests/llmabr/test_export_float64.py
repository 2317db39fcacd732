"""The float64 graph rewrite and the exact weight packing behind ``llmabr export`` (no design code here)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import needs

needs.modules("onnx", "onnxruntime", extra="export", module_level=True)

import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper
from torch import nn

from llmabr.export import float64
from llmabr.export.export_entry import export_graph
from llmabr.export.float64 import Float64Unsupported, finish_float64
from llmabr.export.packing import pack_float32, packed_bytes


def _session(model: onnx.ModelProto, optimized_path=None) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    if optimized_path:
        options.optimized_model_filepath = str(optimized_path)
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class ConvNet(nn.Module):
    """obs float32 [batch, C * L...] -> a convolution computed in float64 -> float64 [batch, -1]."""

    def __init__(self, conv: nn.Module, input_shape: tuple[int, ...]):
        super().__init__()
        self.conv, self.input_shape = conv.double(), input_shape

    def forward(self, obs):
        return self.conv(obs.to(torch.float64).reshape(-1, *self.input_shape)).flatten(1)


CONVS = {
    "conv1d-plain": (lambda: nn.Conv1d(1, 16, 4), (1, 8)),
    "conv1d-stride-pad-dilation": (lambda: nn.Conv1d(3, 8, 3, stride=2, padding=2, dilation=2), (3, 11)),
    "conv1d-groups-no-bias": (lambda: nn.Conv1d(4, 6, 2, groups=2, bias=False), (4, 7)),
    "conv2d": (lambda: nn.Conv2d(2, 5, (3, 2), stride=(1, 2), padding=(1, 0)), (2, 6, 5)),
    "conv2d-depthwise": (lambda: nn.Conv2d(3, 3, 3, groups=3, padding=1), (3, 4, 4)),
}


@pytest.mark.parametrize("path", ["dense", "gathered"])
@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_becomes_matmul_with_the_same_float64_values(case, path, tmp_path, monkeypatch):
    if path == "gathered":  # what a convolution too large for one dense matrix gets
        monkeypatch.setattr(float64, "DENSE_MAX_VALUES", 0)
    torch.manual_seed(0)
    make, shape = CONVS[case]
    model = ConvNet(make(), shape).eval()
    obs = torch.randn(9, int(np.prod(shape)))
    with torch.no_grad():
        expected = model(obs).numpy()
    export_graph(model, obs[:2], str(tmp_path / "conv.onnx"))
    graph = onnx.load(str(tmp_path / "conv.onnx"))
    assert "Conv" in {node.op_type for node in graph.graph.node}
    with pytest.raises(Exception, match="Conv"):  # why the rewrite exists: no float64 Conv kernel
        _session(graph)
    summary = finish_float64(graph)
    ops = {node.op_type for node in graph.graph.node}
    assert summary["convs_rewritten"] == 1 and "Conv" not in ops
    dense = path == "dense" and model.conv.groups == 1  # grouped convolutions always gather windows
    assert ("Gemm" in ops) == dense and ("Transpose" in ops) == (not dense)
    for batch in (1, 9):
        got = _session(graph).run(None, {"obs": obs[:batch].numpy()})[0]
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected[:batch], rtol=1e-12, atol=1e-12)


def test_conv_with_unknown_input_shape_is_refused_with_the_reason():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="mystery")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, None)],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
                              [onnx.numpy_helper.from_array(np.ones((2, 1, 3)), "w")])
    with pytest.raises(Float64Unsupported, match="'mystery'.*shape"):
        finish_float64(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _weights(kind: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if kind == "trained-like":   # odd count: the last byte of codes holds one code
        return (rng.standard_normal((129, 81)) * 0.02).astype(np.float32)
    if kind == "wide":           # 60+ exponents, zeros, subnormals, negatives: many listed values
        values = (rng.standard_normal(6001) * np.exp2(rng.integers(-140, 40, 6001))).astype(np.float32)
        values[::97] = 0.0
        values[5::101] = -0.0
        values[7::103] = np.float32(1e-42)  # subnormal
        return values
    if kind == "one-exponent":
        return rng.uniform(1.0, 1.999, (128, 128)).astype(np.float32)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["trained-like", "wide", "one-exponent"])
def test_packed_weights_decode_bit_exactly(kind):
    values = _weights(kind)
    initializers, nodes = pack_float32(values, "decoded", "w")
    graph = helper.make_graph(nodes, "decode", [], [helper.make_tensor_value_info("decoded", TensorProto.DOUBLE,
                                                                                   list(values.shape))],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    decoded = _session(model).run(None, {})[0]
    assert decoded.dtype == np.float64 and decoded.shape == values.shape
    # Bit for bit, signed zeros and subnormals included.
    assert np.array_equal(decoded.astype(np.float32).view(np.uint32), values.view(np.uint32))
    assert np.array_equal(decoded, values.astype(np.float64))
    stored = sum(tensor.ByteSize() for tensor in initializers)
    assert stored == pytest.approx(packed_bytes(values), rel=0.05, abs=400)
    if kind != "wide":
        assert stored < 3.6 * values.size  # vs 4 bytes a float32


def test_decoding_happens_once_when_the_session_loads(tmp_path):
    """onnxruntime folds the decoder into one initializer: no decision pays for the packing."""
    values = _weights("trained-like")
    initializers, nodes = pack_float32(values, "weight", "w")
    nodes.append(helper.make_node("MatMul", ["obs", "weight"], ["out"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("obs", TensorProto.DOUBLE, [None, 129])],
                              [helper.make_tensor_value_info("out", TensorProto.DOUBLE, [None, 81])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    obs = np.random.default_rng(1).standard_normal((3, 129))
    out = _session(model, tmp_path / "optimized.onnx").run(None, {"obs": obs})[0]
    np.testing.assert_allclose(out, obs @ values.astype(np.float64), rtol=1e-12)
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert [node.op_type for node in optimized.graph.node] == ["MatMul"]
