/* _buildmodule.c: the Exchange record of one ExchangeParsed, built in C (pipeline.py).
 *
 * Theory of operation
 * -------------------
 * ``setup(...)`` is called once by pipeline.py with the types and the Python functions the
 * builder defers to. ``build(pipeline, conn, ep)`` (``Pipeline.build``, bound as a method)
 * then makes the ``Exchange`` positionally, as tuple.__new__ would, in the field order of
 * exchange.py, reading the pipeline's configuration on every call (``capture_mode``,
 * ``clock``, ``redact_path``, ``processes``, ``peers``), so nothing it holds can go stale:
 *
 * - notes: the exchange's notes, then each message's not already there; any note makes the
 *   record partial, else it is partial when a message is not complete;
 * - ``local`` / ``remote``: formatted once per connection (``conn.endpoint_text``);
 * - identity: the process table's ``lookup`` is called for the observing pid and for a local
 *   peer's pid on every exchange (the table revalidates and expires entries on lookups); the
 *   identity tuple is kept on the connection while the lookup gives the same ProcessInfo;
 * - trace context: the request's header names are scanned (the length first, then an ASCII
 *   case-insensitive compare against tracecontext._WANTED); only when one is there is the
 *   Python parser (``tracecontext.extract``) called;
 * - path redaction: with the Redactor's own ``redact_path``, a path that certainly comes
 *   back unchanged (no ``?``, ``#`` or ``@``; or ASCII query and fragment without ``%``,
 *   ``+`` or ``[`` whose parameter names, lowercased, are none of the configured names: what
 *   Redactor._may_hold_secret says no to) is not passed to it; any other path, and any other
 *   redactor, goes to the Python callable;
 * - grpc-status: the first ``grpc-status`` of the response's headers, then of its trailers,
 *   names compared by length first; ``1*3DIGIT`` ASCII after stripping spaces and tabs, else
 *   None (protocols/wirenum.parse_decimal's rule);
 * - time: ``rfc3339(mono_ns, offset_ns)``, WallClock's text (exchange.py calls it too, so the
 *   text has one maker): seconds held to 1970..9999, microseconds truncated.
 *
 * Values of an unexpected type raise TypeError: the pipeline's boundary counts that as an
 * internal error of the protocol (no record is made from values it cannot vouch for).
 * Non-ASCII header names never match: of all code points only U+212A KELVIN SIGN lowercases
 * to ASCII ('k'), and no name looked for holds a 'k' (tests/dataplane/test_build.py checks
 * both); a non-ASCII name of a trace header's length still goes to the Python parser.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <structmember.h>
#include <string.h>

#define EXCHANGE_FIELDS 31
#define MAX_WANTED 32
#define MAX_WANTED_LEN 63

/* Exchange's field order (exchange.py); setup() checks it against Exchange._fields. */
static const char *const FIELD_ORDER[EXCHANGE_FIELDS] = {
    "protocol", "side", "pid", "comm", "local", "remote", "peer_pid", "conn_id", "stream_id",
    "method", "path", "authority", "status", "grpc_status", "request_bytes", "response_bytes",
    "start_ns", "end_ns", "time", "trace", "request_id", "tls", "partial", "notes", "request",
    "response", "peer_name", "name", "exe", "container_id", "thread",
};
enum { F_PROTOCOL, F_SIDE, F_PID, F_COMM, F_LOCAL, F_REMOTE, F_PEER_PID, F_CONN_ID,
       F_STREAM_ID, F_METHOD, F_PATH, F_AUTHORITY, F_STATUS, F_GRPC_STATUS, F_REQUEST_BYTES,
       F_RESPONSE_BYTES, F_START_NS, F_END_NS, F_TIME, F_TRACE, F_REQUEST_ID, F_TLS, F_PARTIAL,
       F_NOTES, F_REQUEST, F_RESPONSE, F_PEER_NAME, F_NAME, F_EXE, F_CONTAINER_ID, F_THREAD };

/* HttpMessage's fields this file reads, by name; setup() finds their positions. */
static const char *const MSG_FIELDS[] = {
    "start_ns", "end_ns", "wire_bytes", "headers", "method", "path", "authority", "status",
    "trailers", "complete", "notes",
};
enum { M_START_NS, M_END_NS, M_WIRE_BYTES, M_HEADERS, M_METHOD, M_PATH, M_AUTHORITY, M_STATUS,
       M_TRAILERS, M_COMPLETE, M_NOTES, M_COUNT };

static struct {
    PyTypeObject *exchange, *message, *wallclock;
    PyObject *one, *redactor, *redactor_names, *role_client, *role_server, *extract, *format_endpoint, *redact_func;
    Py_ssize_t msg_at[M_COUNT];
    Py_ssize_t msg_size;
    int nwanted;
    Py_ssize_t wanted_len[MAX_WANTED];
    char wanted[MAX_WANTED][MAX_WANTED_LEN + 1];
    unsigned long long wanted_lengths; /* bit n: some wanted name has n characters */
    int ready;
} S;

/* Attribute names, interned once. */
static PyObject *s_request, *s_response, *s_notes, *s_protocol, *s_stream_id, *s_counters,
    *s_endpoint_text, *s_local, *s_remote, *s_capture_mode, *s_role, *s_pid, *s_comm,
    *s_client_is_local, *s_peers, *s_entries, *s_processes, *s_lookup, *s_identity, *s_name,
    *s_exe, *s_container_id, *s_conn_id, *s_tls, *s_trace_errors, *s_redact_path, *s_params,
    *s_clock, *s_offset_ns, *s_rfc3339, *s_without, *s_client, *s_server;

