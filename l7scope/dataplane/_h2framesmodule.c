/* _h2framesmodule.c: the Python face of the compiled HTTP/2 frame splitter (h2frames.h).
 *
 * FrameSplitter.feed/skip/finish return, per call, the list of events the library emitted:
 * Frame, FramingLost and FramingResumed, immutable named tuples (struct sequences: one
 * allocation each, attribute access by name). The events are built in the library's emit
 * callback while the payload it points to is alive; nothing else crosses the boundary. The
 * header judgements (plausible_header, looks_like_http2, find_plausible_header) are the
 * library's too, for detection. A non-zero return from the library is a Python error already
 * set (MemoryError, or one raised while building an event).
 *
 * Timestamps are whatever the caller passes (record times are 64-bit unsigned, pcap times
 * any int): the library gets a tick per call instead, and the events carry back the objects
 * of the calls those ticks name (the current call's, or the one that began a frame header).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>

#include "h2frames.h"

static PyTypeObject *FrameType, *LostType, *ResumedType;
static PyObject *lost_text[H2F_NLOST];
static PyObject *state_text[H2F_NSTATES];

static PyStructSequence_Field frame_fields[] = {
    {"type", NULL}, {"flags", NULL}, {"stream_id", NULL},
    {"length", "payload length from the frame header (wire size is 9 + length)"},
    {"payload", "whole unless damaged/truncated (DATA: a prefix)"},
    {"ts_start", "ts of the feed that carried the first header octet"},
    {"ts_end", "ts of the feed that carried the last octet"},
    {"damaged", "a hole hit the payload"},
    {"truncated", "payload larger than the buffer bound; only a prefix kept"}, {NULL, NULL}};
static PyStructSequence_Desc frame_desc = {
    "l7scope.dataplane._h2frames.Frame", "One HTTP/2 frame (RFC 9113 4.1).", frame_fields, 9};

static PyStructSequence_Field lost_fields[] = {{"reason", NULL}, {"ts", NULL}, {NULL, NULL}};
static PyStructSequence_Desc lost_desc = {
    "l7scope.dataplane._h2frames.FramingLost",
    "Frame boundaries were lost (hole, bad preface, implausible bytes); scanning resumed.",
    lost_fields, 2};

static PyStructSequence_Field resumed_fields[] = {{"skipped", NULL}, {"ts", NULL}, {NULL, NULL}};
static PyStructSequence_Desc resumed_desc = {
    "l7scope.dataplane._h2frames.FramingResumed",
    "A plausible frame header was found after `skipped` octets that were discarded.",
    resumed_fields, 2};

typedef struct {
    PyObject_HEAD
    h2f_splitter sp;
    int64_t tick;          /* of the current call */
    PyObject *ts_now;      /* the current call's ts (borrowed during the call) */
    PyObject *ts_start;    /* the ts of the call whose tick is sp.ts_start (owned) */
    PyObject *events;      /* the list being filled during a call */
} Splitter;

/* ------------------------------------------------------------------ events -> Python */

static PyObject *ts_object(Splitter *self, int64_t tick) {
    return Py_NewRef(tick == self->tick || !self->ts_start ? self->ts_now : self->ts_start);
}

