"""Pensieve's default state exactly as sim/a3c.py's agents build it (Envivio units).

- last_bitrate:  kbps / 4300 (Envivio's top bitrate, hard-coded as in the original)
- buffer:        seconds / 10
- throughput:    last 8 chunks in MB/s (bytes / download ms / 1000), RTT included
- download_time: last 8 chunks, seconds / 10
- next_sizes:    next chunk's size per level in MB
- chunks_left:   chunks left / 48 (the original's CHUNK_TIL_VIDEO_END_CAP)
"""

import torch

HISTORY = 8


def state(m):
    valid = m["valid"][:, -HISTORY:]
    download_s = m["download_time_s"][:, -HISTORY:]
    safe_download_ms = torch.where(valid > 0, download_s, torch.ones_like(download_s)) * 1000.0
    return {
        "last_bitrate": m["bitrate_kbps"][:, -1:] / 4300.0,
        "buffer": m["buffer_s"][:, -1:] / 10.0,
        "throughput": m["chunk_bytes"][:, -HISTORY:] / safe_download_ms / 1000.0 * valid,
        "download_time": download_s / 10.0,
        "next_sizes": m["next_chunk_bytes"] / 1e6,
        "chunks_left": m["chunks_left"] / 48.0,
    }