static int intern_all(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_request, "request"}, {&s_response, "response"}, {&s_notes, "notes"},
        {&s_protocol, "protocol"}, {&s_stream_id, "stream_id"}, {&s_counters, "counters"},
        {&s_endpoint_text, "endpoint_text"}, {&s_local, "local"}, {&s_remote, "remote"},
        {&s_capture_mode, "capture_mode"}, {&s_role, "role"}, {&s_pid, "pid"},
        {&s_comm, "comm"}, {&s_client_is_local, "client_is_local"}, {&s_peers, "peers"},
        {&s_entries, "entries"}, {&s_processes, "processes"}, {&s_lookup, "lookup"},
        {&s_identity, "identity"}, {&s_name, "name"}, {&s_exe, "exe"},
        {&s_container_id, "container_id"}, {&s_conn_id, "conn_id"}, {&s_tls, "tls"},
        {&s_trace_errors, "trace_errors"}, {&s_redact_path, "redact_path"},
        {&s_params, "query_params"}, {&s_clock, "clock"}, {&s_offset_ns, "offset_ns"},
        {&s_rfc3339, "rfc3339"}, {&s_without, "exchanges_without_messages"},
        {&s_client, "client"}, {&s_server, "server"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL)
            return -1;
    }
    return 0;
}

/* Attributes of the connection and of the ExchangeParsed, read straight from their slots
 * when the object is of the exact class setup() was given (where the class's own member
 * descriptor would read them), else by the ordinary attribute lookup. */
enum { A_REQUEST, A_RESPONSE, A_NOTES, A_PROTOCOL, A_STREAM_ID, A_ENDPOINT_TEXT, A_LOCAL,
       A_REMOTE, A_ROLE, A_PID, A_COMM, A_IDENTITY, A_CONN_ID, A_TLS, A_COUNT };
static PyObject **const ATTR_NAME[A_COUNT] = {
    &s_request, &s_response, &s_notes, &s_protocol, &s_stream_id, &s_endpoint_text, &s_local,
    &s_remote, &s_role, &s_pid, &s_comm, &s_identity, &s_conn_id, &s_tls};
static struct {
    PyTypeObject *type;
    Py_ssize_t offset[A_COUNT]; /* -1: not a slot of that class */
} SLOTS[2];

/* getattr(obj, ATTR_NAME[id]): a new reference or NULL. */
static PyObject *attr(PyObject *obj, int id) {
    for (int k = 0; k < 2; k++)
        if (Py_TYPE(obj) == SLOTS[k].type && SLOTS[k].offset[id] >= 0) {
            PyObject *v = *(PyObject **)((char *)obj + SLOTS[k].offset[id]);
            if (v != NULL)
                return Py_NewRef(v);
            break; /* unset: the lookup raises AttributeError */
        }
    return PyObject_GetAttr(obj, *ATTR_NAME[id]);
}

/* The slot offsets of ``type`` (a class with __slots__) for the attributes above. */
static int set_slots(int k, PyObject *type) {
    for (int id = 0; id < A_COUNT; id++) {
        PyObject *d = PyObject_GetAttr(type, *ATTR_NAME[id]);
        if (d == NULL) {
            PyErr_Clear();
            SLOTS[k].offset[id] = -1;
            continue;
        }
        PyMemberDef *m = Py_IS_TYPE(d, &PyMemberDescr_Type) ? ((PyMemberDescrObject *)d)->d_member
                                                              : NULL;
        SLOTS[k].offset[id] = m != NULL && m->type == T_OBJECT_EX ? m->offset : -1;
        Py_DECREF(d);
    }
    Py_XSETREF(SLOTS[k].type, (PyTypeObject *)Py_NewRef(type));
    return 0;
}

static inline unsigned char lower_ascii(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int same_ascii_nocase(const unsigned char *s, const char *lower, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (lower_ascii(s[i]) != (unsigned char)lower[i])
            return 0;
    return 1;
}

/* ---- time text ------------------------------------------------------------------------ */

#define NS 1000000000LL
#define MAX_SHOWN 253402300799LL /* 9999-12-31T23:59:59 */

/* Days since 1970-01-01 to a proleptic Gregorian date (days >= 0). */
static void civil_from_days(long long z, long long *y, int *m, int *d) {
    z += 719468;
    long long era = z / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *out, long long v, int width) {
    for (int i = width - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SS." of the last second formatted: most records share their second. */
static struct {
    long long secs;
    char text[20];
} last_second = {-1, {0}};

static PyObject *format_time(long long secs_shown, long long ns) {
    if (secs_shown != last_second.secs) {
        long long days = secs_shown / 86400, rem = secs_shown % 86400, y;
        int m, d;
        civil_from_days(days, &y, &m, &d);
        char *t = last_second.text;
        put_digits(t, y, 4);
        t[4] = '-';
        put_digits(t + 5, m, 2);
        t[7] = '-';
        put_digits(t + 8, d, 2);
        t[10] = 'T';
        put_digits(t + 11, rem / 3600, 2);
        t[13] = ':';
        put_digits(t + 14, rem / 60 % 60, 2);
        t[16] = ':';
        put_digits(t + 17, rem % 60, 2);
        t[19] = '.';
        last_second.secs = secs_shown;
    }
    PyObject *text = PyUnicode_New(27, 127);
    if (text == NULL)
        return NULL;
    char *out = (char *)PyUnicode_1BYTE_DATA(text);
    memcpy(out, last_second.text, 20);
    put_digits(out + 20, ns / 1000, 6);
    out[26] = 'Z';
    return text;
}

/* secs, ns = divmod(value, 10**9) for any Python int; secs held to 0..MAX_SHOWN. */
static PyObject *time_text_big(PyObject *total) {
    PyObject *billion = PyLong_FromLongLong(NS);
    PyObject *qr = billion ? PyNumber_Divmod(total, billion) : NULL;
    Py_XDECREF(billion);
    if (qr == NULL)
        return NULL;
    int overflow;
    long long secs = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(qr, 0), &overflow);
    long long ns = PyLong_AsLongLong(PyTuple_GET_ITEM(qr, 1));
    Py_DECREF(qr);
    if ((secs == -1 || ns == -1) && PyErr_Occurred())
        return NULL;
    if (overflow)
        secs = overflow > 0 ? MAX_SHOWN : 0;
    return format_time(secs < 0 ? 0 : secs > MAX_SHOWN ? MAX_SHOWN : secs, ns);
}

static PyObject *time_text(PyObject *mono_ns, PyObject *offset_ns) {
    if (!PyLong_Check(mono_ns) || !PyLong_Check(offset_ns)) {
        PyErr_SetString(PyExc_TypeError, "rfc3339() takes int nanoseconds");
        return NULL;
    }
    int o1, o2;
    long long a = PyLong_AsLongLongAndOverflow(mono_ns, &o1);
    long long b = PyLong_AsLongLongAndOverflow(offset_ns, &o2);
    if (((a == -1 && !o1) || (b == -1 && !o2)) && PyErr_Occurred())
        return NULL;
    if (o1 || o2) {
        PyObject *total = PyNumber_Add(mono_ns, offset_ns);
        PyObject *text = total ? time_text_big(total) : NULL;
        Py_XDECREF(total);
        return text;
    }
    if (a > LLONG_MAX / 2 || a < LLONG_MIN / 2 || b > LLONG_MAX / 2 || b < LLONG_MIN / 2) {
        __int128 total = (__int128)a + b;
        __int128 secs = total / NS, ns = total % NS;
        if (ns < 0) { /* floor division, as divmod */
            ns += NS;
            secs -= 1;
        }
        return format_time(secs < 0 ? 0 : secs > MAX_SHOWN ? MAX_SHOWN : (long long)secs,
                           (long long)ns);
    }
    long long total = a + b, secs = total / NS, ns = total % NS;
    if (ns < 0) {
        ns += NS;
        secs -= 1;
    }
    return format_time(secs < 0 ? 0 : secs > MAX_SHOWN ? MAX_SHOWN : secs, ns);
}

static PyObject *py_rfc3339(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "rfc3339(mono_ns, offset_ns)");
        return NULL;
    }
    return time_text(args[0], args[1]);
}

