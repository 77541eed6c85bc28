/* _h2module.c: the Python face of the compiled HTTP/2 analyzer (h2conn.h).
 *
 * Http2Analyzer keeps the contract of l7scope.protocols.message: feed/skip/eof return lists
 * of ExchangeParsed and ParseError holding HttpMessage tuples. Frames never become Python
 * objects: the library handles every frame in C and hands this face only a stream's finished
 * exchange (its messages' field octets, notes and body prefix, alive during the callback) and
 * parse errors; they are turned into Python values in the library's emit callback. Field text
 * is the octets as UTF-8 when valid, else latin-1 (as the HPACK face decodes them). Counters
 * the library moves during a call are added to the shared ``counters`` dict (as
 * "http2_<name>", a key appearing when its counter first moves) before the call returns. A
 * non-zero return from the library (allocation failure, or an error raised while building an
 * event) raises; the connection table's error boundary turns that into a counted, closed
 * connection.
 *
 * Timestamps are signed 64-bit nanoseconds in the library: a ts outside that range is clamped
 * to it (monotonic and capture clocks are far inside it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>

#include "h2conn.h"
#include "pyface.h"

typedef struct {
    PyObject *HttpMessage, *ExchangeParsed, *ParseError, *AnalyzerLimits;
    PyObject *empty_tuple, *http2, *grpc, *version, *no_response_headers;
    PyObject *error_code[H2C_NERRORS];
    PyObject *counter_keys[H2C_NCOUNTERS], *counter_names[H2C_NCOUNTERS];
    PyObject *s_protocol, *s_request, *s_response, *s_stream_id, *s_notes, *s_code, *s_detail,
        *s_from_client, *s_ts;
} module_state;

static module_state S; /* one interpreter: the module is initialised once */

typedef struct {
    PyObject_HEAD
    h2c_conn *c;
    PyObject *limits;
    PyObject *shared; /* dict or NULL */
    PyObject *events; /* the list being filled during a call */
    int failed;       /* a Python error happened inside the sink */
    uint64_t last[H2C_NCOUNTERS]; /* what was already added to shared */
    PyObject *weakrefs;
} Analyzer;

/* ------------------------------------------------------------------ C events -> Python */

/* Short ASCII strings repeat (field names, methods, many values): a small direct-mapped
 * cache of the str objects already made saves building them again. */
#define STR_CACHE 512
#define STR_CACHE_LEN 48
static PyObject *str_cache[STR_CACHE];

static PyObject *ascii_str(const char *p, uint32_t len) {
    if (len == 0 || len > STR_CACHE_LEN)
        return PyUnicode_DecodeLatin1(p, len, NULL);
    uint64_t head = 0, tail = 0;
    memcpy(&head, p, len < 8 ? len : 8);
    memcpy(&tail, p + (len > 8 ? len - 8 : 0), len < 8 ? len : 8);
    uint64_t h = (head * 0x9E3779B97F4A7C15u) ^ (tail * 0xC2B2AE3D27D4EB4Fu) ^ len;
    PyObject **slot = &str_cache[(h ^ (h >> 29)) % STR_CACHE], *hit = *slot;
    if (hit && PyUnicode_GET_LENGTH(hit) == len && PyUnicode_KIND(hit) == PyUnicode_1BYTE_KIND
        && memcmp(PyUnicode_1BYTE_DATA(hit), p, len) == 0)
        return Py_NewRef(hit);
    PyObject *str = PyUnicode_DecodeLatin1(p, len, NULL);
    if (str)
        Py_XSETREF(*slot, Py_NewRef(str));
    return str;
}

/* Octets as text: UTF-8 where valid (utf8), else latin-1; chars: the text's length. */
static PyObject *text(const uint8_t *p, uint32_t len, int utf8, uint32_t chars) {
    if (utf8 && chars == len)
        return ascii_str((const char *)p, len);
    if (utf8)
        return PyUnicode_DecodeUTF8((const char *)p, len, NULL);
    return PyUnicode_DecodeLatin1((const char *)p, len, NULL);
}

static PyObject *field_text(const h2c_message *m, h2c_span s, int utf8, uint32_t chars) {
    return text(m->arena.buf ? m->arena.buf + s.off : (const uint8_t *)"", s.len, utf8, chars);
}

