// SPDX-License-Identifier: GPL-2.0
/* l7scope kernel side: syscall tracepoints that copy TCP socket payload into a ring buffer.
 *
 * Theory of operation
 * -------------------
 * Per thread, in its task local storage (`threads`): the call in flight, the filter verdict and
 *   a cache of what its fds are (struct thread_state).
 * sys_enter_<sending syscall>: if the caller is traced (not the agent, pid/comm filters), stamp
 *   the entry time into the thread's call slot. Receiving syscalls have no entry program.
 * sys_exit_<io syscall>: with a positive result, the call's arguments come from the user
 *   registers saved at syscall entry; the fd's file (task -> files -> fdt -> fd[]) is looked up
 *   in the thread's fd cache, else walked (inode is a socket -> sock, AF_INET/AF_INET6, TCP) and
 *   its connection looked up in `conns` (made for a connection that predates the agent); then
 *   the TCP stream position (write_seq after a send, copied_seq after a receive, minus the
 *   result) and the bytes as DATA records of at most L7_CHUNK bytes each, up to cfg.max_payload
 *   per syscall; what is not copied is still covered by the last record (chunk_len beyond
 *   data_len) so that user space sees an exact known-length hole.
 *   A read returning 0 emits EOF (peer closed).
 * Protocol inference: a connection starts UNKNOWN; each message whose first bytes are not an
 *   HTTP/1 start line, the HTTP/2 preface or a plausible HTTP/2 frame bumps a counter, and after
 *   cfg.max_checks such messages the connection is OTHER. Only HTTP connections carry payload;
 *   the others still send byte counts (flag PAYLOAD_SUPPRESSED).
 * connect/accept/accept4 exits enter the socket with its role (client/server) and emit OPEN;
 *   sock:inet_sock_set_state to TCP_CLOSE emits CLOSE and forgets the socket.
 * Every lost record (ring buffer full, the thread's storage not made, unreadable memory) is
 *   counted in the per-CPU `stats` array, which the agent reads and reports.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "l7scope.h"
#include "l7_http_methods.h" /* generated from the one Python method list */

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115
#define TCP_CLOSE_STATE 7
#define RCV_SHUTDOWN 1

char LICENSE[] SEC("license") = "GPL";

_Static_assert(__builtin_offsetof(struct l7_event, data) == L7_EVENT_HDR_LEN, "wire header");

const volatile struct l7_config cfg = {
	.max_payload = 65536,
	.max_checks = 8,
};

enum shape { SHAPE_BUF = 1, SHAPE_IOV = 2, SHAPE_BYTES = 3, SHAPE_MMSG = 4, SHAPE_FD = 5 };

struct active_call {
	__u64 ts_enter;
	__u64 sk;
	__u64 ptr;   /* user buffer, iovec array or mmsghdr array */
	__u32 count; /* iovec count or mmsghdr count */
	__s32 fd;
	__u32 seq;   /* TCP stream position at entry */
	__u8 syscall;
	__u8 shape;     /* 0: the call has exited (the slot is kept for the thread's next call) */
	__u8 has_seq;
	__u8 direction; /* set when the payload is emitted */
	__u8 tls;       /* TLS plaintext from the library hooks */
};

/* per socket; the endpoints are read from the sock once, when the entry is made, and copied
 * into every record's header from here */
struct conn_info {
	__u64 conn_id;
	__u8 role;
	__u8 klass;
	__u8 checks;
	__u8 family;
	__u16 lport;
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
};

/* A thread's small cache of what its fds are (slot fd % SOCK_SLOTS): the struct file, the
 * file's private_data then, and when that is a TCP socket the sock and a copy of its connection
 * entry, once the entry's class is final (no more updates: HTTP or OTHER, or every connection
 * carries payload). A slot holds while the fd still holds the same file with the same
 * private_data, a socket still has the same sock (of any kind: a UNIX socket's file and socket
 * reused for a TCP one have a new sock), and no traced connection has been made or closed
 * since (conn_epoch: a sock address reused for a new connection gets a new conn_id). Else the
 * file is walked again and the connection looked up in `conns`. */
#define SOCK_SLOTS 16

struct sock_slot {
	__u64 file;
	__u64 priv;  /* file->private_data (the struct socket of a socket) */
	__u64 inner; /* that socket's sock, of any kind (0: no socket): a socket reused at the same
		      * address for a new connection has a new sock (TCP and UNIX socks, say,
		      * come from different caches) */
	__u64 sk;    /* the TCP sock (inner when TCP; 0: the file is no TCP socket) */
	__u64 epoch; /* conn_epoch when ci was copied */
	struct conn_info ci; /* ci.conn_id 0: no copy (look the entry up) */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_info);
} conns SEC(".maps");

/* TLS: a library call in progress per thread, the socket each SSL object writes to (learned
 * from the syscalls made inside SSL_read/SSL_write), and the plaintext stream of each SSL */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 count_ptr; /* size_t * of the _ex variants, else 0 */
	__u64 ts_enter;
	__u8 direction;
	__u8 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ssl_call);
} ssl_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} ssl_socks SEC(".maps");

/* the plaintext stream of an SSL object, valid for the one socket it was made for: libraries
 * reuse a freed SSL object's address for the next connection (nginx does, connection after
 * connection), so an entry whose socket differs, or whose SSL object was freed, is a stream
 * that has ended */
struct tls_conn {
	struct conn_info ci;
	__u64 sk;     /* the socket the stream was made for */
	__u64 raw_id; /* and that socket's connection entry then (0: none) */
	__u32 pos[2]; /* plaintext bytes so far, egress and ingress: the records' seq, so a
		       * record lost on the way is a known-length gap, not bytes spliced out */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tls_conn);
} tls_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, L7_PID_FILTER_MAX);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, L7_COMM_FILTER_MAX);
	__type(key, char[L7_COMM_LEN]);
	__type(value, __u8);
} comm_filter SEC(".maps");

/* which of the two filters are on, and their generation: written by user space at any time */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_filter_state);
} filter_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, L7_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");


/* A syscall's payload being emitted: where the bytes are and how far the copy got. Kept in the
 * per-CPU scratch value, not on the stack: the bpf_loop steps then need no precise tracking. */
#define IOV_BATCH 4 /* iovecs read in one copy (nginx: head and body buffers) */

struct emit_ctx {
	struct iovec iovs[IOV_BATCH]; /* the first iovecs, when they could be read at once */
	__u32 iov_have;
	__u32 pad;
	__u64 iov;      /* iovec array (SHAPE_IOV) */
	__u64 base;     /* current segment */
	__u64 seg_len;
	__u64 seg_off;
	__u32 iov_idx;
	__u32 iov_cnt;
	__u32 done;     /* bytes copied */
	__u32 fill;     /* bytes copied into the record being gathered */
	__u32 sent;     /* bytes covered by records already sent */
	__u32 budget;   /* bytes to copy: min(result, max_payload) */
	__u32 result;   /* bytes moved by the syscall */
};

/* The record being gathered; the spill area lets a copy start anywhere below L7_CHUNK in data
 * with a length up to L7_CHUNK (what the verifier can prove), though records never exceed it. */
struct l7_scratch {
	struct emit_ctx c;
	struct l7_event ev;
	__u8 spill[L7_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_scratch);
} scratch SEC(".maps");

__u64 next_conn_id = 1;
/* bumped by every traced connection made (connect, accept) or closed: cached copies of
 * connection entries made before are not used again */
__u64 conn_epoch = 0;
/* libssl calls in progress, at least: while there are none, syscalls skip the ssl_active lookup
 * (a call whose return was never seen only keeps the lookups on) */
__s64 ssl_calls = 0;

static __always_inline void count(__u32 stat, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &stat);
	if (v)
		*v += n;
}

/* ---- who is traced ---- */

/* Per thread, in the task's own local storage (no hash lookup: the task struct points at it,
 * and it goes away with the thread; 1,480 bytes): the call in flight, the filter verdict and the
 * cache of what the thread's fds are (struct sock_slot).
 * The call slot is reused call after call: an exit marks it done (shape 0), the next entry
 * overwrites it in place. `seen`: the thread's first syscall exit since attach has been seen
 * (only that exit can belong to a call that entered before the programs were attached).
 * The verdict holds for the filter generation and the process name (the thread-group
 * leader's comm, whichever thread makes the call) it was decided for: both are compared on
 * every call (two loads of the leader's comm), so a rename of the leader (exec, prctl,
 * /proc/.../comm) or a filter change decides it again, and a rename of another thread
 * changes nothing. */
