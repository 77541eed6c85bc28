/* _jsonlmodule.c: one JSON Lines line per Exchange record, written in C.
 *
 * Encoder(fields, start, end, to_dict_at) is made once by outputs/jsonl.py from the Exchange
 * contract:
 * ``fields`` is a tuple of (key, index) pairs in the order of Exchange.to_dict(); index is the
 * record's tuple position, or -1 for duration_ns (max(0, record[end] - record[start])).
 * Calling the encoder with a record returns the line (without the newline) that
 * json.JSONEncoder(separators=(",", ":"), check_circular=False).encode(record.to_dict())
 * gives, byte for byte: the same ASCII escapes (ensure_ascii: \" \\ \b \f \n \r \t, every
 * other code point outside ' '..'~' as \u00xx lowercase, beyond the BMP as a surrogate pair),
 * ints by int.__repr__, tuples and lists as arrays, dicts with str keys as objects; the field
 * at ``to_dict_at`` (the trace) as to_dict()'s dict when the value is true, else null, as
 * Exchange.to_dict() writes it.
 *
 * Anything else (a float, a dict key that is not a str, an unknown type) raises TypeError
 * and writes nothing: the caller then uses the json module, so the output never differs.
 * Output is built in a buffer that grows by doubling, every write bounds-checked; nesting is
 * limited to MAX_DEPTH (a deeper value raises TypeError too).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 8

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} buf;

static int buf_reserve(buf *b, Py_ssize_t more) {
    if (more > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

static Py_ssize_t put_u_escape(char *out, Py_UCS4 c) {
    out[0] = '\\';
    out[1] = 'u';
    out[2] = HEX[(c >> 12) & 0xf];
    out[3] = HEX[(c >> 8) & 0xf];
    out[4] = HEX[(c >> 4) & 0xf];
    out[5] = HEX[c & 0xf];
    return 6;
}

/* One code point as the json module's ensure_ascii writes it; returns the bytes written
 * (at most 12: a surrogate pair). */
static Py_ssize_t escape_char(char *out, Py_UCS4 c) {
    if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\';
    switch (c) {
    case '\\': out[1] = '\\'; return 2;
    case '"': out[1] = '"'; return 2;
    case '\b': out[1] = 'b'; return 2;
    case '\f': out[1] = 'f'; return 2;
    case '\n': out[1] = 'n'; return 2;
    case '\r': out[1] = 'r'; return 2;
    case '\t': out[1] = 't'; return 2;
    default: break;
    }
    if (c >= 0x10000) {
        Py_UCS4 v = c - 0x10000;
        put_u_escape(out, 0xd800 | ((v >> 10) & 0x3ff));
        return 6 + put_u_escape(out + 6, 0xdc00 | (v & 0x3ff));
    }
    return put_u_escape(out, c);
}

static int put_str(buf *b, PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n > (PY_SSIZE_T_MAX - 2) / 12 || buf_reserve(b, n * 12 + 2) < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    char *out = b->p + b->len;
    *out++ = '"';
    if (PyUnicode_IS_ASCII(s)) {
        const unsigned char *in = PyUnicode_1BYTE_DATA(s);
        Py_ssize_t i = 0;
        while (i < n) {
            Py_ssize_t run = i; /* a run of characters written as they are, copied at once */
            while (run < n && in[run] >= ' ' && in[run] <= '~' && in[run] != '\\'
                   && in[run] != '"')
                run++;
            memcpy(out, in + i, (size_t)(run - i));
            out += run - i;
            if (run < n)
                out += escape_char(out, in[run++]);
            i = run;
        }
    } else {
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        for (Py_ssize_t i = 0; i < n; i++)
            out += escape_char(out, PyUnicode_READ(kind, data, i));
    }
    *out++ = '"';
    b->len = out - b->p;
    return 0;
}

/* x in decimal, as int.__repr__ writes it (digits from the end, no snprintf) */
static int put_ll(buf *b, long long x) {
    char tmp[24], *end = tmp + sizeof tmp, *p = end;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--p = '-';
    return buf_put(b, p, end - p);
}

static int put_int(buf *b, PyObject *v) {
    long long x;
    int overflow = 0;
    x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (!overflow)
        return put_ll(b, x);
    PyObject *text = PyLong_Type.tp_repr(v); /* what json writes for any int */
    if (text == NULL)
        return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = s == NULL ? -1 : buf_put(b, s, n);
    Py_DECREF(text);
    return rc;
}

