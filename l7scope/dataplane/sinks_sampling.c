/* sinks_sampling.c: sampling's common case for the _sinks module (sampling.py, offer_batch),
 * and the reading of a record's numbers shared with the aggregator (_sinksmodule.c). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "sinks.h"

/* 0: read, 1: not an int of 64 bits (the record is dropped) */
int sinks_read_int(PyObject *v, int64_t *out, int none_ok) {
    if (v == Py_None && none_ok) {
        *out = STATUS_NONE;
        return 0;
    }
    if (!PyLong_CheckExact(v))
        return 1;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred()) || (none_ok && x == STATUS_NONE)) {
        PyErr_Clear();
        return 1;
    }
    *out = x;
    return 0;
}

/* candidates(batch, fields, floor, http) -> [records]
 *
 * Sampling's common case (sampling.py, Sampler.offer): a record of a protocol in ``http`` with
 * no failure by HTTP's rule (a status below 400 and a grpc-status None or 0) whose duration
 * max(0, end - start) is below ``floor`` (an int; past 64 bits: no limit) is sampled by no
 * rule.
 * Every other record is returned, in order, for Python to offer: those it cannot read
 * (not a record, a field not a 64-bit int) too. ``fields``: the positions of protocol,
 * status, grpc_status, start_ns, end_ns. */
enum { S_PROTOCOL, S_STATUS, S_GRPC, S_START, S_END, NSFIELDS };

static int read_positions(PyObject *fields, Py_ssize_t *at, Py_ssize_t *min_size) {
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != NSFIELDS) {
        PyErr_Format(PyExc_ValueError, "fields: %d positions expected", NSFIELDS);
        return -1;
    }
    *min_size = 0;
    for (int i = 0; i < NSFIELDS; i++) {
        at[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(fields, i));
        if (at[i] < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a field position below 0");
            return -1;
        }
        *min_size = at[i] + 1 > *min_size ? at[i] + 1 : *min_size;
    }
    return 0;
}

/* 1: the floor holds for every rule (not sampled), 0: a candidate, -1: error */
static int below_floor(PyObject *rec, const Py_ssize_t *at, Py_ssize_t min_size,
                       long long floor, int infinite, PyObject *http) {
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) < min_size)
        return 0;
    int64_t status, grpc, start, end, d;
    if (sinks_read_int(PyTuple_GET_ITEM(rec, at[S_STATUS]), &status, 1)
        || sinks_read_int(PyTuple_GET_ITEM(rec, at[S_GRPC]), &grpc, 1)
        || sinks_read_int(PyTuple_GET_ITEM(rec, at[S_START]), &start, 0)
        || sinks_read_int(PyTuple_GET_ITEM(rec, at[S_END]), &end, 0)
        || __builtin_sub_overflow(end, start, &d))
        return 0;
    if (status == STATUS_NONE || status >= 400 || (grpc != STATUS_NONE && grpc != 0))
        return 0;
    if (!infinite && (d > 0 ? d : 0) >= floor)
        return 0;
    int is_http = PySequence_Contains(http, PyTuple_GET_ITEM(rec, at[S_PROTOCOL]));
    if (is_http < 0 && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear(); /* an unhashable protocol: offer() meets it and counts it */
        return 0;
    }
    return is_http;
}

PyObject *sinks_candidates(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *batch, *fields, *floor_obj, *http;
    Py_ssize_t at[NSFIELDS], min_size;
    if (!PyArg_ParseTuple(args, "O!OO!O:candidates", &PyList_Type, &batch, &fields,
                          &PyLong_Type, &floor_obj, &http)
        || read_positions(fields, at, &min_size) < 0)
        return NULL;
    int overflow = 0;
    long long floor = PyLong_AsLongLongAndOverflow(floor_obj, &overflow);
    if (floor == -1 && PyErr_Occurred())
        return NULL;
    if (overflow < 0) /* every duration is at least the floor */
        return PySequence_List(batch);
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < PyList_GET_SIZE(batch); i++) {
        PyObject *rec = Py_NewRef(PyList_GET_ITEM(batch, i)); /* ``in http`` may run Python */
        int skip = below_floor(rec, at, min_size, floor, overflow > 0, http);
        if (skip < 0 || (!skip && PyList_Append(out, rec) < 0))
            Py_CLEAR(out);
        Py_DECREF(rec);
    }
    return out;
}

