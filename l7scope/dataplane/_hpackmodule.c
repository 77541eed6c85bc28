/* _hpackmodule.c: the Python face of the compiled HPACK decoder (hpack.h).
 *
 * Decoder (strict) and ObserverDecoder keep the API the HTTP/2 analyzer (protocols/http2.py)
 * uses: decode(block) returns a list of (name, value) str pairs or raises HpackError (a
 * ValueError with a `code`); decode_observed(block) never raises and returns a DecodedBlock
 * (headers known exactly, the number left out, notes, whether the table was reset). Names
 * and values are octets on the wire, turned into str as UTF-8 where valid, else latin-1
 * (every octet one code point, so nothing is lost). Fields are made into Python objects in
 * the library's emit callback, while the octets they point at are alive.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "hpack.h"

#define MAX_NOTES 8 /* notes naming unlearned fields, then one "<n> more" */

static PyObject *HpackError, *HuffmanError;
static PyObject *static_fields[HP_STATIC_COUNT + 1]; /* (name, value) of Appendix A */
static PyObject *static_names[HP_STATIC_COUNT + 1];
static PyObject *error_code[HP_ERR_COUNT];
static PyObject *empty_tuple, *note_unlearned_name, *code_not_learned;

static const char *const ERROR_DETAIL[HP_ERR_COUNT] = {
    "", "representation runs past the end of the block", "integer larger than 2**32-1",
    "EOS symbol or invalid padding in Huffman string", "indexed header field with index 0",
    "index beyond the dynamic table", "table size update after a header field",
    "size update above the limit", "out of memory", "aborted",
};

/* ---- DecodedBlock: one header block as decoded by an observer (frozen) ----------------- */

typedef struct {
    PyObject_HEAD
    PyObject *headers, *unknown, *notes, *reset;
} BlockObject;

static PyTypeObject BlockType;

/* A new DecodedBlock; steals `headers` (NULL: an error is set, NULL is returned). */
static PyObject *block_make(PyObject *headers, Py_ssize_t unknown, PyObject *notes, int reset) {
    if (!headers)
        return NULL;
    BlockObject *b = PyObject_New(BlockObject, &BlockType);
    if (!b) {
        Py_DECREF(headers);
        return NULL;
    }
    b->headers = headers;
    b->notes = Py_NewRef(notes);
    b->reset = Py_NewRef(reset ? Py_True : Py_False);
    b->unknown = PyLong_FromSsize_t(unknown);
    if (!b->unknown) {
        Py_DECREF(b);
        return NULL;
    }
    return (PyObject *)b;
}

static PyObject *block_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"headers", "unknown", "notes", "reset", NULL};
    PyObject *h, *u, *n, *r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:DecodedBlock", kw, &h, &u, &n, &r))
        return NULL;
    BlockObject *b = (BlockObject *)type->tp_alloc(type, 0);
    if (b) {
        b->headers = Py_NewRef(h);
        b->unknown = Py_NewRef(u);
        b->notes = Py_NewRef(n);
        b->reset = Py_NewRef(r);
    }
    return (PyObject *)b;
}

