/* abr_sim.h - the whole trace-driven ABR simulator: N video players, one chunk per call.
 *
 * The executable specification is simulator/reference.py; this file must match it step by
 * step (tests/simulator/test_alignment.py). Trace time is in seconds, buffer and delay in
 * milliseconds, as in Pensieve's sim/env.py, so pensieve mode rounds as Pensieve does.
 *
 * Memory: Python allocates every array once (traces, video, players, observations, outputs);
 * this header only reads and writes them. No malloc, no globals, no rand(): each player owns a
 * counter-based stream keyed by (seed, player index).
 */
#ifndef ABR_SIM_H
#define ABR_SIM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- parameters (order shared with simulator/core.py) ---------------------------------- */
enum {
    PF_RTT_MS, PF_PAYLOAD_FACTOR, PF_BUFFER_CAP_MS, PF_DRAIN_QUANTUM_MS, PF_CHUNK_MS,
    PF_NOISE_LOW, PF_NOISE_HIGH, PF_REBUFFER_PENALTY, PF_SMOOTH_PENALTY, PF_REWARD_SCALE,
    PF_COUNT
};
enum {
    PI_PENSIEVE, PI_NOISE, PI_SEQUENTIAL, PI_RANDOM_START, PI_DEFAULT_LEVEL, PI_N_LEVELS,
    PI_N_VIDEO_CHUNKS, PI_N_EPISODE_CHUNKS, PI_HISTORY_LEN, PI_N_TRACES, PI_NUM_ENVS,
    PI_TRACE_STRIDE, PI_PLAYER_OFFSET, PI_COUNT
};
/* rows of the float64 output block [OUT_F64_COUNT, N] */
enum {
    OUT_REWARD, OUT_DOWNLOAD_TIME_S, OUT_REBUFFER_S, OUT_BUFFER_S, OUT_SLEEP_S, OUT_CHUNK_BYTES,
    OUT_BITRATE_KBPS, OUT_QOE_BITRATE, OUT_QOE_REBUFFER, OUT_QOE_SMOOTH, OUT_F64_COUNT
};
/* rows of the int32 output block [OUT_I32_COUNT, N] */
enum { OUT_LEVEL, OUT_CHUNK_INDEX, OUT_TRACE_INDEX, OUT_I32_COUNT };
/* observation fields, in layout order (simulator/layout.py) */
enum { OBS_BITRATE_KBPS, OBS_BUFFER_S, OBS_DOWNLOAD_TIME_S, OBS_CHUNK_BYTES, OBS_REBUFFER_S, OBS_VALID,
       OBS_HISTORY_FIELDS };

/* One player's state. Python allocates N of these as raw bytes (sizeof reported by the binding). */
typedef struct {
    uint64_t rng_key;
    uint64_t rng_counter;
    int64_t episode;
    int64_t trace;        /* index into the trace set */
    int64_t row;          /* trace row whose interval (time[row-1], time[row]] is current */
    double last_time_s;   /* position of the trace clock inside that interval */
    double buffer_ms;
    int32_t chunk;        /* index of the next chunk to fetch */
    int32_t last_level;
} AbrPlayer;

typedef struct {
    /* inputs (read only) */
    const double *time_s, *bw_mbps;   /* all traces, concatenated */
    const int64_t *offsets;           /* [n_traces + 1] */
    const double *chunk_bytes;        /* [n_levels, n_video_chunks] */
    const double *bitrate_kbps;       /* [n_levels] */
    const double *utility;            /* [n_levels] QoE utility of each level */
    const double *pf;                 /* [PF_COUNT] */
    const int64_t *pi;                /* [PI_COUNT] */
    /* state and outputs (written in place) */
    AbrPlayer *players;               /* [N] */
    float *obs;                       /* [N, obs_size] */
    float *final_obs;                 /* [N, obs_size] terminal observation where done */
    double *out_f64;                  /* [OUT_F64_COUNT, N] */
    int32_t *out_i32;                 /* [OUT_I32_COUNT, N] */
    uint8_t *done;                    /* [N] */
    int64_t obs_size;
} AbrSim;

