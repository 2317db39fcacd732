"""Check request bodies of ``llmabr serve`` field by field (the schema is in README, "The HTTP server").

Every rejection is a ``RequestError`` with an HTTP status (400: not a JSON object, 413: too
large, 422: a field is missing or wrong) and a message that names the field, so a player
developer sees what to fix; nothing a client sends can reach the policy unchecked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_BODY_BYTES = 64 * 1024
MAX_SESSION_ID_CHARS = 128
CHUNK_KEYS = ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s")
DECIDE_KEYS = {"session_id", "chunk", "next_chunk_bytes", "chunks_left", "ladder_kbps", "chunks_total"}
PENSIEVE_KEYS = ("lastquality", "buffer", "RebufferTime", "lastChunkStartTime", "lastChunkFinishTime",
                 "lastChunkSize", "lastRequest")


class RequestError(ValueError):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def to_dict(self) -> dict:
        return {"error": self.message, "field": self.field}


def _reject_constant(name: str):
    raise RequestError(400, f"body is not valid JSON: {name} is not a JSON number")


def json_object(body: bytes) -> dict:
    """The body as a JSON object (NaN and Infinity literals refused: JSON has no such numbers)."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise RequestError(400, "body is empty; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise RequestError(400, f"body is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"body must be a JSON object, got {type(data).__name__}")
    return data


def number(data: dict, key: str, path: str, minimum: float = 0.0, strict: bool = False) -> float:
    """A finite JSON number >= ``minimum`` (> when ``strict``); booleans are not numbers."""
    if key not in data:
        raise RequestError(422, f"{path} is missing", path)
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(422, f"{path} must be a number, got {type(value).__name__}", path)
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise RequestError(422, f"{path} must be finite, got {value!r}", path)
    if result < minimum or (strict and result <= minimum):
        raise RequestError(422, f"{path} must be {'>' if strict else '>='} {minimum:g}, got {value!r}", path)
    return result


def integer(data: dict, key: str, path: str, minimum: int = 0, maximum: int | None = None) -> int:
    if key not in data:
        raise RequestError(422, f"{path} is missing", path)
    value = data[key]
    if isinstance(value, float) and value.is_integer():  # JavaScript clients send 3.0 as 3, others may not
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(422, f"{path} must be an integer, got {type(value).__name__}", path)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise RequestError(422, f"{path} must be {bound}, got {value}", path)
    return value


def numbers(data: dict, key: str, path: str, length: int, strict: bool = False) -> list[float]:
    """A list of exactly ``length`` finite numbers >= 0 (> 0 when ``strict``)."""
    if key not in data:
        raise RequestError(422, f"{path} is missing", path)
    values = data[key]
    if not isinstance(values, list):
        raise RequestError(422, f"{path} must be a list of {length} numbers, got {type(values).__name__}", path)
    if len(values) != length:
        raise RequestError(422, f"{path} must hold {length} numbers (one per level), got {len(values)}", path)
    return [number(dict(enumerate(values)), index, f"{path}[{index}]", strict=strict) for index in range(length)]


@dataclass(frozen=True)
class Decide:
    session_id: str
    chunk: dict[str, float] | None
    next_chunk_bytes: list[float]
    chunks_left: int
    ladder_kbps: list[float]
    chunks_total: int


def decide_request(data: dict, layout: dict) -> Decide:
    """POST /v1/decide: the finished chunk (absent for a session's first decision) and what comes next."""
    unknown = sorted(set(data) - DECIDE_KEYS)
    if unknown:  # a misspelt optional field would otherwise be silently replaced by its default
        raise RequestError(422, f"unknown field(s) {', '.join(unknown)}; fields are {', '.join(sorted(DECIDE_KEYS))}",
                           unknown[0])
    session_id = data.get("session_id")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
        raise RequestError(422, f"session_id must be a string of 1 to {MAX_SESSION_ID_CHARS} characters", "session_id")
    n_levels = int(layout["n_levels"])
    chunk = None
    if data.get("chunk") is not None:
        if not isinstance(data["chunk"], dict):
            raise RequestError(422, f"chunk must be an object with {', '.join(CHUNK_KEYS)}", "chunk")
        unknown = sorted(set(data["chunk"]) - set(CHUNK_KEYS))
        if unknown:
            raise RequestError(422, f"unknown field(s) chunk.{', chunk.'.join(unknown)}; chunk fields are "
                               f"{', '.join(CHUNK_KEYS)}", f"chunk.{unknown[0]}")
        # A real download takes time: a zero download time would divide by zero in throughput features.
        chunk = {key: number(data["chunk"], key, f"chunk.{key}", strict=key in ("download_time_s", "bitrate_kbps"))
                 for key in CHUNK_KEYS}
    next_chunk_bytes = numbers(data, "next_chunk_bytes", "next_chunk_bytes", n_levels)
    ladder_kbps = (numbers(data, "ladder_kbps", "ladder_kbps", n_levels, strict=True) if "ladder_kbps" in data
                   else [float(kbps) for kbps in layout["ladder_kbps"]])
    if any(high <= low for low, high in zip(ladder_kbps, ladder_kbps[1:])):
        raise RequestError(422, "ladder_kbps must increase from the lowest level to the highest", "ladder_kbps")
    chunks_total = integer(data, "chunks_total", "chunks_total", minimum=1) if "chunks_total" in data \
        else int(layout["chunks_total"])
    chunks_left = integer(data, "chunks_left", "chunks_left", minimum=0, maximum=chunks_total)
    return Decide(session_id, chunk, next_chunk_bytes, chunks_left, ladder_kbps, chunks_total)


@dataclass(frozen=True)
class PensieveReport:
    level: int
    buffer_s: float
    total_rebuffer_ms: float
    download_time_s: float
    chunk_bytes: float
    last_request: int


def pensieve_request(data: dict, n_levels: int) -> PensieveReport:
    """POST / in Pensieve's rl_server format (other keys its player sends, e.g. bandwidthEst, are ignored)."""
    level = integer(data, "lastquality", "lastquality", minimum=0, maximum=n_levels - 1)
    buffer_s = number(data, "buffer", "buffer")
    total_rebuffer_ms = number(data, "RebufferTime", "RebufferTime")
    start_ms = number(data, "lastChunkStartTime", "lastChunkStartTime")
    finish_ms = number(data, "lastChunkFinishTime", "lastChunkFinishTime")
    if finish_ms <= start_ms:
        raise RequestError(422, f"lastChunkFinishTime ({finish_ms:g} ms) must be after lastChunkStartTime "
                           f"({start_ms:g} ms)", "lastChunkFinishTime")
    chunk_bytes = number(data, "lastChunkSize", "lastChunkSize")
    last_request = integer(data, "lastRequest", "lastRequest", minimum=0)
    return PensieveReport(level, buffer_s, total_rebuffer_ms, (finish_ms - start_ms) / 1000.0, chunk_bytes, last_request)