static void block_dealloc(BlockObject *b) {
    Py_XDECREF(b->headers);
    Py_XDECREF(b->unknown);
    Py_XDECREF(b->notes);
    Py_XDECREF(b->reset);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *block_astuple(BlockObject *b) {
    return PyTuple_Pack(4, b->headers, b->unknown, b->notes, b->reset);
}

static PyObject *block_richcompare(PyObject *a, PyObject *b, int op) {
    if (Py_TYPE(a) != &BlockType || Py_TYPE(b) != &BlockType || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *ta = block_astuple((BlockObject *)a), *tb = ta ? block_astuple((BlockObject *)b) : NULL;
    PyObject *result = tb ? PyObject_RichCompare(ta, tb, op) : NULL;
    Py_XDECREF(ta);
    Py_XDECREF(tb);
    return result;
}

static Py_hash_t block_hash(BlockObject *b) {
    PyObject *t = block_astuple(b);
    Py_hash_t h = t ? PyObject_Hash(t) : -1;
    Py_XDECREF(t);
    return h;
}

static PyObject *block_repr(BlockObject *b) {
    return PyUnicode_FromFormat("DecodedBlock(headers=%R, unknown=%R, notes=%R, reset=%R)",
                                b->headers, b->unknown, b->notes, b->reset);
}

static PyMemberDef block_members[] = {
    {"headers", T_OBJECT, offsetof(BlockObject, headers), READONLY,
     "headers known exactly, in order: tuple of (name, value)"},
    {"unknown", T_OBJECT, offsetof(BlockObject, unknown), READONLY,
     "headers that referenced entries never learned (left out of headers)"},
    {"notes", T_OBJECT, offsetof(BlockObject, notes), READONLY, "tuple of str"},
    {"reset", T_OBJECT, offsetof(BlockObject, reset), READONLY,
     "the table was found desynchronised and reset"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._hpack.DecodedBlock",
    .tp_basicsize = sizeof(BlockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One header block as decoded by an observer (frozen).",
    .tp_new = block_new,
    .tp_dealloc = (destructor)block_dealloc,
    .tp_richcompare = block_richcompare,
    .tp_hash = (hashfunc)block_hash,
    .tp_repr = (reprfunc)block_repr,
    .tp_members = block_members,
};

/* ---- text and errors -------------------------------------------------------------------- */

/* Octets as text: UTF-8 where valid, else latin-1. */
static PyObject *text(const uint8_t *s, uint32_t n) {
    PyObject *str = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (str || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        return str;
    PyErr_Clear();
    return PyUnicode_DecodeLatin1((const char *)s, n, NULL);
}

static void raise_hpack(PyObject *code, const char *detail) {
    PyObject *exc = PyObject_CallFunction(HpackError, "s", "");
    if (!exc)
        return;
    PyObject *message = PyUnicode_FromFormat("%U: %s", code, detail);
    if (message && PyObject_SetAttrString(exc, "code", code) == 0) {
        PyObject *args = PyTuple_Pack(1, message);
        if (args) {
            Py_XSETREF(((PyBaseExceptionObject *)exc)->args, args);
            PyErr_SetObject(HpackError, exc);
        }
    }
    Py_XDECREF(message);
    Py_DECREF(exc);
}

/* ---- the emit callback ------------------------------------------------------------------ */

typedef struct {
    PyObject *fields;  /* list of (name, value) */
    PyObject *notes;   /* list of str, made at the first unknown field when observing */
    Py_ssize_t unknown;
    int observing;
} sink;

static PyObject *field_tuple(const hp_field *f) {
    if (f->static_entry)
        return Py_NewRef(static_fields[f->index]);
    PyObject *name = f->index ? Py_NewRef(static_names[f->index]) : text(f->name, f->name_len);
    PyObject *value = name ? text(f->value, f->value_len) : NULL;
    PyObject *pair = value ? PyTuple_Pack(2, name, value) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(value);
    return pair;
}

static int unknown_note(sink *s, const hp_field *f) {
    s->unknown++;
    if (!s->observing || (s->notes && PyList_GET_SIZE(s->notes) >= MAX_NOTES))
        return 0;
    if (!s->notes && !(s->notes = PyList_New(0)))
        return -1;
    PyObject *note = f->kind == HP_FIELD_UNKNOWN_INDEX
        ? PyUnicode_FromFormat("hpack: index %u not learned", f->index)
        : Py_NewRef(note_unlearned_name);
    int rc = note ? PyList_Append(s->notes, note) : -1;
    Py_XDECREF(note);
    return rc;
}

static int emit(void *ctx, const hp_field *f) {
    sink *s = ctx;
    if (f->kind != HP_FIELD_KNOWN)
        return unknown_note(s, f);
    PyObject *pair = field_tuple(f);
    int rc = pair ? PyList_Append(s->fields, pair) : -1;
    Py_XDECREF(pair);
    return rc;
}

/* ---- Decoder / ObserverDecoder ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    hp_decoder d;
    PyObject *advertised; /* the larger SETTINGS value a clamped limit came from, or None */
} DecoderObject;

static PyTypeObject DecoderType, ObserverType;

static int init_common(DecoderObject *self, unsigned long long size, int observer,
                       int complete) {
    hp_free(&self->d);
    hp_init(&self->d, size, observer, complete);
    Py_XSETREF(self->advertised, Py_NewRef(Py_None));
    return 0;
}

/* A usable decoder even when __init__ is not called (defaults of the type). */
static PyObject *decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    DecoderObject *self = (DecoderObject *)type->tp_alloc(type, 0);
    if (self) {
        int observer = PyType_IsSubtype(type, &ObserverType);
        hp_init(&self->d, HP_DEFAULT_TABLE_SIZE, observer, 1);
        self->advertised = Py_NewRef(Py_None);
    }
    return (PyObject *)self;
}

static int decoder_init(DecoderObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"max_table_size", NULL};
    unsigned long long size = HP_DEFAULT_TABLE_SIZE;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|K:Decoder", kw, &size))
        return -1;
    return init_common(self, size, 0, 1);
}

static int observer_init(DecoderObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"max_table_size", "complete", NULL};
    unsigned long long size = HP_DEFAULT_TABLE_SIZE;
    int complete = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Kp:ObserverDecoder", kw, &size, &complete))
        return -1;
    return init_common(self, size, 1, complete);
}

static void decoder_dealloc(DecoderObject *self) {
    hp_free(&self->d);
    Py_XDECREF(self->advertised);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Strict decoding; on an observer, a field naming an unlearned entry is an error too. */
static PyObject *decoder_decode(DecoderObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    sink s = {PyList_New(0), NULL, 0, 0};
    hp_err err = s.fields ? hp_decode(&self->d, view.buf, (size_t)view.len, emit, &s)
                          : HP_ABORTED;
    PyBuffer_Release(&view);
    if (err == HP_OK && s.unknown) {
        Py_DECREF(s.fields);
        raise_hpack(code_not_learned, "header names a dynamic entry never learned");
        return NULL;
    }
    if (err) {
        Py_XDECREF(s.fields);
        if (err == HP_NO_MEMORY)
            return PyErr_NoMemory();
        if (err != HP_ABORTED)
            raise_hpack(error_code[err], ERROR_DETAIL[err]);
        return NULL;
    }
    return s.fields;
}

/* The notes of a block that reset the table. */
static PyObject *reset_notes(DecoderObject *self, hp_err err) {
    PyObject *first;
    if (err == HP_ABORTED || err == HP_NO_MEMORY) { /* a bug must not kill the pipeline */
        PyObject *type = NULL, *value = NULL, *tb = NULL;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *name = type ? PyType_GetName((PyTypeObject *)type) : NULL;
        PyErr_Clear();
        first = name ? PyUnicode_FromFormat("hpack: table reset (internal %U)", name)
                     : PyUnicode_FromString("hpack: table reset (internal MemoryError)");
        Py_XDECREF(name);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    } else {
        first = PyUnicode_FromFormat("hpack: table reset (%U)", error_code[err]);
    }
    if (!first)
        return NULL;
    if (err != HP_SIZE_UPDATE_TOO_LARGE || self->advertised == Py_None) {
        PyObject *notes = PyTuple_Pack(1, first);
        Py_DECREF(first);
        return notes;
    }
    PyObject *second = PyUnicode_FromFormat(
        "hpack: peer table size %S above the %llu octets followed", self->advertised,
        (unsigned long long)self->d.max_table_size);
    PyObject *notes = second ? PyTuple_Pack(2, first, second) : NULL;
    Py_DECREF(first);
    Py_XDECREF(second);
    return notes;
}

static PyObject *observed_block(sink *s, uint32_t unknown) {
    if (!unknown)
        return block_make(PyList_AsTuple(s->fields), 0, empty_tuple, 0);
    Py_ssize_t noted = PyList_GET_SIZE(s->notes);
    if (unknown > noted) {
        PyObject *more = PyUnicode_FromFormat("hpack: %zd more headers not learned",
                                              (Py_ssize_t)unknown - noted);
        int rc = more ? PyList_Append(s->notes, more) : -1;
        Py_XDECREF(more);
        if (rc < 0)
            return NULL;
    }
    PyObject *notes = PyList_AsTuple(s->notes);
    PyObject *block = notes ? block_make(PyList_AsTuple(s->fields), unknown, notes, 0) : NULL;
    Py_XDECREF(notes);
    return block;
}

/* Tolerant decoding for a passive observer: never raises for the bytes (docs/hpack.md). */
static PyObject *decoder_decode_observed(DecoderObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    sink s = {PyList_New(0), NULL, 0, 1};
    uint32_t unknown = 0;
    hp_err err = s.fields
        ? hp_decode_observed(&self->d, view.buf, (size_t)view.len, emit, &s, &unknown)
        : HP_NO_MEMORY;
    PyBuffer_Release(&view);
    PyObject *block = NULL;
    if (err) {
        if (!s.fields)
            hp_lost_sync(&self->d);
        PyObject *notes = reset_notes(self, err);
        PyErr_Clear();
        block = notes ? block_make(Py_NewRef(empty_tuple), 1, notes, 1) : NULL;
        Py_XDECREF(notes);
    } else {
        block = observed_block(&s, unknown);
    }
    Py_XDECREF(s.fields);
    Py_XDECREF(s.notes);
    return block;
}

static PyObject *decoder_lost_sync(DecoderObject *self, PyObject *Py_UNUSED(arg)) {
    hp_lost_sync(&self->d);
    Py_RETURN_NONE;
}

static PyObject *decoder_set_limit(DecoderObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"limit", "advertised", NULL};
    unsigned long long limit;
    PyObject *advertised = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "K|O:set_limit", kw, &limit, &advertised))
        return NULL;
    hp_set_max_table_size(&self->d, limit);
    Py_XSETREF(self->advertised, Py_NewRef(advertised));
    Py_RETURN_NONE;
}

