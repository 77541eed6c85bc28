/* _sockbytesmodule.c: TCP metrics' per-socket traffic from the DATA records, kept in C.
 *
 * Theory of operation
 * -------------------
 * tcpmetrics.py joins each socket's kernel summary with what the socket moved: the bytes sent
 * and received, the write and read syscalls (counted once per syscall: the chunks of one call
 * share its (tid, ts_enter, ts_exit)), the time spent in writes, and its owner (pid, comm,
 * role) as first seen. Every DataChunk adds to these, so the counting runs here, a batch of
 * capture events per call, with no Python object made per chunk:
 *
 *   SocketBytes(max_sockets, counters, chunk_type, opened_type, summary_type, unknown_role,
 *               bytes_type) is made once by TcpMetrics: the event types of capture/events.py
 *   and capture/tcp_summary.py, Role.UNKNOWN, the ``counters`` Counter the drops are counted
 *   in, and ``bytes_type`` (tcpmetrics._Bytes) that a socket's counts are handed back as:
 *   bytes_type(pid, comm, role, sent, received, writes, reads, write_ns).
 *
 *   feed(events, on_summary) takes the events in order: a DataChunk (exactly that type, TLS
 *   plaintext skipped) adds to its socket, keyed by (local, remote), and marks it moved; a
 *   ConnectionOpened sets its socket's owner and role; a TcpSummary is handed to
 *   ``on_summary`` at its place in the batch (it takes the socket's counts with ``pop``, so the
 *   chunks after it in the batch count for the next socket of those ends); others are skipped.
 *
 *   get(key) / pop(key[, default]) give a socket's counts as a bytes_type (pop forgets the
 *   socket), reset(key) zeroes its counts (an interval reported them; owner and last call
 *   stay), take_moved() lists the keys of sockets that moved since the last call, oldest
 *   first, and clears the marks; len() and ``in`` as for a dict.
 *
 * Sockets are an open-addressing hash table (linear probing, backward-shift deletion) over an
 * array of entries that grows by doubling up to ``max_sockets``; the entries are also a list in
 * insertion order, and a new socket when the table is full evicts the oldest inserted one,
 * counted as ``tcp_sockets_evicted`` (the OrderedDict it replaces did the same). Keys are
 * compared by Python equality (identity first), hashed from hash(local) and hash(remote).
 *
 * Numbers are read as Python ints: a chunk whose length, tid or times are not ints in 0 ..
 * 2**64 - 1 (length: 2**63 - 1), or whose sums would pass 2**63 - 1, or whose ends cannot be
 * hashed or compared, changes nothing and is counted as ``tcp_events_malformed`` (the counter
 * appears with its first count); so is such a ConnectionOpened.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* the DataChunk fields read here, by name; their positions come from chunk_type._fields */
enum { C_EGRESS, C_LENGTH, C_ROLE, C_LOCAL, C_REMOTE, C_PID, C_TID, C_COMM, C_TS_ENTER,
       C_TS_EXIT, C_TLS, C_COUNT };
static const char *const CHUNK_FIELDS[C_COUNT] = {
    "egress", "length", "role", "local", "remote", "pid", "tid", "comm", "ts_enter", "ts_exit",
    "tls"};

#define NO_SOCK (-1)
#define FIRST_ENTRIES 64

enum { OK = 0, DROP = 1, FAIL = -1 }; /* a result of one event: FAIL is an error set */

typedef struct {
    uint64_t v[3];    /* tid, ts_enter, ts_exit */
    uint8_t none;     /* bit i set: v[i] was None */
} call_id;

typedef struct {
    PyObject *local, *remote;    /* the key; NULL in a free entry */
    PyObject *pid, *comm, *role; /* the owner as first seen */
    uint64_t hash;
    int64_t sent, received, writes, reads, write_ns;
    call_id last;
    uint8_t has_last, role_known, moved;
    int32_t older, newer; /* insertion order; a free entry's ``newer`` links the free list */
} sock;

