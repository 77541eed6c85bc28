/* pyface.h: what the protocol analyzers' CPython faces (_h1module.c, _h2module.c) share to turn
 * a C library's events into the Python values the pipeline reads. No state of its own; each
 * helper returns NULL (or -1) with a Python error set when it fails. */
#ifndef L7SCOPE_PYFACE_H
#define L7SCOPE_PYFACE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* A NamedTuple of `n` items made of `items`, whose references it takes (all of them, on
 * failure too). NULL when an item is NULL or the tuple cannot be made. */
static inline PyObject *pyface_tuple(PyTypeObject *type, PyObject **items, int n) {
    PyObject *obj = type->tp_alloc(type, n);
    for (int i = 0; i < n; i++) {
        if (!items[i] || !obj) {
            for (int j = i; j < n; j++)
                Py_XDECREF(items[j]);
            Py_XDECREF(obj);
            return NULL;
        }
        PyTuple_SET_ITEM(obj, i, items[i]);
    }
    return obj;
}

/* A frozen, slotted dataclass made without its __init__: object.__setattr__ per field. Takes
 * the references of `values` (NULL among them: the record is not made). */
static inline PyObject *pyface_record(PyObject *cls, PyObject *empty_tuple, int n,
                                      PyObject *const *names, PyObject **values) {
    PyObject *obj = PyBaseObject_Type.tp_new((PyTypeObject *)cls, empty_tuple, NULL);
    for (int i = 0; i < n; i++) {
        if (obj && (!values[i] || PyObject_GenericSetAttr(obj, names[i], values[i]) < 0))
            Py_CLEAR(obj);
        Py_XDECREF(values[i]);
    }
    return obj;
}

/* An AnalyzerLimits attribute as a u32 (clamped), `dflt` when it is missing or not an int. */
static inline uint32_t pyface_limit(PyObject *limits, const char *name, uint32_t dflt) {
    PyObject *v = PyObject_GetAttrString(limits, name);
    if (!v) {
        PyErr_Clear();
        return dflt;
    }
    long long n = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return dflt;
    }
    return n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* counters[key] += delta, in the dict the connection table shares with its analyzers. */
static inline int pyface_count(PyObject *counters, PyObject *key, uint64_t delta_n) {
    PyObject *prev = PyDict_GetItemWithError(counters, key);
    if (!prev && PyErr_Occurred())
        return -1;
    PyObject *delta = PyLong_FromUnsignedLongLong(delta_n);
    PyObject *sum = delta && prev ? PyNumber_Add(prev, delta) : Py_XNewRef(delta);
    Py_XDECREF(delta);
    if (!sum || PyDict_SetItem(counters, key, sum) < 0) {
        Py_XDECREF(sum);
        return -1;
    }
    Py_DECREF(sum);
    return 0;
}

#endif
