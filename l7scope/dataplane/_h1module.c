/* _h1module.c: the Python face of the compiled HTTP/1 analyzer (h1.h).
 *
 * Http1Analyzer keeps the contract of l7scope.protocols.message: feed/skip/eof return lists
 * of ExchangeParsed, ParseError and ProtocolSwitched holding HttpMessage tuples. The events
 * of the C library are turned into those objects in its sink callback, while the messages'
 * arenas are still alive; nothing else crosses the boundary. Counters the library moves
 * during a call are added to the shared ``counters`` dict (as "http1_<name>") before the
 * call returns. A non-zero return from the library is a bug here: it raises RuntimeError,
 * which the connection table's error boundary turns into a counted, closed connection.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <structmember.h>

#include "h1.h"
#include "pyface.h"

typedef struct {
    PyObject *HttpMessage, *ExchangeParsed, *ParseError, *ProtocolSwitched, *AnalyzerLimits;
    PyObject *empty_tuple, *http1, *zero;
    PyObject *note_text[H1_NOTE_COUNT];    /* str per fixed message note */
    PyObject *xnotes[H1_XNOTE_COUNT];      /* tuple per exchange note */
    PyObject *error_code[H1_ERR_COUNT];
    PyObject *s_protocol, *s_request, *s_response, *s_stream_id, *s_notes, *s_code, *s_detail,
        *s_from_client, *s_ts, *s_to, *s_remainder;
    PyObject *counter_keys[6];
} module_state;

static module_state S; /* one interpreter: the module is initialised once */

static const char *const COUNTER_NAMES[6] = {"dropped_pending", "interim_responses",
                                             "parse_errors", "ignored_bytes",
                                             "discarded_bytes", "lost_heads"};

typedef struct {
    PyObject_HEAD
    h1_analyzer *a;
    PyObject *limits;
    PyObject *shared; /* dict or NULL */
    PyObject *events; /* the list being filled during a call */
    int failed;       /* a Python error happened inside the sink */
    h1_counters last; /* what was already added to shared */
    PyObject *weakrefs;
} Analyzer;

/* ------------------------------------------------------------------ C events -> Python */

static const char *span_at(const h1_msg *m, h1_span s) {
    return s.len ? (const char *)m->arena + s.off : "";
}

/* Short strings repeat (field names, methods, versions, many values): a small direct-mapped
 * cache of the str objects already made saves building them again. Strings are immutable, so
 * sharing them is invisible to callers. */
#define STR_CACHE 512
#define STR_CACHE_LEN 48
static PyObject *str_cache[STR_CACHE];

static PyObject *span_str(const h1_msg *m, h1_span s) {
    const char *p = span_at(m, s);
    if (s.len == 0 || s.len > STR_CACHE_LEN)
        return PyUnicode_DecodeLatin1(p, s.len, NULL);
    uint64_t head = 0, tail = 0; /* the first and last (up to) 8 bytes, and the length */
    memcpy(&head, p, s.len < 8 ? s.len : 8);
    memcpy(&tail, p + (s.len > 8 ? s.len - 8 : 0), s.len < 8 ? s.len : 8);
    uint64_t h = (head * 0x9E3779B97F4A7C15u) ^ (tail * 0xC2B2AE3D27D4EB4Fu) ^ s.len;
    PyObject **slot = &str_cache[(h ^ (h >> 29)) % STR_CACHE], *hit = *slot;
    if (hit && PyUnicode_GET_LENGTH(hit) == s.len && PyUnicode_KIND(hit) == PyUnicode_1BYTE_KIND
        && memcmp(PyUnicode_1BYTE_DATA(hit), p, s.len) == 0)
        return Py_NewRef(hit);
    PyObject *str = PyUnicode_DecodeLatin1(p, s.len, NULL);
    if (str)
        Py_XSETREF(*slot, Py_NewRef(str));
    return str;
}

static PyObject *opt_str(const h1_msg *m, int has, h1_span s) {
    if (!has)
        Py_RETURN_NONE;
    return span_str(m, s);
}

