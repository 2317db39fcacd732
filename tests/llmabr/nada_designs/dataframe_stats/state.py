import numpy as np
import pandas as pd


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    top_kbps = float(all_bit_rate_kbps[-1])
    frame = pd.DataFrame({
        "throughput": [video_chunk_size_bytes_list[-i] * 8 / 1000 / delay_second_list[-i] / top_kbps for i in range(8, 0, -1)],
        "delay": [d / 10.0 for d in delay_second_list[-8:]],
        "bitrate": [b / top_kbps for b in bit_rate_kbps_list[-8:]],
    })
    rolling_std = frame["throughput"].rolling(3, min_periods=1).std().fillna(0.0)
    means = frame.mean()
    values = frame.to_numpy()
    change = np.clip(np.diff(values[:, 0]) / values[:-1, 0], -1.0, 1.0)
    return {
        "normal_states": [
            [means["throughput"], values[:, 0].max()],
            [means["delay"], values[:, 1].max()],
            [values[-1, 2]],
            [buffer_size_second_list[-1] / 10.0],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            values[:, 0].tolist(),
            rolling_std.to_list(),
            change.tolist(),
            [s * 8 / 1000 / 4 / top_kbps for s in next_chunk_bytes_sizes],
        ],
    }