static PyObject *fields_tuple(const h2c_message *m, const h2c_fields *fields) {
    if (fields->n == 0)
        return Py_NewRef(S.empty_tuple);
    PyObject *t = PyTuple_New(fields->n);
    for (uint32_t i = 0; t && i < fields->n; i++) {
        const h2c_field *f = &fields->items[i];
        PyObject *pair = PyTuple_New(2);
        PyObject *k = field_text(m, f->name, f->name_utf8, f->name_chars);
        PyObject *v = field_text(m, f->value, f->value_utf8, f->value_chars);
        if (!pair || !k || !v) {
            Py_XDECREF(pair);
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(pair, 0, k);
        PyTuple_SET_ITEM(pair, 1, v);
        PyTuple_SET_ITEM(t, i, pair);
    }
    return t;
}

static PyObject *pseudo(const h2c_message *m, int32_t index) {
    if (index < 0)
        Py_RETURN_NONE;
    const h2c_field *f = &m->headers.items[index];
    return field_text(m, f->value, f->value_utf8, f->value_chars);
}

/* "bad :status {raw[:16]!r}" */
static PyObject *bad_status_note(const h2c_message *m, int32_t index) {
    PyObject *raw = pseudo(m, index);
    PyObject *cut = raw ? PyUnicode_Substring(raw, 0, 16) : NULL;
    PyObject *note = cut ? PyUnicode_FromFormat("bad :status %R", cut) : NULL;
    Py_XDECREF(raw);
    Py_XDECREF(cut);
    return note;
}

static PyObject *notes_tuple(const h2c_msg_view *v) {
    const h2c_message *m = v->m;
    int bad_status = v->status_raw >= 0 && !v->status;
    Py_ssize_t n = m->nnotes + v->headers_not_seen + bad_status, i = 0;
    if (n == 0)
        return Py_NewRef(S.empty_tuple);
    PyObject *t = PyTuple_New(n);
    for (; t && i < m->nnotes; i++) {
        uint32_t chars;
        const uint8_t *p = m->arena.buf ? m->arena.buf + m->notes[i].off : (const uint8_t *)"";
        int utf8 = h2c_utf8_chars(p, m->notes[i].len, &chars);
        PyObject *s = text(p, m->notes[i].len, utf8, chars);
        if (!s)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, s);
    }
    if (t && v->headers_not_seen)
        PyTuple_SET_ITEM(t, i++, Py_NewRef(S.no_response_headers));
    if (t && bad_status) {
        PyObject *s = bad_status_note(m, v->status_raw);
        if (!s)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static PyObject *message(const h2c_msg_view *v, uint32_t stream_id) {
    if (!v)
        Py_RETURN_NONE;
    const h2c_message *m = v->m;
    PyTypeObject *type = (PyTypeObject *)S.HttpMessage;
    PyObject *items[16] = {
        PyBool_FromLong(v->is_request),
        PyLong_FromLongLong(v->start_ns),
        PyLong_FromLongLong(m->end_ns),
        PyLong_FromUnsignedLongLong(m->wire_bytes),
        fields_tuple(m, &m->headers),
        pseudo(m, v->method),
        pseudo(m, v->path),
        pseudo(m, v->authority),
        v->status ? PyLong_FromLong(v->status) : Py_NewRef(Py_None),
        Py_NewRef(S.version),
        fields_tuple(m, &m->trailers),
        PyBytes_FromStringAndSize(m->body.buf ? (const char *)m->body.buf : "",
                                  (Py_ssize_t)m->body.len),
        PyLong_FromUnsignedLongLong(m->body_len),
        PyBool_FromLong(m->ended),
        notes_tuple(v),
        PyLong_FromUnsignedLong(stream_id),
    };
    return pyface_tuple(type, items, 16); /* HttpMessage is a tuple (a NamedTuple) */
}

static PyObject *record(PyObject *cls, int n, PyObject *const *names, PyObject **values) {
    return pyface_record(cls, S.empty_tuple, n, names, values);
}

static PyObject *exchange_notes(const h2c_event *ev) {
    PyObject *t = PyTuple_New(ev->nnotes);
    for (uint32_t i = 0; t && i < ev->nnotes; i++) {
        PyObject *s = PyUnicode_FromString(ev->notes[i]);
        if (!s)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static PyObject *event_object(const h2c_event *ev) {
    if (ev->kind == H2C_EV_EXCHANGE) {
        PyObject *names[] = {S.s_protocol, S.s_request, S.s_response, S.s_stream_id, S.s_notes};
        PyObject *values[] = {Py_NewRef(ev->grpc ? S.grpc : S.http2),
                              message(ev->request, ev->stream_id),
                              message(ev->response, ev->stream_id),
                              PyLong_FromUnsignedLong(ev->stream_id), exchange_notes(ev)};
        return record(S.ExchangeParsed, 5, names, values);
    }
    PyObject *names[] = {S.s_code, S.s_detail, S.s_from_client, S.s_ts};
    PyObject *values[] = {Py_NewRef(S.error_code[ev->code < H2C_NERRORS ? ev->code : 0]),
                          PyUnicode_FromString(ev->detail), PyBool_FromLong(ev->from_client),
                          PyLong_FromLongLong(ev->ts)};
    return record(S.ParseError, 4, names, values);
}

static int sink(void *ctx, const h2c_event *ev) {
    Analyzer *self = ctx;
    if (self->failed || !self->events)
        return -1;
    PyObject *obj = event_object(ev);
    if (!obj || PyList_Append(self->events, obj) < 0)
        self->failed = 1;
    Py_XDECREF(obj);
    return self->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ counters */

static int share_counters(Analyzer *self) {
    const uint64_t *now = h2c_counters(self->c);
    for (int i = 0; i < H2C_NCOUNTERS; i++) {
        if (now[i] == self->last[i])
            continue;
        uint64_t delta_n = now[i] - self->last[i];
        self->last[i] = now[i];
        if (!self->shared)
            continue;
        if (pyface_count(self->shared, S.counter_keys[i], delta_n) < 0)
            return -1;
    }
    return 0;
}

static PyObject *finish_call(Analyzer *self, h2c_result rc) {
    PyObject *events = self->events;
    self->events = NULL;
    int failed = self->failed;
    self->failed = 0;
    if (share_counters(self) < 0 || failed || rc != H2C_OK) {
        Py_DECREF(events);
        if (!PyErr_Occurred()) {
            if (rc == H2C_ERR_NOMEM)
                return PyErr_NoMemory();
            PyErr_SetString(PyExc_RuntimeError, "http2: analyzer failed (internal error)");
        }
        return NULL;
    }
    return events;
}

static int begin_call(Analyzer *self) {
    if (!self->c) {
        PyErr_SetString(PyExc_RuntimeError, "Http2Analyzer not initialised");
        return -1;
    }
    if (self->events) { /* building events ran Python code (a finalizer) that called us */
        PyErr_SetString(PyExc_RuntimeError, "Http2Analyzer called while it is running");
        return -1;
    }
    self->events = PyList_New(0);
    return self->events ? 0 : -1;
}

static int as_ts(PyObject *obj, int64_t *ts) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *ts = overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : v;
    return 0;
}

/* ------------------------------------------------------------------ the analyzer type */

static int Analyzer_init(Analyzer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"limits", "seen_from_start", "counters", "max_stream_bytes", NULL};
    PyObject *limits = Py_None, *counters = Py_None;
    int seen_from_start = 1;
    unsigned long long max_stream_bytes = H2C_DEFAULT_MAX_STREAM_BYTES;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OpOK", kwlist, &limits, &seen_from_start,
                                     &counters, &max_stream_bytes))
        return -1;
    if (counters != Py_None && !PyDict_Check(counters)) {
        PyErr_SetString(PyExc_TypeError, "counters must be a dict or None");
        return -1;
    }
    int given = limits != Py_None && PyObject_IsTrue(limits) > 0;
    PyObject *lim = given ? Py_NewRef(limits) : PyObject_CallNoArgs(S.AnalyzerLimits);
    if (!lim)
        return -1;
    h2c_limits l = {pyface_limit(lim, "max_header_bytes", 65536), pyface_limit(lim, "max_headers", 256),
                    pyface_limit(lim, "body_capture", 4096), pyface_limit(lim, "max_pending", 128),
                    max_stream_bytes};
    h2c_conn *c = h2c_new(&l, seen_from_start);
    if (!c) {
        Py_DECREF(lim);
        PyErr_NoMemory();
        return -1;
    }
    h2c_free(self->c);
    self->c = c;
    memset(self->last, 0, sizeof self->last);
    Py_XSETREF(self->limits, lim);
    Py_XSETREF(self->shared, counters == Py_None ? NULL : Py_NewRef(counters));
    return 0;
}

static int Analyzer_traverse(Analyzer *self, visitproc visit, void *arg) {
    Py_VISIT(self->limits);
    Py_VISIT(self->shared);
    Py_VISIT(self->events);
    return 0;
}

static int Analyzer_clear(Analyzer *self) {
    Py_CLEAR(self->limits);
    Py_CLEAR(self->shared);
    Py_CLEAR(self->events);
    return 0;
}

static void Analyzer_dealloc(Analyzer *self) {
    PyObject_GC_UnTrack(self);
    if (self->weakrefs)
        PyObject_ClearWeakRefs((PyObject *)self);
    Analyzer_clear(self);
    h2c_free(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Analyzer_feed(Analyzer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "feed(from_client, data, ts)");
    int from_client = PyObject_IsTrue(args[0]);
    int64_t ts;
    Py_buffer data;
    if (from_client < 0 || as_ts(args[2], &ts) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (begin_call(self) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    h2c_result rc = h2c_feed(self->c, from_client, data.buf, (size_t)data.len, ts, sink, self);
    PyBuffer_Release(&data);
    return finish_call(self, rc);
}

static PyObject *Analyzer_skip(Analyzer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "skip(from_client, length, ts)");
    int from_client = PyObject_IsTrue(args[0]), overflow;
    int64_t ts;
    if (from_client < 0 || as_ts(args[2], &ts) < 0)
        return NULL;
    long long length = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (length == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        length = overflow > 0 ? LLONG_MAX : 0;
    if (begin_call(self) < 0)
        return NULL;
    return finish_call(self, h2c_skip(self->c, from_client, length < 0 ? 0 : (uint64_t)length,
                                      ts, sink, self));
}

static PyObject *Analyzer_eof(Analyzer *self, PyObject *ts_obj) {
    int64_t ts;
    if (as_ts(ts_obj, &ts) < 0 || begin_call(self) < 0)
        return NULL;
    return finish_call(self, h2c_eof(self->c, ts, sink, self));
}

static PyObject *Analyzer_memory(Analyzer *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(self->c ? h2c_memory(self->c) : 0);
}

static PyObject *Analyzer_counters(Analyzer *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < H2C_NCOUNTERS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->c ? h2c_counters(self->c)[i] : 0);
        if (!v || PyDict_SetItem(d, S.counter_names[i], v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

/* The UTF-8 octets of a str (surrogates, which no decoded field holds, are refused). */
static int utf8_of(PyObject *s, const uint8_t **p, uint32_t *len) {
    Py_ssize_t n;
    const char *u = PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
    if (!u) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "text expected");
        return -1;
    }
    if (n > UINT32_MAX / 4)
        return PyErr_SetString(PyExc_ValueError, "text too long"), -1;
    *p = (const uint8_t *)u;
    *len = (uint32_t)n;
    return 0;
}

/* _upgraded(fields, start_ns, end_ns, wire_bytes, body, body_len, notes): stream 1's request
 * after an h2c upgrade; fields are (name, value) str pairs as HTTP/2 shows them. */
static PyObject *Analyzer_upgraded(Analyzer *self, PyObject *args) {
    PyObject *fields, *notes, *start, *end;
    unsigned long long wire_bytes, body_len;
    Py_buffer body;
    if (!self->c)
        return PyErr_Format(PyExc_RuntimeError, "Http2Analyzer not initialised");
    if (!PyArg_ParseTuple(args, "O!OOKy*KO!", &PyList_Type, &fields, &start, &end, &wire_bytes,
                          &body, &body_len, &PyTuple_Type, &notes))
        return NULL;
    Py_ssize_t nf = PyList_GET_SIZE(fields), nn = PyTuple_GET_SIZE(notes);
    const uint8_t **ptrs = PyMem_Calloc((size_t)(2 * nf + nn) + 1, sizeof *ptrs);
    uint32_t *lens = PyMem_Calloc((size_t)(2 * nf + nn) + 1, sizeof *lens);
    h2c_upgrade r = {.nfields = (uint32_t)nf, .nnotes = (uint32_t)nn, .body = body.buf,
                     .body_len_kept = (uint32_t)body.len, .body_len = body_len,
                     .wire_bytes = wire_bytes};
    int ok = ptrs && lens && as_ts(start, &r.start_ns) == 0 && as_ts(end, &r.end_ns) == 0 &&
             body.len <= UINT32_MAX;
    for (Py_ssize_t i = 0; ok && i < nf; i++) {
        PyObject *pair = PyList_GET_ITEM(fields, i);
        ok = PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 &&
             utf8_of(PyTuple_GET_ITEM(pair, 0), &ptrs[i], &lens[i]) == 0 &&
             utf8_of(PyTuple_GET_ITEM(pair, 1), &ptrs[nf + i], &lens[nf + i]) == 0;
    }
    for (Py_ssize_t i = 0; ok && i < nn; i++)
        ok = utf8_of(PyTuple_GET_ITEM(notes, i), &ptrs[2 * nf + i], &lens[2 * nf + i]) == 0;
    h2c_result rc = H2C_OK;
    if (ok) {
        r.names = ptrs, r.values = ptrs + nf, r.notes = ptrs + 2 * nf;
        r.name_lens = lens, r.value_lens = lens + nf, r.note_lens = lens + 2 * nf;
        rc = h2c_upgraded(self->c, &r);
    }
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    PyBuffer_Release(&body);
    if (!ok) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "fields: list of (str, str); notes: tuple of str");
        return NULL;
    }
    if (rc != H2C_OK)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Analyzer_direction(Analyzer *self, PyObject *arg) {
    int from_client = PyObject_IsTrue(arg);
    if (from_client < 0)
        return NULL;
    if (!self->c)
        return PyErr_Format(PyExc_RuntimeError, "Http2Analyzer not initialised");
    return Py_BuildValue("KKk", (unsigned long long)h2c_table_size(self->c, from_client),
                         (unsigned long long)h2c_max_table_size(self->c, from_client),
                         (unsigned long)h2c_max_frame_size(self->c, from_client));
}

static PyObject *get_limits(Analyzer *self, void *c) {
    (void)c;
    return Py_NewRef(self->limits ? self->limits : Py_None);
}

static PyObject *get_dropped_streams(Analyzer *self, void *c) {
    (void)c;
    return PyLong_FromUnsignedLongLong(self->c ? h2c_counters(self->c)[H2C_DROPPED_STREAMS] : 0);
}

static PyObject *get_abandoned(Analyzer *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->c && h2c_abandoned(self->c));
}

static PyMethodDef Analyzer_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Analyzer_feed, METH_FASTCALL,
     "feed(from_client, data, ts) -> list of ExchangeParsed / ParseError"},
    {"skip", (PyCFunction)(void (*)(void))Analyzer_skip, METH_FASTCALL,
     "skip(from_client, length, ts): a hole of length octets in that direction"},
    {"eof", (PyCFunction)Analyzer_eof, METH_O,
     "eof(ts): the connection ended; open streams come out, partial"},
    {"memory", (PyCFunction)Analyzer_memory, METH_NOARGS, "approximate bytes held"},
    {"counters", (PyCFunction)Analyzer_counters, METH_NOARGS, "counters of this connection"},
    {"_upgraded", (PyCFunction)Analyzer_upgraded, METH_VARARGS,
     "_upgraded(fields, start_ns, end_ns, wire_bytes, body, body_len, notes): h2c stream 1"},
    {"_direction", (PyCFunction)Analyzer_direction, METH_O,
     "_direction(from_client) -> (hpack table_size, max_table_size, splitter max_frame_size)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Analyzer_getset[] = {
    {"limits", (getter)get_limits, NULL, "the AnalyzerLimits in force", NULL},
    {"dropped_streams", (getter)get_dropped_streams, NULL,
     "open streams flushed early because of the bound on their number", NULL},
    {"abandoned", (getter)get_abandoned, NULL, "analysis stopped: no frame header found", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject AnalyzerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "l7scope.dataplane._h2.Http2Analyzer",
    .tp_doc = "Http2Analyzer(limits=None, seen_from_start=True, counters=None, "
              "max_stream_bytes=1048576)\n--\n\nPairs HTTP/2 requests and responses per stream.",
    .tp_basicsize = sizeof(Analyzer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Analyzer_init,
    .tp_dealloc = (destructor)Analyzer_dealloc,
    .tp_traverse = (traverseproc)Analyzer_traverse,
    .tp_clear = (inquiry)Analyzer_clear,
    .tp_methods = Analyzer_methods,
    .tp_getset = Analyzer_getset,
    .tp_weaklistoffset = offsetof(Analyzer, weakrefs),
};

/* ------------------------------------------------------------------ module */

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_h2", "Compiled HTTP/2 and gRPC analyzer (RFC 9113, RFC 7541).", -1,
    NULL, NULL, NULL, NULL, NULL};

static int intern_all(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&S.http2, "http2"}, {&S.grpc, "grpc"}, {&S.version, "HTTP/2"},
        {&S.no_response_headers, "response headers not seen"},
        {&S.s_protocol, "protocol"}, {&S.s_request, "request"}, {&S.s_response, "response"},
        {&S.s_stream_id, "stream_id"}, {&S.s_notes, "notes"}, {&S.s_code, "code"},
        {&S.s_detail, "detail"}, {&S.s_from_client, "from_client"}, {&S.s_ts, "ts"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!(*names[i].slot = PyUnicode_InternFromString(names[i].text)))
            return -1;
    for (int i = 0; i < H2C_NERRORS; i++)
        if (!(S.error_code[i] = PyUnicode_InternFromString(h2c_error_code[i])))
            return -1;
    for (int i = 0; i < H2C_NCOUNTERS; i++) {
        S.counter_names[i] = PyUnicode_InternFromString(h2c_counter_name[i]);
        S.counter_keys[i] = PyUnicode_FromFormat("http2_%s", h2c_counter_name[i]);
        if (!S.counter_names[i] || !S.counter_keys[i])
            return -1;
    }
    return (S.empty_tuple = PyTuple_New(0)) ? 0 : -1;
}

static int import_types(void) {
    PyObject *msgmod = PyImport_ImportModule("l7scope.protocols.message");
    if (!msgmod)
        return -1;
    S.HttpMessage = PyObject_GetAttrString(msgmod, "HttpMessage");
    S.ExchangeParsed = PyObject_GetAttrString(msgmod, "ExchangeParsed");
    S.ParseError = PyObject_GetAttrString(msgmod, "ParseError");
    S.AnalyzerLimits = PyObject_GetAttrString(msgmod, "AnalyzerLimits");
    Py_DECREF(msgmod);
    return S.HttpMessage && S.ExchangeParsed && S.ParseError && S.AnalyzerLimits ? 0 : -1;
}

PyMODINIT_FUNC PyInit__h2(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (!m || intern_all() < 0 || import_types() < 0 || PyType_Ready(&AnalyzerType) < 0)
        goto fail;
    PyObject *counter_names = PyTuple_New(H2C_NCOUNTERS);
    for (int i = 0; counter_names && i < H2C_NCOUNTERS; i++)
        PyTuple_SET_ITEM(counter_names, i, Py_NewRef(S.counter_names[i]));
    if (!counter_names || PyModule_AddObject(m, "COUNTER_NAMES", counter_names) < 0) {
        Py_XDECREF(counter_names);
        goto fail;
    }
    if (PyModule_AddObjectRef(m, "Http2Analyzer", (PyObject *)&AnalyzerType) < 0 ||
        PyModule_AddIntConstant(m, "CONNECTION_OVERHEAD", H2C_CONNECTION_OVERHEAD) < 0 ||
        PyModule_AddIntConstant(m, "STREAM_OVERHEAD", H2C_STREAM_OVERHEAD) < 0 ||
        PyModule_AddIntConstant(m, "CLOSED_ID_COST", H2C_CLOSED_ID_COST) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ACCEPTED_TABLE_SIZE", H2C_MAX_ACCEPTED_TABLE_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_MAX_STREAM_BYTES", H2C_DEFAULT_MAX_STREAM_BYTES) < 0)
        goto fail;
    return m;
fail:
    Py_XDECREF(m);
    return NULL;
}
