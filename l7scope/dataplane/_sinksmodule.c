/* _sinksmodule.c: what the sinks do for every Exchange record, a batch at a time: the
 * per-process-pair aggregation (Aggregator) and sampling's common case (candidates).
 *
 * Theory of operation
 * -------------------
 * metrics.py's MetricsAggregator owns one Aggregator. It reads an Exchange (a tuple) by the
 * positions given at construction, and for each record does what metrics.py's theory of
 * operation says: the pair's route from the route cache, the request counted once (server
 * record, else client record, captures always), its status and error, the two size and the
 * side's duration histogram observations. Python is called only where it decides:
 *
 *   - a route cache miss: ``miss(ex, peer_comm)`` gives ((client, server, protocol), client
 *     pid, server pid), kept per record identity (side, pid, comm, peer_pid, peer_comm, local,
 *     remote, protocol) while the name function's ``version()`` gives the same value (asked
 *     again after any call into Python, the only thing that can move it; a version of None
 *     keeps nothing). At most ``max_routes`` identities, cleared when full.
 *   - the error rule of a record whose protocol is not in ``http`` (registry.is_error).
 *
 * A record whose counted fields are not ints of 64 bits (status, grpc_status, sizes, times:
 * the pipeline never makes such a record) is dropped and counted (``bad_records``); an
 * exception out of Python (a name function's bug) is that record's, returned by
 * ``record_batch`` with the others', and the batch goes on. Histograms are Python's
 * arithmetic in C doubles: ``counts[bisect_left(bounds, v)] += 1; sum += v`` (sizes as exact
 * ints against int bounds, durations as ``max(0, end - start) / 1e6``), so sums are the same
 * floats, added in the same order.
 *
 * Bounded: ``max_pairs`` pairs (records of any further pair go to ("(overflow)",
 * "(overflow)", protocol), counted in ``overflow_records``), ``max_routes`` routes; a pair
 * keeps at most NSTATUS distinct statuses in place, more go to a dict (ints past 64 bits
 * never reach it). ``take()`` hands the pairs over as plain tuples and starts afresh.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "sinks.h"

#define NSIZE 16      /* size buckets held (bounds + 1 must fit) */
#define NDUR 24       /* duration buckets held */
#define NSTATUS 8     /* distinct statuses kept in place per pair */

enum { F_SIDE, F_PID, F_COMM, F_PEER_PID, F_LOCAL, F_REMOTE, F_PROTOCOL, F_STATUS, F_GRPC,
       F_REQ_BYTES, F_RESP_BYTES, F_START, F_END, F_PEER_NAME, NFIELDS };

typedef struct {
    uint64_t counts[NDUR];
    double sum;
    uint64_t count;
} hist;

typedef struct {
    PyObject_HEAD
    PyObject *cpid, *spid;
    uint64_t requests, errors;
    int nstatus;
    int64_t status[NSTATUS];
    uint64_t status_n[NSTATUS];
    PyObject *more_status; /* {status int or None: count int}, NULL until needed */
    hist req, resp, cdur, sdur;
} Pair;

static void Pair_dealloc(Pair *p) {
    Py_XDECREF(p->cpid);
    Py_XDECREF(p->spid);
    Py_XDECREF(p->more_status);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyTypeObject PairType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._sinks.Pair",
    .tp_basicsize = sizeof(Pair),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = NULL,
    .tp_dealloc = (destructor)Pair_dealloc,
};

typedef struct {
    PyObject_HEAD
    Py_ssize_t at[NFIELDS], min_size;
    PyObject *miss, *version, *is_error;
    PyObject *routes, *routes_at, *pairs;
    PyObject *client_str, *server_str, *overflow_str;
    Py_ssize_t max_pairs, max_routes;
    int nsize, ndur;
    int64_t size_bounds[NSIZE];
    double dur_bounds[NDUR];
    long long overflow_records, bad_records;
    int stale; /* Python ran since the version was last asked */
} Aggregator;

/* ---------------------------------------------------------------- construction */