static PyObject *fields_tuple(const h1_msg *m, const h1_field *f, uint32_t n) {
    if (n == 0)
        return Py_NewRef(S.empty_tuple);
    PyObject *t = PyTuple_New(n);
    for (uint32_t i = 0; t && i < n; i++) {
        PyObject *pair = PyTuple_New(2), *k = span_str(m, f[i].name), *v = span_str(m, f[i].value);
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

static PyObject *notes_tuple(const h1_msg *m) {
    if (m->nnotes == 0)
        return Py_NewRef(S.empty_tuple);
    PyObject *t = PyTuple_New(m->nnotes);
    for (uint8_t i = 0; t && i < m->nnotes; i++) {
        int code = m->notes[i].code;
        PyObject *s;
        if (code == H1_NOTE_MALFORMED_FIELDS || code == H1_NOTE_FIELDS_OVER_LIMIT)
            s = PyUnicode_FromFormat("%u %s", (unsigned)m->notes[i].n, h1_note_text(code));
        else
            s = Py_NewRef(S.note_text[code > 0 && code < H1_NOTE_COUNT ? code : 0]);
        if (!s) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static PyObject *message(const h1_msg *m) {
    PyTypeObject *type = (PyTypeObject *)S.HttpMessage;
    PyObject *items[16] = {
        PyBool_FromLong(m->is_request),
        PyLong_FromLongLong(m->start_ns),
        PyLong_FromLongLong(m->end_ns),
        PyLong_FromUnsignedLongLong(m->wire_bytes),
        fields_tuple(m, m->fields, m->nfields),
        opt_str(m, m->has_method, m->method),
        opt_str(m, m->has_path, m->path),
        opt_str(m, m->has_authority, m->authority),
        m->status ? PyLong_FromLong(m->status) : Py_NewRef(Py_None),
        opt_str(m, m->has_version, m->version),
        fields_tuple(m, m->trailers, m->ntrailers),
        PyBytes_FromStringAndSize(span_at(m, m->body), m->body.len),
        PyLong_FromUnsignedLongLong(m->body_len),
        PyBool_FromLong(m->complete),
        notes_tuple(m),
        Py_NewRef(Py_None),
    };
    return pyface_tuple(type, items, 16); /* HttpMessage is a tuple (a NamedTuple) */
}

static PyObject *record(PyObject *cls, int n, PyObject *const *names, PyObject **values) {
    return pyface_record(cls, S.empty_tuple, n, names, values);
}

static PyObject *opt_message(const h1_msg *m) { return m ? message(m) : Py_NewRef(Py_None); }

static PyObject *event_object(const h1_event *ev) {
    if (ev->kind == H1_EV_EXCHANGE) {
        PyObject *names[] = {S.s_protocol, S.s_request, S.s_response, S.s_stream_id, S.s_notes};
        PyObject *values[] = {Py_NewRef(S.http1), opt_message(ev->request),
                              opt_message(ev->response), Py_NewRef(Py_None),
                              Py_NewRef(S.xnotes[ev->note < H1_XNOTE_COUNT ? ev->note : 0])};
        return record(S.ExchangeParsed, 5, names, values);
    }
    if (ev->kind == H1_EV_ERROR) {
        PyObject *names[] = {S.s_code, S.s_detail, S.s_from_client, S.s_ts};
        PyObject *values[] = {Py_NewRef(S.error_code[ev->error < H1_ERR_COUNT ? ev->error : 0]),
                              PyUnicode_DecodeLatin1(ev->detail, ev->detail_len, NULL),
                              PyBool_FromLong(ev->from_client), PyLong_FromLongLong(ev->ts)};
        return record(S.ParseError, 4, names, values);
    }
    PyObject *names[] = {S.s_to, S.s_ts, S.s_remainder, S.s_request};
    PyObject *values[] = {PyUnicode_DecodeLatin1(ev->to, ev->to_len, NULL),
                          PyLong_FromLongLong(ev->ts),
                          PyBytes_FromStringAndSize(
                              ev->remainder_len ? (const char *)ev->remainder : "",
                              ev->remainder_len),
                          opt_message(ev->request)};
    return record(S.ProtocolSwitched, 4, names, values);
}

static void sink(void *ctx, const h1_event *ev) {
    Analyzer *self = ctx;
    if (self->failed || !self->events)
        return;
    PyObject *obj = event_object(ev);
    if (!obj || PyList_Append(self->events, obj) < 0)
        self->failed = 1;
    Py_XDECREF(obj);
}

/* ------------------------------------------------------------------ counters */

static int share_counters(Analyzer *self) {
    h1_counters now;
    h1_get_counters(self->a, &now);
    const uint64_t *cur = &now.dropped_pending, *old = &self->last.dropped_pending;
    for (int i = 0; self->shared && i < 6; i++) {
        if (cur[i] == old[i])
            continue;
        if (pyface_count(self->shared, S.counter_keys[i], cur[i] - old[i]) < 0)
            return -1;
    }
    self->last = now;
    return 0;
}

/* run one library call with a fresh event list; rc is what the library returned */
static PyObject *finish_call(Analyzer *self, int rc) {
    PyObject *events = self->events;
    self->events = NULL;
    if (self->failed) {
        self->failed = 0;
        Py_DECREF(events);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "http1: building events failed");
        return NULL;
    }
    if (share_counters(self) < 0 || rc < 0) {
        Py_DECREF(events);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "http1: analyzer failed (internal error)");
        return NULL;
    }
    return events;
}

static int begin_call(Analyzer *self) {
    if (!self->a) {
        PyErr_SetString(PyExc_RuntimeError, "Http1Analyzer not initialised");
        return -1;
    }
    if (self->events) { /* building events ran Python code (a finalizer) that called us */
        PyErr_SetString(PyExc_RuntimeError, "Http1Analyzer called while it is running");
        return -1;
    }
    self->events = PyList_New(0);
    return self->events ? 0 : -1;
}

/* ------------------------------------------------------------------ the analyzer type */

static int Analyzer_init(Analyzer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"limits", "counters", NULL};
    PyObject *limits = Py_None, *counters = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:Http1Analyzer", kwlist, &limits,
                                     &counters))
        return -1;
    if (self->events) {
        PyErr_SetString(PyExc_RuntimeError, "Http1Analyzer re-initialised while it is running");
        return -1;
    }
    if (counters != Py_None && !PyDict_Check(counters)) {
        PyErr_SetString(PyExc_TypeError, "counters must be a dict or None");
        return -1;
    }
    limits = limits == Py_None ? PyObject_CallNoArgs(S.AnalyzerLimits) : Py_NewRef(limits);
    if (!limits)
        return -1;
    h1_limits lim = {pyface_limit(limits, "max_header_bytes", 65536),
                     pyface_limit(limits, "max_headers", 256),
                     pyface_limit(limits, "body_capture", 4096),
                     pyface_limit(limits, "max_pending", 128)};
    h1_free(self->a);
    self->a = h1_new(&lim, sink, self);
    Py_XSETREF(self->limits, limits);
    Py_XSETREF(self->shared, counters == Py_None ? NULL : Py_NewRef(counters));
    memset(&self->last, 0, sizeof self->last);
    if (!self->a) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; self->shared && i < 6; i++) /* every name present from the start */
        if (!PyDict_Contains(self->shared, S.counter_keys[i])
            && PyDict_SetItem(self->shared, S.counter_keys[i], S.zero) < 0)
            return -1;
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
    h1_free(self->a);
    self->a = NULL;
    Analyzer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A timestamp argument as int64 nanoseconds. Times come from captures too, where a damaged
 * or hostile file can carry any 64-bit value scaled by its resolution: beyond int64 they
 * saturate (a time past the year 2262 is no time to order messages by) instead of failing. */
