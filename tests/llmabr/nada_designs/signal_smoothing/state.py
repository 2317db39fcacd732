import numpy as np
from scipy import signal, special


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    kbps = [video_chunk_size_bytes_list[-i] * 8.0 / 1000.0 / delay_second_list[-i] for i in range(8, 0, -1)]
    top_kbps = all_bit_rate_kbps[len(all_bit_rate_kbps) - 1]
    relative = np.array(kbps) / top_kbps
    smooth = signal.lfilter([0.25, 0.5, 0.25], [1.0], relative, zi=relative[:1] * np.array([0.75, 0.25]))[0]
    median = signal.medfilt(relative, 3)
    buffer_level = special.expit((buffer_size_second_list[-1] - 10.0) / 5.0)
    return {
        "normal_states": [
            [buffer_level],
            [bit_rate_kbps_list[-1] / top_kbps],
            [median[-2], smooth[-1]],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            list(smooth),
            list(median),
            [size * 8.0 / 1000.0 / 4.0 / top_kbps for size in next_chunk_bytes_sizes],
        ],
    }