static int set_bounds(Aggregator *self, PyObject *sizes, PyObject *durs) {
    Py_ssize_t ns = PyTuple_GET_SIZE(sizes), nd = PyTuple_GET_SIZE(durs);
    if (ns + 1 > NSIZE || nd + 1 > NDUR) {
        PyErr_SetString(PyExc_ValueError, "too many histogram bounds");
        return -1;
    }
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *v = PyTuple_GET_ITEM(sizes, i);
        if (!PyLong_CheckExact(v)) {
            PyErr_SetString(PyExc_TypeError, "size bounds are ints");
            return -1;
        }
        self->size_bounds[i] = PyLong_AsLongLong(v);
        if (PyErr_Occurred())
            return -1;
    }
    for (Py_ssize_t i = 0; i < nd; i++) {
        self->dur_bounds[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(durs, i));
        if (PyErr_Occurred())
            return -1;
    }
    self->nsize = (int)ns;
    self->ndur = (int)nd;
    return 0;
}

static int set_fields(Aggregator *self, PyObject *fields) {
    if (PyTuple_GET_SIZE(fields) != NFIELDS) {
        PyErr_Format(PyExc_ValueError, "fields: %d positions expected", NFIELDS);
        return -1;
    }
    self->min_size = 0;
    for (int i = 0; i < NFIELDS; i++) {
        self->at[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(fields, i));
        if (self->at[i] < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a field position below 0");
            return -1;
        }
        if (self->at[i] + 1 > self->min_size)
            self->min_size = self->at[i] + 1;
    }
    return 0;
}

static int Aggregator_init(Aggregator *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"fields", "miss", "version", "is_error", "max_pairs", "max_routes",
                            "size_bounds", "duration_bounds", NULL};
    PyObject *fields, *miss, *version, *is_error, *sizes, *durs;
    if (self->pairs != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Aggregator is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!OOOnnO!O!", names, &PyTuple_Type, &fields,
                                     &miss, &version, &is_error, &self->max_pairs,
                                     &self->max_routes, &PyTuple_Type, &sizes, &PyTuple_Type,
                                     &durs))
        return -1;
    if (set_fields(self, fields) < 0 || set_bounds(self, sizes, durs) < 0)
        return -1;
    self->miss = Py_NewRef(miss);
    self->version = version == Py_None ? NULL : Py_NewRef(version);
    self->is_error = Py_NewRef(is_error);
    self->routes = PyDict_New();
    self->pairs = PyDict_New();
    self->routes_at = Py_NewRef(Py_None);
    self->client_str = PyUnicode_InternFromString("client");
    self->server_str = PyUnicode_InternFromString("server");
    self->overflow_str = PyUnicode_InternFromString("(overflow)");
    self->stale = 1;
    if (!self->routes || !self->pairs || !self->client_str || !self->server_str
        || !self->overflow_str)
        return -1;
    return 0;
}

static int Aggregator_traverse(Aggregator *self, visitproc visit, void *arg) {
    Py_VISIT(self->miss);
    Py_VISIT(self->version);
    Py_VISIT(self->is_error);
    Py_VISIT(self->routes);
    Py_VISIT(self->routes_at);
    Py_VISIT(self->pairs);
    return 0;
}

static int Aggregator_clear(Aggregator *self) {
    Py_CLEAR(self->miss);
    Py_CLEAR(self->version);
    Py_CLEAR(self->is_error);
    Py_CLEAR(self->routes);
    Py_CLEAR(self->routes_at);
    Py_CLEAR(self->pairs);
    Py_CLEAR(self->client_str);
    Py_CLEAR(self->server_str);
    Py_CLEAR(self->overflow_str);
    return 0;
}