/* ---- randomness: splitmix64 at a counter (simulator/rng.py) ---------------------------- */
#define ABR_GOLDEN 0x9E3779B97F4A7C15ULL
#define ABR_PLAYER_SALT 0xD1B54A32D192ED03ULL

static inline uint64_t abr_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t abr_stream_key(uint64_t seed, uint64_t player_index) {
    return abr_mix64(abr_mix64(seed) ^ (player_index * ABR_PLAYER_SALT));
}

static inline double abr_uniform(AbrPlayer *p) {
    uint64_t bits = abr_mix64(p->rng_key + (p->rng_counter + 1) * ABR_GOLDEN);
    p->rng_counter++;
    return (double)(bits >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- the trace clock ------------------------------------------------------------------- */
static inline int64_t abr_rows(const AbrSim *s, const AbrPlayer *p) {
    return s->offsets[p->trace + 1] - s->offsets[p->trace];
}

static inline void abr_next_row(const AbrSim *s, AbrPlayer *p, const double *time_s) {
    p->last_time_s = time_s[p->row];
    p->row++;
    if (p->row >= abr_rows(s, p)) {
        p->row = 1;
        /* Pensieve assumes every trace starts at t = 0 (quirk 6); default mode does not. */
        p->last_time_s = s->pi[PI_PENSIEVE] ? 0.0 : time_s[0];
    }
}

/* Let idle_ms of trace time pass with no data. Returns Pensieve's residual in ms. */
static inline double abr_advance_clock(const AbrSim *s, AbrPlayer *p, double idle_ms) {
    const double *time_s = s->time_s + s->offsets[p->trace];
    for (;;) {
        double duration_s = time_s[p->row] - p->last_time_s;
        if (duration_s > idle_ms / 1000.0) {
            p->last_time_s += idle_ms / 1000.0;
            return idle_ms;
        }
        idle_ms -= duration_s * 1000.0;
        abr_next_row(s, p, time_s);
    }
}

/* Seconds of trace time to deliver size_bytes (Pensieve's delivery loop). Terminates because
 * TraceSet construction rejects traces without positive bandwidth in rows 1... */
static inline double abr_download_s(const AbrSim *s, AbrPlayer *p, double size_bytes, double goodput_scale) {
    const double *time_s = s->time_s + s->offsets[p->trace];
    const double *bw_mbps = s->bw_mbps + s->offsets[p->trace];
    const double payload_factor = s->pf[PF_PAYLOAD_FACTOR];
    double delay_s = 0.0, sent_bytes = 0.0;
    for (;;) {
        double throughput_bytes_per_s = bw_mbps[p->row] * 1e6 / 8.0 * goodput_scale;
        double duration_s = time_s[p->row] - p->last_time_s;
        double payload_bytes = throughput_bytes_per_s * duration_s * payload_factor;
        if (sent_bytes + payload_bytes > size_bytes) {
            double fractional_s = (size_bytes - sent_bytes) / throughput_bytes_per_s / payload_factor;
            delay_s += fractional_s;
            p->last_time_s += fractional_s;
            return delay_s;
        }
        sent_bytes += payload_bytes;
        delay_s += duration_s;
        abr_next_row(s, p, time_s);
    }
}

/* ---- one chunk -------------------------------------------------------------------------- */
static inline void abr_write_obs(const AbrSim *s, const AbrPlayer *p, int64_t i,
                                 const double newest[OBS_HISTORY_FIELDS]) {
    const int64_t K = s->pi[PI_HISTORY_LEN], L = s->pi[PI_N_LEVELS];
    const int64_t n_episode = s->pi[PI_N_EPISODE_CHUNKS], n_video = s->pi[PI_N_VIDEO_CHUNKS];
    float *row = s->obs + i * s->obs_size;
    for (int f = 0; f < OBS_HISTORY_FIELDS; f++) {
        float *history = row + f * K;
        memmove(history, history + 1, (size_t)(K - 1) * sizeof(float));
        history[K - 1] = (float)newest[f];
    }
    float *next_bytes = row + OBS_HISTORY_FIELDS * K, *ladder = next_bytes + L;
    for (int64_t l = 0; l < L; l++) {
        next_bytes[l] = p->chunk < n_episode ? (float)s->chunk_bytes[l * n_video + p->chunk] : 0.0f;
        ladder[l] = (float)s->bitrate_kbps[l];
    }
    ladder[L] = (float)(n_episode - p->chunk);    /* chunks_left */
    ladder[L + 1] = (float)n_episode;             /* chunks_total */
}

static inline void abr_fetch(const AbrSim *s, int64_t i, int32_t level) {
    AbrPlayer *p = &s->players[i];
    const double *pf = s->pf;
    const int64_t N = s->pi[PI_NUM_ENVS], n_video = s->pi[PI_N_VIDEO_CHUNKS];
    const int pensieve = (int)s->pi[PI_PENSIEVE];
    double size_bytes = s->chunk_bytes[level * n_video + p->chunk];
    double noise = s->pi[PI_NOISE] ? pf[PF_NOISE_LOW] + (pf[PF_NOISE_HIGH] - pf[PF_NOISE_LOW]) * abr_uniform(p) : 1.0;

    double delay_ms;
    if (pensieve) {
        /* RTT and noise inflate the delay but the trace clock never sees them (quirk 5). */
        delay_ms = abr_download_s(s, p, size_bytes, 1.0) * 1000.0;
        delay_ms += pf[PF_RTT_MS];
        delay_ms *= noise;
    } else {
        abr_advance_clock(s, p, pf[PF_RTT_MS]);
        delay_ms = (pf[PF_RTT_MS] / 1000.0 + abr_download_s(s, p, size_bytes, 1.0 / noise)) * 1000.0;
    }

    double rebuffer_ms = fmax(delay_ms - p->buffer_ms, 0.0);
    p->buffer_ms = fmax(p->buffer_ms - delay_ms, 0.0) + pf[PF_CHUNK_MS];

    double sleep_ms = 0.0;
    if (p->buffer_ms > pf[PF_BUFFER_CAP_MS]) {
        double quantum_ms = pf[PF_DRAIN_QUANTUM_MS];
        sleep_ms = ceil((p->buffer_ms - pf[PF_BUFFER_CAP_MS]) / quantum_ms) * quantum_ms;
        p->buffer_ms -= sleep_ms;
        double residual_ms = abr_advance_clock(s, p, sleep_ms);
        if (pensieve) sleep_ms = residual_ms; /* Pensieve reports the residual (quirk 3) */
    }

    double qoe_bitrate = s->utility[level];
    double qoe_rebuffer = pf[PF_REBUFFER_PENALTY] * rebuffer_ms / 1000.0;
    double qoe_smooth = pf[PF_SMOOTH_PENALTY] * fabs(s->utility[level] - s->utility[p->last_level]);
    double *out = s->out_f64;
    out[OUT_REWARD * N + i] = (qoe_bitrate - qoe_rebuffer - qoe_smooth) * pf[PF_REWARD_SCALE];
    out[OUT_DOWNLOAD_TIME_S * N + i] = delay_ms / 1000.0;
    out[OUT_REBUFFER_S * N + i] = rebuffer_ms / 1000.0;
    out[OUT_BUFFER_S * N + i] = p->buffer_ms / 1000.0;
    out[OUT_SLEEP_S * N + i] = sleep_ms / 1000.0;
    out[OUT_CHUNK_BYTES * N + i] = size_bytes;
    out[OUT_BITRATE_KBPS * N + i] = s->bitrate_kbps[level];
    out[OUT_QOE_BITRATE * N + i] = qoe_bitrate;
    out[OUT_QOE_REBUFFER * N + i] = qoe_rebuffer;
    out[OUT_QOE_SMOOTH * N + i] = qoe_smooth;
    s->out_i32[OUT_LEVEL * N + i] = level;
    s->out_i32[OUT_CHUNK_INDEX * N + i] = p->chunk;
    s->out_i32[OUT_TRACE_INDEX * N + i] = (int32_t)p->trace;

    p->last_level = level;
    p->chunk++;
    s->done[i] = p->chunk >= s->pi[PI_N_EPISODE_CHUNKS];
    double newest[OBS_HISTORY_FIELDS] = {
        s->bitrate_kbps[level], p->buffer_ms / 1000.0, delay_ms / 1000.0, size_bytes, rebuffer_ms / 1000.0, 1.0,
    };
    abr_write_obs(s, p, i, newest);
}

/* ---- episodes --------------------------------------------------------------------------- */
static inline void abr_seed(const AbrSim *s, int64_t i, uint64_t seed) {
    AbrPlayer *p = &s->players[i];
    memset(p, 0, sizeof(*p));
    p->rng_key = abr_stream_key(seed, (uint64_t)(s->pi[PI_PLAYER_OFFSET] + i));
}

/* Pick a trace and a start row, then fetch chunk 0 at the default level. */
static inline void abr_reset(const AbrSim *s, int64_t i) {
    AbrPlayer *p = &s->players[i];
    const int64_t n_traces = s->pi[PI_N_TRACES];
    if (s->pi[PI_SEQUENTIAL]) {
        p->trace = (s->pi[PI_PLAYER_OFFSET] + i + p->episode * s->pi[PI_TRACE_STRIDE]) % n_traces;
    } else {
        int64_t pick = (int64_t)(abr_uniform(p) * (double)n_traces);
        p->trace = pick < n_traces - 1 ? pick : n_traces - 1;
    }
    p->episode++;
    const int64_t n_rows = abr_rows(s, p);
    if (s->pi[PI_RANDOM_START]) {
        int64_t pick = (int64_t)(abr_uniform(p) * (double)(n_rows - 1));
        p->row = 1 + (pick < n_rows - 2 ? pick : n_rows - 2);
    } else {
        p->row = 1;
    }
    p->last_time_s = s->time_s[s->offsets[p->trace] + p->row - 1];
    p->buffer_ms = 0.0;
    p->chunk = 0;
    p->last_level = (int32_t)s->pi[PI_DEFAULT_LEVEL];
    memset(s->obs + i * s->obs_size, 0, (size_t)s->obs_size * sizeof(float));
    abr_fetch(s, i, p->last_level);
}

/* Step every player by one chunk; players that finish are reset in the same call, their
 * terminal observation kept in final_obs (SB3's same-step auto-reset). */
static inline void abr_vec_step(const AbrSim *s, const int32_t *levels) {
    const int64_t N = s->pi[PI_NUM_ENVS];
    for (int64_t i = 0; i < N; i++) {
        abr_fetch(s, i, levels[i]);
        if (s->done[i]) {
            memcpy(s->final_obs + i * s->obs_size, s->obs + i * s->obs_size, (size_t)s->obs_size * sizeof(float));
            /* keep the terminal step's outputs: reset fetches chunk 0 into the same slots */
            double saved_f64[OUT_F64_COUNT];
            int32_t saved_i32[OUT_I32_COUNT];
            for (int r = 0; r < OUT_F64_COUNT; r++) saved_f64[r] = s->out_f64[r * N + i];
            for (int r = 0; r < OUT_I32_COUNT; r++) saved_i32[r] = s->out_i32[r * N + i];
            abr_reset(s, i);
            for (int r = 0; r < OUT_F64_COUNT; r++) s->out_f64[r * N + i] = saved_f64[r];
            for (int r = 0; r < OUT_I32_COUNT; r++) s->out_i32[r * N + i] = saved_i32[r];
            s->done[i] = 1;
        }
    }
}

#endif /* ABR_SIM_H */