struct thread_state {
	struct active_call call;
	__u64 leader_comm[2];          /* as it was when the verdict was made */
	__u32 generation;              /* filter_state's then */
	__u8 decided;
	__u8 traced;
	__u8 seen;
	struct sock_slot slot[SOCK_SLOTS]; /* what its fds are */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* The calling thread's state, made on first use; NULL only when the kernel cannot make it
 * (memory, or the storage is busy under a nested program on this CPU). */
static __always_inline struct thread_state *thread_state(void)
{
	return bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
}

static __always_inline int filter_verdict(__u32 tgid, struct l7_filter_state *f)
{
	char comm[L7_COMM_LEN] = {};

	if (f->pids && bpf_map_lookup_elem(&pid_filter, &tgid))
		return 1;
	if (!f->comms)
		return 0;
	bpf_probe_read_kernel_str(comm, sizeof(comm), bpf_get_current_task_btf()->group_leader->comm);
	return bpf_map_lookup_elem(&comm_filter, comm) != NULL;
}

/* Not the agent; with filters on, a process named by its tgid OR by its name. ts: the calling
 * thread's state (NULL: decided without remembering). */
static __always_inline int traced_by(__u32 tgid, struct thread_state *ts)
{
	struct task_struct *leader;
	struct l7_filter_state *f;
	__u32 zero = 0;
	const __u64 *name;

	if (tgid == cfg.self_tgid)
		return 0;
	f = bpf_map_lookup_elem(&filter_state, &zero);
	if (!f || (!f->pids && !f->comms))
		return 1;
	if (!ts)
		return filter_verdict(tgid, f);
	leader = bpf_get_current_task_btf()->group_leader;
	name = (const __u64 *)leader->comm; /* BTF pointer: two plain loads */
	if (ts->decided && ts->generation == f->generation && ts->leader_comm[0] == name[0] &&
	    ts->leader_comm[1] == name[1])
		return ts->traced;
	ts->traced = filter_verdict(tgid, f);
	ts->generation = f->generation;
	ts->leader_comm[0] = name[0];
	ts->leader_comm[1] = name[1];
	ts->decided = 1;
	return ts->traced;
}

static __always_inline int traced(__u32 tgid)
{
	return traced_by(tgid, thread_state());
}

/* ---- fd -> TCP sock: the file at fd, then the cached answer or a walk by CO-RE reads ---- */

static __always_inline __u64 file_of_fd(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt; /* BTF pointers: plain loads, no helper calls */
	struct file **fds;
	__u64 file = 0;

	if (fd < 0 || !fdt || (unsigned int)fd >= fdt->max_fds)
		return 0;
	fds = fdt->fd;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return 0;
	return file;
}

/* The file's TCP sock, else NULL; *inner: the sock of any socket file (0: no socket). */
static __always_inline struct sock *tcp_sock_of_file(struct file *file, __u64 *inner)
{
	*inner = 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	*inner = (__u64)sk;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || BPF_CORE_READ(sock, type) != 1)
		return NULL;
	return sk;
}

/* Unique per agent run: the agent's pid above a counter (stays below 2**53 for JSON). */
static __always_inline __u64 new_conn_id(void)
{
	return ((__u64)(cfg.self_tgid & 0xfffff) << 32) |
	       (__sync_fetch_and_add(&next_conn_id, 1) & 0xffffffff);
}