static void Aggregator_dealloc(Aggregator *self) {
    PyObject_GC_UnTrack(self);
    Aggregator_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---------------------------------------------------------------- routes */

#define FIELD(rec, f) PyTuple_GET_ITEM(rec, self->at[f])

/* 1: the version holds (routes usable), 0: no version (nothing kept), -1: error */
static int check_version(Aggregator *self) {
    if (self->version == NULL)
        return 0;
    if (!self->stale)
        return self->routes_at != Py_None;
    PyObject *v = PyObject_CallNoArgs(self->version);
    if (v == NULL)
        return -1;
    self->stale = 0;
    if (v == Py_None) {
        Py_DECREF(v);
        self->stale = 1; /* asked every time, as metrics.py does */
        return 0;
    }
    int same = PyObject_RichCompareBool(v, self->routes_at, Py_EQ);
    if (same < 0) {
        Py_DECREF(v);
        return -1;
    }
    if (!same) {
        PyDict_Clear(self->routes);
        Py_SETREF(self->routes_at, v);
    } else {
        Py_DECREF(v);
    }
    return 1;
}

static PyObject *call_miss(Aggregator *self, PyObject *rec, PyObject *peer_comm) {
    self->stale = 1;
    PyObject *route = PyObject_CallFunctionObjArgs(self->miss, rec, peer_comm, NULL);
    if (route != NULL && !(PyTuple_CheckExact(route) && PyTuple_GET_SIZE(route) == 3)) {
        Py_DECREF(route);
        PyErr_SetString(PyExc_TypeError, "a route is (key, client pid, server pid)");
        return NULL;
    }
    return route;
}

/* New reference to the record's route ((client, server, protocol), cpid, spid). */
static PyObject *route_of(Aggregator *self, PyObject *rec, PyObject *peer_comm) {
    int cached = check_version(self);
    if (cached <= 0)
        return cached < 0 ? NULL : call_miss(self, rec, peer_comm);
    PyObject *ident = PyTuple_Pack(8, FIELD(rec, F_SIDE), FIELD(rec, F_PID), FIELD(rec, F_COMM),
                                   FIELD(rec, F_PEER_PID), peer_comm, FIELD(rec, F_LOCAL),
                                   FIELD(rec, F_REMOTE), FIELD(rec, F_PROTOCOL));
    if (ident == NULL)
        return NULL;
    PyObject *route = PyDict_GetItemWithError(self->routes, ident);
    if (route != NULL || PyErr_Occurred()) {
        Py_DECREF(ident);
        return Py_XNewRef(route);
    }
    route = call_miss(self, rec, peer_comm);
    if (route != NULL) {
        if (PyDict_GET_SIZE(self->routes) >= self->max_routes)
            PyDict_Clear(self->routes);
        if (PyDict_SetItem(self->routes, ident, route) < 0)
            Py_CLEAR(route);
    }
    Py_DECREF(ident);
    return route;
}

/* ---------------------------------------------------------------- pairs */

static Pair *new_pair(Aggregator *self, PyObject *key, PyObject *cpid, PyObject *spid) {
    PyObject *use = key;
    if (PyDict_GET_SIZE(self->pairs) >= self->max_pairs) {
        self->overflow_records++;
        PyObject *proto = PyTuple_GET_SIZE(key) == 3 ? PyTuple_GET_ITEM(key, 2) : Py_None;
        use = PyTuple_Pack(3, self->overflow_str, self->overflow_str, proto);
        if (use == NULL)
            return NULL;
        Pair *p = (Pair *)PyDict_GetItemWithError(self->pairs, use);
        if (p != NULL || PyErr_Occurred()) {
            Py_DECREF(use);
            return p;
        }
    }
    Pair *p = PyObject_New(Pair, &PairType);
    if (p != NULL) {
        memset((char *)p + sizeof(PyObject), 0, sizeof(Pair) - sizeof(PyObject));
        p->cpid = Py_NewRef(cpid);
        p->spid = Py_NewRef(spid);
        if (PyDict_SetItem(self->pairs, use, (PyObject *)p) < 0)
            Py_CLEAR(p);
    }
    if (use != key)
        Py_DECREF(use);
    Py_XDECREF(p); /* the dict holds it */
    return p;
}

static Pair *pair_of_route(Aggregator *self, PyObject *route) {
    PyObject *key = PyTuple_GET_ITEM(route, 0);
    PyObject *cpid = PyTuple_GET_ITEM(route, 1), *spid = PyTuple_GET_ITEM(route, 2);
    if (!PyTuple_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "a pair key is a tuple");
        return NULL;
    }
    Pair *p = (Pair *)PyDict_GetItemWithError(self->pairs, key);
    if (p == NULL && !PyErr_Occurred())
        p = new_pair(self, key, cpid, spid);
    if (p == NULL)
        return NULL;
    if (cpid != Py_None)
        Py_SETREF(p->cpid, Py_NewRef(cpid)); /* the last seen */
    if (spid != Py_None)
        Py_SETREF(p->spid, Py_NewRef(spid));
    return p;
}

