/* _ringbuf: the BPF ring buffer read from its mapped pages, one batch per call.
 *
 * Theory of operation
 * -------------------
 * A BPF_MAP_TYPE_RINGBUF map is shared memory (kernel/bpf/ringbuf.c): one page holding the
 * consumer position, which the reader owns and maps read-write, then one page holding the
 * producer position and the data area of `size` bytes (a power of two), both mapped read-only.
 * The data area is mapped twice in a row, so a record that wraps past the end is contiguous.
 * Each record starts with an 8-byte header: a 32-bit length whose top bit (BUSY) says the
 * producer has reserved it but not yet committed it and whose next bit (DISCARD) says it was
 * given up, then a 32-bit page offset the reader does not need. Records are 8-byte aligned.
 *
 * read(batch_bytes) walks from the consumer position to the producer position: a BUSY record
 * ends the walk (the records behind it wait for it, in order), a DISCARD record is passed
 * over, every other record is copied into a bytes object. After the walk the consumer
 * position is published (release order, so the producer reuses the space only after the
 * copies), the producer position is read again and the walk goes on while records keep
 * arriving. It stops after the record that brings the batch to `batch_bytes` or more and sets
 * `cut`: records are still waiting and the next call should not wait for a wakeup, which the
 * producer already spent on them. This is what libbpf's ring_buffer__consume does with a
 * callback per record; here the batch is built with no call back into Python per record.
 *
 * wait(timeout_ms) sleeps in epoll on the map's fd (readable when the producer wakes the
 * reader), without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RB_BUSY (1U << 31)
#define RB_DISCARD (1U << 30)
#define RB_HDR 8U

typedef struct {
    PyObject_HEAD
    int epfd;
    unsigned long *consumer;        /* the consumer position page (read-write) */
    const unsigned long *producer;  /* the producer position page, then the data (read-only) */
    const unsigned char *data;
    size_t size;                    /* data area bytes: a power of two */
    size_t page;
    int cut;
    unsigned long long records;     /* records read, for the reader's counters */
    unsigned long long discarded;
} Reader;

static int map_info(int fd, struct bpf_map_info *info)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    memset(info, 0, sizeof(*info));
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof(*info);
    attr.info.info = (uint64_t)(uintptr_t)info;
    return (int)syscall(__NR_bpf, BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr));
}

static void reader_release(Reader *self)
{
    if (self->consumer != NULL)
        munmap(self->consumer, self->page);
    if (self->producer != NULL)
        munmap((void *)self->producer, self->page + 2 * self->size);
    if (self->epfd >= 0)
        close(self->epfd);
    self->consumer = NULL;
    self->producer = NULL;
    self->data = NULL;
    self->epfd = -1;
}

static int reader_init(Reader *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"map_fd", NULL};
    int fd;
    struct bpf_map_info info;
    struct epoll_event ev;
    void *p;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &fd))
        return -1;
    reader_release(self);
    if (map_info(fd, &info) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (info.type != BPF_MAP_TYPE_RINGBUF || info.max_entries == 0 ||
        (info.max_entries & (info.max_entries - 1)) != 0) {
        errno = EINVAL;
        PyErr_SetString(PyExc_ValueError, "not a BPF ring buffer map");
        return -1;
    }
    self->size = info.max_entries;
    self->page = (size_t)sysconf(_SC_PAGESIZE);
    p = mmap(NULL, self->page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        goto fail;
    self->consumer = p;
    p = mmap(NULL, self->page + 2 * self->size, PROT_READ, MAP_SHARED, fd, (off_t)self->page);
    if (p == MAP_FAILED)
        goto fail;
    self->producer = p;
    self->data = (const unsigned char *)p + self->page;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0)
        goto fail;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto fail;
    return 0;
fail:
    PyErr_SetFromErrno(PyExc_OSError);
    reader_release(self);
    return -1;
}

static PyObject *reader_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Reader *self = (Reader *)type->tp_alloc(type, 0);
    (void)args;
    (void)kwds;
    if (self != NULL)
        self->epfd = -1;
    return (PyObject *)self;
}