static int put_value(buf *b, PyObject *v, int depth);

static int put_items(buf *b, PyObject *seq, int depth) {
    /* a list is copied first: to_dict() of an item could change it while it is written */
    PyObject *t = PyTuple_CheckExact(seq) ? Py_NewRef(seq) : PySequence_Tuple(seq);
    if (t == NULL)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    int rc = buf_put(b, "[", 1);
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc = buf_put(b, ",", 1);
        if (rc == 0)
            rc = put_value(b, PyTuple_GET_ITEM(t, i), depth + 1);
    }
    Py_DECREF(t);
    return rc < 0 ? -1 : buf_put(b, "]", 1);
}

static int put_pair(buf *b, PyObject *kv, Py_ssize_t i, int depth) {
    PyObject *k = PyTuple_GET_ITEM(kv, 0);
    if (!PyUnicode_Check(k)) { /* json turns such keys into text: left to it */
        PyErr_SetString(PyExc_TypeError, "a dict key that is not a str");
        return -1;
    }
    if ((i && buf_put(b, ",", 1) < 0) || put_str(b, k) < 0 || buf_put(b, ":", 1) < 0)
        return -1;
    return put_value(b, PyTuple_GET_ITEM(kv, 1), depth + 1);
}

static int put_dict(buf *b, PyObject *d, int depth) {
    /* the items are taken first, for the same reason as a list's */
    PyObject *items = PyDict_Items(d);
    if (items == NULL)
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(items);
    int rc = buf_put(b, "{", 1);
    for (Py_ssize_t i = 0; i < n && rc == 0; i++)
        rc = put_pair(b, PyList_GET_ITEM(items, i), i, depth);
    Py_DECREF(items);
    return rc < 0 ? -1 : buf_put(b, "}", 1);
}

/* ``value.to_dict() if value else None`` encoded */
static int put_object(buf *b, PyObject *v, int depth) {
    int truth = PyObject_IsTrue(v);
    if (truth <= 0)
        return truth < 0 ? -1 : buf_put(b, "null", 4);
    PyObject *d = PyObject_CallMethod(v, "to_dict", NULL);
    if (d == NULL)
        return -1;
    int rc = PyDict_CheckExact(d) ? put_dict(b, d, depth)
                                  : (PyErr_SetString(PyExc_TypeError, "to_dict: not a dict"), -1);
    Py_DECREF(d);
    return rc;
}

static int put_value(buf *b, PyObject *v, int depth) {
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_TypeError, "nested too deep");
        return -1;
    }
    if (v == Py_None)
        return buf_put(b, "null", 4);
    if (v == Py_True)
        return buf_put(b, "true", 4);
    if (v == Py_False)
        return buf_put(b, "false", 5);
    if (PyUnicode_Check(v))
        return put_str(b, v);
    if (PyLong_Check(v))
        return put_int(b, v);
    if (PyTuple_Check(v) || PyList_Check(v))
        return put_items(b, v, depth);
    if (PyDict_CheckExact(v))
        return put_dict(b, v, depth);
    if (PyDict_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "dict subclasses are left to the json module");
        return -1;
    }
    if (PyFloat_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "floats are left to the json module");
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "no JSON form for %.100s", Py_TYPE(v)->tp_name);
    return -1;
}

/* ------------------------------------------------------------------ Encoder */

typedef struct {
    PyObject_HEAD
    Py_ssize_t nfields;
    Py_ssize_t *index;   /* tuple position per field, -1: duration */
    char **prefix;       /* `,"key":` per field (the first without the comma) */
    Py_ssize_t *prefix_len;
    Py_ssize_t start, end;
    Py_ssize_t to_dict_at; /* tuple position written through to_dict(), -1: none */
    buf b;               /* reused from call to call */
} Encoder;