typedef struct {
    PyObject_HEAD
    sock *socks;
    int32_t cap, used, free_head, oldest, newest;
    int32_t *slots; /* entry index or NO_SOCK; 2**slot_bits of them, at least 2 * cap */
    unsigned slot_bits;
    int32_t max_sockets;
    int busy; /* inside a key comparison: the table must not change */
    Py_ssize_t at[C_COUNT], min_len;
    PyObject *counters, *chunk_type, *opened_type, *summary_type, *unknown_role, *bytes_type;
} SocketBytes;

static PyObject *S_EVICTED, *S_MALFORMED, *S_LOCAL, *S_REMOTE, *S_PID, *S_COMM, *S_ROLE;

/* ---- counters ---------------------------------------------------------------------------- */

static int bump(SocketBytes *self, PyObject *name) {
    PyObject *v = PyObject_GetItem(self->counters, name); /* a Counter gives 0 when missing */
    if (v == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return -1;
        PyErr_Clear();
        v = PyLong_FromLong(0);
        if (v == NULL)
            return -1;
    }
    PyObject *one = PyLong_FromLong(1), *n = one ? PyNumber_Add(v, one) : NULL;
    Py_DECREF(v);
    Py_XDECREF(one);
    int rc = n == NULL ? -1 : PyObject_SetItem(self->counters, name, n);
    Py_XDECREF(n);
    return rc;
}

/* ---- the table --------------------------------------------------------------------------- */

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser: every bit moves the low ones */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int key_hash(PyObject *local, PyObject *remote, uint64_t *out) {
    Py_hash_t a = PyObject_Hash(local), b = a == -1 ? -1 : PyObject_Hash(remote);
    if (b == -1)
        return -1;
    *out = mix((uint64_t)a * 0x9e3779b97f4a7c15ULL ^ mix((uint64_t)b));
    return 0;
}

static int32_t slot_mask(SocketBytes *self) { return (int32_t)((1u << self->slot_bits) - 1); }

/* The entry of (local, remote): its index, NO_SOCK, or -2 with an error set. */
static int32_t find(SocketBytes *self, PyObject *local, PyObject *remote, uint64_t h) {
    int32_t mask = slot_mask(self);
    if (self->slots == NULL)
        return NO_SOCK;
    for (int32_t i = (int32_t)(h & (uint64_t)mask);; i = (i + 1) & mask) {
        int32_t e = self->slots[i];
        if (e == NO_SOCK)
            return NO_SOCK;
        sock *s = &self->socks[e];
        if (s->hash != h)
            continue;
        self->busy = 1;
        int eq = PyObject_RichCompareBool(s->local, local, Py_EQ);
        if (eq == 1)
            eq = PyObject_RichCompareBool(s->remote, remote, Py_EQ);
        self->busy = 0;
        if (eq < 0)
            return -2;
        if (eq)
            return e;
    }
}

static void place(SocketBytes *self, int32_t e) {
    int32_t mask = slot_mask(self), i = (int32_t)(self->socks[e].hash & (uint64_t)mask);
    while (self->slots[i] != NO_SOCK)
        i = (i + 1) & mask;
    self->slots[i] = e;
}

/* Linear probing's deletion: later entries of the run move back so no probe stops short. */
static void unslot(SocketBytes *self, int32_t e) {
    int32_t mask = slot_mask(self), i = (int32_t)(self->socks[e].hash & (uint64_t)mask);
    while (self->slots[i] != e)
        i = (i + 1) & mask;
    self->slots[i] = NO_SOCK;
    for (int32_t j = (i + 1) & mask; self->slots[j] != NO_SOCK; j = (j + 1) & mask) {
        int32_t home = (int32_t)(self->socks[self->slots[j]].hash & (uint64_t)mask);
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            self->slots[i] = self->slots[j];
            self->slots[j] = NO_SOCK;
            i = j;
        }
    }
}

static void forget(SocketBytes *self, int32_t e) {
    sock *s = &self->socks[e];
    unslot(self, e);
    if (s->older != NO_SOCK)
        self->socks[s->older].newer = s->newer;
    else
        self->oldest = s->newer;
    if (s->newer != NO_SOCK)
        self->socks[s->newer].older = s->older;
    else
        self->newest = s->older;
    PyObject *refs[5] = {s->local, s->remote, s->pid, s->comm, s->role};
    memset(s, 0, sizeof *s);
    s->newer = self->free_head;
    self->free_head = e;
    self->used--;
    for (int i = 0; i < 5; i++)
        Py_XDECREF(refs[i]);
}

