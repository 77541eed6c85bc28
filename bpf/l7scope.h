/* l7scope: the one wire format shared by the kernel programs and user space.
 *
 * Every ring-buffer record is a struct l7_event header followed by data_len payload bytes.
 * User space (l7scope/capture/wire.py) mirrors this layout with struct.unpack; keep them equal.
 */
#ifndef L7SCOPE_H
#define L7SCOPE_H

#define L7_CHUNK 4096          /* payload bytes in one record (power of two) */
#define L7_MAX_STEPS 32        /* records one syscall may emit (iovec steps included) */
#define L7_COMM_LEN 16

enum l7_kind {
	L7_KIND_DATA = 1,   /* bytes moved by a syscall (or a chunk of them) */
	L7_KIND_OPEN = 2,   /* connect() / accept() completed on a TCP socket */
	L7_KIND_CLOSE = 3,  /* the socket reached TCP_CLOSE */
	L7_KIND_EOF = 4,    /* a read returned 0: the peer closed its side */
	L7_KIND_TCP = 5,    /* a TCP socket's health at its close: struct l7_tcp_stats in data */
	L7_KIND_EXEC = 6,   /* a process ran a new program: tgid, comm; data: the file (NUL-ended) */
	L7_KIND_EXIT = 7,   /* a process (its thread-group leader) exited: tgid, comm */
};

enum l7_direction {
	L7_DIR_EGRESS = 1,  /* written by the local process */
	L7_DIR_INGRESS = 2, /* read by the local process */
};

enum l7_role {
	L7_ROLE_UNKNOWN = 0,
	L7_ROLE_CLIENT = 1,
	L7_ROLE_SERVER = 2,
};

enum l7_syscall {
	L7_SYS_READ = 1, L7_SYS_WRITE, L7_SYS_READV, L7_SYS_WRITEV, L7_SYS_RECVFROM, L7_SYS_SENDTO,
	L7_SYS_RECVMSG, L7_SYS_SENDMSG, L7_SYS_RECVMMSG, L7_SYS_SENDMMSG, L7_SYS_SENDFILE,
	L7_SYS_CONNECT, L7_SYS_ACCEPT, L7_SYS_ACCEPT4, L7_SYS_CLOSE, L7_SYS_STATE,
	L7_SYS_SSL_READ, L7_SYS_SSL_WRITE,
};

/* flags */
#define L7_FLAG_PAYLOAD_SUPPRESSED 0x01 /* connection not (yet) recognised as HTTP: bytes only */
#define L7_FLAG_TRUNCATED 0x02          /* part of the syscall's bytes were not captured */
#define L7_FLAG_TLS 0x04                /* TLS plaintext from library hooks: seq not meaningful */

/* connection classes kept per socket in the kernel */
enum l7_class {
	L7_CLASS_UNKNOWN = 0,
	L7_CLASS_HTTP = 1,
	L7_CLASS_OTHER = 2,
};

/* per-CPU counters (index into the stats map) */
enum l7_stat {
	L7_STAT_EVENTS = 0,          /* records written to the ring buffer */
	L7_STAT_RINGBUF_FULL,        /* records lost: ring buffer had no room */
	L7_STAT_ACTIVE_FULL,         /* syscalls lost: the thread's storage could not be made */
	L7_STAT_BYTES_NOT_CAPTURED,  /* payload bytes beyond the capture limit */
	L7_STAT_BYTES_SUPPRESSED,    /* payload bytes of non-HTTP connections (counted only) */
	L7_STAT_CONNS_CREATED,       /* sockets entered in the connection table */
	L7_STAT_READ_FAULTS,         /* user memory that could not be read */
	L7_STAT_TLS_UNMAPPED,        /* TLS calls whose socket was not known yet */
	L7_STAT_TCP_SYNACK_RETRANS,  /* SYN-ACKs retransmitted (a request, not yet a socket) */
	L7_STAT_TCP_SYNACK_ATTRIBUTED, /* of those, added to the socket their handshake made */
	L7_STAT_MAX,
};

struct l7_config {
	__u32 self_tgid;        /* the agent itself: never traced */
	__u32 max_payload;      /* payload bytes captured per syscall */
	__u8 pad[2];            /* (who is traced is no knob: the live filter_state below) */
	__u8 capture_all;       /* skip in-kernel protocol inference: payload of every connection */
	__u8 max_checks;        /* unrecognised messages before a connection is classed OTHER */
	__u32 wakeup_bytes;     /* wake the reader when this much is pending; 0: on every record */
};

/* ---- who is traced, changed live ----
 * The one entry of the filter_state array. User space fills pid_filter and comm_filter first,
 * then writes this with generation + 1; a --comm verdict cached under an older generation is
 * decided again. Both off: every process (but the agent) is traced. */
#define L7_PID_FILTER_MAX 1024  /* tgids pid_filter holds */
#define L7_COMM_FILTER_MAX 256  /* process names comm_filter holds */