/* ---- header scans ----------------------------------------------------------------------- */

/* 1: some name of ``headers`` is a trace header (or a non-ASCII name of such a length, or a
 * shape this scan does not read: the Python parser decides those), 0: none, -1: error. */
static int any_trace_header(PyObject *headers) {
    if (!PyTuple_Check(headers))
        return 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(headers); i++) {
        PyObject *h = PyTuple_GET_ITEM(headers, i);
        if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(h, 0)))
            return 1;
        PyObject *k = PyTuple_GET_ITEM(h, 0);
        Py_ssize_t n = PyUnicode_GET_LENGTH(k);
        if (n > MAX_WANTED_LEN || !(S.wanted_lengths >> n & 1))
            continue;
        if (!PyUnicode_IS_ASCII(k))
            return 1;
        const unsigned char *s = PyUnicode_1BYTE_DATA(k);
        for (int w = 0; w < S.nwanted; w++)
            if (S.wanted_len[w] == n && same_ascii_nocase(s, S.wanted[w], n))
                return 1;
    }
    return 0;
}

/* parse_decimal(v.strip(" \t"), max_digits=3): new reference, Py_None, or NULL. */
static PyObject *status_digits(PyObject *v) {
    if (!PyUnicode_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "a header value is not str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(v))
        Py_RETURN_NONE; /* stripping spaces and tabs leaves it non-ASCII */
    const unsigned char *s = PyUnicode_1BYTE_DATA(v);
    Py_ssize_t a = 0, b = PyUnicode_GET_LENGTH(v);
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    if (b == a || b - a > 3)
        Py_RETURN_NONE;
    long value = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        if (s[i] < '0' || s[i] > '9')
            Py_RETURN_NONE;
        value = value * 10 + (s[i] - '0');
    }
    return PyLong_FromLong(value);
}

/* The first grpc-status of the headers, then of the trailers: new reference or NULL. */
static PyObject *grpc_status(PyObject *resp) {
    PyObject *lists[2] = {PyTuple_GET_ITEM(resp, S.msg_at[M_HEADERS]),
                          PyTuple_GET_ITEM(resp, S.msg_at[M_TRAILERS])};
    for (int l = 0; l < 2; l++) {
        if (!PyTuple_Check(lists[l])) {
            PyErr_SetString(PyExc_TypeError, "headers are not a tuple");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(lists[l]); i++) {
            PyObject *h = PyTuple_GET_ITEM(lists[l], i);
            if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2) {
                PyErr_SetString(PyExc_TypeError, "a header is not a (name, value) pair");
                return NULL;
            }
            PyObject *k = PyTuple_GET_ITEM(h, 0);
            if (PyUnicode_Check(k) && PyUnicode_GET_LENGTH(k) == 11 && PyUnicode_IS_ASCII(k)
                && same_ascii_nocase(PyUnicode_1BYTE_DATA(k), "grpc-status", 11))
                return status_digits(PyTuple_GET_ITEM(h, 1));
        }
    }
    Py_RETURN_NONE;
}

static PyObject *py_grpc_status(PyObject *self, PyObject *resp) {
    (void)self;
    if (resp == Py_None)
        Py_RETURN_NONE;
    if (Py_TYPE(resp) != S.message) {
        PyErr_SetString(PyExc_TypeError, "grpc_status() takes an HttpMessage or None");
        return NULL;
    }
    return grpc_status(resp);
}

static PyObject *py_has_trace_header(PyObject *self, PyObject *headers) {
    (void)self;
    return PyBool_FromLong(any_trace_header(headers));
}

