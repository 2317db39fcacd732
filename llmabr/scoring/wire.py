"""Framed messages over pipes between the trusted scorer and a caged design process.

A frame is an 8-byte header (two little-endian uint32: JSON length, payload length), a JSON
object, then an optional binary payload (a numpy array described by ``dtype`` and ``shape`` in
the JSON, or opaque bytes such as a state_dict). Binary, not JSON floats: a validation step sends
one float32 row per trace, 48 times per evaluation, and must cost next to nothing.

The trusted side reads with a deadline and caps every length, so a caged process that hangs,
floods or lies about sizes gets a ``WireError`` instead of a stuck or swollen scorer.
"""

from __future__ import annotations

import json
import os
import selectors
import struct
import time

import numpy as np

HEADER = struct.Struct("<II")
MAX_JSON_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 512 << 20  # a state_dict of a 5M-parameter cap design is ~20 MB
ARRAY_DTYPES = {"float32", "int32", "int64", "float64"}


class WireError(RuntimeError):
    """The other side broke the protocol, went silent past the deadline, or closed the pipe."""


class WireTimeout(WireError):
    """No whole frame before the deadline (what arrived so far stays buffered for the next read)."""


def encode(header: dict, payload: bytes | np.ndarray | None = None) -> bytes:
    """One frame. An ndarray payload is sent C-contiguous with its dtype and shape in the header."""
    if isinstance(payload, np.ndarray):
        array = np.ascontiguousarray(payload)
        header = {**header, "dtype": str(array.dtype), "shape": list(array.shape)}
        payload = array.tobytes()
    payload = payload or b""
    text = json.dumps(header).encode()
    return HEADER.pack(len(text), len(payload)) + text + payload


def send(fd: int, header: dict, payload: bytes | np.ndarray | None = None) -> None:
    data = memoryview(encode(header, payload))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def decode_payload(header: dict, payload: bytes):
    """The payload as an ndarray when the header describes one, else the raw bytes."""
    if "dtype" not in header:
        return payload
    if header["dtype"] not in ARRAY_DTYPES:
        raise WireError(f"payload dtype {header['dtype']!r} is not one of {sorted(ARRAY_DTYPES)}")
    shape = tuple(int(n) for n in header.get("shape", ()))
    array = np.frombuffer(payload, dtype=header["dtype"])
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise WireError(f"payload holds {array.size} values, header says shape {list(shape)}")
    return array.reshape(shape)


class Reader:
    """Reads whole frames from a file descriptor, with an optional deadline per frame."""

    def __init__(self, fd: int):
        self.fd = fd
        self.pending = bytearray()

    def _fill(self, size: int, deadline: float | None) -> None:
        if deadline is None:
            while len(self.pending) < size:
                chunk = os.read(self.fd, max(1 << 16, size - len(self.pending)))
                if not chunk:
                    raise WireError("the other side closed the pipe")
                self.pending += chunk
            return
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while len(self.pending) < size:
                left_s = deadline - time.monotonic()
                if left_s <= 0 or not selector.select(left_s):
                    raise WireTimeout("no answer before the deadline")
                chunk = os.read(self.fd, max(1 << 16, size - len(self.pending)))
                if not chunk:
                    raise WireError("the other side closed the pipe")
                self.pending += chunk

    def _take(self, size: int) -> bytes:
        data = bytes(self.pending[:size])
        del self.pending[:size]
        return data

    def read(self, timeout_s: float | None = None) -> tuple[dict, object]:
        """(header, payload): payload is an ndarray, bytes, or b"" when the frame has none."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._fill(HEADER.size, deadline)
        json_len, payload_len = HEADER.unpack(bytes(self.pending[:HEADER.size]))
        if json_len > MAX_JSON_BYTES or payload_len > MAX_PAYLOAD_BYTES:
            raise WireError(f"frame too large ({json_len} header bytes, {payload_len} payload bytes)")
        self._fill(HEADER.size + json_len + payload_len, deadline)  # nothing is consumed before the whole frame
        del self.pending[:HEADER.size]
        try:
            header = json.loads(self._take(json_len))
        except ValueError as error:
            raise WireError(f"unreadable frame header: {error}") from None
        if not isinstance(header, dict):
            raise WireError(f"a frame header is a JSON object, got {type(header).__name__}")
        return header, decode_payload(header, self._take(payload_len))
