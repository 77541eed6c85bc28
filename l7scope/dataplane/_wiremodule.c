/* _wiremodule.c: ring-buffer DATA records (struct l7_event, bpf/l7scope.h) into DataChunk
 * events, a batch per call.
 *
 * DataDecoder(layout, numbers, chunk_type, roles, syscalls, cache) is made once by
 * capture/wire.py:
 *   layout     {field name: (offset, size)} of struct l7_event, from wire_layout.py (which
 *              scripts/gen_wire_layout.py generates from the header): nothing here is a copy
 *              of the C struct, and every offset is checked against the header once;
 *   numbers    (L7_KIND_DATA, L7_DIR_EGRESS, L7_FLAG_TLS), from the same place;
 *   chunk_type DataChunk (capture/events.py), made with its 17 fields in order;
 *   roles      a tuple: role number -> Role member (anything else: roles[0]);
 *   syscalls   a tuple: syscall number -> name or None;
 *   cache      the dict {endpoint bytes: (local, remote, comm) or None} that wire.py fills.
 *
 * decode(records) -> (events, rest): each record of kind DATA whose endpoint part is in the
 * cache becomes a DataChunk in ``events``, in order; every other record (other kinds, a
 * record shorter than its header or than its payload, an endpoint part not cached yet) is
 * appended to ``rest`` as (position in events, record) for wire.py to decode and insert, so
 * the order of events is the order of records. A record is read only within its own length.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { F_TS_ENTER, F_TS_EXIT, F_CONN_ID, F_TGID, F_TID, F_FD, F_SEQ, F_CHUNK_OFF, F_CHUNK_LEN,
       F_DATA_LEN, F_KIND, F_DIRECTION, F_SYSCALL, F_ROLE, F_FAMILY, F_FLAGS, F_DATA, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {
    "ts_enter", "ts_exit", "conn_id", "tgid", "tid", "fd", "seq", "chunk_off", "chunk_len",
    "data_len", "kind", "direction", "syscall", "role", "family", "flags", "data"};
static const Py_ssize_t FIELD_SIZES[F_COUNT] = {8, 8, 8, 4, 4, 4, 4, 4, 4, 2, 1, 1, 1, 1, 1, 1, 0};

typedef struct {
    PyObject_HEAD
    Py_ssize_t at[F_COUNT];
    unsigned kind_data, dir_egress, flag_tls; /* enum l7_kind, l7_direction, L7_FLAG_TLS */
    Py_ssize_t header_len;  /* where the payload starts */
    Py_ssize_t key_at;      /* the endpoint part: family .. the end of the header */
    PyObject *chunk_type, *roles, *syscalls, *cache;
} DataDecoder;