static int ts_arg(PyObject *obj, long long *ts) {
    int overflow = 0;
    *ts = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow)
        *ts = overflow > 0 ? LLONG_MAX : LLONG_MIN;
    return (*ts == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *Analyzer_feed(Analyzer *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer data;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "feed(from_client, data, ts)");
        return NULL;
    }
    int from_client = PyObject_IsTrue(args[0]);
    long long ts;
    if (from_client < 0 || ts_arg(args[2], &ts) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (begin_call(self) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    int rc = h1_feed(self->a, from_client, data.buf, (size_t)data.len, ts);
    PyBuffer_Release(&data);
    return finish_call(self, rc);
}

static PyObject *Analyzer_skip(Analyzer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "skip(from_client, length, ts)");
        return NULL;
    }
    int from_client = PyObject_IsTrue(args[0]);
    long long ts;
    if (from_client < 0 || ts_arg(args[2], &ts) < 0)
        return NULL;
    int sign = PyObject_RichCompareBool(args[1], S.zero, Py_GT);
    if (sign < 0)
        return NULL;
    unsigned long long len = 0;
    if (sign) {
        len = PyLong_AsUnsignedLongLong(args[1]);
        if (len == (unsigned long long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear(); /* a hole longer than 2**64 bytes is as good as endless */
        }
    }
    if (begin_call(self) < 0)
        return NULL;
    return finish_call(self, h1_skip(self->a, from_client, len, ts));
}