/* ---- path redaction: the certain "unchanged" ------------------------------------------- */

/* 1: no parameter of ``p[0..n)`` ('&' or ';' separated, the name before '=') can be a
 * secret name, 0: maybe one is (or a character the Python redactor decodes), -1: error. */
static int params_plain(const unsigned char *p, Py_ssize_t n, PyObject *names) {
    Py_ssize_t start = 0;
    char lower[257];
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n && (p[i] == '%' || p[i] == '+' || p[i] == '['))
            return 0;
        if (i < n && p[i] != '&' && p[i] != ';')
            continue;
        Py_ssize_t end = start;
        while (end < i && p[end] != '=')
            end++;
        if (end - start > 256)
            return 0; /* a longer name is never listed, but let the redactor say so */
        for (Py_ssize_t j = start; j < end; j++)
            lower[j - start] = (char)lower_ascii(p[j]);
        PyObject *name = PyUnicode_FromStringAndSize(lower, end - start);
        int hit = name ? PySet_Contains(names, name) : -1;
        Py_XDECREF(name);
        if (hit != 0)
            return hit < 0 ? -1 : 0;
        start = i + 1;
    }
    return 1;
}

/* 1: Redactor.redact_path(path) certainly returns ``path`` itself, 0: ask it, -1: error. */
static int path_unchanged(PyObject *path, PyObject *names) {
    if (!PyUnicode_Check(path) || !PyUnicode_IS_ASCII(path))
        return 0;
    const unsigned char *p = PyUnicode_1BYTE_DATA(path);
    Py_ssize_t n = PyUnicode_GET_LENGTH(path), q = -1, h = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] == '@')
            return 0;
        if (p[i] == '#' && h < 0)
            h = i;
        else if (p[i] == '?' && q < 0 && h < 0)
            q = i;
    }
    if (q < 0 && h < 0)
        return 1;
    if (!PyAnySet_Check(names))
        return 0;
    Py_ssize_t base_end = h < 0 ? n : h;
    if (q >= 0) {
        int r = params_plain(p + q + 1, base_end - q - 1, names);
        if (r != 1)
            return r;
    }
    return h < 0 ? 1 : params_plain(p + h + 1, n - h - 1, names);
}

static PyObject *py_path_unchanged(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "path_unchanged(path, names)");
        return NULL;
    }
    int r = path_unchanged(args[0], args[1]);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* The request path as the record shows it: new reference or NULL. */
static PyObject *record_path(PyObject *pipeline, PyObject *path) {
    if (path == Py_None)
        Py_RETURN_NONE;
    PyObject *redact = PyObject_GetAttr(pipeline, s_redact_path);
    if (redact == NULL)
        return NULL;
    if (redact == Py_None) {
        Py_DECREF(redact);
        return Py_NewRef(path);
    }
    int same = 0;
    if (PyMethod_Check(redact) && PyMethod_GET_FUNCTION(redact) == S.redact_func) {
        PyObject *redactor = PyMethod_GET_SELF(redact);
        if (redactor != S.redactor) { /* a Redactor is immutable: its names kept with it */
            PyObject *names = PyObject_GetAttr(redactor, s_params);
            if (names == NULL) {
                Py_DECREF(redact);
                return NULL;
            }
            Py_XSETREF(S.redactor_names, names);
            Py_XSETREF(S.redactor, Py_NewRef(redactor));
        }
        same = path_unchanged(path, S.redactor_names);
    }
    PyObject *out = same < 0 ? NULL : same ? Py_NewRef(path) : PyObject_CallOneArg(redact, path);
    Py_DECREF(redact);
    return out;
}

/* ---- the record ------------------------------------------------------------------------- */

/* Item ``at`` of a message (borrowed), or NULL for no message. */
static inline PyObject *msg_item(PyObject *m, int at) {
    return m == NULL ? NULL : PyTuple_GET_ITEM(m, S.msg_at[at]);
}