static int reslot(SocketBytes *self, unsigned bits) {
    int32_t *slots = PyMem_Malloc(sizeof(int32_t) << bits);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < ((size_t)1 << bits); i++)
        slots[i] = NO_SOCK;
    PyMem_Free(self->slots);
    self->slots = slots;
    self->slot_bits = bits;
    for (int32_t e = self->oldest; e != NO_SOCK; e = self->socks[e].newer)
        place(self, e);
    return 0;
}

/* More entries, doubling up to max_sockets; the slots stay at least twice the entries. */
static int grow(SocketBytes *self) {
    int32_t cap = self->cap ? self->cap : FIRST_ENTRIES / 2;
    cap = cap > self->max_sockets / 2 ? self->max_sockets : cap * 2;
    sock *socks = PyMem_Realloc(self->socks, sizeof(sock) * (size_t)cap);
    if (socks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(socks + self->cap, 0, sizeof(sock) * (size_t)(cap - self->cap));
    for (int32_t e = cap - 1; e >= self->cap; e--) {
        socks[e].newer = self->free_head;
        self->free_head = e;
    }
    self->socks = socks;
    self->cap = cap;
    unsigned bits = self->slot_bits ? self->slot_bits : 4;
    while (((int64_t)1 << bits) < 2 * (int64_t)cap)
        bits++;
    return bits == self->slot_bits ? 0 : reslot(self, bits);
}

/* A new entry for (local, remote), the oldest evicted (and counted) when the table is full. */
static int32_t add(SocketBytes *self, PyObject *local, PyObject *remote, uint64_t h) {
    if (self->used >= self->max_sockets) {
        forget(self, self->oldest);
        if (bump(self, S_EVICTED) < 0)
            return -2;
    }
    if (self->free_head == NO_SOCK && grow(self) < 0)
        return -2;
    int32_t e = self->free_head;
    sock *s = &self->socks[e];
    self->free_head = s->newer;
    *s = (sock){.local = Py_NewRef(local), .remote = Py_NewRef(remote), .pid = Py_NewRef(Py_None),
                .comm = Py_NewRef(Py_None), .role = Py_NewRef(self->unknown_role), .hash = h,
                .older = self->newest, .newer = NO_SOCK};
    if (self->newest != NO_SOCK)
        self->socks[self->newest].newer = e;
    else
        self->oldest = e;
    self->newest = e;
    self->used++;
    place(self, e);
    return e;
}

/* The entry of a key the caller gives: index, NO_SOCK (no such socket, or not a 2-tuple), or
 * -2 with an error set. */
static int32_t find_key(SocketBytes *self, PyObject *key) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "SocketBytes changed while comparing keys");
        return -2;
    }
    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2 || self->used == 0)
        return NO_SOCK;
    PyObject *local = PyTuple_GET_ITEM(key, 0), *remote = PyTuple_GET_ITEM(key, 1);
    uint64_t h;
    if (key_hash(local, remote, &h) < 0)
        return -2;
    return find(self, local, remote, h);
}

/* ---- events ------------------------------------------------------------------------------ */

