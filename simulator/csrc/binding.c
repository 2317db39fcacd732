/* binding.c - CPython binding of abr_sim.h. It checks types, sizes and contiguity, keeps a
 * buffer view (and so a reference) of every array it uses, and forwards. No numpy headers:
 * everything goes through the buffer protocol. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "abr_sim.h"

enum {
    V_TIME, V_BW, V_OFFSETS, V_CHUNK_BYTES, V_BITRATE, V_UTILITY, V_PF, V_PI,
    V_PLAYERS, V_OBS, V_FINAL_OBS, V_OUT_F64, V_OUT_I32, V_DONE, V_COUNT
};

static const char *view_names[V_COUNT] = {
    "time_s", "bw_mbps", "offsets", "chunk_bytes", "bitrate_kbps", "utility", "pf", "pi",
    "players", "obs", "final_obs", "out_f64", "out_i32", "done",
};
/* expected item kind: d = float64, q = int64, f = float32, i = int32, B = uint8 */
static const char view_kinds[V_COUNT] = {'d', 'd', 'q', 'd', 'd', 'd', 'd', 'q', 'B', 'f', 'f', 'd', 'i', 'B'};
static const int view_writable[V_COUNT] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};

typedef struct {
    PyObject_HEAD
    AbrSim sim;
    Py_buffer views[V_COUNT];
    int n_views;
} CoreObject;

static int kind_matches(const Py_buffer *view, char kind) {
    const char *format = view->format ? view->format : "B";
    char last = format[strlen(format) - 1];
    switch (kind) {
    case 'd': return view->itemsize == 8 && last == 'd';
    case 'f': return view->itemsize == 4 && last == 'f';
    case 'q': return view->itemsize == 8 && (last == 'q' || last == 'l');
    case 'i': return view->itemsize == 4 && (last == 'i' || last == 'l');
    case 'B': return view->itemsize == 1 && (last == 'B' || last == 'b' || last == 'c' || last == '?');
    }
    return 0;
}

static Py_ssize_t n_items(const Py_buffer *view) { return view->len / view->itemsize; }

static void core_release(CoreObject *self) {
    for (int v = 0; v < self->n_views; v++) PyBuffer_Release(&self->views[v]);
    self->n_views = 0;
}