static __always_inline void fill_endpoints(struct conn_info *ci, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	ci->family = family;
	ci->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ci->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		bpf_core_read(ci->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(ci->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(ci->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(ci->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

static __always_inline struct conn_info *conn_of(struct sock *sk, __u8 role, int fresh)
{
	__u64 key = (__u64)sk;
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);

	if (ci && !fresh)
		return ci;
	struct conn_info nci = {};
	nci.conn_id = new_conn_id();
	nci.role = role;
	fill_endpoints(&nci, sk);
	bpf_map_update_elem(&conns, &key, &nci, BPF_ANY);
	if (fresh)
		__sync_fetch_and_add(&conn_epoch, 1);
	count(L7_STAT_CONNS_CREATED, 1);
	return bpf_map_lookup_elem(&conns, &key);
}

/* The connection entry of a final class may be used from a copy (see struct sock_slot). */
static __always_inline int conn_final(struct conn_info *ci)
{
	return cfg.capture_all || ci->klass != L7_CLASS_UNKNOWN;
}

/* The TCP sock at fd (*skp) and its connection entry: from the thread's slot when it still
 * holds, else by a walk and a `conns` lookup (the entry made when create is set; else NULL
 * for a socket without one). NULL with *skp 0: the fd is no TCP socket. */
static __always_inline struct conn_info *conn_of_fd(struct thread_state *ts, int fd,
						    struct sock **skp, int create)
{
	__u64 file = file_of_fd(fd), priv, inner, epoch = conn_epoch;
	struct sock_slot *slot = NULL;
	struct conn_info *ci;
	struct sock *sk;

	*skp = NULL;
	if (!file)
		return NULL;
	priv = (__u64)BPF_CORE_READ((struct file *)file, private_data);
	if (ts)
		slot = &ts->slot[fd & (SOCK_SLOTS - 1)];
	if (slot && slot->file == file && slot->priv == priv &&
	    (!slot->inner || (__u64)BPF_CORE_READ((struct socket *)priv, sk) == slot->inner)) {
		*skp = (struct sock *)slot->sk;
		if (slot->sk && slot->ci.conn_id && slot->epoch == epoch)
			return &slot->ci;
	} else {
		*skp = tcp_sock_of_file((struct file *)file, &inner);
		if (slot) {
			slot->file = file;
			slot->priv = priv;
			slot->inner = inner;
			slot->sk = (__u64)*skp;
			slot->ci.conn_id = 0;
		}
	}
	sk = *skp;
	if (!sk)
		return NULL;
	if (create)
		ci = conn_of(sk, L7_ROLE_UNKNOWN, 0);
	else
		ci = bpf_map_lookup_elem(&conns, &(__u64){(__u64)sk});
	if (ci && slot && conn_final(ci)) {
		slot->ci = *ci;
		slot->epoch = epoch;
	}
	return ci;
}

/* ---- record header: everything but the payload positions, from the connection entry ---- */

static __always_inline void fill_header(struct l7_event *ev, __u8 kind, struct conn_info *ci,
					__u64 ts_enter, __s32 fd, __u8 sc)
{
	__u64 id = bpf_get_current_pid_tgid(), *comm;
	const __u64 *name;

	ev->ts_exit = bpf_ktime_get_ns();
	ev->ts_enter = ts_enter ? ts_enter : ev->ts_exit; /* receives: no entry, one clock read */
	ev->conn_id = ci->conn_id;
	ev->tgid = id >> 32;
	ev->tid = (__u32)id;
	ev->fd = fd;
	ev->seq = 0;
	ev->total_len = 0;
	ev->chunk_off = 0;
	ev->chunk_len = 0;
	ev->data_len = 0;
	ev->kind = kind;
	ev->direction = 0;
	ev->syscall = sc;
	ev->role = ci->role;
	ev->family = ci->family;
	ev->flags = 0;
	ev->lport = ci->lport;
	ev->rport = ci->rport;
	__builtin_memcpy(ev->laddr, ci->laddr, 16);
	__builtin_memcpy(ev->raddr, ci->raddr, 16);
	/* the thread's name: two loads through the task's BTF pointer (the kernel keeps it
	 * NUL-padded), not the bpf_get_current_comm string copy */
	name = (const __u64 *)bpf_get_current_task_btf()->comm;
	comm = (__u64 *)ev->comm;
	comm[0] = name[0];
	comm[1] = name[1];
}

static __always_inline struct l7_event *header(__u8 kind, struct conn_info *ci, __u64 ts_enter,
					       __s32 fd, __u8 sc)
{
	struct l7_scratch *s = bpf_map_lookup_elem(&scratch, &(__u32){0});

	if (!s)
		return NULL;
	fill_header(&s->ev, kind, ci, ts_enter, fd, sc);
	return &s->ev;
}

/* The ring-buffer wakeup for a record of `size` bytes (see output()). */
static __always_inline __u64 wake_flags(__u32 size)
{
	__u64 pending;

	if (!cfg.wakeup_bytes)
		return 0;
	pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	return pending < cfg.wakeup_bytes && pending + size >= cfg.wakeup_bytes
		? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Records are not announced one by one: the reader is woken by the record that brings the
 * pending bytes up to wakeup_bytes, and otherwise finds them when its poll times out (it
 * consumes after every poll). A wakeup is an interrupt on the producing CPU: this makes it one
 * per batch, also while the reader lags behind (no wakeup per record then either). */
static __always_inline void output(struct l7_event *ev, __u32 data_len)
{
	if (data_len > L7_CHUNK)
		data_len = L7_CHUNK;
	if (bpf_ringbuf_output(&events, ev, L7_EVENT_HDR_LEN + data_len,
			       wake_flags(L7_EVENT_HDR_LEN + data_len)))
		count(L7_STAT_RINGBUF_FULL, 1);
	else
		count(L7_STAT_EVENTS, 1);
}

/* ---- protocol inference ---- */

static __always_inline int h2_frame_plausible(const __u8 *b, __u32 total)
{
	__u32 len = ((__u32)b[0] << 16) | ((__u32)b[1] << 8) | b[2];
	__u8 type = b[3];

	if ((b[5] & 0x80) || type > 9 || len > 16384 * 4)
		return 0;
	switch (type) {
	case 2: return len == 5;               /* PRIORITY */
	case 3: return len == 4;               /* RST_STREAM */
	case 4: return len % 6 == 0;           /* SETTINGS */
	case 6: return len == 8;               /* PING */
	case 7: return len >= 8;               /* GOAWAY */
	case 8: return len == 4;               /* WINDOW_UPDATE */
	default: return len + 9 <= total || total >= 9 + 256;
	}
}

/* A request line of a method Python knows (generated prefixes), a status line, the HTTP/2
 * preface, or a plausible HTTP/2 frame. b holds the message's first bytes, zero-padded. */
static __always_inline int looks_http(const __u8 *b, __u32 total)
{
	__u64 w = 0;

	__builtin_memcpy(&w, b, sizeof(w));
	if (l7_http_method_prefix(w))
		return 1;
	switch ((__u32)w) {
	case 0x50545448: /* "HTTP" (status line) */
	case 0x20495250: /* "PRI " (HTTP/2 preface) */
		return 1;
	}
	return total >= 9 && h2_frame_plausible(b, total);
}

/* Decide whether this message's payload goes to user space (updates the class). */
static __always_inline int want_payload(struct conn_info *ci, struct emit_ctx *c, __u32 total)
{
	__u64 first = c->base;
	__u32 first_len = c->seg_len;
	__u8 b[16] = {};

	if (cfg.capture_all || ci->klass == L7_CLASS_HTTP)
		return 1;
	if (ci->klass == L7_CLASS_OTHER)
		return 0;
	if (c->iov) {
		struct iovec iv = {};
		if (c->iov_have)
			iv = c->iovs[0];
		else
			bpf_probe_read_user(&iv, sizeof(iv), (void *)c->iov);
		first = (__u64)iv.iov_base;
		first_len = iv.iov_len < total ? iv.iov_len : total;
	}
	if (first_len > sizeof(b))
		first_len = sizeof(b);
	asm volatile("" : "+r"(first_len));
	first_len &= 2 * sizeof(b) - 1; /* a 16-byte head is read whole (masking with 0xf once
					 * made it 0 bytes: zeros, a "plausible" HTTP/2 frame) */
	if (first_len < 4 || first_len > sizeof(b) ||
	    bpf_probe_read_user(b, first_len, (void *)first) < 0) {
		if (first_len >= 4)
			count(L7_STAT_READ_FAULTS, 1);
		/* too short to tell: keep payload but do not decide */
		return first_len > 0 && first_len < 4;
	}
	if (looks_http(b, total)) {
		ci->klass = L7_CLASS_HTTP;
		return 1;
	}
	if (++ci->checks >= cfg.max_checks)
		ci->klass = L7_CLASS_OTHER;
	return 0;
}

/* ---- payload emission ----
 * One bpf_loop step copies one piece of a buffer segment (a whole segment, or what fits) into
 * the record being gathered in scratch; a record is sent when it holds L7_CHUNK bytes or the
 * bytes to copy end. So a syscall's bytes become one record per L7_CHUNK whatever the number
 * of iovecs. The last record's chunk_len runs to the end of the syscall: what was not copied
 * (beyond max_payload, an unreadable buffer) is a known-length hole in that same record. */

static __always_inline int next_segment(struct emit_ctx *c)
{
	struct iovec iv = {};

	if (c->seg_off < c->seg_len)
		return 1;
	if (!c->iov || c->iov_idx >= c->iov_cnt)
		return 0;
	if (c->iov_idx < c->iov_have)
		iv = c->iovs[c->iov_idx & (IOV_BATCH - 1)];
	else if (bpf_probe_read_user(&iv, sizeof(iv), (void *)(c->iov + c->iov_idx * sizeof(iv))))
		return 0;
	c->iov_idx++;
	c->base = (__u64)iv.iov_base;
	c->seg_len = iv.iov_len;
	c->seg_off = 0;
	return 1;
}

/* Send the gathered record; the last one also covers the syscall's uncopied rest. */
static __always_inline void send_record(struct l7_scratch *s, int last)
{
	struct emit_ctx *c = &s->c;
	struct l7_event *ev = &s->ev;
	__u32 data_len = c->fill;

	asm volatile("" : "+r"(data_len));
	data_len &= 2 * L7_CHUNK - 1;
	if (data_len > L7_CHUNK)
		return;
	ev->chunk_off = c->sent;
	ev->data_len = data_len;
	ev->chunk_len = last ? c->result - c->sent : data_len;
	if (ev->chunk_len > data_len && !(ev->flags & L7_FLAG_PAYLOAD_SUPPRESSED)) {
		ev->flags |= L7_FLAG_TRUNCATED;
		count(L7_STAT_BYTES_NOT_CAPTURED, ev->chunk_len - data_len);
	}
	output(ev, data_len);
	c->sent += ev->chunk_len;
	c->fill = 0;
}

static long emit_step(__u32 index, void *arg)
{
	struct l7_scratch *s = bpf_map_lookup_elem(&scratch, &(__u32){0});
	struct emit_ctx *c;
	__u32 fill, n;

	if (!s)
		return 1;
	c = &s->c;
	if (c->done >= c->budget || !next_segment(c))
		return 1;
	if (c->seg_off >= c->seg_len)
		return 0; /* empty iovec: move on */
	fill = c->fill;
	n = c->seg_len - c->seg_off > L7_CHUNK ? L7_CHUNK : c->seg_len - c->seg_off;
	if (n > c->budget - c->done)
		n = c->budget - c->done;
	if (n > L7_CHUNK - fill)
		n = L7_CHUNK - fill;
	fill &= L7_CHUNK - 1; /* below L7_CHUNK: a full record was sent */
	asm volatile("" : "+r"(n)); /* keep the mask: bounds the verifier can follow */
	n &= 2 * L7_CHUNK - 1;
	if (n > L7_CHUNK)
		return 1;
	if (bpf_probe_read_user(s->ev.data + fill, n, (void *)(c->base + c->seg_off))) {
		count(L7_STAT_READ_FAULTS, 1);
		return 1;
	}
	c->fill += n;
	c->done += n;
	c->seg_off += n;
	if (c->fill >= L7_CHUNK && c->done < c->budget)
		send_record(s, 0);
	return 0;
}

/* One copy for a whole syscall in one segment (a buffer, or a single iovec) of at most
 * size_class bytes: from user memory straight into a ring record reserved at the size class
 * (no scratch, no bpf_loop); data_len says how much of the class is payload. 1 when the call
 * was handled here (record sent, or lost to a full ring), else 0. */
static __always_inline int emit_direct(struct l7_scratch *s, __u32 size_class)
{
	struct emit_ctx *c = &s->c;
	__u32 n = c->result;
	__u64 from = c->base;
	struct l7_event *rec;

	if (n > size_class || c->budget < n)
		return 0;
	if (c->iov) {
		if (c->iov_cnt != 1 || !c->iov_have)
			return 0;
		from = (__u64)c->iovs[0].iov_base;
	}
	rec = bpf_ringbuf_reserve(&events, L7_EVENT_HDR_LEN + size_class, 0);
	if (!rec) {
		count(L7_STAT_RINGBUF_FULL, 1);
		return 1;
	}
	s->ev.chunk_off = 0;
	s->ev.chunk_len = n;
	s->ev.data_len = n;
	__builtin_memcpy(rec, &s->ev, L7_EVENT_HDR_LEN);
	asm volatile("" : "+r"(n));
	n &= 2 * size_class - 1;
	if (n > size_class || bpf_probe_read_user((__u8 *)rec + L7_EVENT_HDR_LEN, n, (void *)from)) {
		count(L7_STAT_READ_FAULTS, 1);
		rec->data_len = 0; /* the whole call becomes a known-length hole */
		rec->flags |= L7_FLAG_TRUNCATED;
		count(L7_STAT_BYTES_NOT_CAPTURED, c->result);
	}
	bpf_ringbuf_submit(rec, wake_flags(L7_EVENT_HDR_LEN + size_class));
	count(L7_STAT_EVENTS, 1);
	c->sent = c->result;
	return 1;
}

/* Two segments (a head and a body buffer, nginx's writev) of at most size_class bytes together:
 * both copied from user memory straight into one ring reservation, the second right after the
 * first. The reservation is twice the class (each copy can be proven to fit only on its own);
 * data_len says how much is payload. 1 when the call was handled here. */
static __always_inline int emit_pair_direct(struct l7_scratch *s, __u32 size_class)
{
	struct emit_ctx *c = &s->c;
	struct l7_event *rec;
	__u32 n0, n1;
	__u8 *data;

	if (!c->iov || c->iov_cnt != 2 || c->iov_have != 2 || c->result > size_class ||
	    c->budget < c->result)
		return 0;
	rec = bpf_ringbuf_reserve(&events, L7_EVENT_HDR_LEN + 2 * size_class, 0);
	if (!rec) {
		count(L7_STAT_RINGBUF_FULL, 1);
		return 1;
	}
	n0 = c->iovs[0].iov_len < c->result ? c->iovs[0].iov_len : c->result;
	n1 = c->result - n0;
	s->ev.chunk_off = 0;
	s->ev.chunk_len = c->result;
	s->ev.data_len = c->result;
	__builtin_memcpy(rec, &s->ev, L7_EVENT_HDR_LEN);
	data = (__u8 *)rec + L7_EVENT_HDR_LEN;
	asm volatile("" : "+r"(n0), "+r"(n1));
	n0 &= 2 * size_class - 1;
	n1 &= 2 * size_class - 1;
	if (n0 > size_class || n1 > size_class || bpf_probe_read_user(data, n0, c->iovs[0].iov_base) ||
	    bpf_probe_read_user(data + n0, n1, c->iovs[1].iov_base)) {
		count(L7_STAT_READ_FAULTS, 1);
		rec->data_len = 0; /* the whole call becomes a known-length hole */
		rec->flags |= L7_FLAG_TRUNCATED;
		count(L7_STAT_BYTES_NOT_CAPTURED, c->result);
	}
	bpf_ringbuf_submit(rec, wake_flags(L7_EVENT_HDR_LEN + 2 * size_class));
	count(L7_STAT_EVENTS, 1);
	c->sent = c->result;
	return 1;
}

/* Two segments (a head and a body buffer) of at most L7_CHUNK bytes together: gathered into the
 * scratch record by two copies (the second may start anywhere below L7_CHUNK: the scratch has
 * room) and sent as one record, without the bpf_loop machinery. */
static __always_inline int emit_pair(struct l7_scratch *s)
{
	struct emit_ctx *c = &s->c;
	__u32 n0, n1;

	if (!c->iov || c->iov_cnt != 2 || c->iov_have != 2 || c->result > L7_CHUNK ||
	    c->budget < c->result)
		return 0;
	n0 = c->iovs[0].iov_len < c->result ? c->iovs[0].iov_len : c->result;
	n1 = c->result - n0;
	asm volatile("" : "+r"(n0), "+r"(n1));
	n0 &= 2 * L7_CHUNK - 1;
	n1 &= 2 * L7_CHUNK - 1;
	if (n0 > L7_CHUNK || n1 > L7_CHUNK)
		return 0;
	if (bpf_probe_read_user(s->ev.data, n0, c->iovs[0].iov_base) ||
	    bpf_probe_read_user(s->ev.data + n0, n1, c->iovs[1].iov_base)) {
		count(L7_STAT_READ_FAULTS, 1);
		return 0; /* the general path copies what it can */
	}
	c->fill = n0 + n1;
	c->done = c->fill;
	send_record(s, 1);
	return 1;
}

/* Size classes of direct records: at most twice the payload, most calls in the first two. */
static __always_inline int emit_direct_classes(struct l7_scratch *s)
{
	return emit_direct(s, 128) || emit_direct(s, 256) || emit_direct(s, 512) ||
	       emit_direct(s, 1024) || emit_direct(s, 2048) || emit_direct(s, L7_CHUNK);
}

static __always_inline int emit_pair_classes(struct l7_scratch *s)
{
	return emit_pair_direct(s, 128) || emit_pair_direct(s, 256) || emit_pair_direct(s, 512) ||
	       emit_pair_direct(s, 1024);
}

/* A subprogram, not inlined: the syscall and TLS paths share one verified copy. */
static __noinline int emit_payload(struct active_call *ac, struct sock *sk, struct conn_info *ci,
				   __u32 result)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u8 direction = ac->direction;
	int tls = ac->tls;
	struct l7_scratch *s = bpf_map_lookup_elem(&scratch, &(__u32){0});
	struct emit_ctx *c;
	struct l7_event *ev;
	__u32 seq_end;

	if (!ci || !s)
		return 0;
	c = &s->c;
	__builtin_memset(c, 0, sizeof(*c));
	ev = &s->ev;
	fill_header(ev, L7_KIND_DATA, ci, ac->ts_enter, ac->fd, ac->syscall);
	if (tls)
		ev->flags |= L7_FLAG_TLS; /* seq: the position in the SSL object's plaintext */
	if (ac->has_seq) {
		/* the position before the call: exact even when a read also consumed the FIN,
		 * which advances copied_seq by one more */
		ev->seq = ac->seq;
	} else {
		seq_end = direction == L7_DIR_EGRESS ? BPF_CORE_READ(tp, write_seq)
						       : BPF_CORE_READ(tp, copied_seq);
		ev->seq = seq_end - result;
	}
	ev->total_len = result;
	ev->direction = direction;
	c->result = result;

	if (ac->shape == SHAPE_BUF) {
		c->base = ac->ptr;
		c->seg_len = result;
	} else if (ac->shape == SHAPE_IOV) {
		__u32 n = ac->count < IOV_BATCH ? ac->count : IOV_BATCH;
		c->iov = ac->ptr;
		c->iov_cnt = ac->count;
		asm volatile("" : "+r"(n));
		if (n <= IOV_BATCH && !bpf_probe_read_user(c->iovs, n * sizeof(struct iovec),
							   (void *)ac->ptr))
			c->iov_have = n;
	}
	if (ac->shape == SHAPE_BUF || ac->shape == SHAPE_IOV) {
		if (want_payload(ci, c, result)) {
			c->budget = result < cfg.max_payload ? result : cfg.max_payload;
			if (!emit_direct_classes(s) && !emit_pair_classes(s) && !emit_pair(s))
				bpf_loop(L7_MAX_STEPS, emit_step, NULL, 0);
		} else {
			ev->flags |= L7_FLAG_PAYLOAD_SUPPRESSED;
			count(L7_STAT_BYTES_SUPPRESSED, result);
		}
	}
	if (c->sent < result)
		send_record(s, 1); /* what was gathered, and the exact hole after it */
	return 0;
}

/* ---- the call's arguments and its thread slot ---- */

/* A syscall made inside SSL_read/SSL_write names the socket of that SSL object. */
static __always_inline void learn_ssl_socket(__u64 sk)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_call *sc;

	if (ssl_calls <= 0)
		return;
	sc = bpf_map_lookup_elem(&ssl_active, &id);
	if (sc)
		bpf_map_update_elem(&ssl_socks, &sc->ssl, &sk, BPF_ANY);
}

/* The syscall's first arguments, from the user registers saved at entry: they are still there
 * at exit, so the exit needs nothing from an entry program but the time. */
static __always_inline void saved_args(__u64 *a0, __u64 *a1, __u64 *a2)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

#if defined(__TARGET_ARCH_x86)
	*a0 = regs->di;
	*a1 = regs->si;
	*a2 = regs->dx;
#elif defined(__TARGET_ARCH_arm64)
	*a0 = regs->orig_x0; /* x0 holds the return value by now */
	*a1 = regs->regs[1];
	*a2 = regs->regs[2];
#else
#error "saved_args: unsupported architecture"
#endif
}

#define L7_MSG_PEEK 0x2 /* <linux/socket.h> */

/* The fourth argument (recvfrom's flags), from the saved registers. */
static __always_inline __u64 saved_arg3(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

#if defined(__TARGET_ARCH_x86)
	return regs->r10; /* the syscall ABI passes the fourth argument in r10, not rcx */
#elif defined(__TARGET_ARCH_arm64)
	return regs->regs[3];
#endif
}

/* A receive with MSG_PEEK moves no bytes out of the socket: the same bytes come again with the
 * read that takes them, so the peek is no stream data (recv(2): "MSG_PEEK ... a subsequent
 * receive call will return the same data"). nginx peeks one byte on every ssl listener. */
static __always_inline int peeked(__u8 sc, __u64 a2)
{
	if (sc == L7_SYS_RECVMSG)
		return (a2 & L7_MSG_PEEK) != 0;
	if (sc == L7_SYS_RECVFROM)
		return (saved_arg3() & L7_MSG_PEEK) != 0;
	return 0;
}

/* Entry of a sending syscall: only its time, for the egress timestamp. */
static __always_inline void remember_send(__u8 sc)
{
	struct thread_state *ts = thread_state();

	if (!traced_by(bpf_get_current_pid_tgid() >> 32, ts))
		return;
	if (!ts) {
		count(L7_STAT_ACTIVE_FULL, 1);
		return;
	}
	ts->call.ts_enter = bpf_ktime_get_ns();
	ts->call.syscall = sc;
	ts->call.shape = SHAPE_BUF; /* live; the exit knows the real shape */
}

/* A call without a live slot on the thread's first exit since attach: it may have entered
 * before the programs were attached. 1 when it is (then taken, timed at exit). */
static __always_inline int first_exit(struct thread_state *ts)
{
	if (!ts || ts->seen)
		return 0;
	ts->seen = 1;
	return 1;
}

/* The entry time of a sending call, or 0 when it is not traced. */
static __always_inline __u64 send_entry_time(struct thread_state *ts, long ret)
{
	if (ts && ts->call.shape) {
		ts->call.shape = 0;
		return ts->call.ts_enter;
	}
	if (ret <= 0 || !first_exit(ts))
		return 0;
	return traced_by(bpf_get_current_pid_tgid() >> 32, ts) ? bpf_ktime_get_ns() : 0;
}

static __always_inline __u64 msg_iov(__u64 msg, __u32 *cnt)
{
	struct user_msghdr mh = {};

	if (bpf_probe_read_user(&mh, sizeof(mh), (void *)msg))
		return 0;
	*cnt = mh.msg_iovlen;
	return (__u64)mh.msg_iov;
}

/* The stream position of the call's first byte, read after the call. A read that also
 * consumed the peer's FIN advanced copied_seq one past its data: the FIN has arrived
 * (RCV_SHUTDOWN) and nothing is left unread (copied_seq == rcv_nxt) exactly then. */
static __always_inline __u32 seq_before(struct sock *sk, __u32 result, __u8 direction)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 end;

	if (direction == L7_DIR_EGRESS)
		return BPF_CORE_READ(tp, write_seq) - result;
	end = BPF_CORE_READ(tp, copied_seq);
	if ((BPF_CORE_READ(sk, sk_shutdown) & RCV_SHUTDOWN) && BPF_CORE_READ(tp, rcv_nxt) == end)
		end--;
	return end - result;
}

/* bytes moved by sendmmsg/recvmmsg: the sum of msg_len over the first messages */
static __always_inline long mmsg_bytes(__u64 vec, long messages)
{
	__u32 total = 0, n = messages > 8 ? 8 : messages;

	for (__u32 i = 0; i < 8; i++) {
		__u32 len = 0;
		if (i >= n)
			break;
		bpf_probe_read_user(&len, sizeof(len),
				    (void *)(vec + i * sizeof(struct mmsghdr) +
					     __builtin_offsetof(struct mmsghdr, msg_len)));
		total += len;
	}
	return total;
}

/* ---- syscall exit: emit ---- */

static __always_inline void emit_eof(struct conn_info *ci, __u64 ts, int fd, __u8 sc)
{
	struct l7_event *ev;

	if (!ci || ci->klass != L7_CLASS_HTTP)
		return;
	ev = header(L7_KIND_EOF, ci, ts, fd, sc);
	if (ev) {
		ev->direction = L7_DIR_INGRESS;
		output(ev, 0);
	}
}

/* Exit of a data syscall. Receiving calls have no entry program: a failed read (EAGAIN) costs
 * one comparison; their ts_enter is their exit time. */
static __always_inline void finish(long ret, __u8 direction, __u8 sc, __u8 shape)
{
	struct active_call ac = {};
	__u64 a0 = 0, a1 = 0, a2 = 0, ts;
	struct thread_state *thread;
	struct conn_info *ci;
	struct sock *sk;

	if (direction == L7_DIR_INGRESS && (ret < 0 || (ret == 0 && shape == SHAPE_MMSG)))
		return;
	thread = thread_state();
	if (direction == L7_DIR_EGRESS) {
		ts = send_entry_time(thread, ret);
		if (!ts || ret <= 0)
			return;
	} else {
		if (!traced_by(bpf_get_current_pid_tgid() >> 32, thread))
			return;
		ts = 0; /* the header's exit time stands for both */
	}
	saved_args(&a0, &a1, &a2);
	if (direction == L7_DIR_INGRESS && peeked(sc, a2))
		return;
	ci = conn_of_fd(thread, (int)a0, &sk, ret > 0);
	if (!sk)
		return;
	learn_ssl_socket((__u64)sk);
	if (ret == 0) {
		emit_eof(ci, ts, (int)a0, sc);
		return;
	}
	if (shape == SHAPE_MMSG) {
		ret = mmsg_bytes(a1, ret);
		if (ret <= 0)
			return;
		shape = SHAPE_BYTES;
	}
	if (sc == L7_SYS_RECVMSG || sc == L7_SYS_SENDMSG) {
		a1 = msg_iov(a1, (__u32 *)&a2);
		if (!a1)
			shape = SHAPE_BYTES;
	}
	if (!ci)
		return;
	ac.ts_enter = ts;
	ac.ptr = a1;
	ac.count = (__u32)a2;
	ac.fd = (int)a0;
	ac.syscall = sc;
	ac.shape = shape;
	ac.has_seq = 1;
	ac.seq = seq_before(sk, (__u32)ret, direction);
	ac.direction = direction;
	emit_payload(&ac, sk, ci, (__u32)ret);
}

#define ARG(i) (ctx->args[i])

#define EXIT_PROBE(name, sc, shape, dir)                                                \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                      \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                            \
	{                                                                               \
		finish(ctx->ret, dir, sc, shape);                                       \
		return 0;                                                               \
	}

/* receiving: exit only */
#define RECV_PROBES(name, sc, shape) EXIT_PROBE(name, sc, shape, L7_DIR_INGRESS)

/* sending: the entry's time stamps the egress bytes */
#define SEND_PROBES(name, sc, shape)                                                    \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                     \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                          \
	{                                                                               \
		remember_send(sc);                                                      \
		return 0;                                                               \
	}                                                                               \
	EXIT_PROBE(name, sc, shape, L7_DIR_EGRESS)

RECV_PROBES(read, L7_SYS_READ, SHAPE_BUF)
RECV_PROBES(recvfrom, L7_SYS_RECVFROM, SHAPE_BUF)
RECV_PROBES(readv, L7_SYS_READV, SHAPE_IOV)
RECV_PROBES(recvmsg, L7_SYS_RECVMSG, SHAPE_IOV)
RECV_PROBES(recvmmsg, L7_SYS_RECVMMSG, SHAPE_MMSG)
SEND_PROBES(write, L7_SYS_WRITE, SHAPE_BUF)
SEND_PROBES(sendto, L7_SYS_SENDTO, SHAPE_BUF)
SEND_PROBES(writev, L7_SYS_WRITEV, SHAPE_IOV)
SEND_PROBES(sendmsg, L7_SYS_SENDMSG, SHAPE_IOV)
SEND_PROBES(sendmmsg, L7_SYS_SENDMMSG, SHAPE_MMSG)
SEND_PROBES(sendfile64, L7_SYS_SENDFILE, SHAPE_BYTES)

/* ---- connection lifecycle ---- */

static __always_inline void opened(int fd, __u8 role, __u8 sc, __u64 ts_enter)
{
	__u64 file = file_of_fd(fd), inner;
	struct sock *sk = file ? tcp_sock_of_file((struct file *)file, &inner) : NULL;
	struct conn_info *ci;
	struct l7_event *ev;

	if (!sk)
		return;
	ci = conn_of(sk, role, 1);
	if (!ci)
		return;
	ev = header(L7_KIND_OPEN, ci, ts_enter, fd, sc);
	if (ev)
		output(ev, 0);
}

static __always_inline void remember_fd(int fd, __u8 sc)
{
	struct thread_state *ts = thread_state();

	if (!traced_by(bpf_get_current_pid_tgid() >> 32, ts))
		return;
	if (!ts) {
		count(L7_STAT_ACTIVE_FULL, 1);
		return;
	}
	ts->call.ts_enter = bpf_ktime_get_ns();
	ts->call.fd = fd;
	ts->call.syscall = sc;
	ts->call.shape = SHAPE_FD;
}

static __always_inline void finish_open(long ret, __u8 role)
{
	struct thread_state *ts = thread_state();
	struct active_call *ac = ts ? &ts->call : NULL;

	if (!ac || !ac->shape) {
		/* an accept() blocked since before attach: the new fd is the result */
		if (role != L7_ROLE_SERVER || ret < 0 || !first_exit(ts))
			return;
		if (traced_by(bpf_get_current_pid_tgid() >> 32, ts))
			opened((int)ret, role, L7_SYS_ACCEPT4, bpf_ktime_get_ns());
		return;
	}
	if (ac->shape != SHAPE_FD) {
		ac->shape = 0;
		return;
	}
	if (role == L7_ROLE_CLIENT && (ret == 0 || ret == -EINPROGRESS))
		opened(ac->fd, role, ac->syscall, ac->ts_enter);
	else if (role == L7_ROLE_SERVER && ret >= 0)
		opened((int)ret, role, ac->syscall, ac->ts_enter);
	ac->shape = 0;
}

#define OPEN_PROBES(name, sc, role)                                                       \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                       \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                            \
	{                                                                                 \
		remember_fd(ARG(0), sc);                                                  \
		return 0;                                                                 \
	}                                                                                 \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                        \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                              \
	{                                                                                 \
		finish_open(ctx->ret, role);                                              \
		return 0;                                                                 \
	}

OPEN_PROBES(connect, L7_SYS_CONNECT, L7_ROLE_CLIENT)
OPEN_PROBES(accept, L7_SYS_ACCEPT, L7_ROLE_SERVER)
OPEN_PROBES(accept4, L7_SYS_ACCEPT4, L7_ROLE_SERVER)

SEC("tracepoint/sock/inet_sock_set_state")
int sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 key = (__u64)ctx->skaddr;
	struct conn_info *ci;
	struct l7_event *ev;
	__u32 zero = 0;

	if (ctx->newstate != TCP_CLOSE_STATE || ctx->protocol != IPPROTO_TCP)
		return 0;
	ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci)
		return 0;
	ev = bpf_map_lookup_elem(&scratch, &zero);
	if (ev) {
		__builtin_memset(ev, 0, L7_EVENT_HDR_LEN);
		ev->ts_enter = ev->ts_exit = bpf_ktime_get_ns();
		ev->conn_id = ci->conn_id;
		ev->kind = L7_KIND_CLOSE;
		ev->syscall = L7_SYS_STATE;
		ev->role = ci->role;
		output(ev, 0);
	}
	bpf_map_delete_elem(&conns, &key);
	__sync_fetch_and_add(&conn_epoch, 1);
	return 0;
}