static PyObject *set_items(PyObject *ev, PyObject **items, int n) {
    for (int i = 0; i < n; i++) {
        if (!items[i]) {
            for (int j = i + 1; j < n; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(ev);
            return NULL;
        }
        PyStructSequence_SET_ITEM(ev, i, items[i]);
    }
    return ev;
}

static PyObject *make_event(Splitter *self, const h2f_event *e) {
    if (e->kind == H2F_EV_FRAME) {
        PyObject *ev = PyStructSequence_New(FrameType);
        PyObject *items[9] = {
            PyLong_FromLong(e->type), PyLong_FromLong(e->flags),
            PyLong_FromUnsignedLong(e->stream_id), PyLong_FromUnsignedLong(e->length),
            PyBytes_FromStringAndSize((const char *)e->payload, e->payload_len),
            ts_object(self, e->ts_start), ts_object(self, e->ts),
            Py_NewRef(e->damaged ? Py_True : Py_False),
            Py_NewRef(e->truncated ? Py_True : Py_False)};
        if (!ev) {
            for (int i = 0; i < 9; i++)
                Py_XDECREF(items[i]);
            return NULL;
        }
        return set_items(ev, items, 9);
    }
    PyObject *ev = PyStructSequence_New(e->kind == H2F_EV_LOST ? LostType : ResumedType);
    PyObject *items[2] = {e->kind == H2F_EV_LOST ? Py_NewRef(lost_text[e->reason])
                                                 : PyLong_FromUnsignedLongLong(e->skipped),
                          ts_object(self, e->ts)};
    if (!ev) {
        Py_XDECREF(items[0]);
        Py_XDECREF(items[1]);
        return NULL;
    }
    return set_items(ev, items, 2);
}

static int append_event(void *ctx, const h2f_event *e) {
    Splitter *self = ctx;
    PyObject *ev = make_event(self, e);
    if (!ev)
        return -1;
    int rc = PyList_Append(self->events, ev);
    Py_DECREF(ev);
    return rc;
}

/* Starts a call: a new tick, the list its events go to. */
static PyObject *begin(Splitter *self, PyObject *ts) {
    self->tick++;
    self->ts_now = ts;
    self->events = PyList_New(0);
    return self->events;
}

/* Ends a call: remember this call's ts if a frame header began in it. */
static PyObject *end(Splitter *self, h2f_result rc) {
    PyObject *events = self->events;
    self->events = NULL;
    if (self->sp.ts_start == self->tick)
        Py_XSETREF(self->ts_start, Py_NewRef(self->ts_now));
    self->ts_now = NULL;
    if (rc == H2F_OK)
        return events;
    Py_DECREF(events);
    if (rc == H2F_ERR_NOMEM)
        return PyErr_NoMemory();
    return NULL; /* H2F_ERR_SINK: the error raised while building an event */
}

/* ------------------------------------------------------------------ FrameSplitter */

static uint32_t clamp_u32(long long v) {
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int Splitter_init(Splitter *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"expect_preface", "in_sync", "payload_cap", "data_capture",
                            "scan_cap", "resync_limit", NULL};
    int expect_preface, in_sync;
    long long payload_cap, data_capture, scan_cap = H2F_DEFAULT_SCAN_CAP;
    long long resync_limit = H2F_DEFAULT_RESYNC_LIMIT;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ppLL|LL", names, &expect_preface, &in_sync,
                                     &payload_cap, &data_capture, &scan_cap, &resync_limit))
        return -1;
    h2f_free(&self->sp);
    Py_CLEAR(self->ts_start);
    self->tick = 0;
    h2f_init(&self->sp, expect_preface, in_sync, clamp_u32(payload_cap), clamp_u32(data_capture),
             scan_cap < 0 ? 0 : (uint64_t)scan_cap, resync_limit);
    return 0;
}

static void Splitter_dealloc(Splitter *self) {
    h2f_free(&self->sp);
    Py_CLEAR(self->ts_start);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Splitter_feed(Splitter *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer data;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "feed(data, ts)");
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (!begin(self, args[1])) {
        PyBuffer_Release(&data);
        return NULL;
    }
    h2f_result rc = h2f_feed(&self->sp, data.buf, (size_t)data.len, self->tick, append_event,
                             self);
    PyBuffer_Release(&data);
    return end(self, rc);
}

static PyObject *Splitter_skip(Splitter *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "skip(length, ts)");
    int overflow;
    long long length = PyLong_AsLongLongAndOverflow(args[0], &overflow);
    if (length == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        length = overflow > 0 ? LLONG_MAX : 0;
    if (!begin(self, args[1]))
        return NULL;
    h2f_result rc = h2f_skip(&self->sp, length < 0 ? 0 : (uint64_t)length, self->tick,
                             append_event, self);
    return end(self, rc);
}