static uint64_t rd(const unsigned char *p, Py_ssize_t n) { /* little-endian, n <= 8 */
    uint64_t v = 0;
    for (Py_ssize_t i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int DataDecoder_traverse(DataDecoder *self, visitproc visit, void *arg) {
    Py_VISIT(self->chunk_type);
    Py_VISIT(self->roles);
    Py_VISIT(self->syscalls);
    Py_VISIT(self->cache);
    return 0;
}

static int DataDecoder_clear(DataDecoder *self) {
    Py_CLEAR(self->chunk_type);
    Py_CLEAR(self->roles);
    Py_CLEAR(self->syscalls);
    Py_CLEAR(self->cache);
    return 0;
}

static void DataDecoder_dealloc(DataDecoder *self) {
    PyObject_GC_UnTrack(self);
    DataDecoder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int read_layout(DataDecoder *self, PyObject *layout) {
    for (int f = 0; f < F_COUNT; f++) {
        PyObject *spec = PyDict_GetItemString(layout, FIELD_NAMES[f]);
        Py_ssize_t off, size;
        if (spec == NULL || !PyTuple_Check(spec) || !PyArg_ParseTuple(spec, "nn", &off, &size)) {
            PyErr_Format(PyExc_ValueError, "layout: no (offset, size) for %s", FIELD_NAMES[f]);
            return -1;
        }
        if (off < 0 || off > 4096 || (FIELD_SIZES[f] && size != FIELD_SIZES[f])) {
            PyErr_Format(PyExc_ValueError, "layout: %s is not a field of the expected size",
                         FIELD_NAMES[f]);
            return -1;
        }
        self->at[f] = off;
    }
    self->header_len = self->at[F_DATA];
    self->key_at = self->at[F_FAMILY];
    for (int f = 0; f < F_DATA; f++) {
        if (self->at[f] + FIELD_SIZES[f] > self->header_len) {
            PyErr_Format(PyExc_ValueError, "layout: %s lies past the header", FIELD_NAMES[f]);
            return -1;
        }
    }
    return 0;
}

static int DataDecoder_init(DataDecoder *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"layout", "numbers", "chunk_type", "roles", "syscalls", "cache",
                            NULL};
    PyObject *layout, *chunk_type, *roles, *syscalls, *cache;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!(III)OO!O!O!", names, &PyDict_Type, &layout,
                                     &self->kind_data, &self->dir_egress, &self->flag_tls,
                                     &chunk_type, &PyTuple_Type, &roles, &PyTuple_Type,
                                     &syscalls, &PyDict_Type, &cache))
        return -1;
    if (!PyType_Check(chunk_type) || !PyType_IsSubtype((PyTypeObject *)chunk_type, &PyTuple_Type)
        || ((PyTypeObject *)chunk_type)->tp_basicsize != PyTuple_Type.tp_basicsize
        || ((PyTypeObject *)chunk_type)->tp_itemsize != PyTuple_Type.tp_itemsize
        || PyTuple_GET_SIZE(roles) == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "chunk_type: a tuple type with no fields of its own; roles: not empty");
        return -1;
    }
    if (read_layout(self, layout) < 0)
        return -1;
    Py_XSETREF(self->chunk_type, Py_NewRef(chunk_type));
    Py_XSETREF(self->roles, Py_NewRef(roles));
    Py_XSETREF(self->syscalls, Py_NewRef(syscalls));
    Py_XSETREF(self->cache, Py_NewRef(cache));
    return 0;
}