/* ---- TLS plaintext: uprobes on libssl ----
 * SSL_read/SSL_write (and _ex) entry remembers the SSL object and buffer per thread; the
 * syscalls made inside the call map the SSL object to its socket (learn_ssl_socket); the
 * return copies the plaintext, as a stream of its own (conn_id per SSL object and socket, flag
 * TLS), with the socket's addresses and role.
 * SSL_do_handshake (SSL_accept and SSL_connect call it) is a call in progress too, without
 * plaintext: its syscalls name the socket before the first SSL_read, which may find the
 * request already decrypted in the library's buffer and make no syscall.
 * A stream ends (CLOSE record) when its SSL object is freed (SSL_free) or when the SSL
 * object's address is found on another socket: allocators hand a freed SSL object's address
 * to the next connection (nginx, connection after connection), whose bytes must not continue
 * the previous connection's stream.
 * SSL objects are keyed with their process: forked workers allocate at the same addresses. */

static __always_inline __u64 ssl_key(__u64 ssl)
{
	return ssl ^ ((bpf_get_current_pid_tgid() >> 32) * 0x9E3779B97F4A7C15ULL);
}

static __always_inline int ssl_enter(struct pt_regs *ctx, __u8 direction, __u8 sc, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_call call = {};

	if (!traced(id >> 32))
		return 0;
	call.ssl = ssl_key(PT_REGS_PARM1(ctx));
	call.buf = PT_REGS_PARM2(ctx);
	call.count_ptr = ex ? PT_REGS_PARM4(ctx) : 0;
	call.ts_enter = bpf_ktime_get_ns();
	call.direction = direction; /* 0: a handshake, no plaintext */
	call.syscall = sc;
	if (bpf_map_update_elem(&ssl_active, &id, &call, BPF_ANY))
		count(L7_STAT_ACTIVE_FULL, 1);
	else
		__sync_fetch_and_add(&ssl_calls, 1);
	return 0;
}