static PyObject *Splitter_finish(Splitter *self, PyObject *ts) {
    if (!begin(self, ts))
        return NULL;
    return end(self, h2f_finish(&self->sp, self->tick, append_event, self));
}

static PyObject *Splitter_memory(Splitter *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromSize_t(h2f_memory(&self->sp));
}

static PyMethodDef Splitter_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Splitter_feed, METH_FASTCALL,
     "feed(data, ts) -> list of Frame / FramingLost / FramingResumed"},
    {"skip", (PyCFunction)(void (*)(void))Splitter_skip, METH_FASTCALL,
     "skip(length, ts): a hole of length octets lost by the capture in this direction"},
    {"finish", (PyCFunction)Splitter_finish, METH_O,
     "finish(ts): end of the direction; a candidate waiting for confirmation is taken"},
    {"memory", (PyCFunction)Splitter_memory, METH_NOARGS,
     "octets buffered: partial header, scan buffer, payload being kept"},
    {NULL, NULL, 0, NULL}};

static PyObject *get_state(Splitter *self, void *c) {
    (void)c;
    return Py_NewRef(state_text[self->sp.state]);
}

static PyObject *get_abandoned(Splitter *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->sp.state == H2F_S_ABANDONED);
}

static PyObject *get_u64(Splitter *self, void *offset) {
    return PyLong_FromUnsignedLongLong(*(uint64_t *)((char *)&self->sp + (size_t)offset));
}

static PyObject *get_u32(Splitter *self, void *offset) {
    return PyLong_FromUnsignedLong(*(uint32_t *)((char *)&self->sp + (size_t)offset));
}

static PyObject *get_resync_limit(Splitter *self, void *c) {
    (void)c;
    return PyLong_FromLongLong(self->sp.resync_limit);
}

/* RFC 9113 6.5.2: SETTINGS_MAX_FRAME_SIZE is between 2^14 and 2^24-1; http2.py checks. */
static int set_max_frame_size(Splitter *self, PyObject *value, void *c) {
    (void)c;
    if (!value)
        return PyErr_SetString(PyExc_AttributeError, "cannot delete max_frame_size"), -1;
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    self->sp.max_frame_size = clamp_u32(v);
    return 0;
}

