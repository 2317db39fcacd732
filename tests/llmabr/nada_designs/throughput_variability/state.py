import numpy as np


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    bandwidth = np.array([video_chunk_size_bytes_list[-i] / delay_second_list[-i] for i in range(1, 9)])  # newest first
    top = max(all_bit_rate_kbps) * 125.0
    mean = np.mean(bandwidth)
    variation = np.std(bandwidth) / mean
    harmonic = len(bandwidth) / np.sum(1.0 / bandwidth)
    spread = (np.max(bandwidth) - np.min(bandwidth)) / mean
    ladder = np.array(all_bit_rate_kbps) * 125.0
    affordable = float(np.sum(ladder <= harmonic)) / len(ladder)
    return {
        "normal_states": [
            [bit_rate_kbps_list[-1] / max(all_bit_rate_kbps)],
            [buffer_size_second_list[-1] / 10.0],
            [variation, spread],
            [harmonic / top, mean / top],
            [affordable],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            list(bandwidth[::-1] / top),
            (np.array(next_chunk_bytes_sizes) / (top * 4.0)).tolist(),
        ],
    }