/* The DataChunk's 17 fields, in capture/events.py's order. */
static PyObject *chunk(DataDecoder *self, const unsigned char *r, PyObject *ends) {
    uint64_t ts_enter = rd(r + self->at[F_TS_ENTER], 8), ts_exit = rd(r + self->at[F_TS_EXIT], 8);
    unsigned data_len = (unsigned)rd(r + self->at[F_DATA_LEN], 2);
    int egress = r[self->at[F_DIRECTION]] == self->dir_egress;
    unsigned role = r[self->at[F_ROLE]], sys = r[self->at[F_SYSCALL]];
    uint32_t seq = (uint32_t)(rd(r + self->at[F_SEQ], 4) + rd(r + self->at[F_CHUNK_OFF], 4));
    /* allocated as the tuple subclass it is (what tuple.__new__(DataChunk, ...) does) */
    PyTypeObject *type = (PyTypeObject *)self->chunk_type;
    PyObject *t = type->tp_alloc(type, 17);
    if (t == NULL)
        return NULL;
    PyObject *syscall = sys < PyTuple_GET_SIZE(self->syscalls)
        ? PyTuple_GET_ITEM(self->syscalls, sys) : Py_None;
    PyObject *role_obj = PyTuple_GET_ITEM(self->roles,
                                          role < PyTuple_GET_SIZE(self->roles) ? role : 0);
    PyObject *v[17] = {
        PyLong_FromUnsignedLongLong(rd(r + self->at[F_CONN_ID], 8)),
        PyBool_FromLong(egress),
        PyLong_FromUnsignedLongLong(egress ? ts_enter : ts_exit),
        PyBytes_FromStringAndSize((const char *)r + self->header_len, data_len),
        PyLong_FromUnsignedLongLong(rd(r + self->at[F_CHUNK_LEN], 4)),
        PyLong_FromUnsignedLong(seq),
        Py_NewRef(role_obj),
        Py_NewRef(PyTuple_GET_ITEM(ends, 0)),
        Py_NewRef(PyTuple_GET_ITEM(ends, 1)),
        PyLong_FromUnsignedLongLong(rd(r + self->at[F_TGID], 4)),
        PyLong_FromUnsignedLongLong(rd(r + self->at[F_TID], 4)),
        Py_NewRef(PyTuple_GET_ITEM(ends, 2)),
        PyLong_FromLong((int32_t)rd(r + self->at[F_FD], 4)),
        Py_NewRef(syscall),
        PyLong_FromUnsignedLongLong(ts_enter),
        PyLong_FromUnsignedLongLong(ts_exit),
        PyBool_FromLong(r[self->at[F_FLAGS]] & self->flag_tls),
    };
    int failed = 0;
    for (int i = 0; i < 17; i++) {
        if (v[i] == NULL)
            failed = 1;
        PyTuple_SET_ITEM(t, i, v[i] ? v[i] : Py_NewRef(Py_None));
    }
    if (failed) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/* One record: 1 a DataChunk appended, 0 left to wire.py, -1 an error. */
static int decode_one(DataDecoder *self, PyObject *rec, PyObject *events) {
    if (!PyBytes_CheckExact(rec))
        return 0;
    const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(rec);
    Py_ssize_t len = PyBytes_GET_SIZE(rec);
    if (len < self->header_len || r[self->at[F_KIND]] != self->kind_data
        || self->header_len + (Py_ssize_t)rd(r + self->at[F_DATA_LEN], 2) > len)
        return 0;
    PyObject *key = PyBytes_FromStringAndSize((const char *)r + self->key_at,
                                              self->header_len - self->key_at);
    if (key == NULL)
        return -1;
    PyObject *ends = PyDict_GetItemWithError(self->cache, key); /* borrowed */
    Py_DECREF(key);
    if (ends == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(ends) || PyTuple_GET_SIZE(ends) != 3)
        return 0; /* None (an unknown family): wire.py counts it */
    Py_INCREF(ends); /* held while the event is made: the cache may change meanwhile */
    PyObject *ev = chunk(self, r, ends);
    Py_DECREF(ends);
    if (ev == NULL)
        return -1;
    int rc = PyList_Append(events, ev);
    Py_DECREF(ev);
    return rc < 0 ? -1 : 1;
}

static PyObject *DataDecoder_decode(DataDecoder *self, PyObject *records) {
    PyObject *seq = PySequence_Fast(records, "records: a list of bytes");
    if (seq == NULL || self->cache == NULL) {
        if (seq == NULL)
            return NULL;
        Py_DECREF(seq);
        PyErr_SetString(PyExc_RuntimeError, "DataDecoder not initialised");
        return NULL;
    }
    PyObject *events = PyList_New(0), *rest = PyList_New(0);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n && events && rest; i++) {
        PyObject *rec = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i)); /* held: see ends */
        int rc = decode_one(self, rec, events);
        if (rc == 0) {
            PyObject *item = Py_BuildValue("(nO)", PyList_GET_SIZE(events), rec);
            rc = item == NULL || PyList_Append(rest, item) < 0 ? -1 : 0;
            Py_XDECREF(item);
        }
        Py_DECREF(rec);
        if (rc < 0)
            goto fail;
    }
    Py_DECREF(seq);
    if (events == NULL || rest == NULL) {
        Py_XDECREF(events);
        Py_XDECREF(rest);
        return NULL;
    }
    return Py_BuildValue("(NN)", events, rest);
fail:
    Py_DECREF(seq);
    Py_XDECREF(events);
    Py_XDECREF(rest);
    return NULL;
}

static PyMethodDef DataDecoder_methods[] = {
    {"decode", (PyCFunction)DataDecoder_decode, METH_O,
     "decode(records) -> (DataChunk events, [(position, record) left to the caller])"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DataDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._wire.DataDecoder",
    .tp_basicsize = sizeof(DataDecoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "DataDecoder(layout, chunk_type, roles, syscalls, cache) (see _wiremodule.c)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)DataDecoder_init,
    .tp_dealloc = (destructor)DataDecoder_dealloc,
    .tp_traverse = (traverseproc)DataDecoder_traverse,
    .tp_clear = (inquiry)DataDecoder_clear,
    .tp_methods = DataDecoder_methods,
};

static struct PyModuleDef wiremodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "l7scope.dataplane._wire",
    .m_doc = "Ring-buffer DATA records into DataChunk events, a batch per call.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__wire(void) {
    if (PyType_Ready(&DataDecoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&wiremodule);
    if (m == NULL)
        return NULL;
    Py_INCREF(&DataDecoderType);
    if (PyModule_AddObject(m, "DataDecoder", (PyObject *)&DataDecoderType) < 0) {
        Py_DECREF(&DataDecoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
