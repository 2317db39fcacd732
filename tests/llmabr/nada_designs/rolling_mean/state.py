import numpy as np
import pandas as pd


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    top = all_bit_rate_kbps[-1] * 1000.0 / 8.0  # top bitrate in bytes per second
    throughput = [video_chunk_size_bytes_list[-i] / delay_second_list[-i] / top for i in range(8, 0, -1)]
    smooth = pd.Series(throughput).rolling(3).mean().bfill()
    buffer = np.array(buffer_size_second_list[-8:]) / 10.0
    buffer_smooth = np.convolve(buffer, np.ones(3) / 3.0, mode="valid")
    return {
        "normal_states": [
            [bit_rate_kbps_list[-1] / all_bit_rate_kbps[-1]],
            [buffer[-1]],
            [smooth.iloc[-1], throughput[-1]],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            smooth.to_list(),
            buffer_smooth.tolist(),
            [b / (top * 4.0) for b in next_chunk_bytes_sizes],
        ],
    }
