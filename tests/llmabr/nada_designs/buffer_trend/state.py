import numpy as np
from scipy import stats

CHUNK_SECONDS = 4.0


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    buffers = np.array(buffer_size_second_list[-8:])
    changes = np.diff(buffers) / CHUNK_SECONDS
    slope, intercept = np.polyfit(np.arange(8), buffers, 1)
    busy = [delay_second_list[-i] / CHUNK_SECONDS for i in range(8, 0, -1)]
    rates = [video_chunk_size_bytes_list[-i] / delay_second_list[-i] for i in range(8, 0, -1)]
    top_rate = all_bit_rate_kbps[-1] * 1000.0 / 8.0
    rank = stats.percentileofscore(rates, rates[-1]) / 100.0
    return {
        "normal_states": [
            [buffers[-1] / 10.0],
            [slope / CHUNK_SECONDS],
            [bit_rate_kbps_list[-1] / all_bit_rate_kbps[-1]],
            [rank],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            list(changes),
            busy,
            [r / top_rate for r in rates],
            [s / (top_rate * CHUNK_SECONDS) for s in next_chunk_bytes_sizes],
        ],
    }