/* The exchange's notes, then each message's not already there (a new tuple). */
static PyObject *merged_notes(PyObject *ep_notes, PyObject *req, PyObject *resp) {
    PyObject *notes = PySequence_List(ep_notes);
    if (notes == NULL)
        return NULL;
    PyObject *msgs[2] = {req, resp};
    for (int m = 0; m < 2; m++) {
        PyObject *more = msg_item(msgs[m], M_NOTES);
        if (more == NULL)
            continue;
        PyObject *it = PyObject_GetIter(more), *n;
        if (it == NULL)
            goto fail;
        while ((n = PyIter_Next(it)) != NULL) {
            int there = PySequence_Contains(notes, n);
            int rc = there < 0 ? -1 : there ? 0 : PyList_Append(notes, n);
            Py_DECREF(n);
            if (rc < 0) {
                Py_DECREF(it);
                goto fail;
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            goto fail;
    }
    PyObject *out = PyList_AsTuple(notes);
    Py_DECREF(notes);
    return out;
fail:
    Py_DECREF(notes);
    return NULL;
}

/* f[F_NOTES] and f[F_PARTIAL]: 0, or -1 with an exception. */
static int notes_and_partial(PyObject **f, PyObject *ep, PyObject *req, PyObject *resp) {
    PyObject *ep_notes = attr(ep, A_NOTES);
    if (ep_notes == NULL)
        return -1;
    int any = PyObject_IsTrue(ep_notes);
    PyObject *msgs[2] = {req, resp};
    for (int m = 0; m < 2 && any == 0; m++)
        if (msgs[m] != NULL)
            any = PyObject_IsTrue(msg_item(msgs[m], M_NOTES));
    if (any > 0) {
        f[F_NOTES] = merged_notes(ep_notes, req, resp);
        f[F_PARTIAL] = Py_NewRef(Py_True);
    }
    Py_DECREF(ep_notes);
    if (any != 0)
        return any < 0 || f[F_NOTES] == NULL ? -1 : 0;
    int partial = 0;
    for (int m = 0; m < 2 && partial == 0; m++)
        if (msgs[m] != NULL) {
            int complete = PyObject_IsTrue(msg_item(msgs[m], M_COMPLETE));
            partial = complete < 0 ? -1 : !complete;
        }
    if (partial < 0)
        return -1;
    f[F_NOTES] = PyTuple_New(0);
    f[F_PARTIAL] = PyBool_FromLong(partial);
    return f[F_NOTES] == NULL ? -1 : 0;
}

/* f[F_LOCAL] and f[F_REMOTE] from conn.endpoint_text, formatted on first use. */
static int endpoints(PyObject **f, PyObject *conn) {
    PyObject *text = attr(conn, A_ENDPOINT_TEXT);
    if (text == Py_None) {
        Py_DECREF(text);
        static const int ends[2] = {A_LOCAL, A_REMOTE};
        PyObject *txt[2] = {NULL, NULL};
        for (int i = 0; i < 2 && (i == 0 || txt[0] != NULL); i++) {
            PyObject *end = attr(conn, ends[i]);
            txt[i] = end ? PyObject_CallOneArg(S.format_endpoint, end) : NULL;
            Py_XDECREF(end);
        }
        text = txt[0] && txt[1] ? PyTuple_Pack(2, txt[0], txt[1]) : NULL;
        Py_XDECREF(txt[0]);
        Py_XDECREF(txt[1]);
        if (text == NULL || PyObject_SetAttr(conn, s_endpoint_text, text) < 0) {
            Py_XDECREF(text);
            return -1;
        }
    }
    if (text == NULL)
        return -1;
    if (!PyTuple_Check(text) || PyTuple_GET_SIZE(text) != 2) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "conn.endpoint_text is not a pair");
        return -1;
    }
    f[F_LOCAL] = Py_NewRef(PyTuple_GET_ITEM(text, 0));
    f[F_REMOTE] = Py_NewRef(PyTuple_GET_ITEM(text, 1));
    Py_DECREF(text);
    return 0;
}

/* processes.lookup(pid): new reference (Py_None when unknown) or NULL. */
static PyObject *lookup(PyObject *procs, PyObject *pid) {
    if (procs == Py_None || pid == Py_None)
        Py_RETURN_NONE;
    return PyObject_CallMethodOneArg(procs, s_lookup, pid);
}

/* f[F_COMM], f[F_NAME], f[F_EXE], f[F_CONTAINER_ID], f[F_THREAD]: the observing process
 * (f[F_PID]'s). */
static int identity(PyObject **f, PyObject *conn, PyObject *procs) {
    PyObject *info = lookup(procs, f[F_PID]); /* conn.pid, read by the caller */
    PyObject *comm = info ? attr(conn, A_COMM) : NULL;
    if (comm == NULL) {
        Py_XDECREF(info);
        return -1;
    }
    if (info == Py_None) {
        Py_DECREF(info);
        f[F_COMM] = Py_NewRef(comm);
        f[F_NAME] = Py_NewRef(Py_None);
        f[F_EXE] = Py_NewRef(Py_None);
        f[F_CONTAINER_ID] = Py_NewRef(Py_None);
        f[F_THREAD] = comm;
        return 0;
    }
    PyObject *who = NULL, *kept = attr(conn, A_IDENTITY);
    if (kept != NULL && PyTuple_Check(kept) && PyTuple_GET_SIZE(kept) == 2
        && PyTuple_GET_ITEM(kept, 0) == info)
        who = Py_NewRef(PyTuple_GET_ITEM(kept, 1));
    else if (kept != NULL) {
        PyObject *name = PyObject_GetAttr(info, s_name);
        PyObject *exe = name ? PyObject_GetAttr(info, s_exe) : NULL;
        PyObject *cid = exe ? PyObject_GetAttr(info, s_container_id) : NULL;
        who = cid ? PyTuple_Pack(5, name, name, exe, cid, comm) : NULL;
        PyObject *pair = who ? PyTuple_Pack(2, info, who) : NULL;
        if (pair == NULL || PyObject_SetAttr(conn, s_identity, pair) < 0)
            Py_CLEAR(who);
        Py_XDECREF(pair);
        Py_XDECREF(name);
        Py_XDECREF(exe);
        Py_XDECREF(cid);
    }
    Py_XDECREF(kept);
    Py_DECREF(info);
    Py_DECREF(comm);
    if (who == NULL)
        return -1;
    if (!PyTuple_Check(who) || PyTuple_GET_SIZE(who) != 5) {
        Py_DECREF(who);
        PyErr_SetString(PyExc_TypeError, "conn.identity holds no 5-tuple");
        return -1;
    }
    static const int at[5] = {F_COMM, F_NAME, F_EXE, F_CONTAINER_ID, F_THREAD};
    for (int i = 0; i < 5; i++)
        f[at[i]] = Py_NewRef(PyTuple_GET_ITEM(who, i));
    Py_DECREF(who);
    return 0;
}

/* "client" or "server" as conn.client_is_local() says (new reference or NULL). */
static PyObject *side(PyObject *conn) {
    PyObject *role = attr(conn, A_ROLE);
    if (role == NULL)
        return NULL;
    int local = role == S.role_client ? 1 : role == S.role_server ? 0 : -2;
    Py_DECREF(role);
    if (local == -2) {
        PyObject *r = PyObject_CallMethodNoArgs(conn, s_client_is_local);
        local = r ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
    }
    return local < 0 ? NULL : Py_NewRef(local ? s_client : s_server);
}

