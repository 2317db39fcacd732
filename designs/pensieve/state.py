"""Pensieve's default state (6 rows x 8 steps), batched and ladder-relative.

Inputs: the measurement row split into fields, each a float32 tensor [batch, size] with the
newest chunk last (see simulator/layout.py). Outputs, each float32 [batch, d], about [0, 1]:

- last_bitrate:   bitrate of the newest chunk / top ladder bitrate          (Pensieve: / 4300 kbps)
- buffer:         buffer after the newest chunk, seconds / 10               (Pensieve: same)
- throughput:     last 8 chunks' bytes / download time, over the top bitrate in bytes/s
                  (Pensieve: MB/s, which is this x 0.54 on the Envivio ladder)
- download_time:  last 8 chunks' download time (RTT included), seconds / 10 (Pensieve: same)
- next_sizes:     next chunk's size at each level / top-level chunk size of 4 s
                  (Pensieve: MB, this x 2.15 on Envivio)
- chunks_left:    chunks still to fetch / chunks in the episode             (Pensieve: / 48)

History slots not played yet are 0, as in Pensieve's rolling state.
"""

import torch

HISTORY = 8
CHUNK_S = 4.0


def state(m):
    top_kbps = m["ladder_kbps"][:, -1:]
    top_bytes_per_s = top_kbps * 1000.0 / 8.0
    valid = m["valid"][:, -HISTORY:]
    download_s = m["download_time_s"][:, -HISTORY:]
    safe_download_s = torch.where(valid > 0, download_s, torch.ones_like(download_s))
    throughput = m["chunk_bytes"][:, -HISTORY:] / safe_download_s * valid
    return {
        "last_bitrate": m["bitrate_kbps"][:, -1:] / top_kbps,
        "buffer": m["buffer_s"][:, -1:] / 10.0,
        "throughput": throughput / top_bytes_per_s,
        "download_time": download_s / 10.0,
        "next_sizes": m["next_chunk_bytes"] / (top_bytes_per_s * CHUNK_S),
        "chunks_left": m["chunks_left"] / m["chunks_total"],
    }