static PyObject *decoder_memory(DecoderObject *self, PyObject *Py_UNUSED(arg)) {
    return PyLong_FromUnsignedLongLong(self->d.size);
}

/* The dynamic table, newest first (index 62 first); None marks an unknown name. */
static PyObject *decoder_dynamic_entries(DecoderObject *self, PyObject *Py_UNUSED(arg)) {
    PyObject *list = PyList_New(self->d.count);
    for (uint32_t k = 0; list && k < self->d.count; k++) {
        const hp_entry *e = hp_entry_at(&self->d, k);
        PyObject *name = e->name_unknown ? Py_NewRef(Py_None) : text(e->octets, e->name_len);
        PyObject *value = name ? text(e->octets + e->name_len, e->value_len) : NULL;
        PyObject *pair = value ? PyTuple_Pack(2, name, value) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (!pair)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, k, pair);
    }
    return list;
}

static PyObject *get_u64(DecoderObject *self, void *offset) {
    return PyLong_FromUnsignedLongLong(*(uint64_t *)((char *)&self->d + (size_t)offset));
}

static PyObject *get_max_table_size(DecoderObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLongLong(self->d.max_table_size);
}

static int set_max_table_size(DecoderObject *self, PyObject *value, void *Py_UNUSED(c)) {
    unsigned long long size = value ? PyLong_AsUnsignedLongLong(value) : (unsigned long long)-1;
    if (!value || (size == (unsigned long long)-1 && PyErr_Occurred())) {
        if (!value)
            PyErr_SetString(PyExc_AttributeError, "max_table_size cannot be deleted");
        return -1;
    }
    hp_set_max_table_size(&self->d, size);
    return 0;
}