/* An int in 0 .. max, or None when none_ok (as 0, *none set): 0, else -1 (no error left). */
static int read_u64(PyObject *o, uint64_t max, int none_ok, uint64_t *v, int *none) {
    *none = o == Py_None;
    if (*none) {
        *v = 0;
        return none_ok ? 0 : -1;
    }
    if (!PyLong_Check(o))
        return -1;
    *v = PyLong_AsUnsignedLongLong(o);
    if (*v == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return *v <= max ? 0 : -1;
}

/* Whether a role is known (not equal to Role.UNKNOWN): 1, 0, or -1 (no error left). */
static int role_known(SocketBytes *self, PyObject *role) {
    if (role == self->unknown_role)
        return 0;
    if (Py_TYPE(role) == Py_TYPE(self->unknown_role))
        return 1; /* another member of the enum: members are singletons */
    int eq = PyObject_RichCompareBool(role, self->unknown_role, Py_EQ);
    if (eq < 0)
        PyErr_Clear();
    return eq < 0 ? -1 : !eq;
}

/* The entry of (local, remote), added when new; *rc DROP for ends that cannot be hashed or
 * compared, FAIL when adding failed (an error set). */
static int32_t socket_of(SocketBytes *self, PyObject *local, PyObject *remote, int *rc) {
    uint64_t h;
    int32_t e = key_hash(local, remote, &h) < 0 ? -2 : find(self, local, remote, h);
    if (e == -2) {
        PyErr_Clear();
        *rc = DROP;
    } else if (e == NO_SOCK && (e = add(self, local, remote, h)) == -2) {
        *rc = FAIL;
    }
    return e;
}

static void set_owner(sock *s, PyObject *pid, PyObject *comm) {
    Py_SETREF(s->pid, Py_NewRef(pid));
    Py_SETREF(s->comm, Py_NewRef(comm));
}

typedef struct {
    int egress;
    int64_t length;
    uint64_t write_ns;
    call_id call;
    int role_known;
} chunk_numbers;

/* A chunk's numbers, read before anything changes: OK, or DROP (not counted yet). */
static int read_chunk(SocketBytes *self, PyObject *ev, chunk_numbers *c) {
    PyObject *const *f = &PyTuple_GET_ITEM(ev, 0);
    uint64_t length;
    int none;
    c->egress = PyObject_IsTrue(f[self->at[C_EGRESS]]);
    if (c->egress < 0 || read_u64(f[self->at[C_LENGTH]], INT64_MAX, 0, &length, &none) < 0)
        return PyErr_Clear(), DROP;
    c->length = (int64_t)length;
    c->call.none = 0;
    for (int i = 0; i < 3; i++) {
        PyObject *o = f[self->at[i == 0 ? C_TID : i == 1 ? C_TS_ENTER : C_TS_EXIT]];
        if (read_u64(o, UINT64_MAX, 1, &c->call.v[i], &none) < 0)
            return DROP;
        c->call.none |= (uint8_t)(none << i);
    }
    uint64_t enter = c->call.v[1], exit = c->call.v[2]; /* None counts as 0 */
    c->write_ns = exit > enter ? exit - enter : 0;
    c->role_known = role_known(self, f[self->at[C_ROLE]]);
    return c->write_ns > INT64_MAX || c->role_known < 0 ? DROP : OK;
}

static int same_call(const call_id *a, const call_id *b) {
    return a->none == b->none && a->v[0] == b->v[0] && a->v[1] == b->v[1] && a->v[2] == b->v[2];
}

/* The sums after this chunk, unless one would pass 2**63 - 1: OK or DROP. */
static int add_counts(sock *s, const chunk_numbers *c, int new_call) {
    int64_t moved, calls, ns = s->write_ns;
    int64_t *bytes = c->egress ? &s->sent : &s->received;
    int64_t *count = c->egress ? &s->writes : &s->reads;
    if (__builtin_add_overflow(*bytes, c->length, &moved)
        || __builtin_add_overflow(*count, new_call, &calls)
        || (c->egress && new_call && __builtin_add_overflow(ns, (int64_t)c->write_ns, &ns)))
        return DROP;
    *bytes = moved;
    *count = calls;
    s->write_ns = ns;
    return OK;
}

static int feed_chunk(SocketBytes *self, PyObject *ev) {
    if (PyTuple_GET_SIZE(ev) < self->min_len)
        return DROP;
    PyObject *const *f = &PyTuple_GET_ITEM(ev, 0);
    int tls = PyObject_IsTrue(f[self->at[C_TLS]]);
    if (tls != 0)
        return tls < 0 ? (PyErr_Clear(), DROP) : OK; /* TLS plaintext: counted by its socket */
    chunk_numbers c;
    int rc = read_chunk(self, ev, &c);
    int32_t e = rc == OK ? socket_of(self, f[self->at[C_LOCAL]], f[self->at[C_REMOTE]], &rc) : 0;
    if (rc != OK)
        return rc;
    sock *s = &self->socks[e];
    int new_call = !s->has_last || !same_call(&s->last, &c.call); /* one syscall's chunks */
    if (add_counts(s, &c, new_call) != OK)
        return DROP;
    s->moved = 1;
    s->last = c.call;
    s->has_last = 1;
    if (s->pid == Py_None)
        set_owner(s, f[self->at[C_PID]], f[self->at[C_COMM]]);
    if (!s->role_known) {
        Py_SETREF(s->role, Py_NewRef(f[self->at[C_ROLE]]));
        s->role_known = (uint8_t)c.role_known;
    }
    return OK;
}

static int feed_opened(SocketBytes *self, PyObject *ev) {
    PyObject *v[5] = {PyObject_GetAttr(ev, S_LOCAL), PyObject_GetAttr(ev, S_REMOTE),
                      PyObject_GetAttr(ev, S_PID), PyObject_GetAttr(ev, S_COMM),
                      PyObject_GetAttr(ev, S_ROLE)};
    int rc = v[0] && v[1] && v[2] && v[3] && v[4] ? OK : DROP, known = 0;
    if (rc == OK && (known = role_known(self, v[4])) < 0)
        rc = DROP;
    PyErr_Clear(); /* a missing field: dropped */
    int32_t e = rc == OK ? socket_of(self, v[0], v[1], &rc) : 0;
    if (rc == OK) {
        sock *s = &self->socks[e];
        set_owner(s, v[2], v[3]);
        Py_SETREF(s->role, Py_NewRef(v[4]));
        s->role_known = (uint8_t)known;
    }
    for (int i = 0; i < 5; i++)
        Py_XDECREF(v[i]);
    return rc;
}

static int feed_one(SocketBytes *self, PyObject *ev, PyObject *on_summary) {
    PyTypeObject *t = Py_TYPE(ev);
    int rc = OK;
    if (t == (PyTypeObject *)self->chunk_type) {
        rc = feed_chunk(self, ev);
    } else if (t == (PyTypeObject *)self->summary_type) {
        PyObject *r = PyObject_CallOneArg(on_summary, ev);
        Py_XDECREF(r);
        rc = r == NULL ? FAIL : OK;
    } else if (t == (PyTypeObject *)self->opened_type) {
        rc = feed_opened(self, ev);
    }
    return rc == DROP ? (bump(self, S_MALFORMED) < 0 ? FAIL : DROP) : rc;
}

static PyObject *SocketBytes_feed(SocketBytes *self, PyObject *args) {
    PyObject *events, *on_summary;
    if (!PyArg_ParseTuple(args, "OO:feed", &events, &on_summary))
        return NULL;
    if (self->counters == NULL || self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "SocketBytes not initialised, or busy");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(events, "events: a sequence");
    if (seq == NULL)
        return NULL;
    /* the size read each turn: on_summary may run any code */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *ev = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        int rc = feed_one(self, ev, on_summary);
        Py_DECREF(ev);
        if (rc == FAIL) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyObject *counts_of(SocketBytes *self, int32_t e) {
    sock *s = &self->socks[e];
    return PyObject_CallFunction(self->bytes_type, "OOOLLLLL", s->pid, s->comm, s->role,
                                 (long long)s->sent, (long long)s->received,
                                 (long long)s->writes, (long long)s->reads,
                                 (long long)s->write_ns);
}

static PyObject *SocketBytes_get(SocketBytes *self, PyObject *key) {
    int32_t e = find_key(self, key);
    if (e == -2)
        return NULL;
    return e == NO_SOCK ? Py_NewRef(Py_None) : counts_of(self, e);
}

static PyObject *SocketBytes_pop(SocketBytes *self, PyObject *args) {
    PyObject *key, *dflt = Py_None;
    if (!PyArg_ParseTuple(args, "O|O:pop", &key, &dflt))
        return NULL;
    int32_t e = find_key(self, key);
    if (e == -2)
        return NULL;
    if (e == NO_SOCK)
        return Py_NewRef(dflt);
    PyObject *out = counts_of(self, e);
    if (out != NULL)
        forget(self, e);
    return out;
}

static PyObject *SocketBytes_reset(SocketBytes *self, PyObject *key) {
    int32_t e = find_key(self, key);
    if (e == -2)
        return NULL;
    if (e != NO_SOCK) {
        sock *s = &self->socks[e];
        s->sent = s->received = s->writes = s->reads = s->write_ns = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *SocketBytes_take_moved(SocketBytes *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyList_New(0);
    for (int32_t e = self->oldest; e != NO_SOCK && out != NULL; e = self->socks[e].newer) {
        sock *s = &self->socks[e];
        if (!s->moved)
            continue;
        PyObject *key = PyTuple_Pack(2, s->local, s->remote);
        if (key == NULL || PyList_Append(out, key) < 0)
            Py_CLEAR(out);
        Py_XDECREF(key);
    }
    for (int32_t e = self->oldest; e != NO_SOCK && out != NULL; e = self->socks[e].newer)
        self->socks[e].moved = 0;
    return out;
}

static Py_ssize_t SocketBytes_len(SocketBytes *self) { return self->used; }

static int SocketBytes_contains(SocketBytes *self, PyObject *key) {
    int32_t e = find_key(self, key);
    return e == -2 ? -1 : e != NO_SOCK;
}

/* ---- the type ---------------------------------------------------------------------------- */

static int SocketBytes_traverse(SocketBytes *self, visitproc visit, void *arg) {
    Py_VISIT(self->counters);
    Py_VISIT(self->chunk_type);
    Py_VISIT(self->opened_type);
    Py_VISIT(self->summary_type);
    Py_VISIT(self->unknown_role);
    Py_VISIT(self->bytes_type);
    for (int32_t e = self->oldest; e != NO_SOCK; e = self->socks[e].newer) {
        Py_VISIT(self->socks[e].pid);
        Py_VISIT(self->socks[e].comm);
        Py_VISIT(self->socks[e].role);
        Py_VISIT(self->socks[e].local);
        Py_VISIT(self->socks[e].remote);
    }
    return 0;
}

static void drop_table(SocketBytes *self) {
    while (self->oldest != NO_SOCK)
        forget(self, self->oldest);
    PyMem_Free(self->socks);
    PyMem_Free(self->slots);
    self->socks = NULL;
    self->slots = NULL;
    self->cap = self->used = 0;
    self->slot_bits = 0;
    self->free_head = self->oldest = self->newest = NO_SOCK;
}

static int SocketBytes_clear(SocketBytes *self) {
    drop_table(self);
    Py_CLEAR(self->counters);
    Py_CLEAR(self->chunk_type);
    Py_CLEAR(self->opened_type);
    Py_CLEAR(self->summary_type);
    Py_CLEAR(self->unknown_role);
    Py_CLEAR(self->bytes_type);
    return 0;
}

static void SocketBytes_dealloc(SocketBytes *self) {
    PyObject_GC_UnTrack(self);
    SocketBytes_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SocketBytes_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                                 PyObject *Py_UNUSED(kw)) {
    SocketBytes *self = (SocketBytes *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->free_head = self->oldest = self->newest = NO_SOCK;
    return (PyObject *)self;
}

/* Where each field SocketBytes reads sits in chunk_type (a NamedTuple): from its _fields. */
static int read_fields(SocketBytes *self, PyObject *chunk_type) {
    PyObject *fields = PyObject_GetAttrString(chunk_type, "_fields");
    int rc = fields != NULL && PyTuple_Check(fields) ? 0 : -1;
    self->min_len = 0;
    for (int f = 0; f < C_COUNT && rc == 0; f++) {
        PyObject *name = PyUnicode_FromString(CHUNK_FIELDS[f]);
        Py_ssize_t at = -1;
        for (Py_ssize_t i = 0; name != NULL && i < PyTuple_GET_SIZE(fields) && at < 0; i++)
            if (PyUnicode_Check(PyTuple_GET_ITEM(fields, i))
                && PyUnicode_Compare(PyTuple_GET_ITEM(fields, i), name) == 0)
                at = i;
        Py_XDECREF(name);
        rc = at < 0 ? -1 : 0;
        self->at[f] = at;
        self->min_len = at + 1 > self->min_len ? at + 1 : self->min_len;
    }
    Py_XDECREF(fields);
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "chunk_type: a NamedTuple with DataChunk's fields");
    return rc;
}

static int SocketBytes_init(SocketBytes *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"max_sockets", "counters", "chunk_type", "opened_type",
                            "summary_type", "unknown_role", "bytes_type", NULL};
    Py_ssize_t max_sockets;
    PyObject *counters, *chunk_type, *opened_type, *summary_type, *unknown_role, *bytes_type;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nOO!O!O!OO", names, &max_sockets, &counters,
                                     &PyType_Type, &chunk_type, &PyType_Type, &opened_type,
                                     &PyType_Type, &summary_type, &unknown_role, &bytes_type))
        return -1;
    if (max_sockets < 1 || max_sockets > (1 << 29)) {
        PyErr_SetString(PyExc_ValueError, "max_sockets: 1 .. 2**29");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)chunk_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "chunk_type: a NamedTuple");
        return -1;
    }
    if (read_fields(self, chunk_type) < 0)
        return -1;
    drop_table(self);
    self->max_sockets = (int32_t)max_sockets;
    Py_XSETREF(self->counters, Py_NewRef(counters));
    Py_XSETREF(self->chunk_type, Py_NewRef(chunk_type));
    Py_XSETREF(self->opened_type, Py_NewRef(opened_type));
    Py_XSETREF(self->summary_type, Py_NewRef(summary_type));
    Py_XSETREF(self->unknown_role, Py_NewRef(unknown_role));
    Py_XSETREF(self->bytes_type, Py_NewRef(bytes_type));
    return 0;
}

