"""Make a float64 ONNX graph runnable everywhere and no larger than its float32 twin.

The exporter traces the policy in float64 so that the graph and the torch policy agree to
float64's precision, not float32's (a trained policy's logits reach 50-130; float32 alone then
differs by 1-2e-5 between two summation orders of the same 2048-wide product, so no float32
graph can promise a 1e-5 absolute match). Two things stand in the way, and ``finish_float64``
mends both on the ONNX graph itself (trusted code: it reads the protobuf, runs nothing):

* onnxruntime's CPU and wasm builds have no float64 ``Conv`` kernel. Each ``Conv`` becomes the
  same sum as one ``Gemm`` with a dense matrix built from the kernel when the session loads (small
  convolutions with one group, as designs use on 8-16-step histories), else as gathers of the
  input windows and one ``MatMul`` (``_conv_as_matmul``); any stride, padding, dilation, group
  count and number of spatial axes.
* ``Gemm`` weights stored for ``transB=1`` are stored transposed instead (a third faster in float64).
* Float64 weights would double the file. A trained policy's weights are float32 values, so each
  float64 initializer that float32 holds exactly is stored as float32 and widened by a ``Cast``
  when the session loads (onnxruntime folds it once; the arithmetic stays float64); large ones
  are packed to 3.5 bytes a value, still exactly (``llmabr.export.packing``).
"""

from __future__ import annotations

import numpy as np

from llmabr.export.packing import MIN_VALUES, pack_float32, packed_bytes

DENSE_MAX_VALUES = 1 << 18  # a convolution's dense matrix up to 2 MB of float64; larger ones gather windows


class Float64Unsupported(Exception):
    """The graph has a part this rewrite cannot turn into kernels that exist in float64."""