static void core_dealloc(CoreObject *self) {
    core_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int size_error(const char *name, Py_ssize_t got, Py_ssize_t want) {
    PyErr_Format(PyExc_ValueError, "%s has %zd items, expected %zd", name, got, want);
    return -1;
}

static int core_init(CoreObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[V_COUNT + 1];
    for (int v = 0; v < V_COUNT; v++) keywords[v] = (char *)view_names[v];
    keywords[V_COUNT] = NULL;
    PyObject *objects[V_COUNT];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOOOOOO", keywords, &objects[0], &objects[1],
                                     &objects[2], &objects[3], &objects[4], &objects[5], &objects[6],
                                     &objects[7], &objects[8], &objects[9], &objects[10], &objects[11],
                                     &objects[12], &objects[13]))
        return -1;
    core_release(self);
    for (int v = 0; v < V_COUNT; v++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (view_writable[v] ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objects[v], &self->views[v], flags) < 0) {
            PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s buffer", view_names[v],
                         view_writable[v] ? ", writable" : "");
            return -1;
        }
        self->n_views = v + 1;
        if (!kind_matches(&self->views[v], view_kinds[v])) {
            PyErr_Format(PyExc_TypeError, "%s has item format '%s', expected kind '%c'", view_names[v],
                         self->views[v].format ? self->views[v].format : "B", view_kinds[v]);
            return -1;
        }
    }
    Py_buffer *views = self->views;
    if (n_items(&views[V_PF]) != PF_COUNT) return size_error("pf", n_items(&views[V_PF]), PF_COUNT);
    if (n_items(&views[V_PI]) != PI_COUNT) return size_error("pi", n_items(&views[V_PI]), PI_COUNT);
    const int64_t *pi = views[V_PI].buf;
    const int64_t N = pi[PI_NUM_ENVS], L = pi[PI_N_LEVELS], K = pi[PI_HISTORY_LEN];
    const int64_t n_traces = pi[PI_N_TRACES], n_video = pi[PI_N_VIDEO_CHUNKS];
    const int64_t obs_size = OBS_HISTORY_FIELDS * K + 2 * L + 2;
    if (N < 1 || L < 2 || K < 1 || n_traces < 1 || n_video < 2 || pi[PI_N_EPISODE_CHUNKS] > n_video ||
        pi[PI_N_EPISODE_CHUNKS] < 2 || pi[PI_DEFAULT_LEVEL] < 0 || pi[PI_DEFAULT_LEVEL] >= L ||
        pi[PI_TRACE_STRIDE] < 1 || pi[PI_PLAYER_OFFSET] < 0) {
        PyErr_SetString(PyExc_ValueError, "inconsistent integer parameters (pi)");
        return -1;
    }
    if (n_items(&views[V_TIME]) != n_items(&views[V_BW]))
        return size_error("bw_mbps", n_items(&views[V_BW]), n_items(&views[V_TIME]));
    if (n_items(&views[V_OFFSETS]) != n_traces + 1) return size_error("offsets", n_items(&views[V_OFFSETS]), n_traces + 1);
    if (n_items(&views[V_CHUNK_BYTES]) != L * n_video) return size_error("chunk_bytes", n_items(&views[V_CHUNK_BYTES]), L * n_video);
    if (n_items(&views[V_BITRATE]) != L) return size_error("bitrate_kbps", n_items(&views[V_BITRATE]), L);
    if (n_items(&views[V_UTILITY]) != L) return size_error("utility", n_items(&views[V_UTILITY]), L);
    if (views[V_PLAYERS].len < (Py_ssize_t)(N * sizeof(AbrPlayer)))
        return size_error("players (bytes)", views[V_PLAYERS].len, N * (Py_ssize_t)sizeof(AbrPlayer));
    if (n_items(&views[V_OBS]) != N * obs_size) return size_error("obs", n_items(&views[V_OBS]), N * obs_size);
    if (n_items(&views[V_FINAL_OBS]) != N * obs_size) return size_error("final_obs", n_items(&views[V_FINAL_OBS]), N * obs_size);
    if (n_items(&views[V_OUT_F64]) != OUT_F64_COUNT * N) return size_error("out_f64", n_items(&views[V_OUT_F64]), OUT_F64_COUNT * N);
    if (n_items(&views[V_OUT_I32]) != OUT_I32_COUNT * N) return size_error("out_i32", n_items(&views[V_OUT_I32]), OUT_I32_COUNT * N);
    if (n_items(&views[V_DONE]) != N) return size_error("done", n_items(&views[V_DONE]), N);

    /* A trace the delivery loop could never finish would hang the core: refuse it here too. */
    const int64_t *offsets = views[V_OFFSETS].buf;
    const double *time_s = views[V_TIME].buf, *bw_mbps = views[V_BW].buf;
    if (offsets[0] != 0 || offsets[n_traces] != n_items(&views[V_TIME])) {
        PyErr_SetString(PyExc_ValueError, "offsets must start at 0 and end at the number of rows");
        return -1;
    }
    for (int64_t t = 0; t < n_traces; t++) {
        int64_t lo = offsets[t], hi = offsets[t + 1];
        if (hi - lo < 2) {
            PyErr_Format(PyExc_ValueError, "trace %lld has fewer than 2 rows", (long long)t);
            return -1;
        }
        int positive = 0;
        for (int64_t r = lo; r < hi; r++) {
            if (!isfinite(time_s[r]) || !isfinite(bw_mbps[r]) || bw_mbps[r] < 0 ||
                (r > lo && !(time_s[r] > time_s[r - 1]))) {
                PyErr_Format(PyExc_ValueError, "trace %lld row %lld: non-finite, negative or non-increasing value",
                             (long long)t, (long long)(r - lo));
                return -1;
            }
            if (r > lo && bw_mbps[r] > 0) positive = 1;
        }
        if (!positive) {
            PyErr_Format(PyExc_ValueError, "trace %lld has no positive bandwidth after row 0", (long long)t);
            return -1;
        }
    }

    AbrSim *s = &self->sim;
    s->time_s = time_s;
    s->bw_mbps = bw_mbps;
    s->offsets = offsets;
    s->chunk_bytes = views[V_CHUNK_BYTES].buf;
    s->bitrate_kbps = views[V_BITRATE].buf;
    s->utility = views[V_UTILITY].buf;
    s->pf = views[V_PF].buf;
    s->pi = pi;
    s->players = views[V_PLAYERS].buf;
    s->obs = views[V_OBS].buf;
    s->final_obs = views[V_FINAL_OBS].buf;
    s->out_f64 = views[V_OUT_F64].buf;
    s->out_i32 = views[V_OUT_I32].buf;
    s->done = views[V_DONE].buf;
    s->obs_size = obs_size;
    return 0;
}