static void Encoder_dealloc(Encoder *self) {
    for (Py_ssize_t i = 0; i < self->nfields && self->prefix; i++)
        PyMem_Free(self->prefix[i]);
    PyMem_Free(self->prefix);
    PyMem_Free(self->prefix_len);
    PyMem_Free(self->index);
    PyMem_Free(self->b.p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int set_field(Encoder *self, Py_ssize_t i, PyObject *pair) {
    PyObject *key;
    Py_ssize_t index;
    if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "Un", &key, &index))
        return -1;
    if (index < -1) {
        PyErr_SetString(PyExc_ValueError, "a field index below -1");
        return -1;
    }
    buf kb = {0};
    if ((i && buf_put(&kb, ",", 1) < 0) || put_str(&kb, key) < 0 || buf_put(&kb, ":", 1) < 0) {
        PyMem_Free(kb.p);
        return -1;
    }
    self->prefix[i] = kb.p;
    self->prefix_len[i] = kb.len;
    self->index[i] = index;
    return 0;
}

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kw) {
    PyObject *fields;
    static char *names[] = {"fields", "start", "end", "to_dict_at", NULL};
    if (self->prefix != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Encoder is initialised once");
        return -1;
    }
    self->to_dict_at = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!nn|n", names, &PyTuple_Type, &fields,
                                     &self->start, &self->end, &self->to_dict_at))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if (self->start < 0 || self->end < 0) {
        PyErr_SetString(PyExc_ValueError, "start and end are tuple positions");
        return -1;
    }
    self->prefix = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    self->prefix_len = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    self->index = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    if (!self->prefix || !self->prefix_len || !self->index) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (set_field(self, i, PyTuple_GET_ITEM(fields, i)) < 0)
            return -1;
        self->nfields = i + 1;
    }
    return 0;
}

static int put_duration(Encoder *self, buf *b, PyObject *rec) {
    PyObject *end = PyTuple_GET_ITEM(rec, self->end);
    PyObject *start = PyTuple_GET_ITEM(rec, self->start);
    if (PyLong_CheckExact(end) && PyLong_CheckExact(start)) { /* the common case, in C */
        int o1 = 0, o2 = 0;
        long long e = PyLong_AsLongLongAndOverflow(end, &o1);
        long long s = PyLong_AsLongLongAndOverflow(start, &o2);
        long long d;
        if (!o1 && !o2 && !__builtin_sub_overflow(e, s, &d))
            return put_ll(b, d > 0 ? d : 0);
    }
    PyObject *d = PyNumber_Subtract(PyTuple_GET_ITEM(rec, self->end),
                                    PyTuple_GET_ITEM(rec, self->start));
    if (d == NULL)
        return -1;
    PyObject *zero = PyLong_FromLong(0);
    int neg = zero == NULL ? -1 : PyObject_RichCompareBool(zero, d, Py_GE);
    Py_XDECREF(zero);
    /* max(0, d) is 0 when 0 >= d */
    int rc = neg < 0 ? -1 : neg ? buf_put(b, "0", 1) : put_value(b, d, 0);
    Py_DECREF(d);
    return rc;
}

/* The record's line (no newline) appended to ``b``; -1 with an exception set (TypeError: a
 * value left to the json module) and ``b`` cut back to where it was. */