static PyObject *get_advertised(DecoderObject *self, void *Py_UNUSED(c)) {
    return Py_NewRef(self->advertised);
}

static PyObject *get_complete(DecoderObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->d.complete);
}

static PyObject *get_scratch(DecoderObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromSize_t(self->d.scratch_cap);
}

#define U64_FIELD(f) ((void *)offsetof(hp_decoder, f))

static PyGetSetDef decoder_getset[] = {
    {"max_table_size", (getter)get_max_table_size, (setter)set_max_table_size,
     "the bound set by SETTINGS_HEADER_TABLE_SIZE; size updates may not exceed it", NULL},
    {"table_size", (getter)get_u64, NULL, "dynamic table size in octets (entries + 32 each)",
     U64_FIELD(size)},
    {"table_capacity", (getter)get_u64, NULL, "maximum size set by the encoder",
     U64_FIELD(capacity)},
    {"advertised_table_size", (getter)get_advertised, NULL,
     "the peer's larger SETTINGS value when the limit is our clamp of it, else None", NULL},
    {"huffman_scratch", (getter)get_scratch, NULL,
     "octets held for Huffman decoding between blocks (at most 65,536)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef observer_getset[] = {
    {"complete", (getter)get_complete, NULL,
     "True when every entry the peer may reference is one we learned", NULL},
    {"resets", (getter)get_u64, NULL, "times the table was found desynchronised or a gap hit it",
     U64_FIELD(resets)},
    {"unknown_headers", (getter)get_u64, NULL,
     "headers left out because they named unlearned entries", U64_FIELD(unknown_headers)},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef decoder_methods[] = {
    {"decode", (PyCFunction)decoder_decode, METH_O,
     "Decode one complete header block; HpackError on any violation."},
    {"set_limit", (PyCFunction)(void (*)(void))decoder_set_limit, METH_VARARGS | METH_KEYWORDS,
     "Apply an acknowledged SETTINGS_HEADER_TABLE_SIZE (advertised: the larger value it clamps)."},
    {"memory", (PyCFunction)decoder_memory, METH_NOARGS,
     "Size of the dynamic table by RFC 7541 4.1."},
    {"dynamic_entries", (PyCFunction)decoder_dynamic_entries, METH_NOARGS,
     "The dynamic table, newest first; None marks an unknown name."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef observer_methods[] = {
    {"decode_observed", (PyCFunction)decoder_decode_observed, METH_O,
     "Decode one header block as an observer: a DecodedBlock, never an exception."},
    {"lost_sync", (PyCFunction)decoder_lost_sync, METH_NOARGS,
     "A gap hit a header block of this direction: clear the learned table."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._hpack.Decoder",
    .tp_basicsize = sizeof(DecoderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Strict HPACK decoder for one direction of one connection.",
    .tp_new = decoder_new,
    .tp_init = (initproc)decoder_init,
    .tp_dealloc = (destructor)decoder_dealloc,
    .tp_methods = decoder_methods,
    .tp_getset = decoder_getset,
};

static PyTypeObject ObserverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._hpack.ObserverDecoder",
    .tp_basicsize = sizeof(DecoderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Tolerant HPACK decoder for a passive observer (docs/hpack.md).",
    .tp_init = (initproc)observer_init,
    .tp_methods = observer_methods,
    .tp_getset = observer_getset,
};

/* ---- module ----------------------------------------------------------------------------- */

static PyObject *huffman_decode(PyObject *Py_UNUSED(module), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, view.len / 5 * 8 + 16);
    long n = out ? hp_huffman_decode(view.buf, (size_t)view.len, (uint8_t *)PyBytes_AS_STRING(out)) : 0;
    PyBuffer_Release(&view);
    if (!out)
        return NULL;
    if (n < 0) {
        Py_DECREF(out);
        PyErr_SetString(HuffmanError, "EOS symbol or invalid padding in Huffman string");
        return NULL;
    }
    _PyBytes_Resize(&out, n);
    return out;
}

static PyMethodDef module_methods[] = {
    {"huffman_decode", huffman_decode, METH_O,
     "Decode a Huffman-encoded string literal (RFC 7541 5.2); HuffmanError on EOS or bad padding."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hpackmodule = {
    PyModuleDef_HEAD_INIT, "_hpack",
    "Compiled HPACK decoder (RFC 7541): Decoder, ObserverDecoder, DecodedBlock.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

static int init_constants(void) {
    for (uint32_t i = 1; i <= HP_STATIC_COUNT; i++) {
        const char *n, *v;
        uint32_t nl, vl;
        hp_static(i, &n, &nl, &v, &vl);
        static_names[i] = PyUnicode_FromStringAndSize(n, nl);
        PyObject *value = PyUnicode_FromStringAndSize(v, vl);
        static_fields[i] = static_names[i] && value ? PyTuple_Pack(2, static_names[i], value) : NULL;
        Py_XDECREF(value);
        if (!static_fields[i])
            return -1;
    }
    for (int e = 0; e < HP_ERR_COUNT; e++)
        if (!(error_code[e] = PyUnicode_InternFromString(hp_err_code[e])))
            return -1;
    empty_tuple = PyTuple_New(0);
    note_unlearned_name = PyUnicode_FromString("hpack: entry with an unlearned name referenced");
    code_not_learned = PyUnicode_InternFromString("not_learned");
    return empty_tuple && note_unlearned_name && code_not_learned ? 0 : -1;
}

PyMODINIT_FUNC PyInit__hpack(void) {
    ObserverType.tp_base = &DecoderType;
    if (PyType_Ready(&BlockType) < 0 || PyType_Ready(&DecoderType) < 0 ||
        PyType_Ready(&ObserverType) < 0 || init_constants() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&hpackmodule);
    if (!m)
        return NULL;
    HpackError = PyErr_NewExceptionWithDoc(
        "l7scope.dataplane._hpack.HpackError",
        "A header block that violates RFC 7541; `code` names the violation.", PyExc_ValueError,
        NULL);
    HuffmanError = PyErr_NewExceptionWithDoc(
        "l7scope.dataplane._hpack.HuffmanError",
        "The octets are not a valid Huffman-encoded string (EOS inside, or bad padding).",
        PyExc_ValueError, NULL);
    if (!HpackError || !HuffmanError ||
        PyModule_AddObjectRef(m, "HpackError", HpackError) < 0 ||
        PyModule_AddObjectRef(m, "HuffmanError", HuffmanError) < 0 ||
        PyModule_AddObjectRef(m, "Decoder", (PyObject *)&DecoderType) < 0 ||
        PyModule_AddObjectRef(m, "ObserverDecoder", (PyObject *)&ObserverType) < 0 ||
        PyModule_AddObjectRef(m, "DecodedBlock", (PyObject *)&BlockType) < 0 ||
        PyModule_AddIntConstant(m, "ENTRY_OVERHEAD", HP_ENTRY_OVERHEAD) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_TABLE_SIZE", HP_DEFAULT_TABLE_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "SCRATCH_KEEP", HP_SCRATCH_KEEP) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