static int check_ready(CoreObject *self) {
    if (self->n_views != V_COUNT) {
        PyErr_SetString(PyExc_RuntimeError, "Core is not initialised");
        return -1;
    }
    return 0;
}

/* Optional uint8 mask of N players; NULL selects all. Caller releases the view. */
static int get_mask(CoreObject *self, PyObject *object, Py_buffer *view, const uint8_t **mask) {
    *mask = NULL;
    if (object == NULL || object == Py_None) return 0;
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (!kind_matches(view, 'B') || n_items(view) != self->sim.pi[PI_NUM_ENVS]) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "mask must be a uint8/bool array with one entry per player");
        return -1;
    }
    *mask = view->buf;
    return 1;
}

static PyObject *core_seed(CoreObject *self, PyObject *args) {
    unsigned long long seed;
    PyObject *mask_object = NULL;
    if (!PyArg_ParseTuple(args, "K|O", &seed, &mask_object) || check_ready(self) < 0) return NULL;
    Py_buffer view;
    const uint8_t *mask;
    int held = get_mask(self, mask_object, &view, &mask);
    if (held < 0) return NULL;
    for (int64_t i = 0; i < self->sim.pi[PI_NUM_ENVS]; i++)
        if (!mask || mask[i]) abr_seed(&self->sim, i, (uint64_t)seed);
    if (held) PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *core_reset(CoreObject *self, PyObject *args) {
    PyObject *mask_object = NULL;
    if (!PyArg_ParseTuple(args, "|O", &mask_object) || check_ready(self) < 0) return NULL;
    Py_buffer view;
    const uint8_t *mask;
    int held = get_mask(self, mask_object, &view, &mask);
    if (held < 0) return NULL;
    for (int64_t i = 0; i < self->sim.pi[PI_NUM_ENVS]; i++)
        if (!mask || mask[i]) abr_reset(&self->sim, i);
    if (held) PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *core_step(CoreObject *self, PyObject *levels_object) {
    if (check_ready(self) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(levels_object, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    const int64_t N = self->sim.pi[PI_NUM_ENVS], L = self->sim.pi[PI_N_LEVELS];
    if (!kind_matches(&view, 'i') || n_items(&view) != N) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "levels must be an int32 array of %lld entries", (long long)N);
        return NULL;
    }
    const int32_t *levels = view.buf;
    for (int64_t i = 0; i < N; i++) {
        if (levels[i] < 0 || levels[i] >= L) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_ValueError, "levels[%lld] = %d is outside 0..%lld", (long long)i, levels[i],
                         (long long)(L - 1));
            return NULL;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    abr_vec_step(&self->sim, levels);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"seed", (PyCFunction)core_seed, METH_VARARGS, "seed(seed, mask=None): reseed the players' streams"},
    {"reset", (PyCFunction)core_reset, METH_VARARGS, "reset(mask=None): start a new episode (fetches chunk 0)"},
    {"step", (PyCFunction)core_step, METH_O, "step(levels): fetch one chunk per player, auto-resetting finished ones"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simulator._core.Core",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "N ABR players over shared, caller-owned buffers (see simulator/core.py)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "simulator._core", "C core of the ABR simulator", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *module = PyModule_Create(&core_module);
    if (!module) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(module, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddIntConstant(module, "PLAYER_BYTES", (long)sizeof(AbrPlayer)) < 0 ||
        PyModule_AddIntConstant(module, "PF_COUNT", PF_COUNT) < 0 ||
        PyModule_AddIntConstant(module, "PI_COUNT", PI_COUNT) < 0 ||
        PyModule_AddIntConstant(module, "OUT_F64_COUNT", OUT_F64_COUNT) < 0 ||
        PyModule_AddIntConstant(module, "OUT_I32_COUNT", OUT_I32_COUNT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