static void reader_dealloc(Reader *self)
{
    reader_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int closed(Reader *self)
{
    if (self->consumer != NULL)
        return 0;
    PyErr_SetString(PyExc_ValueError, "the ring buffer reader is closed");
    return 1;
}

/* One record at `pos` into `out`; 1 when it was committed (copied or passed over), 0 when the
 * producer is still writing it, -1 on an error set. */
static int take_record(Reader *self, unsigned long pos, PyObject *out, size_t *len_out)
{
    const unsigned char *hdr = self->data + (pos & (self->size - 1));
    uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
    PyObject *rec;

    if (len & RB_BUSY)
        return 0;
    *len_out = len & ~RB_DISCARD;
    if (*len_out > self->size - RB_HDR) {  /* not a length the kernel writes */
        PyErr_SetString(PyExc_OSError, "ring buffer record longer than the ring");
        return -1;
    }
    if (len & RB_DISCARD) {
        self->discarded++;
        return 1;
    }
    rec = PyBytes_FromStringAndSize((const char *)hdr + RB_HDR, (Py_ssize_t)len);
    if (rec == NULL || PyList_Append(out, rec) < 0) {
        Py_XDECREF(rec);
        return -1;
    }
    Py_DECREF(rec);
    self->records++;
    return 1;
}

static PyObject *reader_read(Reader *self, PyObject *args)
{
    Py_ssize_t batch_bytes;
    unsigned long cons, prod;
    size_t taken = 0, len = 0;
    PyObject *out;

    if (!PyArg_ParseTuple(args, "n", &batch_bytes) || closed(self))
        return NULL;
    out = PyList_New(0);
    if (out == NULL)
        return NULL;
    self->cut = 0;
    cons = __atomic_load_n(self->consumer, __ATOMIC_ACQUIRE);
    for (;;) {
        prod = __atomic_load_n(self->producer, __ATOMIC_ACQUIRE);
        if (cons >= prod)
            break;
        while (cons < prod && !self->cut) {
            int r = take_record(self, cons, out, &len);
            if (r < 0)
                goto fail;
            if (r == 0)
                goto done;
            cons += (len + RB_HDR + 7) & ~(size_t)7;
            taken += len;
            if ((Py_ssize_t)taken >= batch_bytes)
                self->cut = 1;
        }
        __atomic_store_n(self->consumer, cons, __ATOMIC_RELEASE);
        if (self->cut)
            return out;
    }
done:
    __atomic_store_n(self->consumer, cons, __ATOMIC_RELEASE);
    return out;
fail:
    __atomic_store_n(self->consumer, cons, __ATOMIC_RELEASE);
    Py_DECREF(out);
    return NULL;
}

static PyObject *reader_wait(Reader *self, PyObject *args)
{
    int timeout_ms, n;
    struct epoll_event ev;

    if (!PyArg_ParseTuple(args, "i", &timeout_ms) || closed(self))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    n = epoll_wait(self->epfd, &ev, 1, timeout_ms);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        if (errno == EINTR)  /* a signal: the caller's loop looks at its flags */
            return PyLong_FromLong(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(n);
}

static PyObject *reader_pending(Reader *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long cons, prod;
    if (closed(self))
        return NULL;
    cons = __atomic_load_n(self->consumer, __ATOMIC_ACQUIRE);
    prod = __atomic_load_n(self->producer, __ATOMIC_ACQUIRE);
    return PyLong_FromUnsignedLong(prod - cons);
}

static PyObject *reader_close(Reader *self, PyObject *Py_UNUSED(ignored))
{
    reader_release(self);
    Py_RETURN_NONE;
}

static PyMethodDef reader_methods[] = {
    {"read", (PyCFunction)reader_read, METH_VARARGS,
     "read(batch_bytes) -> list[bytes]: the committed records, in order, up to the one that "
     "brings the batch to batch_bytes or more (then `cut` is true)."},
    {"wait", (PyCFunction)reader_wait, METH_VARARGS,
     "wait(timeout_ms) -> int: 1 when the producer woke the reader, 0 on timeout or a signal."},
    {"pending", (PyCFunction)reader_pending, METH_NOARGS,
     "pending() -> int: bytes between the consumer and the producer positions."},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "Unmap the ring; idempotent."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef reader_members[] = {
    {"cut", T_INT, offsetof(Reader, cut), READONLY,
     "the last read stopped at the batch limit: records are still waiting"},
    {"size", T_PYSSIZET, offsetof(Reader, size), READONLY, "the data area's bytes"},
    {"records", T_ULONGLONG, offsetof(Reader, records), READONLY, "records read"},
    {"discarded", T_ULONGLONG, offsetof(Reader, discarded), READONLY,
     "records the producer discarded, passed over"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l7scope.dataplane._ringbuf.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reader(map_fd): a BPF ring buffer map read from its mapped pages.",
    .tp_new = reader_new,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
    .tp_members = reader_members,
};

static struct PyModuleDef ringbuf_module = {
    PyModuleDef_HEAD_INIT, "_ringbuf", "The BPF ring buffer read from its mapped pages.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ringbuf(void)
{
    PyObject *m;
    if (PyType_Ready(&ReaderType) < 0)
        return NULL;
    m = PyModule_Create(&ringbuf_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