static int count_status(Pair *p, int64_t status) {
    for (int i = 0; i < p->nstatus; i++)
        if (p->status[i] == status) {
            p->status_n[i]++;
            return 0;
        }
    if (p->nstatus < NSTATUS) {
        p->status[p->nstatus] = status;
        p->status_n[p->nstatus++] = 1;
        return 0;
    }
    if (p->more_status == NULL && (p->more_status = PyDict_New()) == NULL)
        return -1;
    PyObject *k = status == STATUS_NONE ? Py_NewRef(Py_None) : PyLong_FromLongLong(status);
    if (k == NULL)
        return -1;
    PyObject *old = PyDict_GetItemWithError(p->more_status, k);
    long long was = old == NULL ? 0 : PyLong_AsLongLong(old);
    PyObject *n = PyErr_Occurred() ? NULL : PyLong_FromLongLong(was + 1);
    int rc = n == NULL ? -1 : PyDict_SetItem(p->more_status, k, n);
    Py_XDECREF(n);
    Py_DECREF(k);
    return rc;
}

static void observe_size(const Aggregator *self, hist *h, int64_t v) {
    int i = 0;
    while (i < self->nsize && self->size_bounds[i] < v)
        i++;
    h->counts[i]++;
    h->sum += (double)v;
    h->count++;
}

static void observe_ms(const Aggregator *self, hist *h, double v) {
    int i = 0;
    while (i < self->ndur && self->dur_bounds[i] < v)
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

/* ---------------------------------------------------------------- one record */

typedef struct {
    int64_t status, grpc, req, resp, start, end; /* status/grpc: STATUS_NONE for None */
} numbers;

static int read_numbers(Aggregator *self, PyObject *rec, numbers *n) {
    return sinks_read_int(FIELD(rec, F_STATUS), &n->status, 1)
        | sinks_read_int(FIELD(rec, F_GRPC), &n->grpc, 1)
        | sinks_read_int(FIELD(rec, F_REQ_BYTES), &n->req, 0)
        | sinks_read_int(FIELD(rec, F_RESP_BYTES), &n->resp, 0)
        | sinks_read_int(FIELD(rec, F_START), &n->start, 0)
        | sinks_read_int(FIELD(rec, F_END), &n->end, 0);
}

/* 1/0 by the protocol's rule (HTTP's in C: no response, 5xx and above, grpc-status not 0),
 * -1 on error */
static int error_of(Aggregator *self, PyObject *rec, const numbers *n, PyObject *http) {
    int is_http = PySequence_Contains(http, FIELD(rec, F_PROTOCOL));
    if (is_http < 0)
        return -1;
    if (is_http)
        return n->status == STATUS_NONE || n->status >= 500
            || (n->grpc != STATUS_NONE && n->grpc != 0);
    self->stale = 1;
    PyObject *r = PyObject_CallOneArg(self->is_error, rec);
    if (r == NULL)
        return -1;
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    return truth;
}

static int side_is(PyObject *side, PyObject *name) {
    return side == name || (PyUnicode_Check(side) && PyUnicode_Compare(side, name) == 0);
}

/* in metrics.py's order: the request and its status, then the error rule (which may fail) */
static int count_request(Aggregator *self, Pair *p, PyObject *rec, const numbers *n,
                         PyObject *http) {
    p->requests++;
    if (count_status(p, n->status) < 0)
        return -1;
    int err = error_of(self, rec, n, http);
    if (err < 0)
        return -1;
    p->errors += (uint64_t)err;
    observe_size(self, &p->req, n->req);
    if (n->status != STATUS_NONE)
        observe_size(self, &p->resp, n->resp);
    return 0;
}

/* 0 recorded or dropped (counted), -1 with an exception set */
static int record_one(Aggregator *self, PyObject *rec, PyObject *peer_comm, PyObject *http) {
    numbers n;
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) < self->min_size
        || read_numbers(self, rec, &n)) {
        self->bad_records++;
        return 0;
    }
    int64_t d;
    if (__builtin_sub_overflow(n.end, n.start, &d)) {
        self->bad_records++;
        return 0;
    }
    PyObject *route = route_of(self, rec, peer_comm);
    if (route == NULL)
        return -1;
    Pair *p = pair_of_route(self, route);
    Py_DECREF(route);
    if (p == NULL)
        return -1;
    PyObject *side = FIELD(rec, F_SIDE);
    int client = side_is(side, self->client_str), server = side_is(side, self->server_str);
    if ((!client || FIELD(rec, F_PEER_PID) == Py_None)
        && count_request(self, p, rec, &n, http) < 0)
        return -1;
    if (n.status == STATUS_NONE)
        return 0;
    double ms = (double)(d > 0 ? d : 0) / 1e6;
    if (client || side == Py_None)
        observe_ms(self, &p->cdur, ms);
    if (server || side == Py_None)
        observe_ms(self, &p->sdur, ms);
    return 0;
}