def finish_float64(model):
    """Rewrite ``model`` (an ``onnx.ModelProto`` traced in float64) in place; returns a summary dict.

    Raises ``Float64Unsupported`` with the reason when a ``Conv`` has an unknown input shape or an
    ``auto_pad`` other than NOTSET (the exporter then ships the float32 graph instead).
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {value.name: [dim.dim_value if dim.HasField("dim_value") else None
                           for dim in value.type.tensor_type.shape.dim]
              for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    new_nodes, convs = [], 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.domain in ("", "ai.onnx"):
            new_nodes.extend(_conv_as_matmul(node, shapes, initializers, model.graph, f"conv{convs}"))
            convs += 1
        else:
            new_nodes.append(node)
    transposed = _transpose_gemm_weights(new_nodes, model.graph)
    casts, narrowed_values, packed_values = _compact_initializers(model.graph, new_nodes)
    del model.graph.node[:]
    model.graph.node.extend(casts + new_nodes)
    onnx.checker.check_model(model)
    return {"convs_rewritten": convs, "gemm_weights_transposed": transposed,
            "values_stored_float32": narrowed_values, "values_packed": packed_values}


def pack_float32_graph(model):
    """A float32 graph's large float32 initializers packed exactly (decoded in float64, then a Cast
    back to float32; folded when the session loads). In place; returns a summary dict."""
    import onnx

    nodes = list(model.graph.node)
    decoders, _, packed_values = _compact_initializers(model.graph, nodes)
    del model.graph.node[:]
    model.graph.node.extend(decoders + nodes)
    onnx.checker.check_model(model)
    return {"values_packed": packed_values}


def _attribute(node, name, default):
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


class _Builder:
    """Nodes and initializers added under one name prefix (one rewritten convolution)."""

    def __init__(self, graph, prefix: str):
        self.graph, self.prefix, self.nodes, self.count = graph, prefix, [], 0

    def name(self, tag: str) -> str:
        self.count += 1
        return f"{self.prefix}/{tag}{self.count}"

    def constant(self, array, tag: str) -> str:
        from onnx import numpy_helper

        tensor_name = self.name(tag)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(array), tensor_name))
        return tensor_name

    def add(self, op: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        from onnx import helper

        output = output or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _conv_as_matmul(node, shapes, initializers, graph, prefix):
    """``Conv(X, W, B)`` as one ``Gemm`` with a dense (Toeplitz) matrix when that matrix is small
    (``_conv_as_dense``: the fewest nodes per decision), else Pad -> Gather per spatial axis ->
    Reshape/Transpose -> MatMul -> bias."""
    from onnx import numpy_helper

    x_name, w_name = node.input[0], node.input[1]
    b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    auto_pad = _attribute(node, "auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", "NOTSET"):
        raise Float64Unsupported(f"Conv {node.name!r} uses auto_pad={auto_pad!r}")
    if w_name not in initializers:
        raise Float64Unsupported(f"Conv {node.name!r} has weights computed in the graph, not stored")
    weight = numpy_helper.to_array(initializers[w_name])
    x_shape = shapes.get(x_name)
    if x_shape is None or len(x_shape) != weight.ndim or any(dim is None for dim in x_shape[1:]):
        raise Float64Unsupported(f"Conv {node.name!r}: input shape {x_shape} is not known beyond the batch axis")
    spatial = weight.ndim - 2
    out_channels, group_in = weight.shape[:2]
    kernel = list(weight.shape[2:])
    groups = int(_attribute(node, "group", 1))
    strides = list(_attribute(node, "strides", [1] * spatial))
    dilations = list(_attribute(node, "dilations", [1] * spatial))
    pads = list(_attribute(node, "pads", [0] * (2 * spatial)))
    in_channels = x_shape[1]
    if in_channels != group_in * groups or out_channels % groups:
        raise Float64Unsupported(f"Conv {node.name!r}: {in_channels} input channels do not match the weights")

    outputs = [(x_shape[2 + axis] + pads[axis] + pads[spatial + axis] - dilations[axis] * (kernel[axis] - 1) - 1)
               // strides[axis] + 1 for axis in range(spatial)]
    if min(outputs) < 1:
        raise Float64Unsupported(f"Conv {node.name!r}: the kernel is larger than the padded input")
    if groups == 1 and in_channels * int(np.prod(x_shape[2:])) * out_channels * int(np.prod(outputs)) \
            <= DENSE_MAX_VALUES:
        return _conv_as_dense(node, x_shape, weight, b_name, graph, prefix, strides, dilations, pads, outputs)
    build = _Builder(graph, prefix)
    constant, add = build.constant, build.add

    current = x_name
    if any(pads):
        begins, ends = pads[:spatial], pads[spatial:]
        current = add("Pad", [current, constant(np.array([0, 0] + begins + [0, 0] + ends, dtype=np.int64), "pads")])
    for axis, out in enumerate(outputs):
        windows = (np.arange(out)[:, None] * strides[axis] + np.arange(kernel[axis])[None, :] * dilations[axis])
        # Each spatial axis becomes (out, kernel); the next spatial axis moves two places right.
        current = add("Gather", [current, constant(windows.astype(np.int64), "windows")], axis=2 + 2 * axis)
    per_group = in_channels // groups
    positions, taps = int(np.prod(outputs)), int(np.prod(kernel))
    current = add("Reshape", [current, constant(np.array([0, groups, per_group] + [v for pair in zip(outputs, kernel)
                                                                                   for v in pair], dtype=np.int64),
                                                 "shape")])
    out_axes = [3 + 2 * axis for axis in range(spatial)]
    tap_axes = [4 + 2 * axis for axis in range(spatial)]
    current = add("Transpose", [current], perm=[0, 1] + out_axes + [2] + tap_axes)
    current = add("Reshape", [current, constant(np.array([0, groups, positions, per_group * taps], dtype=np.int64),
                                                 "shape")])
    # W [M, C/g, k...] -> [g, C/g * prod(k), M/g]: the same (channel, tap) order as the windows above.
    matrix = weight.reshape(groups, out_channels // groups, per_group * taps).transpose(0, 2, 1).copy()
    current = add("MatMul", [current, constant(matrix, "weight")])
    current = add("Transpose", [current], perm=[0, 1, 3, 2])
    result_shape = np.array([0, out_channels] + outputs, dtype=np.int64)
    if b_name is None:
        add("Reshape", [current, constant(result_shape, "shape")], output=node.output[0])
        return build.nodes
    current = add("Reshape", [current, constant(result_shape, "shape")])
    if b_name in initializers:
        bias = constant(numpy_helper.to_array(initializers[b_name]).reshape([out_channels] + [1] * spatial), "bias")
    else:
        bias = add("Reshape", [b_name, constant(np.array([out_channels] + [1] * spatial, dtype=np.int64), "shape")])
    add("Add", [current, bias], output=node.output[0])
    return build.nodes


def _compact_initializers(graph, nodes):
    """Drop initializers no node reads (the rewritten convolutions' weights); store float32 values
    in fewer bytes, exactly: large tensors packed (``llmabr.export.packing``), other float64 ones
    that float32 holds exactly as float32. Each keeps its name and dtype through decoder or ``Cast``
    nodes, returned to go first in the graph with the counts: (nodes, values narrowed, values packed)."""
    from onnx import TensorProto, helper, numpy_helper

    used = {name for node in nodes for name in node.input} | {value.name for value in graph.output}
    decoders, narrowed_values, packed_values, kept = [], 0, 0, []
    for tensor in graph.initializer:
        if tensor.name not in used:
            continue
        if tensor.data_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        narrow = values.astype(np.float32)
        with np.errstate(invalid="ignore"):
            exact = np.array_equal(narrow.astype(values.dtype), values, equal_nan=True)
        double = tensor.data_type == TensorProto.DOUBLE
        if exact and values.size >= MIN_VALUES and packed_bytes(narrow) < narrow.nbytes:
            decoded = tensor.name if double else f"{tensor.name}__float64"
            packed, decoder = pack_float32(narrow, decoded, f"{tensor.name}__packed")
            kept.extend(packed)
            decoders.extend(decoder)
            if not double:
                decoders.append(helper.make_node("Cast", [decoded], [tensor.name], name=f"{tensor.name}__to_float32",
                                                 to=TensorProto.FLOAT))
            packed_values += int(values.size)
        elif exact and double and values.size >= 16:  # smaller: not worth a node
            stored = f"{tensor.name}__float32"
            kept.append(numpy_helper.from_array(narrow, stored))
            decoders.append(helper.make_node("Cast", [stored], [tensor.name], name=f"{tensor.name}__to_float64",
                                             to=TensorProto.DOUBLE))
            narrowed_values += int(values.size)
        else:
            kept.append(tensor)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return decoders, narrowed_values, packed_values


def _conv_as_dense(node, x_shape, weight, b_name, graph, prefix, strides, dilations, pads, outputs):
    """``Conv`` (one group) as x [N, C*S] @ T [C*S, M*P] + bias, T built from W when the session loads.

    T[(c, l), (m, p)] = W[m, c, j] where input position l = p * stride + j * dilation - pad_begin
    (per spatial axis), 0 where no tap reaches l (padding included). Only W stays in the file: T is
    a Gather of W through an index made of J [C*S, 1, P] (which tap, or none) plus m * C * K.
    """

    spatial = weight.ndim - 2
    out_channels, in_channels = weight.shape[:2]
    kernel, sizes = list(weight.shape[2:]), list(x_shape[2:])
    taps, positions, inputs = int(np.prod(kernel)), int(np.prod(outputs)), int(np.prod(sizes))
    tap = np.full((in_channels, inputs, positions), -1, dtype=np.int64)
    out_index = np.stack(np.meshgrid(*[np.arange(n) for n in outputs], indexing="ij"), -1).reshape(positions, spatial)
    tap_index = np.stack(np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij"), -1).reshape(taps, spatial)
    where = (out_index[:, None, :] * np.array(strides) + tap_index[None, :, :] * np.array(dilations)
             - np.array(pads[:spatial]))                                              # [P, K, spatial]
    inside = np.all((where >= 0) & (where < np.array(sizes)), axis=-1)                 # [P, K]
    flat_input = np.ravel_multi_index(tuple(np.clip(where, 0, np.array(sizes) - 1).transpose(2, 0, 1)), sizes)
    p_index, k_index = np.nonzero(inside)
    for channel in range(in_channels):
        tap[channel, flat_input[p_index, k_index], p_index] = channel * taps + k_index
    zero_at = out_channels * in_channels * taps  # W flattened, then one 0.0

    build = _Builder(graph, prefix)
    constant, add = build.constant, build.add

    w_flat = add("Concat", [add("Reshape", [node.input[1], constant(np.array([-1], dtype=np.int64), "shape")]),
                            constant(np.zeros(1), "zero")], axis=0)
    index = add("Add", [constant(tap.reshape(in_channels * inputs, 1, positions), "tap"),
                        constant((np.arange(out_channels, dtype=np.int64) * in_channels * taps).reshape(1, -1, 1),
                                 "channel_offset")])
    index = add("Where", [constant((tap >= 0).reshape(in_channels * inputs, 1, positions), "reached"), index,
                          constant(np.array(zero_at, dtype=np.int64), "zero_at")])
    matrix = add("Reshape", [add("Gather", [w_flat, index], axis=0),
                             constant(np.array([in_channels * inputs, out_channels * positions], dtype=np.int64),
                                      "shape")])
    gemm_inputs = [add("Reshape", [node.input[0], constant(np.array([0, in_channels * inputs], dtype=np.int64),
                                                              "shape")]), matrix]
    if b_name is not None:
        gemm_inputs.append(add("Reshape", [add("Expand", [add("Reshape", [b_name, constant(
            np.array([out_channels, 1], dtype=np.int64), "shape")]), constant(np.array([out_channels, positions],
                                                                                      dtype=np.int64), "shape")]),
            constant(np.array([-1], dtype=np.int64), "shape")]))
    add("Reshape", [add("Gemm", gemm_inputs), constant(np.array([0, out_channels] + outputs, dtype=np.int64),
                                                       "shape")], output=node.output[0])
    return build.nodes


def _transpose_gemm_weights(nodes, graph) -> int:
    """Gemm(A, B, transB=1) with B stored -> B stored transposed, transB=0: onnxruntime's float64
    Gemm is a third faster without the transpose (wasm, 2048x128). Returns how many changed."""
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    readers = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    changed = 0
    for node in nodes:
        if node.op_type != "Gemm" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        trans_b = [attribute for attribute in node.attribute if attribute.name == "transB"]
        if not trans_b or trans_b[0].i != 1 or readers[node.input[1]] != 1:
            continue
        tensor = initializers[node.input[1]]
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).T.copy(), tensor.name))
        trans_b[0].i = 0
        changed += 1
    return changed
