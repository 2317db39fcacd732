import numpy as np
from scipy import stats


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    # throughput in Mbps over the last 8 chunks, oldest first
    throughput_mbps = []
    for i in range(8, 0, -1):
        throughput_mbps.append(video_chunk_size_bytes_list[-i] * 8 / delay_second_list[-i] / 1e6)
    scale_mbps = all_bit_rate_kbps[-1] / 1000.0
    fit = stats.linregress(np.arange(8), throughput_mbps)
    predicted = max(fit.intercept + fit.slope * 8, 0.0)
    harmonic = len(throughput_mbps) / sum(1.0 / t for t in throughput_mbps)
    return {
        "normal_states": [
            [bit_rate_kbps_list[-1] / all_bit_rate_kbps[-1]],
            [buffer_size_second_list[-1] / 10.0],
            [np.clip(fit.slope / scale_mbps, -2.0, 2.0)],
            [predicted / scale_mbps, harmonic / scale_mbps],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            [t / scale_mbps for t in throughput_mbps],
            [d / 10.0 for d in delay_second_list[-8:]],
            [s / 1e6 / scale_mbps for s in next_chunk_bytes_sizes],
        ],
    }