static PyMethodDef module_methods[] = {
    {"candidates", sinks_candidates, METH_VARARGS,
     "candidates(batch, fields, floor, http) -> the records sampling must look at"},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------- methods */

static PyObject *Aggregator_route(Aggregator *self, PyObject *args) {
    PyObject *rec, *peer_comm = Py_None;
    if (!PyArg_ParseTuple(args, "O!|O:route", &PyTuple_Type, &rec, &peer_comm))
        return NULL;
    if (PyTuple_GET_SIZE(rec) < self->min_size) {
        PyErr_SetString(PyExc_TypeError, "not a record of this aggregator's shape");
        return NULL;
    }
    self->stale = 1; /* called from Python: anything may have run since */
    return route_of(self, rec, peer_comm);
}

static PyObject *Aggregator_record(Aggregator *self, PyObject *args) {
    PyObject *rec, *peer_comm, *http;
    if (!PyArg_ParseTuple(args, "OOO:record", &rec, &peer_comm, &http))
        return NULL;
    self->stale = 1;
    if (record_one(self, rec, peer_comm, http) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* record_batch(batch, http) -> [exceptions]: each record with its peer_name as peer_comm */
static PyObject *Aggregator_record_batch(Aggregator *self, PyObject *args) {
    PyObject *batch, *http;
    if (!PyArg_ParseTuple(args, "O!O:record_batch", &PyList_Type, &batch, &http))
        return NULL;
    PyObject *errors = PyList_New(0);
    if (errors == NULL)
        return NULL;
    self->stale = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *rec = Py_NewRef(PyList_GET_ITEM(batch, i)); /* Python may change batch */
        PyObject *peer = PyTuple_Check(rec) && PyTuple_GET_SIZE(rec) >= self->min_size
            ? FIELD(rec, F_PEER_NAME) : Py_None;
        int rc = record_one(self, rec, peer, http);
        Py_DECREF(rec);
        if (rc == 0)
            continue;
        if (!PyErr_ExceptionMatches(PyExc_Exception) || PyErr_ExceptionMatches(PyExc_OSError)) {
            Py_DECREF(errors); /* not a record's bug: goes up */
            return NULL;
        }
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL)
            PyException_SetTraceback(value, tb);
        int added = PyList_Append(errors, value);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        if (added < 0) {
            Py_DECREF(errors);
            return NULL;
        }
    }
    return errors;
}

static PyObject *hist_tuple(const hist *h, int n) {
    PyObject *counts = PyTuple_New(n + 1);
    if (counts == NULL)
        return NULL;
    for (int i = 0; i <= n; i++) {
        PyObject *c = PyLong_FromUnsignedLongLong(h->counts[i]);
        if (c == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyTuple_SET_ITEM(counts, i, c);
    }
    return Py_BuildValue("(NdK)", counts, h->sum, (unsigned long long)h->count);
}

/* {"200": n, ..., "none": n}: str(status) as metrics.py names them */
static PyObject *statuses(const Pair *p) {
    PyObject *d = PyDict_New();
    for (int i = 0; d != NULL && i < p->nstatus; i++) {
        PyObject *k = p->status[i] == STATUS_NONE
            ? PyUnicode_FromString("none") : PyUnicode_FromFormat("%lld", (long long)p->status[i]);
        PyObject *v = PyLong_FromUnsignedLongLong(p->status_n[i]);
        if (k == NULL || v == NULL || PyDict_SetItem(d, k, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (d != NULL && p->more_status != NULL && PyDict_Next(p->more_status, &pos, &k, &v)) {
        PyObject *text = k == Py_None ? PyUnicode_FromString("none") : PyObject_Str(k);
        if (text == NULL || PyDict_SetItem(d, text, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(text);
    }
    return d;
}

static PyObject *pair_state(const Aggregator *self, const Pair *p) {
    return Py_BuildValue("(OOKKNNNNN)", p->cpid, p->spid, (unsigned long long)p->requests,
                         (unsigned long long)p->errors, statuses(p),
                         hist_tuple(&p->req, self->nsize), hist_tuple(&p->resp, self->nsize),
                         hist_tuple(&p->cdur, self->ndur), hist_tuple(&p->sdur, self->ndur));
}

/* take() -> {key: (cpid, spid, requests, errors, {status: n}, req, resp, cdur, sdur)},
 * each histogram (counts, sum, count); the interval starts afresh */
static PyObject *Aggregator_take(Aggregator *self, PyObject *unused) {
    (void)unused;
    PyObject *out = PyDict_New(), *k, *v;
    Py_ssize_t pos = 0;
    while (out != NULL && PyDict_Next(self->pairs, &pos, &k, &v)) {
        PyObject *state = pair_state(self, (Pair *)v);
        if (state == NULL || PyDict_SetItem(out, k, state) < 0)
            Py_CLEAR(out);
        Py_XDECREF(state);
    }
    if (out != NULL)
        PyDict_Clear(self->pairs);
    return out;
}

static PyMethodDef Aggregator_methods[] = {
    {"route", (PyCFunction)Aggregator_route, METH_VARARGS,
     "route(ex, peer_comm=None) -> ((client, server, protocol), client pid, server pid)"},
    {"record", (PyCFunction)Aggregator_record, METH_VARARGS,
     "record(ex, peer_comm, http_protocols): one record; its exception raised"},
    {"record_batch", (PyCFunction)Aggregator_record_batch, METH_VARARGS,
     "record_batch(batch, http_protocols) -> [exceptions of the records that failed]"},
    {"take", (PyCFunction)Aggregator_take, METH_NOARGS,
     "take() -> {pair key: state}: the interval's pairs, then none"},
    {NULL, NULL, 0, NULL},
};

static PyObject *get_overflow(Aggregator *self, void *unused) {
    (void)unused;
    return PyLong_FromLongLong(self->overflow_records);
}

static PyObject *get_bad(Aggregator *self, void *unused) {
    (void)unused;
    return PyLong_FromLongLong(self->bad_records);
}

static PyGetSetDef Aggregator_getset[] = {
    {"overflow_records", (getter)get_overflow, NULL, "records put in an (overflow) pair", NULL},
    {"bad_records", (getter)get_bad, NULL, "records dropped: a counted field not a 64-bit int",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject AggregatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._sinks.Aggregator",
    .tp_basicsize = sizeof(Aggregator),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Aggregator(fields, miss, version, is_error, max_pairs, max_routes, size_bounds, "
              "duration_bounds): per-pair metrics of Exchange records (see _sinksmodule.c)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Aggregator_init,
    .tp_dealloc = (destructor)Aggregator_dealloc,
    .tp_traverse = (traverseproc)Aggregator_traverse,
    .tp_clear = (inquiry)Aggregator_clear,
    .tp_methods = Aggregator_methods,
    .tp_getset = Aggregator_getset,
};

static struct PyModuleDef sinksmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "l7scope.dataplane._sinks",
    .m_doc = "The sinks' work on every Exchange record, a batch at a time.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__sinks(void) {
    if (PyType_Ready(&PairType) < 0 || PyType_Ready(&AggregatorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&sinksmodule);
    if (m == NULL)
        return NULL;
    Py_INCREF(&AggregatorType);
    if (PyModule_AddObject(m, "Aggregator", (PyObject *)&AggregatorType) < 0) {
        Py_DECREF(&AggregatorType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
