"""The frames between the trusted scorer and a caged design process: round trips and hostile input."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from llmabr.scoring import wire


def pipe():
    read_fd, write_fd = os.pipe()
    return wire.Reader(read_fd), write_fd


def test_arrays_bytes_and_plain_frames_round_trip():
    reader, write_fd = pipe()
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    wire.send(write_fd, {"op": "act"}, rows)
    wire.send(write_fd, {"op": "checkpoint", "steps": 384}, b"\x00weights")
    wire.send(write_fd, {"op": "end"})
    header, payload = reader.read(timeout_s=1)
    assert header["op"] == "act" and payload.dtype == np.float32 and np.array_equal(payload, rows)
    assert reader.read(timeout_s=1) == ({"op": "checkpoint", "steps": 384}, b"\x00weights")
    assert reader.read(timeout_s=1) == ({"op": "end"}, b"")


def test_a_partial_frame_times_out_and_is_read_whole_later():
    reader, write_fd = pipe()
    frame = wire.encode({"op": "actions"}, np.array([1, 2, 3], dtype=np.int32))
    os.write(write_fd, frame[:10])
    with pytest.raises(wire.WireTimeout):
        reader.read(timeout_s=0.05)
    os.write(write_fd, frame[10:])
    header, payload = reader.read(timeout_s=1)
    assert header["op"] == "actions" and payload.tolist() == [1, 2, 3]


@pytest.mark.parametrize("frame, message", [
    (struct.pack("<II", wire.MAX_JSON_BYTES + 1, 0), "frame too large"),
    (struct.pack("<II", 2, wire.MAX_PAYLOAD_BYTES + 1), "frame too large"),
    (struct.pack("<II", 3, 0) + b"{x}", "unreadable frame header"),
    (struct.pack("<II", 2, 0) + b"[]", "JSON object"),
    (wire.HEADER.pack(*[len(b'{"dtype": "object", "shape": [1]}'), 8]) + b'{"dtype": "object", "shape": [1]}' + b"\x00" * 8,
     "not one of"),
    (wire.HEADER.pack(*[len(b'{"dtype": "int32", "shape": [5]}'), 8]) + b'{"dtype": "int32", "shape": [5]}' + b"\x00" * 8,
     "header says shape"),
])
def test_lies_about_sizes_and_types_are_wire_errors(frame, message):
    reader, write_fd = pipe()
    os.write(write_fd, frame)
    with pytest.raises(wire.WireError, match=message):
        reader.read(timeout_s=1)


def test_a_closed_pipe_is_a_wire_error():
    reader, write_fd = pipe()
    os.close(write_fd)
    with pytest.raises(wire.WireError, match="closed"):
        reader.read(timeout_s=1)