#define OFF(field) ((void *)offsetof(h2f_splitter, field))
static PyGetSetDef Splitter_getset[] = {
    {"state", (getter)get_state, NULL, "preface, header, payload, resync or abandoned", NULL},
    {"abandoned", (getter)get_abandoned, NULL, "gave up: resync_limit octets without frames",
     NULL},
    {"max_frame_size", (getter)get_u32, (setter)set_max_frame_size,
     "largest frame accepted (raised by the peer's SETTINGS)", OFF(max_frame_size)},
    {"scan_dropped", (getter)get_u64, NULL, "octets discarded looking for a frame header",
     OFF(scan_dropped)},
    {"header_checks", (getter)get_u64, NULL, "full plausibility checks made while scanning",
     OFF(header_checks)},
    {"payload_cap", (getter)get_u32, NULL, NULL, OFF(payload_cap)},
    {"data_capture", (getter)get_u32, NULL, NULL, OFF(data_capture)},
    {"scan_cap", (getter)get_u64, NULL, NULL, OFF(scan_cap)},
    {"resync_limit", (getter)get_resync_limit, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject SplitterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "l7scope.dataplane._h2frames.FrameSplitter",
    .tp_doc = PyDoc_STR("FrameSplitter(expect_preface, in_sync, payload_cap, data_capture, "
                        "scan_cap=65536, resync_limit=262144): one direction's frames"),
    .tp_basicsize = sizeof(Splitter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Splitter_init,
    .tp_dealloc = (destructor)Splitter_dealloc,
    .tp_methods = Splitter_methods,
    .tp_getset = Splitter_getset,
};

/* ------------------------------------------------------------------ header judgements */

static PyObject *py_plausible_header(PyObject *m, PyObject *args) {
    Py_buffer h;
    long long mfs = H2F_DEFAULT_MAX_FRAME_SIZE;
    (void)m;
    if (!PyArg_ParseTuple(args, "y*|L", &h, &mfs))
        return NULL;
    int ok = h.len >= H2F_HEADER_LEN && h2f_plausible_header(h.buf, clamp_u32(mfs));
    PyBuffer_Release(&h);
    return PyBool_FromLong(ok);
}

static PyObject *py_conforming_header(PyObject *m, PyObject *arg) {
    Py_buffer h;
    (void)m;
    if (PyObject_GetBuffer(arg, &h, PyBUF_SIMPLE) < 0)
        return NULL;
    int ok = h.len >= H2F_HEADER_LEN && h2f_conforming_header(h.buf);
    PyBuffer_Release(&h);
    return PyBool_FromLong(ok);
}

static PyObject *py_looks_like_http2(PyObject *m, PyObject *arg) {
    Py_buffer d;
    (void)m;
    if (PyObject_GetBuffer(arg, &d, PyBUF_SIMPLE) < 0)
        return NULL;
    int ok = h2f_looks_like_http2(d.buf, (size_t)d.len);
    PyBuffer_Release(&d);
    return PyBool_FromLong(ok);
}

static PyObject *py_find_plausible_header(PyObject *m, PyObject *args) {
    Py_buffer d;
    long long mfs, start = 0;
    int final;
    (void)m;
    if (!PyArg_ParseTuple(args, "y*Lp|L", &d, &mfs, &final, &start))
        return NULL;
    int64_t at = -1;
    if (start >= 0 && start <= d.len)
        at = h2f_find_plausible_header(d.buf, (size_t)d.len, clamp_u32(mfs), final,
                                       (size_t)start);
    PyBuffer_Release(&d);
    if (at < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(at);
}

static PyMethodDef module_methods[] = {
    {"plausible_header", py_plausible_header, METH_VARARGS,
     "plausible_header(header, max_frame_size=16384): 9 octets a conforming peer would send"},
    {"conforming_header", py_conforming_header, METH_O,
     "conforming_header(header): the rules of its type hold (any length, any type)"},
    {"looks_like_http2", py_looks_like_http2, METH_O,
     "looks_like_http2(data): a first chunk starts HTTP/2 (preface or plausible frames)"},
    {"find_plausible_header", py_find_plausible_header, METH_VARARGS,
     "find_plausible_header(buf, max_frame_size, final, start=0): confirmed offset or None"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_h2frames",
                                        "Compiled HTTP/2 frame splitter (RFC 9113 section 4).",
                                        -1, module_methods, NULL, NULL, NULL, NULL};

static int add_texts(void) {
    for (int i = 0; i < H2F_NLOST; i++)
        if (!(lost_text[i] = PyUnicode_InternFromString(h2f_lost_text((h2f_lost_reason)i))))
            return -1;
    for (int i = 0; i < H2F_NSTATES; i++)
        if (!(state_text[i] = PyUnicode_InternFromString(h2f_state_name((h2f_state)i))))
            return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__h2frames(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (!m || add_texts() < 0 || PyType_Ready(&SplitterType) < 0)
        goto fail;
    if (!(FrameType = PyStructSequence_NewType(&frame_desc)) ||
        !(LostType = PyStructSequence_NewType(&lost_desc)) ||
        !(ResumedType = PyStructSequence_NewType(&resumed_desc)))
        goto fail;
    if (PyModule_AddObjectRef(m, "FrameSplitter", (PyObject *)&SplitterType) < 0 ||
        PyModule_AddObjectRef(m, "Frame", (PyObject *)FrameType) < 0 ||
        PyModule_AddObjectRef(m, "FramingLost", (PyObject *)LostType) < 0 ||
        PyModule_AddObjectRef(m, "FramingResumed", (PyObject *)ResumedType) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_RESYNC_LIMIT", H2F_DEFAULT_RESYNC_LIMIT) < 0 ||
        PyModule_AddIntConstant(m, "NOT_CONFORMING_PENALTY", H2F_NOT_CONFORMING_PENALTY) < 0)
        goto fail;
    return m;
fail:
    Py_XDECREF(m);
    return NULL;
}