/* f[F_PEER_PID] and f[F_PEER_NAME]: the traced local process at the other end, if any. */
static int peer(PyObject **f, PyObject *pipeline, PyObject *procs) {
    PyObject *peers = PyObject_GetAttr(pipeline, s_peers);
    PyObject *entries = peers ? PyObject_GetAttr(peers, s_entries) : NULL;
    Py_XDECREF(peers);
    if (entries == NULL)
        return -1;
    if (!PyDict_Check(entries)) {
        Py_DECREF(entries);
        PyErr_SetString(PyExc_TypeError, "pipeline.peers.entries is not a dict");
        return -1;
    }
    PyObject *key = PyTuple_Pack(2, f[F_REMOTE], f[F_LOCAL]);
    PyObject *entry = key ? PyDict_GetItemWithError(entries, key) : NULL;
    Py_XDECREF(key);
    if (entry == NULL) {
        Py_DECREF(entries);
        if (PyErr_Occurred())
            return -1;
        f[F_PEER_PID] = Py_NewRef(Py_None);
        f[F_PEER_NAME] = Py_NewRef(Py_None);
        return 0;
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) {
        Py_DECREF(entries);
        PyErr_SetString(PyExc_TypeError, "a peer entry is not (conn_id, pid, comm)");
        return -1;
    }
    PyObject *pid = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    PyObject *name = Py_NewRef(PyTuple_GET_ITEM(entry, 2));
    Py_DECREF(entries); /* the entry's items are held by our own references now */
    f[F_PEER_PID] = pid;
    if (pid == Py_None) {
        f[F_PEER_NAME] = Py_NewRef(Py_None); /* the record names a peer only with its pid */
        Py_DECREF(name);
        return 0;
    }
    PyObject *info = lookup(procs, pid);
    if (info == NULL) {
        Py_DECREF(name);
        return -1;
    }
    if (info != Py_None) {
        PyObject *known = PyObject_GetAttr(info, s_name);
        int use = known ? PyObject_IsTrue(known) : -1;
        if (use > 0)
            Py_SETREF(name, Py_NewRef(known));
        Py_XDECREF(known);
        if (use < 0) {
            Py_DECREF(info);
            Py_DECREF(name);
            return -1;
        }
    }
    Py_DECREF(info);
    f[F_PEER_NAME] = name;
    return 0;
}

/* f[F_TRACE], f[F_REQUEST_ID], f[F_PATH], f[F_METHOD], f[F_AUTHORITY], f[F_REQUEST_BYTES]. */
static int request_fields(PyObject **f, PyObject *pipeline, PyObject *req) {
    if (req == NULL) {
        static const int none[5] = {F_TRACE, F_REQUEST_ID, F_PATH, F_METHOD, F_AUTHORITY};
        for (int i = 0; i < 5; i++)
            f[none[i]] = Py_NewRef(Py_None);
        f[F_REQUEST_BYTES] = PyLong_FromLong(0);
        return f[F_REQUEST_BYTES] == NULL ? -1 : 0;
    }
    PyObject *headers = msg_item(req, M_HEADERS);
    if (any_trace_header(headers)) {
        PyObject *errors = PyObject_GetAttr(pipeline, s_trace_errors);
        PyObject *got = errors ? PyObject_CallFunctionObjArgs(S.extract, headers, errors, NULL)
                               : NULL;
        Py_XDECREF(errors);
        if (got == NULL)
            return -1;
        if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 2) {
            Py_DECREF(got);
            PyErr_SetString(PyExc_TypeError, "extract() gave no (trace, request_id) pair");
            return -1;
        }
        f[F_TRACE] = Py_NewRef(PyTuple_GET_ITEM(got, 0));
        f[F_REQUEST_ID] = Py_NewRef(PyTuple_GET_ITEM(got, 1));
        Py_DECREF(got);
    } else {
        f[F_TRACE] = Py_NewRef(Py_None);
        f[F_REQUEST_ID] = Py_NewRef(Py_None);
    }
    f[F_PATH] = record_path(pipeline, msg_item(req, M_PATH));
    f[F_METHOD] = Py_NewRef(msg_item(req, M_METHOD));
    f[F_AUTHORITY] = Py_NewRef(msg_item(req, M_AUTHORITY));
    f[F_REQUEST_BYTES] = Py_NewRef(msg_item(req, M_WIRE_BYTES));
    return f[F_PATH] == NULL ? -1 : 0;
}

/* f[F_STATUS], f[F_GRPC_STATUS], f[F_RESPONSE_BYTES]. */
static int response_fields(PyObject **f, PyObject *resp) {
    if (resp == NULL) {
        f[F_STATUS] = Py_NewRef(Py_None);
        f[F_GRPC_STATUS] = Py_NewRef(Py_None);
        f[F_RESPONSE_BYTES] = PyLong_FromLong(0);
        return f[F_RESPONSE_BYTES] == NULL ? -1 : 0;
    }
    f[F_STATUS] = Py_NewRef(msg_item(resp, M_STATUS));
    f[F_RESPONSE_BYTES] = Py_NewRef(msg_item(resp, M_WIRE_BYTES));
    f[F_GRPC_STATUS] = grpc_status(resp);
    return f[F_GRPC_STATUS] == NULL ? -1 : 0;
}

/* f[F_TIME]: the clock's text for the first message's start. */
static int time_field(PyObject **f, PyObject *pipeline) {
    PyObject *clock = PyObject_GetAttr(pipeline, s_clock);
    if (clock == NULL)
        return -1;
    if (Py_TYPE(clock) == S.wallclock) {
        PyObject *offset = PyObject_GetAttr(clock, s_offset_ns);
        f[F_TIME] = offset ? time_text(f[F_START_NS], offset) : NULL;
        Py_XDECREF(offset);
    } else {
        f[F_TIME] = PyObject_CallMethodOneArg(clock, s_rfc3339, f[F_START_NS]);
    }
    Py_DECREF(clock);
    return f[F_TIME] == NULL ? -1 : 0;
}