static PyObject *Analyzer_eof(Analyzer *self, PyObject *arg) {
    long long ts;
    if (ts_arg(arg, &ts) < 0)
        return NULL;
    if (begin_call(self) < 0)
        return NULL;
    return finish_call(self, h1_eof(self->a, ts));
}

static PyObject *Analyzer_counters(Analyzer *self, PyObject *Py_UNUSED(ignored)) {
    h1_counters c = {0};
    if (self->a)
        h1_get_counters(self->a, &c);
    return Py_BuildValue("{sKsKsKsKsKsK}", "dropped_pending", c.dropped_pending,
                         "interim_responses", c.interim_responses, "parse_errors",
                         c.parse_errors, "ignored_bytes", c.ignored_bytes, "discarded_bytes",
                         c.discarded_bytes, "lost_heads", c.lost_heads);
}

static PyObject *Analyzer_memory(Analyzer *self, PyObject *Py_UNUSED(ignored)) {
    size_t n = sizeof *self + (self->a ? h1_memory(self->a) : 0);
    return PyLong_FromSize_t(n);
}

static PyObject *counter_get(Analyzer *self, void *closure) {
    h1_counters c = {0};
    if (self->a)
        h1_get_counters(self->a, &c);
    return PyLong_FromUnsignedLongLong((&c.dropped_pending)[(intptr_t)closure]);
}

static PyObject *stopped_get(Analyzer *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->a && h1_stopped(self->a));
}

static PyMethodDef Analyzer_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Analyzer_feed, METH_FASTCALL,
     "feed(from_client, data, ts) -> list of events"},
    {"skip", (PyCFunction)(void (*)(void))Analyzer_skip, METH_FASTCALL,
     "skip(from_client, length, ts) -> list of events: a known-length hole"},
    {"eof", (PyCFunction)Analyzer_eof, METH_O, "eof(ts) -> list of events"},
    {"counters", (PyCFunction)Analyzer_counters, METH_NOARGS, "counters of this connection"},
    {"memory", (PyCFunction)Analyzer_memory, METH_NOARGS, "approximate bytes of state held"},
    {NULL},
};

static PyGetSetDef Analyzer_getset[] = {
    {"stopped", (getter)stopped_get, NULL, "the protocol switched: no longer HTTP/1", NULL},
    {"dropped_pending", (getter)counter_get, NULL, "requests dropped past max_pending",
     (void *)0},
    {"interim_responses", (getter)counter_get, NULL, "1xx responses other than 101", (void *)1},
    {"parse_errors", (getter)counter_get, NULL, "ParseError events emitted", (void *)2},
    {"ignored_bytes", (getter)counter_get, NULL,
     "bytes after a protocol switch or eof, which are not HTTP/1", (void *)3},
    {NULL},
};

static PyMemberDef Analyzer_members[] = {
    {"limits", T_OBJECT, offsetof(Analyzer, limits), READONLY, "the AnalyzerLimits in force"},
    {NULL},
};

static PyTypeObject AnalyzerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._h1.Http1Analyzer",
    .tp_doc = "Http1Analyzer(limits=None, counters=None)\n--\n\n"
              "Sans-IO HTTP/1.x analyzer for one connection (both directions, in observed "
              "order), compiled.",
    .tp_weaklistoffset = offsetof(Analyzer, weakrefs),
    .tp_basicsize = sizeof(Analyzer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Analyzer_init,
    .tp_dealloc = (destructor)Analyzer_dealloc,
    .tp_traverse = (traverseproc)Analyzer_traverse,
    .tp_clear = (inquiry)Analyzer_clear,
    .tp_methods = Analyzer_methods,
    .tp_getset = Analyzer_getset,
    .tp_members = Analyzer_members,
};

/* ------------------------------------------------------------------ module functions */

static PyObject *looks_like(PyObject *arg, int (*check)(const uint8_t *, size_t)) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    int ok = check(b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyBool_FromLong(ok);
}

static PyObject *mod_looks_like_request(PyObject *m, PyObject *arg) {
    (void)m;
    return looks_like(arg, h1_looks_like_request);
}