/* The end of a TLS stream, as the socket close ends a TCP one. */
static __always_inline void tls_close(struct conn_info *ci)
{
	struct l7_event *ev = header(L7_KIND_CLOSE, ci, 0, -1, L7_SYS_STATE);

	if (ev)
		output(ev, 0);
}

/* The stream of this SSL object on this socket: the one kept while it is the same socket
 * (same sock, same connection entry), else a new one, the old one closed. */
static __always_inline struct tls_conn *tls_conn_of(__u64 ssl, struct sock *sk)
{
	struct tls_conn *tc = bpf_map_lookup_elem(&tls_conns, &ssl);
	__u64 key = (__u64)sk;
	struct conn_info *raw = bpf_map_lookup_elem(&conns, &key);
	struct tls_conn fresh = {};

	if (tc && tc->sk == key && tc->raw_id == (raw ? raw->conn_id : 0))
		return tc;
	if (tc)
		tls_close(&tc->ci);
	fresh.ci.conn_id = new_conn_id();
	fresh.ci.role = raw ? raw->role : L7_ROLE_UNKNOWN;
	fresh.sk = key;
	fresh.raw_id = raw ? raw->conn_id : 0;
	fill_endpoints(&fresh.ci, sk);
	bpf_map_update_elem(&tls_conns, &ssl, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&tls_conns, &ssl);
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_enter) { return ssl_enter(ctx, L7_DIR_EGRESS, L7_SYS_SSL_WRITE, 0); }

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter) { return ssl_enter(ctx, L7_DIR_EGRESS, L7_SYS_SSL_WRITE, 1); }