/* f[F_SIDE], f[F_PID], the peer and the identity; all None for packet captures. */
static int process_fields(PyObject **f, PyObject *pipeline, PyObject *conn) {
    PyObject *capture = PyObject_GetAttr(pipeline, s_capture_mode);
    int capture_mode = capture ? PyObject_IsTrue(capture) : -1;
    Py_XDECREF(capture);
    if (capture_mode < 0)
        return -1;
    if (capture_mode) {
        static const int none[8] = {F_SIDE, F_PID, F_PEER_PID, F_PEER_NAME, F_COMM, F_NAME,
                                    F_EXE, F_CONTAINER_ID};
        for (int i = 0; i < 8; i++)
            f[none[i]] = Py_NewRef(Py_None);
        f[F_THREAD] = Py_NewRef(Py_None);
        return 0;
    }
    PyObject *procs = PyObject_GetAttr(pipeline, s_processes);
    if (procs == NULL)
        return -1;
    /* the observer's lookup before the peer's, as the table has always been asked */
    int rc = (f[F_SIDE] = side(conn)) == NULL || (f[F_PID] = attr(conn, A_PID)) == NULL
        || identity(f, conn, procs) < 0 || peer(f, pipeline, procs) < 0 ? -1 : 0;
    Py_DECREF(procs);
    return rc;
}

static int check_message(PyObject *m) {
    if (m == Py_None || Py_TYPE(m) == S.message)
        return 0;
    PyErr_SetString(PyExc_TypeError, "a message is not an HttpMessage");
    return -1;
}

/* The record's fields into f (new references): 1 made, 0 no messages (counted), -1 error. */
static int fields(PyObject **f, PyObject *pipeline, PyObject *conn, PyObject *ep) {
    PyObject *req = attr(ep, A_REQUEST);
    PyObject *resp = req ? attr(ep, A_RESPONSE) : NULL;
    int rc = -1;
    if (resp == NULL || check_message(req) < 0 || check_message(resp) < 0)
        goto done;
    if (req == Py_None && resp == Py_None) {
        PyObject *counters = PyObject_GetAttr(pipeline, s_counters);
        PyObject *was = counters ? PyObject_GetItem(counters, s_without) : NULL;
        PyObject *now = was ? PyNumber_Add(was, S.one) : NULL;
        rc = now && PyObject_SetItem(counters, s_without, now) == 0 ? 0 : -1;
        Py_XDECREF(now);
        Py_XDECREF(was);
        Py_XDECREF(counters);
        goto done;
    }
    PyObject *rq = req == Py_None ? NULL : req, *rs = resp == Py_None ? NULL : resp;
    PyObject *first = rq ? rq : rs, *last = rs ? rs : rq;
    f[F_START_NS] = Py_NewRef(msg_item(first, M_START_NS));
    f[F_END_NS] = Py_NewRef(msg_item(last, M_END_NS));
    f[F_REQUEST] = Py_NewRef(req);
    f[F_RESPONSE] = Py_NewRef(resp);
    if ((f[F_PROTOCOL] = attr(ep, A_PROTOCOL)) == NULL
        || (f[F_STREAM_ID] = attr(ep, A_STREAM_ID)) == NULL
        || (f[F_CONN_ID] = attr(conn, A_CONN_ID)) == NULL
        || (f[F_TLS] = attr(conn, A_TLS)) == NULL
        || notes_and_partial(f, ep, rq, rs) < 0 || endpoints(f, conn) < 0
        || process_fields(f, pipeline, conn) < 0 || request_fields(f, pipeline, rq) < 0
        || response_fields(f, rs) < 0 || time_field(f, pipeline) < 0)
        goto done;
    rc = 1;
done:
    Py_XDECREF(req);
    Py_XDECREF(resp);
    return rc;
}

/* build(pipeline, conn, ep) -> Exchange | None: Pipeline.build (see the top of this file). */
static PyObject *py_build(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (!S.ready) {
        PyErr_SetString(PyExc_RuntimeError, "_build.setup() was not called");
        return NULL;
    }
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "build(pipeline, conn, ep)");
        return NULL;
    }
    PyObject *f[EXCHANGE_FIELDS] = {NULL};
    int rc = fields(f, args[0], args[1], args[2]);
    PyObject *rec = NULL;
    for (int i = 0; i < EXCHANGE_FIELDS && rc > 0; i++)
        if (f[i] == NULL) { /* every field is set above; a gap would be a bug here */
            PyErr_Format(PyExc_SystemError, "_build: field %s not set", FIELD_ORDER[i]);
            rc = -1;
        }
    if (rc > 0) {
        rec = S.exchange->tp_alloc(S.exchange, EXCHANGE_FIELDS);
        if (rec != NULL)
            for (int i = 0; i < EXCHANGE_FIELDS; i++) {
                PyTuple_SET_ITEM(rec, i, f[i]); /* stolen */
                f[i] = NULL;
            }
    }
    for (int i = 0; i < EXCHANGE_FIELDS; i++)
        Py_XDECREF(f[i]);
    if (rc == 0)
        Py_RETURN_NONE;
    return rec;
}

/* ---- setup ------------------------------------------------------------------------------ */

static int check_fields(PyObject *type, const char *const *want, Py_ssize_t n,
                        Py_ssize_t *positions) {
    PyObject *names = PyObject_GetAttrString(type, "_fields");
    if (names == NULL)
        return -1;
    int rc = PyTuple_Check(names) ? 0 : -1;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        Py_ssize_t found = -1;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names) && found < 0; j++) {
            PyObject *name = PyTuple_GET_ITEM(names, j);
            if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, want[i]) == 0)
                found = j;
        }
        if (positions != NULL)
            positions[i] = found;
        else if (found != i)
            found = -1;
        if (found < 0)
            rc = -1;
    }
    if (positions == NULL && rc == 0 && PyTuple_GET_SIZE(names) != n)
        rc = -1;
    if (positions != NULL)
        S.msg_size = PyTuple_Check(names) ? PyTuple_GET_SIZE(names) : 0;
    Py_DECREF(names);
    if (rc < 0 && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%R has not the fields _buildmodule.c reads", type);
    return rc;
}