static int put_record(Encoder *self, buf *b, PyObject *rec) {
    Py_ssize_t mark = b->len;
    if (!PyTuple_Check(rec)) {
        PyErr_SetString(PyExc_TypeError, "not a record of this encoder's shape");
        return -1;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(rec);
    if (self->prefix == NULL || self->start >= size || self->end >= size) {
        PyErr_SetString(PyExc_TypeError, "not a record of this encoder's shape");
        return -1;
    }
    int rc = buf_put(b, "{", 1);
    for (Py_ssize_t i = 0; i < self->nfields && rc == 0; i++) {
        Py_ssize_t at = self->index[i];
        if (at >= size) {
            PyErr_SetString(PyExc_TypeError, "not a record of this encoder's shape");
            rc = -1;
            break;
        }
        rc = buf_put(b, self->prefix[i], self->prefix_len[i]);
        if (rc == 0)
            rc = at < 0 ? put_duration(self, b, rec)
                : at == self->to_dict_at ? put_object(b, PyTuple_GET_ITEM(rec, at), 0)
                : put_value(b, PyTuple_GET_ITEM(rec, at), 0);
    }
    if (rc == 0)
        rc = buf_put(b, "}", 1);
    if (rc < 0)
        b->len = mark;
    return rc;
}

static PyObject *ascii_str(const buf *b, Py_ssize_t from) {
    PyObject *text = PyUnicode_New(b->len - from, 127);
    if (text != NULL && b->len > from) /* an empty buffer may have no memory at all */
        memcpy(PyUnicode_1BYTE_DATA(text), b->p + from, (size_t)(b->len - from));
    return text;
}

static PyObject *Encoder_call(Encoder *self, PyObject *args, PyObject *kw) {
    PyObject *rec;
    if (kw != NULL && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Encoder() takes the record alone");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!", &PyTuple_Type, &rec))
        return NULL;
    buf *b = &self->b;
    b->len = 0;
    PyObject *line = put_record(self, b, rec) < 0 ? NULL : ascii_str(b, 0);
    if (b->cap > (1 << 20)) { /* one huge record does not keep its buffer */
        PyMem_Free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    return line;
}

/* One line of a batch, newline included: the compiled encoder's, else (TypeError) the
 * fallback's, which must be an ASCII str (json's ensure_ascii). */
static int put_line(Encoder *self, buf *b, PyObject *rec, PyObject *fallback) {
    if (put_record(self, b, rec) == 0)
        return buf_put(b, "\n", 1);
    if (!PyErr_ExceptionMatches(PyExc_TypeError))
        return -1;
    PyErr_Clear();
    PyObject *line = PyObject_CallOneArg(fallback, rec);
    if (line == NULL)
        return -1;
    int rc = -1;
    if (!PyUnicode_CheckExact(line) || !PyUnicode_IS_ASCII(line))
        PyErr_SetString(PyExc_TypeError, "the fallback's line is not an ASCII str");
    else
        rc = buf_put(b, (const char *)PyUnicode_1BYTE_DATA(line), PyUnicode_GET_LENGTH(line));
    Py_DECREF(line);
    return rc < 0 ? -1 : buf_put(b, "\n", 1);
}

/* lines(batch, start, size, max_bytes, check_first, fallback) -> (text, end, rotate)
 *
 * The lines of batch[start:end] as one str. With max_bytes (0: never), a file holding ``size``
 * bytes stops before the line that would take it past max_bytes when it is not empty (the
 * rotation rule of outputs/jsonl.py, between lines only); ``rotate`` then says so, and the line
 * at ``end`` is the one to write after the rotation (check_first false: written unchecked).
 * The text stops after the line that takes it past MAX_TEXT (bounded memory per call). */
#define MAX_TEXT (1 << 20)

static PyObject *Encoder_lines(Encoder *self, PyObject *args) {
    PyObject *batch, *fallback;
    Py_ssize_t i, size, max_bytes;
    int check_first, rotate = 0;
    if (!PyArg_ParseTuple(args, "O!nnnpO:lines", &PyList_Type, &batch, &i, &size, &max_bytes,
                          &check_first, &fallback))
        return NULL;
    if (i < 0 || size < 0 || max_bytes < 0) {
        PyErr_SetString(PyExc_ValueError, "start, size and max_bytes are not negative");
        return NULL;
    }
    buf b = {0};
    int rc = 0;
    for (Py_ssize_t first = i; rc == 0 && i < PyList_GET_SIZE(batch) && b.len < MAX_TEXT; i++) {
        Py_ssize_t mark = b.len;
        /* held: the fallback may change the batch */
        PyObject *rec = Py_NewRef(PyList_GET_ITEM(batch, i));
        rc = put_line(self, &b, rec, fallback);
        Py_DECREF(rec);
        if (rc == 0 && max_bytes && size + mark > 0 && size + b.len > max_bytes
            && (i > first || check_first)) {
            b.len = mark;
            rotate = 1;
            break;
        }
    }
    PyObject *text = rc < 0 ? NULL : ascii_str(&b, 0);
    PyMem_Free(b.p);
    return text == NULL ? NULL : Py_BuildValue("(NnO)", text, i, rotate ? Py_True : Py_False);
}

static PyMethodDef Encoder_methods[] = {
    {"lines", (PyCFunction)Encoder_lines, METH_VARARGS,
     "lines(batch, start, size, max_bytes, check_first, fallback) -> (text, end, rotate): "
     "a batch's JSON lines as one str (see _jsonlmodule.c)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._jsonl.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(fields, start, end, to_dict_at=-1): record -> its JSON line "
              "(see _jsonlmodule.c)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_call = (ternaryfunc)Encoder_call,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef jsonlmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "l7scope.dataplane._jsonl",
    .m_doc = "Exchange records as JSON Lines, byte for byte as the json module writes them.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__jsonl(void) {
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&jsonlmodule);
    if (m == NULL)
        return NULL;
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
