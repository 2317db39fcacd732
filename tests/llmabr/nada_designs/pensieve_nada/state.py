"""Pensieve's state, per player: last bitrate, buffer, chunks left; throughput, download time, next sizes."""
import numpy as np

S_LEN = 8
CHUNK_S = 4.0


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    top_kbps = max(all_bit_rate_kbps)
    top_bytes_per_s = top_kbps * 1000.0 / 8.0
    throughput = []
    for i in range(S_LEN, 0, -1):
        throughput.append(video_chunk_size_bytes_list[-i] / delay_second_list[-i] / top_bytes_per_s)
    delays = [delay_second_list[-i] / 10.0 for i in range(S_LEN, 0, -1)]
    next_sizes = [size / (top_bytes_per_s * CHUNK_S) for size in next_chunk_bytes_sizes]
    return {
        "normal_states": [
            [bit_rate_kbps_list[-1] / top_kbps],
            [buffer_size_second_list[-1] / 10.0],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [throughput, delays, next_sizes],
    }