static int set_wanted(PyObject *wanted) {
    PyObject *it = PyObject_GetIter(wanted), *name;
    if (it == NULL)
        return -1;
    S.nwanted = 0;
    S.wanted_lengths = 0;
    while ((name = PyIter_Next(it)) != NULL) {
        Py_ssize_t n = PyUnicode_Check(name) ? PyUnicode_GET_LENGTH(name) : -1;
        int ok = n > 0 && n <= MAX_WANTED_LEN && PyUnicode_IS_ASCII(name) && S.nwanted < MAX_WANTED;
        for (Py_ssize_t i = 0; ok && i < n; i++) {
            unsigned char c = PyUnicode_1BYTE_DATA(name)[i];
            ok = c == lower_ascii(c);
            S.wanted[S.nwanted][i] = (char)c;
        }
        Py_DECREF(name);
        if (!ok) {
            Py_DECREF(it);
            PyErr_SetString(PyExc_ValueError, "trace header names: at most 32 lowercase ASCII");
            return -1;
        }
        S.wanted_len[S.nwanted++] = n;
        S.wanted_lengths |= 1ULL << n;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *py_setup(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *keywords[] = {"exchange", "message", "wallclock", "role_client", "role_server",
                               "extract", "wanted", "format_endpoint", "redact_path",
                               "connection", "parsed", NULL};
    PyObject *exchange, *message, *wallclock, *client, *server, *extract, *wanted, *fmt, *redact,
        *connection, *parsed;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O!OOOOOOO!O!", keywords, &PyType_Type,
                                     &exchange, &PyType_Type, &message, &PyType_Type, &wallclock,
                                     &client, &server, &extract, &wanted, &fmt, &redact,
                                     &PyType_Type, &connection, &PyType_Type, &parsed))
        return NULL;
    PyTypeObject *ex = (PyTypeObject *)exchange, *msg = (PyTypeObject *)message;
    if (!PyType_IsSubtype(ex, &PyTuple_Type) || ex->tp_basicsize != PyTuple_Type.tp_basicsize
        || !PyType_IsSubtype(msg, &PyTuple_Type) || !PyCallable_Check(extract)
        || !PyCallable_Check(fmt) || !PyFunction_Check(redact)) {
        PyErr_SetString(PyExc_TypeError, "setup(): not the types and functions it reads");
        return NULL;
    }
    if (check_fields(exchange, FIELD_ORDER, EXCHANGE_FIELDS, NULL) < 0
        || check_fields(message, MSG_FIELDS, M_COUNT, S.msg_at) < 0 || set_wanted(wanted) < 0
        || set_slots(0, connection) < 0 || set_slots(1, parsed) < 0)
        return NULL;
    S.ready = 0;
    Py_XSETREF(S.exchange, (PyTypeObject *)Py_NewRef(exchange));
    Py_XSETREF(S.message, (PyTypeObject *)Py_NewRef(message));
    Py_XSETREF(S.wallclock, (PyTypeObject *)Py_NewRef(wallclock));
    Py_XSETREF(S.role_client, Py_NewRef(client));
    Py_XSETREF(S.role_server, Py_NewRef(server));
    Py_XSETREF(S.extract, Py_NewRef(extract));
    Py_XSETREF(S.format_endpoint, Py_NewRef(fmt));
    Py_XSETREF(S.redact_func, Py_NewRef(redact));
    S.ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", (PyCFunction)(void (*)(void))py_setup, METH_VARARGS | METH_KEYWORDS,
     "setup(*, exchange, message, wallclock, role_client, role_server, extract, wanted, "
     "format_endpoint, redact_path, connection, parsed): the types and functions build() reads "
     "(pipeline.py)"},
    {"rfc3339", (PyCFunction)(void (*)(void))py_rfc3339, METH_FASTCALL,
     "rfc3339(mono_ns, offset_ns) -> RFC 3339 UTC text, microseconds (WallClock.rfc3339)"},
    {"grpc_status", py_grpc_status, METH_O, "grpc_status(response) -> int | None"},
    {"has_trace_header", py_has_trace_header, METH_O,
     "has_trace_header(headers) -> bool: whether tracecontext.extract has anything to read"},
    {"path_unchanged", (PyCFunction)(void (*)(void))py_path_unchanged, METH_FASTCALL,
     "path_unchanged(path, names) -> bool: Redactor.redact_path(path) is certainly path"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef build_def = {
    "build", (PyCFunction)(void (*)(void))py_build, METH_FASTCALL,
    "build(pipeline, conn, ep) -> Exchange | None (see _buildmodule.c)"};

static struct PyModuleDef buildmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "l7scope.dataplane._build",
    .m_doc = "The Exchange record of an ExchangeParsed, built in C (Pipeline.build).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__build(void) {
    if (intern_all() < 0 || (S.one = PyLong_FromLong(1)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&buildmodule);
    if (m == NULL)
        return NULL;
    /* ``build`` as a function, and as ``build_method``: an instancemethod, so a class
     * attribute binds it like a Python function (Pipeline.build). */
    PyObject *func = PyCFunction_NewEx(&build_def, NULL, NULL);
    PyObject *method = func ? PyInstanceMethod_New(func) : NULL;
    if (method == NULL || PyModule_AddObjectRef(m, "build", func) < 0
        || PyModule_AddObjectRef(m, "build_method", method) < 0) {
        Py_XDECREF(func);
        Py_XDECREF(method);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(func);
    Py_DECREF(method);
    return m;
}