static PyObject *mod_looks_like_response(PyObject *m, PyObject *arg) {
    (void)m;
    return looks_like(arg, h1_looks_like_response);
}

static PyObject *mod_parse_content_length(PyObject *m, PyObject *arg) {
    (void)m;
    PyObject *seq = PySequence_Fast(arg, "parse_content_length() takes a list of values");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **encoded = PyMem_Calloc((size_t)n + 1, sizeof *encoded);
    const uint8_t **vals = PyMem_Calloc((size_t)n + 1, sizeof *vals);
    size_t *lens = PyMem_Calloc((size_t)n + 1, sizeof *lens);
    PyObject *result = NULL;
    if (!encoded || !vals || !lens) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(seq, i);
        encoded[i] = PyUnicode_Check(v) ? PyUnicode_AsLatin1String(v) : PyBytes_FromObject(v);
        if (!encoded[i] && PyUnicode_Check(v)) { /* not latin-1: never a decimal */
            PyErr_Clear();
            encoded[i] = PyUnicode_AsUTF8String(v);
        }
        if (!encoded[i])
            goto out;
        vals[i] = (const uint8_t *)PyBytes_AS_STRING(encoded[i]);
        lens[i] = (size_t)PyBytes_GET_SIZE(encoded[i]);
    }
    uint64_t value;
    result = h1_parse_content_length(vals, lens, (size_t)n, &value)
                 ? PyLong_FromUnsignedLongLong(value) : Py_NewRef(Py_None);
out:
    for (Py_ssize_t i = 0; encoded && i < n; i++)
        Py_XDECREF(encoded[i]);
    PyMem_Free(encoded);
    PyMem_Free(vals);
    PyMem_Free(lens);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef module_methods[] = {
    {"looks_like_request", mod_looks_like_request, METH_O,
     "data begins with a known method, SP and a request-target; a whole first line must be "
     "an HTTP/1.x request-line"},
    {"looks_like_response", mod_looks_like_response, METH_O,
     "data begins with \"HTTP/1.<digit> <3 digits>\" then SP, CR, LF or nothing"},
    {"parse_content_length", mod_parse_content_length, METH_O,
     "one decimal length from Content-Length values, or None when invalid or conflicting"},
    {NULL},
};

/* The state table as data: STATES, STEPS, TRANSITIONS {(state, step): state}, HANDLED. */
static int add_table(PyObject *mod) {
    PyObject *states = PyTuple_New(H1_STATE_END - 1), *steps = PyTuple_New(H1_STEP_END - 1);
    PyObject *table = PyDict_New(), *handled = PySet_New(NULL);
    if (!states || !steps || !table || !handled)
        goto fail;
    for (int s = 1; s < H1_STATE_END; s++)
        PyTuple_SET_ITEM(states, s - 1, PyUnicode_FromString(h1_state_name(s)));
    for (int t = 1; t < H1_STEP_END; t++)
        PyTuple_SET_ITEM(steps, t - 1, PyUnicode_FromString(h1_step_name(t)));
    for (int s = 1; s < H1_STATE_END; s++) {
        if (h1_state_has_handler(s) && PySet_Add(handled, PyTuple_GET_ITEM(states, s - 1)) < 0)
            goto fail;
        for (int t = 1; t < H1_STEP_END; t++) {
            int next = h1_transition(s, t);
            if (!next)
                continue;
            PyObject *key = PyTuple_Pack(2, PyTuple_GET_ITEM(states, s - 1),
                                         PyTuple_GET_ITEM(steps, t - 1));
            int rc = key ? PyDict_SetItem(table, key, PyTuple_GET_ITEM(states, next - 1)) : -1;
            Py_XDECREF(key);
            if (rc < 0)
                goto fail;
        }
    }
    PyObject *frozen = PyFrozenSet_New(handled);
    Py_DECREF(handled);
    if (PyModule_AddObject(mod, "STATES", states) < 0 || PyModule_AddObject(mod, "STEPS", steps) < 0
        || PyModule_AddObject(mod, "TRANSITIONS", table) < 0
        || PyModule_AddObject(mod, "HANDLED_STATES", frozen) < 0)
        return -1;
    return 0;
fail:
    Py_XDECREF(states);
    Py_XDECREF(steps);
    Py_XDECREF(table);
    Py_XDECREF(handled);
    return -1;
}