static PyMethodDef SocketBytes_methods[] = {
    {"feed", (PyCFunction)SocketBytes_feed, METH_VARARGS,
     "feed(events, on_summary): count the DataChunks, own the ConnectionOpened sockets, "
     "hand each TcpSummary to on_summary in its place"},
    {"get", (PyCFunction)SocketBytes_get, METH_O, "get(key) -> the socket's counts or None"},
    {"pop", (PyCFunction)SocketBytes_pop, METH_VARARGS,
     "pop(key[, default]) -> the socket's counts (the socket forgotten), else default"},
    {"reset", (PyCFunction)SocketBytes_reset, METH_O, "reset(key): the socket's counts to 0"},
    {"take_moved", (PyCFunction)SocketBytes_take_moved, METH_NOARGS,
     "take_moved() -> keys of the sockets that moved since the last call, oldest first"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods SocketBytes_as_sequence = {
    .sq_length = (lenfunc)SocketBytes_len,
    .sq_contains = (objobjproc)SocketBytes_contains,
};

static PyTypeObject SocketBytesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._sockbytes.SocketBytes",
    .tp_basicsize = sizeof(SocketBytes),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SocketBytes(max_sockets, counters, chunk_type, opened_type, summary_type, "
              "unknown_role, bytes_type) (see _sockbytesmodule.c)",
    .tp_new = SocketBytes_new,
    .tp_init = (initproc)SocketBytes_init,
    .tp_dealloc = (destructor)SocketBytes_dealloc,
    .tp_traverse = (traverseproc)SocketBytes_traverse,
    .tp_clear = (inquiry)SocketBytes_clear,
    .tp_methods = SocketBytes_methods,
    .tp_as_sequence = &SocketBytes_as_sequence,
};

static struct PyModuleDef sockbytesmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "l7scope.dataplane._sockbytes",
    .m_doc = "TCP metrics' per-socket bytes and syscalls from the DATA records.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__sockbytes(void) {
    PyObject **names[] = {&S_EVICTED, &S_MALFORMED, &S_LOCAL, &S_REMOTE, &S_PID, &S_COMM,
                          &S_ROLE};
    const char *texts[] = {"tcp_sockets_evicted", "tcp_events_malformed", "local", "remote",
                           "pid", "comm", "role"};
    for (int i = 0; i < 7; i++)
        if (*names[i] == NULL && (*names[i] = PyUnicode_InternFromString(texts[i])) == NULL)
            return NULL;
    if (PyType_Ready(&SocketBytesType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&sockbytesmodule);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SocketBytesType);
    if (PyModule_AddObject(m, "SocketBytes", (PyObject *)&SocketBytesType) < 0) {
        Py_DECREF(&SocketBytesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