SEC("uprobe")
int BPF_KPROBE(ssl_read_enter) { return ssl_enter(ctx, L7_DIR_INGRESS, L7_SYS_SSL_READ, 0); }

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter) { return ssl_enter(ctx, L7_DIR_INGRESS, L7_SYS_SSL_READ, 1); }

SEC("uprobe")
int BPF_KPROBE(ssl_handshake_enter) { return ssl_enter(ctx, 0, 0, 0); }

/* SSL_free: the stream ends, its socket is forgotten (any process: a miss costs two lookups). */
SEC("uprobe")
int BPF_KPROBE(ssl_free_enter)
{
	__u64 ssl = ssl_key(PT_REGS_PARM1(ctx));
	struct tls_conn *tc = bpf_map_lookup_elem(&tls_conns, &ssl);

	bpf_map_delete_elem(&ssl_socks, &ssl);
	if (tc) {
		tls_close(&tc->ci);
		bpf_map_delete_elem(&tls_conns, &ssl);
	}
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_exit)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_call *call = bpf_map_lookup_elem(&ssl_active, &id);
	struct active_call ac = {};
	int ret = (int)PT_REGS_RC(ctx); /* int: the upper half of the register is not the value */
	__u64 n = 0, *skp;
	struct tls_conn *tc;

	if (!call)
		return 0;
	if (call->count_ptr) {
		if (ret == 1)
			bpf_probe_read_user(&n, sizeof(n), (void *)call->count_ptr);
	} else if (ret > 0) {
		n = ret;
	}
	if (!call->direction)
		n = 0; /* a handshake: its syscalls named the socket, no plaintext */
	skp = n ? bpf_map_lookup_elem(&ssl_socks, &call->ssl) : NULL;
	if (n && !skp)
		count(L7_STAT_TLS_UNMAPPED, 1);
	if (skp) {
		tc = tls_conn_of(call->ssl, (struct sock *)*skp);
		if (tc) {
			__u32 *pos = &tc->pos[call->direction == L7_DIR_INGRESS];
			ac.has_seq = 1;
			ac.seq = *pos;
			*pos += n;
			ac.ts_enter = call->ts_enter;
			ac.ptr = call->buf;
			ac.fd = -1;
			ac.syscall = call->syscall;
			ac.shape = SHAPE_BUF;
			ac.direction = call->direction;
			ac.tls = 1;
			emit_payload(&ac, (struct sock *)*skp, &tc->ci, (__u32)n);
		}
	}
	bpf_map_delete_elem(&ssl_active, &id);
	__sync_fetch_and_add(&ssl_calls, -1);
	return 0;
}

/* ---- TCP health: per-socket counters summarised in one record at close ----
 *
 * Theory of operation
 * -------------------
 * An entry in `tcp_health` (keyed by the sock, like `conns`) is made when a traced process's
 *   socket enters SYN_SENT (connect(): process context, so its tgid and comm are kept) or when a
 *   passive open reaches ESTABLISHED (softirq: no owner; user space names it by its endpoints).
 *   SYN_SENT -> ESTABLISHED stores the connect latency.
 * Retransmissions are the socket's own count, tcp_sock.total_retrans, read at close: the kernel
 *   adds to it exactly when it adds to TcpRetransSegs (before the transmit, so a retransmission
 *   the device then drops counts too: tcp:tcp_retransmit_skb's err cannot tell those from the
 *   ones never counted), and an accepted socket starts with its request's SYN-ACK
 *   retransmissions (tcp_create_openreq_child). An entry remembers the count at its creation:
 *   0 for a connect or a handshake seen from its start; tcp:tcp_retransmit_skb makes an entry
 *   for a socket that predates the agent (its earlier retransmissions not counted), and at
 *   each retransmission stores the count so far in the entry: user space reads the open
 *   sockets' entries each metrics interval (struct l7_tcp_stats, then struct l7_conn_ends).
 *   tcp:tcp_receive_reset makes one too (a reset ends the socket: its record follows).
 *   tcp:tcp_retransmit_synack only counts SYN-ACKs (L7_STAT_TCP_SYNACK_RETRANS); the ones an
 *   accepted socket inherits are L7_STAT_TCP_SYNACK_ATTRIBUTED, the difference those of
 *   handshakes that never completed (no socket to charge them to).
 * tcp:tcp_send_reset, tcp:tcp_receive_reset and skb:kfree_skb (the skb's socket: rx_sk where
 *   the tracepoint has it, else skb->sk) add to an existing entry.
 *   Drops keep L7_TCP_DROP_SLOTS reasons per socket, the rest are counted in drops_other.
 * sock:inet_sock_set_state to TCP_CLOSE reads srtt/mdev and sk_err and classifies a connect
 *   that never got established (refused / timed out / aborted), whose record is emitted then;
 *   for the others tcp:tcp_destroy_sock (after an abortive close's reset) emits the one
 *   L7_KIND_TCP record and forgets the entry. A tracepoint
 *   this kernel lacks is not attached (capture/kernel.py) and its counters stay 0; user space
 *   reports them as unavailable (without tcp_destroy_sock, Linux < 5.x, there are no records).
 */
