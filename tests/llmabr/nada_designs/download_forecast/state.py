import math

import numpy as np


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    recent = [video_chunk_size_bytes_list[-i] / delay_second_list[-i] for i in range(1, 6)]  # bytes/s, newest first
    harmonic = 5.0 / sum(1.0 / r for r in recent)
    forecast_s = [size / harmonic for size in next_chunk_bytes_sizes]
    buffer_s = buffer_size_second_list[-1]
    margin = [math.tanh((buffer_s - f) / 10.0) for f in forecast_s]
    stall_risk = [1.0 if f > buffer_s else 0.0 for f in forecast_s]
    return {
        "normal_states": [
            [buffer_s / 10.0],
            [bit_rate_kbps_list[-1] / all_bit_rate_kbps[-1]],
            [math.log1p(harmonic * 8.0 / 1000.0 / all_bit_rate_kbps[-1])],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            [np.log1p(f) for f in forecast_s],
            margin,
            stall_risk,
        ],
    }