struct l7_filter_state {
	__u32 generation; /* bumped by every change */
	__u8 pids;        /* on: tgids in pid_filter are traced */
	__u8 comms;       /* on: processes whose name (the leader's comm) is in comm_filter are */
	__u8 pad[2];
};

struct l7_event {
	__u64 ts_enter;   /* CLOCK_MONOTONIC ns at syscall entry */
	__u64 ts_exit;    /* ... at syscall exit */
	__u64 conn_id;    /* stable per socket, survives fd reuse */
	__u32 tgid;
	__u32 tid;
	__s32 fd;
	__u32 seq;        /* TCP stream position of this record's first byte */
	__u32 total_len;  /* bytes moved by the whole syscall */
	__u32 chunk_off;  /* offset of this record within them */
	__u32 chunk_len;  /* stream bytes this record covers (>= data_len) */
	__u16 data_len;   /* payload bytes that follow */
	__u8 kind;        /* enum l7_kind */
	__u8 direction;   /* enum l7_direction */
	__u8 syscall;     /* enum l7_syscall */
	__u8 role;        /* enum l7_role */
	__u8 family;      /* AF_INET or AF_INET6 */
	__u8 flags;
	__u16 lport;      /* host order */
	__u16 rport;      /* host order */
	__u8 laddr[16];   /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	char comm[L7_COMM_LEN];
	__u8 data[L7_CHUNK];
};

#define L7_EVENT_HDR_LEN 112

/* ---- TCP health (record kind L7_KIND_TCP) ----
 * One record per TCP socket when it is destroyed (after TCP_CLOSE): the l7_event header (tgid and comm of
 * the connecting process for a client, 0 and empty for an accepted socket; role; endpoints;
 * ts_enter = when the socket was first seen, ts_exit = its close) and this struct as payload.
 */
#define L7_EXEC_FILENAME 256 /* bytes of the executed file's path kept (NUL included) */
#define L7_TCP_DROP_SLOTS 4 /* distinct drop reasons kept per socket; more: drops_other */

enum l7_tcp_outcome {
	L7_TCP_ESTABLISHED = 0, /* the connection was established (then closed) */
	L7_TCP_REFUSED = 1,     /* SYN_SENT -> CLOSE with ECONNREFUSED (a reset answered the SYN) */
	L7_TCP_TIMED_OUT = 2,   /* SYN_SENT -> CLOSE with ETIMEDOUT (SYN retries exhausted) */
	L7_TCP_ABORTED = 3,     /* SYN_SENT -> CLOSE otherwise (closed by its owner, other error) */
};

/* The TCP health programs' own counters (per-CPU array tcp_health_counts, summed by user space).
 * A raw tracepoint's program that interrupts itself on a CPU (a softirq on top of its run in
 * process context) is skipped by the kernel; a second program on the same tracepoint runs
 * exactly those events (bpf/l7scope.bpf.c, "runs the kernel skips"). */
enum l7_tcp_count {
	L7_TCP_COUNT_NESTED = 0,   /* events whose run the kernel skipped, run by the second program */
	L7_TCP_COUNT_NO_ENTRY = 1, /* sockets whose tcp_health entry could not be made (no record) */
	L7_TCP_COUNT_MAX = 2,
};

/* The layout of the kernel's per-socket struct conn_info (bpf/l7scope.bpf.c checks it), which
 * follows struct l7_tcp_stats in a tcp_health map entry: user space reads the open sockets'
 * entries each metrics interval. */
struct l7_conn_ends {
	__u64 conn_id;
	__u8 role;              /* enum l7_role */
	__u8 klass;
	__u8 checks;
	__u8 family;            /* AF_INET, AF_INET6 */
	__u16 lport;            /* host order; 0 until the port is bound */
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
};

struct l7_tcp_stats {
	__u64 connect_ns;       /* SYN_SENT -> ESTABLISHED; 0 when not seen */
	__u32 srtt_us;          /* tcp_sock.srtt_us >> 3 at close */
	__u32 rttvar_us;        /* tcp_sock.mdev_us >> 2 at close */
	__u32 retransmits;      /* segments retransmitted (tcp:tcp_retransmit_skb, gso segments) */
	__u32 resets_sent;      /* tcp:tcp_send_reset */
	__u32 resets_received;  /* tcp:tcp_receive_reset */
	__u32 drops_other;      /* drops whose reason found no free slot */
	__u32 drop_count0;      /* skb:kfree_skb of this socket's skbs, by reason */
	__u32 drop_count1;
	__u32 drop_count2;
	__u32 drop_count3;
	__u16 drop_reason0;     /* enum skb_drop_reason of the slot (0: slot unused) */
	__u16 drop_reason1;
	__u16 drop_reason2;
	__u16 drop_reason3;
	__u16 sk_err;           /* sk_err at close */
	__u8 outcome;           /* enum l7_tcp_outcome */
	__u8 pad;
};

#endif /* L7SCOPE_H */
