"""Store float32 weights in 3.5 bytes each, exactly, as plain ONNX that decodes itself at load.

A float32 is a sign, an 8-bit exponent and a 23-bit mantissa. A trained layer's weights use few
exponents (Pensieve's 2048x128 merge layer: 23 distinct, 2.9 bits of entropy), so each weight
keeps its sign and mantissa in 3 bytes and its exponent as a 4-bit code into a table of the 15
most frequent exponents; the rest (code 15: rare exponents, zeros, subnormals) are listed with
their index and float32 value. The decoding is ordinary float64 arithmetic, every step exact
(integers below 2^24 times powers of two), from constants only, so onnxruntime folds it into one
float64 initializer when the session loads and no decision pays for it:

    value = (1 - 2 * sign) * 2^(exponent - 127) * (1 + mantissa * 2^-23), then the listed values.

No bit casts (ONNX has none) and no opset-18 bitwise operators (the graphs are opset 17).
"""

from __future__ import annotations

import numpy as np

ESCAPE = 15          # the code for "listed separately"
MIN_VALUES = 4096    # smaller tensors are stored as plain float32: the decoder's nodes would cost more


def packed_bytes(values: np.ndarray) -> int:
    """Bytes the packed form of ``values`` (float32) takes: 3.5 per value plus 8 per listed value."""
    exponents = (np.ascontiguousarray(values, dtype=np.float32).ravel().view(np.uint32) >> 23) & 0xFF
    table = _table(exponents)
    listed = int(np.sum(~np.isin(exponents, table)))
    return 3 * exponents.size + (exponents.size + 1) // 2 + 8 * listed + 8 * 16


def _table(exponents: np.ndarray) -> np.ndarray:
    normal = exponents[(exponents > 0) & (exponents < 255)]
    unique, counts = np.unique(normal, return_counts=True)
    return unique[np.argsort(-counts, kind="stable")][:ESCAPE]


def pack_float32(values: np.ndarray, output: str, prefix: str):
    """Initializers and nodes that compute ``output``: float64 [values.shape] equal to ``values`` exactly.

    ``values``: float32. Returns (initializers, nodes); the nodes read only those initializers.
    """
    from onnx import TensorProto, helper, numpy_helper

    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    bits = flat.view(np.uint32)
    exponents = (bits >> 23) & 0xFF
    table = _table(exponents)
    lookup = np.full(256, ESCAPE, dtype=np.uint8)
    lookup[table] = np.arange(len(table), dtype=np.uint8)
    codes = lookup[exponents]
    listed = np.nonzero(codes == ESCAPE)[0]
    scales = np.zeros(16, dtype=np.float64)
    scales[:len(table)] = np.ldexp(1.0, table.astype(np.int64) - 127)
    padded = np.append(codes, np.uint8(0)) if codes.size % 2 else codes
    initializers = {
        "codes": (padded[0::2] | (padded[1::2] << 4)).astype(np.uint8),           # two 4-bit codes a byte
        "scales": scales,                                                        # code -> 2^(exponent - 127)
        "low16": (bits & 0xFFFF).astype(np.uint16),                              # mantissa bits 0-15
        "sign_high7": (((bits >> 16) & 0x7F) | ((bits >> 31) << 7)).astype(np.uint8),  # bits 16-22, sign
        "shape": np.array(values.shape, dtype=np.int64), "count": np.array([flat.size], dtype=np.int64),
        "flat": np.array([-1], dtype=np.int64), "zero": np.array([0], dtype=np.int64),
        "axis1": np.array([1], dtype=np.int64),
        "16": np.array(16.0), "128": np.array(128.0), "65536": np.array(65536.0), "one": np.array(1.0),
        "two": np.array(2.0), "2^-23": np.array(2.0 ** -23),
    }
    if listed.size:
        initializers.update({"listed_at": listed.astype(np.int32), "listed": flat[listed]})
    tensors = [numpy_helper.from_array(np.asarray(array), f"{prefix}/{key}") for key, array in initializers.items()]
    nodes = []

    def add(op, inputs, name=None, **attributes):
        out = name or f"{prefix}/{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, [f"{prefix}/{i}" if i in initializers else i for i in inputs], [out],
                                      name=out, **attributes))
        return out

    double = TensorProto.DOUBLE
    packed = add("Cast", ["codes"], to=double)
    high = add("Floor", [add("Div", [packed, "16"])])
    low = add("Sub", [packed, add("Mul", [high, "16"])])
    pairs = add("Concat", [add("Unsqueeze", [low, "axis1"]), add("Unsqueeze", [high, "axis1"])], axis=1)
    codes_flat = add("Slice", [add("Reshape", [pairs, "flat"]), "zero", "count"])
    scale = add("Gather", ["scales", add("Cast", [codes_flat], to=TensorProto.INT64)], axis=0)
    sign_high7 = add("Cast", ["sign_high7"], to=double)
    sign = add("Floor", [add("Div", [sign_high7, "128"])])
    high7 = add("Sub", [sign_high7, add("Mul", [sign, "128"])])
    mantissa = add("Add", [add("Mul", [high7, "65536"]), add("Cast", ["low16"], to=double)])
    magnitude = add("Mul", [scale, add("Add", ["one", add("Mul", [mantissa, "2^-23"])])])
    value = add("Mul", [magnitude, add("Sub", ["one", add("Mul", [sign, "two"])])])
    if listed.size:
        value = add("ScatterElements", [value, "listed_at", add("Cast", ["listed"], to=double)], axis=0)
    add("Reshape", [value, "shape"], name=output)
    return tensors, nodes