static int import_types(void) {
    PyObject *msgmod = PyImport_ImportModule("l7scope.protocols.message");
    if (!msgmod)
        return -1;
    S.HttpMessage = PyObject_GetAttrString(msgmod, "HttpMessage");
    S.ExchangeParsed = PyObject_GetAttrString(msgmod, "ExchangeParsed");
    S.ParseError = PyObject_GetAttrString(msgmod, "ParseError");
    S.ProtocolSwitched = PyObject_GetAttrString(msgmod, "ProtocolSwitched");
    S.AnalyzerLimits = PyObject_GetAttrString(msgmod, "AnalyzerLimits");
    Py_DECREF(msgmod);
    return S.HttpMessage && S.ExchangeParsed && S.ParseError && S.ProtocolSwitched
           && S.AnalyzerLimits ? 0 : -1;
}

/* the strings and tuples events are made of, built once */
static int make_constants(void) {
    PyObject **names[] = {&S.s_protocol, &S.s_request, &S.s_response, &S.s_stream_id,
                          &S.s_notes, &S.s_code, &S.s_detail, &S.s_from_client, &S.s_ts,
                          &S.s_to, &S.s_remainder, &S.http1};
    const char *texts[] = {"protocol", "request", "response", "stream_id", "notes", "code",
                           "detail", "from_client", "ts", "to", "remainder", "http1"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!(*names[i] = PyUnicode_InternFromString(texts[i])))
            return -1;
    if (!(S.empty_tuple = PyTuple_New(0)) || !(S.zero = PyLong_FromLong(0)))
        return -1;
    for (int i = 0; i < H1_NOTE_COUNT; i++)
        if (!(S.note_text[i] = PyUnicode_InternFromString(h1_note_text(i))))
            return -1;
    S.xnotes[0] = Py_NewRef(S.empty_tuple);
    for (int i = 1; i < H1_XNOTE_COUNT; i++)
        if (!(S.xnotes[i] = Py_BuildValue("(s)", h1_exchange_note_text(i))))
            return -1;
    for (int i = 0; i < H1_ERR_COUNT; i++)
        if (!(S.error_code[i] = PyUnicode_InternFromString(h1_error_name(i))))
            return -1;
    for (int i = 0; i < 6; i++)
        if (!(S.counter_keys[i] = PyUnicode_FromFormat("http1_%s", COUNTER_NAMES[i])))
            return -1;
    return 0;
}

static PyObject *string_tuple(const char *const *texts, size_t n) {
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(texts[i]);
        if (!s)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, (Py_ssize_t)i, s);
    }
    return t;
}

static int init_state(PyObject *mod) {
    if (import_types() < 0 || make_constants() < 0)
        return -1;
    if (PyModule_AddObject(mod, "KNOWN_METHODS",
                           string_tuple(h1_known_methods, h1_known_methods_count)) < 0
        || PyModule_AddObject(mod, "COUNTERS", string_tuple(COUNTER_NAMES, 6)) < 0
        || PyModule_AddIntConstant(mod, "MAX_CHUNK_LINE", H1_MAX_CHUNK_LINE) < 0
        || PyModule_AddIntConstant(mod, "MAX_SYNC_LINE", H1_MAX_SYNC_LINE) < 0)
        return -1;
    return add_table(mod);
}

static struct PyModuleDef h1module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_h1",
    .m_doc = "The compiled HTTP/1.x analyzer (l7scope/dataplane/h1.c) and its helpers.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__h1(void) {
    /* the analyzers' state is Python's memory to tracemalloc (the raw domain needs no GIL) */
    h1_set_allocator(PyMem_RawMalloc, PyMem_RawRealloc, PyMem_RawFree);
    if (PyType_Ready(&AnalyzerType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&h1module);
    if (!mod)
        return NULL;
    if (init_state(mod) < 0 || PyModule_AddObjectRef(mod, "Http1Analyzer",
                                                     (PyObject *)&AnalyzerType) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    PyObject *proto = PyUnicode_InternFromString("http1");
    if (!proto || PyDict_SetItemString(AnalyzerType.tp_dict, "protocol", proto) < 0) {
        Py_XDECREF(proto);
        Py_DECREF(mod);
        return NULL;
    }
    Py_DECREF(proto);
    PyType_Modified(&AnalyzerType);
    return mod;
}