#define TCP_ESTABLISHED_STATE 1
#define TCP_SYN_SENT_STATE 2
#define TCP_SYN_RECV_STATE 3
#define ECONNREFUSED 111
#define ETIMEDOUT 110

/* The counters and the ends come first: user space reads open sockets' entries each metrics
 * interval as struct l7_tcp_stats then struct l7_conn_ends (bpf/l7scope.h). ends.role is the
 * socket's role. */
struct tcp_health {
	struct l7_tcp_stats st;
	struct conn_info ends; /* taken when established: at close the local port is released */
	__u64 first_ts;
	__u64 syn_ts;
	__u32 tgid;
	__u32 retrans_base; /* tcp_sock.total_retrans when the entry was made */
	__u8 closed; /* reached TCP_CLOSE: outcome, RTT and sk_err are final */
	__u8 pad[7];
	char comm[L7_COMM_LEN];
};
_Static_assert(sizeof(struct conn_info) == sizeof(struct l7_conn_ends), "l7_conn_ends");
_Static_assert(__builtin_offsetof(struct conn_info, lport) ==
	       __builtin_offsetof(struct l7_conn_ends, lport), "l7_conn_ends.lport");
_Static_assert(__builtin_offsetof(struct conn_info, raddr) ==
	       __builtin_offsetof(struct l7_conn_ends, raddr), "l7_conn_ends.raddr");
_Static_assert(__builtin_offsetof(struct tcp_health, ends) == sizeof(struct l7_tcp_stats),
	       "tcp_health.ends");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tcp_health);
} tcp_health SEC(".maps");

/* the TCP health programs' counters (enum l7_tcp_count), summed over CPUs by user space */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, L7_TCP_COUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tcp_health_counts SEC(".maps");

static __always_inline void tcp_count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&tcp_health_counts, &which);

	if (v) /* atomic: a nested run may add to the same CPU's value */
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u32 total_retrans(__u64 key)
{
	return BPF_CORE_READ((struct tcp_sock *)key, total_retrans);
}

static __always_inline struct tcp_health *tcp_health_new(__u64 key, __u8 role, int owner,
							 __u32 retrans_base)
{
	struct tcp_health h = {};

	h.first_ts = bpf_ktime_get_ns();
	h.retrans_base = retrans_base;
	fill_endpoints(&h.ends, (struct sock *)key);
	h.ends.role = role;
	if (owner) {
		h.tgid = bpf_get_current_pid_tgid() >> 32;
		h.syn_ts = h.first_ts;
		bpf_get_current_comm(h.comm, sizeof(h.comm));
	}
	if (bpf_map_update_elem(&tcp_health, &key, &h, BPF_ANY)) {
		tcp_count(L7_TCP_COUNT_NO_ENTRY); /* the socket will have no record */
		return NULL;
	}
	return bpf_map_lookup_elem(&tcp_health, &key);
}

static __always_inline struct tcp_health *tcp_health_of(const void *sk)
{
	__u64 key = (__u64)sk;

	if (!sk)
		return NULL;
	return bpf_map_lookup_elem(&tcp_health, &key);
}

static __always_inline __u8 tcp_outcome(int oldstate, __u16 err)
{
	if (oldstate != TCP_SYN_SENT_STATE)
		return L7_TCP_ESTABLISHED;
	if (err == ECONNREFUSED)
		return L7_TCP_REFUSED;
	if (err == ETIMEDOUT)
		return L7_TCP_TIMED_OUT;
	return L7_TCP_ABORTED;
}

/* At TCP_CLOSE: what the socket ends with (connect() clears sk_err once it has reported it).
 * The record waits for tcp:tcp_destroy_sock: an abortive close sends its reset after this
 * state change. */
static __always_inline void tcp_health_close(struct sock *sk, struct tcp_health *h, int oldstate)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	h->st.retransmits = BPF_CORE_READ(tp, total_retrans) - h->retrans_base;
	h->st.srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	h->st.rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
	h->st.sk_err = BPF_CORE_READ(sk, sk_err);
	h->st.outcome = tcp_outcome(oldstate, h->st.sk_err);
	h->closed = 1;
}

static __always_inline void tcp_health_emit(struct sock *sk, struct tcp_health *h)
{
	__u32 size = L7_EVENT_HDR_LEN + sizeof(struct l7_tcp_stats);
	struct conn_info *ci = &h->ends;
	struct l7_event *ev;

	ev = bpf_ringbuf_reserve(&events, size, 0);
	if (!ev) {
		count(L7_STAT_RINGBUF_FULL, 1);
		return;
	}
	if (!ci->family)
		fill_endpoints(ci, sk); /* a connect that failed: the remote end still stands */
	__builtin_memset(ev, 0, L7_EVENT_HDR_LEN);
	ev->ts_enter = h->first_ts;
	ev->ts_exit = bpf_ktime_get_ns();
	ev->tgid = h->tgid;
	ev->fd = -1;
	ev->kind = L7_KIND_TCP;
	ev->syscall = L7_SYS_STATE;
	ev->role = ci->role;
	ev->family = ci->family;
	ev->lport = ci->lport;
	ev->rport = ci->rport;
	__builtin_memcpy(ev->laddr, ci->laddr, 16);
	__builtin_memcpy(ev->raddr, ci->raddr, 16);
	__builtin_memcpy(ev->comm, h->comm, L7_COMM_LEN);
	__builtin_memcpy(ev->data, &h->st, sizeof(struct l7_tcp_stats));
	bpf_ringbuf_submit(ev, wake_flags(size));
	count(L7_STAT_EVENTS, 1);
}

/* The TCP health programs on socket state, destruction, retransmissions (SYN-ACKs too), resets and drops are
 * raw tracepoints: the kernel skips a (classic) tracepoint's program whenever any BPF program is
 * already running on the CPU, which softirq work (a retransmission timer, an arriving reset or
 * a drop) on top of one of the syscall programs often meets; a raw tracepoint's program is
 * skipped only when it interrupts itself. That still happens: a state change in process
 * context (connect, close, listen: the socket lock held, softirqs enabled) whose run a timer
 * interrupt cuts into, its softirq then running a retransmission timer that ends a connect
 * (SYN_SENT -> CLOSE) or completes a handshake (a passive open: SYN_RECV -> ESTABLISHED). The
 * skipped run would make no entry or no record: the socket's summary never comes. It is rare
 * (none seen in stress runs), but nothing else could stand in for it. Each tracepoint
 * therefore has two programs (TCP_HEALTH_PROGRAMS below) running the same body `X_run`: the
 * first marks its CPU busy while it runs; the second runs the body only when it finds that
 * mark, which is exactly when the kernel skipped the first (interrupting itself), and counts
 * it (L7_TCP_COUNT_NESTED). Softirqs do not nest, so a run of the second is never cut into by
 * the same event source, and when the second is the one interrupted, the first runs the
 * nested event as usual. Their arguments are the kernel function's. */
/* inet_sock_set_state (sk, oldstate, newstate) */
static __always_inline int state_run(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	__u64 key = (__u64)sk;
	int old = (int)ctx->args[1], new = (int)ctx->args[2];
	struct tcp_health *h;

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	if (new == TCP_SYN_SENT_STATE) {
		if (traced(bpf_get_current_pid_tgid() >> 32))
			tcp_health_new(key, L7_ROLE_CLIENT, 1, 0);
		return 0;
	}
	if (new == TCP_ESTABLISHED_STATE && old == TCP_SYN_RECV_STATE) {
		/* base 0: the SYN-ACKs its request retransmitted are the socket's own */
		__u32 synacks = total_retrans(key);

		h = tcp_health_new(key, L7_ROLE_SERVER, 0, 0);
		if (h) /* so far, for the interval reports */
			h->st.retransmits = synacks;
		count(L7_STAT_TCP_SYNACK_ATTRIBUTED, synacks);
		return 0;
	}
	h = bpf_map_lookup_elem(&tcp_health, &key);
	if (!h)
		return 0;
	if (new == TCP_ESTABLISHED_STATE && old == TCP_SYN_SENT_STATE) {
		if (h->syn_ts)
			h->st.connect_ns = bpf_ktime_get_ns() - h->syn_ts;
		fill_endpoints(&h->ends, sk);
	}
	if (new == TCP_CLOSE_STATE) {
		tcp_health_close(sk, h, old);
		if (old == TCP_SYN_SENT_STATE) { /* a failed connect: nothing follows, report it now */
			tcp_health_emit(sk, h);
			bpf_map_delete_elem(&tcp_health, &key);
		}
	}
	return 0;
}

