import numpy as np


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    throughput_MBps = np.array([video_chunk_size_bytes_list[-i] / 1e6 / delay_second_list[-i] for i in range(8, 0, -1)])
    delays = np.array(delay_second_list[-8:])
    standardized_throughput = (throughput_MBps - np.mean(throughput_MBps)) / np.std(throughput_MBps)
    standardized_delay = (delays - np.mean(delays)) / np.std(delays)
    top_MBps = max(all_bit_rate_kbps) / 8000.0
    return {
        "normal_states": [
            [bit_rate_kbps_list[-1] / max(all_bit_rate_kbps)],
            [buffer_size_second_list[-1] / 10.0],
            [np.mean(throughput_MBps) / top_MBps],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            standardized_throughput.tolist(),
            standardized_delay.tolist(),
            (np.array(next_chunk_bytes_sizes) / 1e6 / (top_MBps * 4.0)).tolist(),
        ],
    }
