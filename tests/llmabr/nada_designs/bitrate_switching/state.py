import numpy as np
import pandas as pd


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    top = all_bit_rate_kbps[-1]
    levels = [b / top for b in bit_rate_kbps_list[-8:]]
    changes = np.diff(levels)
    switches = np.count_nonzero(changes) / 7.0
    rates_kbps = np.array([video_chunk_size_bytes_list[-i] * 8 / delay_second_list[-i] / 1000 for i in range(8, 0, -1)])
    typical = np.median(rates_kbps) / top
    ewm_level = pd.Series(levels).ewm(alpha=0.5).mean()
    position = np.interp(bit_rate_kbps_list[-1], all_bit_rate_kbps, np.linspace(0.0, 1.0, len(all_bit_rate_kbps)))
    return {
        "normal_states": [
            [position, levels[-1]],
            [switches],
            [typical],
            [buffer_size_second_list[-1] / 10.0],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            list(changes),
            ewm_level.to_list(),
            list(rates_kbps / top),
        ],
    }