/* tcp_destroy_sock (sk) */
static __always_inline int destroy_run(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	__u64 key = (__u64)sk;
	struct tcp_health *h;

	h = bpf_map_lookup_elem(&tcp_health, &key);
	if (!h)
		return 0;
	if (!h->closed) /* not through TCP_CLOSE (cannot happen for TCP): take it now */
		tcp_health_close(sk, h, TCP_CLOSE_STATE);
	tcp_health_emit(sk, h);
	bpf_map_delete_elem(&tcp_health, &key);
	return 0;
}

/* tcp_retransmit_skb (sk, skb, err: Linux 6.x) */
static __always_inline int retransmit_run(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0];
	struct tcp_health *h;
	struct sk_buff *skb;
	long err = 0;
	__u16 segs = 0;

	if (!key)
		return 0;
	h = bpf_map_lookup_elem(&tcp_health, &key);
	if (h) { /* the count so far, for the open socket's interval reports; final at close */
		h->st.retransmits = total_retrans(key) - h->retrans_base;
		return 0;
	}
	/* a socket that predates the agent: counted from this retransmission on (a sent one is
	 * in total_retrans already) */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err))
		err = (int)ctx->args[2];
	if (!err) {
		skb = (struct sk_buff *)ctx->args[1];
		bpf_core_read(&segs, sizeof(segs), &((struct tcp_skb_cb *)skb->cb)->tcp_gso_segs);
		segs = segs ? segs : 1;
	}
	h = tcp_health_new(key, L7_ROLE_UNKNOWN, 0, total_retrans(key) - segs);
	if (h)
		h->st.retransmits = segs;
	return 0;
}

/* tcp_retransmit_synack (listener sk, request sock) */
static __always_inline int synack_run(struct bpf_raw_tracepoint_args *ctx)
{
	count(L7_STAT_TCP_SYNACK_RETRANS, 1);
	return 0;
}

/* tcp_send_reset (sk or NULL, skb, reason: 6.x) */
static __always_inline int send_reset_run(struct bpf_raw_tracepoint_args *ctx)
{
	/* no entry made here: the socket may be a listener or a time-wait one, never destroyed */
	struct tcp_health *h = tcp_health_of((const void *)ctx->args[0]);

	if (h)
		__sync_fetch_and_add(&h->st.resets_sent, 1);
	return 0;
}

/* tcp_receive_reset (sk) */
static __always_inline int receive_reset_run(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0];
	struct tcp_health *h = tcp_health_of((const void *)key);

	if (!h && key) /* a socket that predates the agent */
		h = tcp_health_new(key, L7_ROLE_UNKNOWN, 0, total_retrans(key));
	if (h)
		__sync_fetch_and_add(&h->st.resets_received, 1);
	return 0;
}

/* the slot of `reason` (the first free one if it has none), -1 when all four hold others */
static __always_inline int drop_slot(struct l7_tcp_stats *st, __u16 reason)
{
	if (st->drop_reason0 == reason || !st->drop_reason0) { st->drop_reason0 = reason; return 0; }
	if (st->drop_reason1 == reason || !st->drop_reason1) { st->drop_reason1 = reason; return 1; }
	if (st->drop_reason2 == reason || !st->drop_reason2) { st->drop_reason2 = reason; return 2; }
	if (st->drop_reason3 == reason || !st->drop_reason3) { st->drop_reason3 = reason; return 3; }
	return -1;
}

/* kfree_skb (skb, location, reason: 5.17+, rx_sk: 6.x) */
static __always_inline int drop_run(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	const void *sk = NULL;
	struct tcp_health *h;
	__u16 reason = 0;

	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, reason))
		reason = (__u16)ctx->args[2];
	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
		sk = (const void *)ctx->args[3];
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);
	h = tcp_health_of(sk); /* entries exist for TCP sockets only */
	if (!h)
		return 0;
	switch (drop_slot(&h->st, reason ? reason : 1)) {
	case 0: __sync_fetch_and_add(&h->st.drop_count0, 1); break;
	case 1: __sync_fetch_and_add(&h->st.drop_count1, 1); break;
	case 2: __sync_fetch_and_add(&h->st.drop_count2, 1); break;
	case 3: __sync_fetch_and_add(&h->st.drop_count3, 1); break;
	default: __sync_fetch_and_add(&h->st.drops_other, 1);
	}
	return 0;
}

/* Runs the kernel skips (see above): per CPU, which tracepoint's first program is running. */
enum { TCP_BUSY_STATE, TCP_BUSY_DESTROY, TCP_BUSY_RETRANSMIT, TCP_BUSY_SYNACK,
       TCP_BUSY_SEND_RESET, TCP_BUSY_RECEIVE_RESET, TCP_BUSY_DROP, TCP_BUSY_SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCP_BUSY_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} tcp_health_busy SEC(".maps");

#define TCP_HEALTH_PROGRAMS(tp, name, slot)					\
SEC("raw_tp/" #tp)								\
int tcp_health_##name(struct bpf_raw_tracepoint_args *ctx)			\
{										\
	__u32 key = slot;							\
	__u32 *busy = bpf_map_lookup_elem(&tcp_health_busy, &key);		\
										\
	if (busy)								\
		*busy = 1;							\
	name##_run(ctx);							\
	if (busy)								\
		*busy = 0;							\
	return 0;								\
}										\
SEC("raw_tp/" #tp)								\
int tcp_nested_##name(struct bpf_raw_tracepoint_args *ctx)			\
{										\
	__u32 key = slot;							\
	__u32 *busy = bpf_map_lookup_elem(&tcp_health_busy, &key);		\
										\
	if (!busy || !*busy) /* the first program runs this event */		\
		return 0;							\
	tcp_count(L7_TCP_COUNT_NESTED);						\
	name##_run(ctx);							\
	return 0;								\
}

TCP_HEALTH_PROGRAMS(inet_sock_set_state, state, TCP_BUSY_STATE)
TCP_HEALTH_PROGRAMS(tcp_destroy_sock, destroy, TCP_BUSY_DESTROY)
TCP_HEALTH_PROGRAMS(tcp_retransmit_skb, retransmit, TCP_BUSY_RETRANSMIT)
TCP_HEALTH_PROGRAMS(tcp_retransmit_synack, synack, TCP_BUSY_SYNACK)
TCP_HEALTH_PROGRAMS(tcp_send_reset, send_reset, TCP_BUSY_SEND_RESET)
TCP_HEALTH_PROGRAMS(tcp_receive_reset, receive_reset, TCP_BUSY_RECEIVE_RESET)
TCP_HEALTH_PROGRAMS(kfree_skb, drop, TCP_BUSY_DROP)

/* ---- process exec and exit, for the agent's process table ----
 * Every process (not only the traced ones: a traced process's peer is named from the table
 * too): sched_process_exec with the executed file's path, sched_process_exit of a thread-group
 * leader (the other threads' exits are not the process's). Exec and exit are rare next to
 * syscalls; no record per thread. */
static __always_inline struct l7_event *proc_record(__u8 kind, __u32 size)
{
	struct l7_event *ev = bpf_ringbuf_reserve(&events, size, 0);
	__u64 id = bpf_get_current_pid_tgid();

	if (!ev) {
		count(L7_STAT_RINGBUF_FULL, 1);
		return NULL;
	}
	__builtin_memset(ev, 0, L7_EVENT_HDR_LEN);
	ev->ts_enter = ev->ts_exit = bpf_ktime_get_ns();
	ev->tgid = id >> 32;
	ev->tid = (__u32)id;
	ev->fd = -1;
	ev->kind = kind;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	return ev;
}

SEC("tracepoint/sched/sched_process_exec")
int proc_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 size = L7_EVENT_HDR_LEN + L7_EXEC_FILENAME;
	__u32 off = ctx->__data_loc_filename & 0xffff;
	struct l7_event *ev;
	long n;

	ev = proc_record(L7_KIND_EXEC, size);
	if (!ev)
		return 0;
	n = bpf_probe_read_kernel_str(ev->data, L7_EXEC_FILENAME, (void *)ctx + off);
	ev->data_len = n > 0 ? n : 0;
	bpf_ringbuf_submit(ev, wake_flags(size));
	count(L7_STAT_EVENTS, 1);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int proc_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct l7_event *ev;

	if ((__u32)id != id >> 32)
		return 0;
	ev = proc_record(L7_KIND_EXIT, L7_EVENT_HDR_LEN);
	if (!ev)
		return 0;
	bpf_ringbuf_submit(ev, wake_flags(L7_EVENT_HDR_LEN));
	count(L7_STAT_EVENTS, 1);
	return 0;
}
