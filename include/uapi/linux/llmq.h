/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR MIT */
/*
 * llmq ring ABI: the shared-memory contract between a client (libllmq) and
 * the runtime (llmqd), identical on both transports (/dev/llmq and the
 * userspace unix-socket transport).
 *
 * One shared mapping per client holds, at offsets fixed by llmq_ring_layout
 * rules below: a header page, the submission queue (SQ), the completion
 * queue (CQ) and a data arena for prompts and stop lists.
 *
 * Head and tail indices are free-running __u32 counters masked by
 * entries - 1.  The producer fills an entry, then store-releases the tail;
 * the consumer load-acquires the tail, reads the entry, then store-releases
 * the head.  Clients produce SQEs and consume CQEs; the runtime does the
 * opposite.  Everything the runtime reads from the mapping is treated as
 * hostile.
 *
 * Documentation/userspace-api/llmq.rst describes every field.
 */
#ifndef _UAPI_LINUX_LLMQ_H
#define _UAPI_LINUX_LLMQ_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define LLMQ_MAGIC		0x514d4c4cU	/* "LLMQ" little endian */
#define LLMQ_ABI_VERSION	1

/* Sizes a client may ask for; all entry counts are powers of two. */
#define LLMQ_MIN_ENTRIES	2
#define LLMQ_MAX_SQ_ENTRIES	4096
#define LLMQ_MAX_CQ_ENTRIES	65536
#define LLMQ_MIN_ARENA		4096
#define LLMQ_MAX_ARENA		(256U << 20)

/* The header occupies the first page of the mapping. */
#define LLMQ_HDR_SIZE		4096

/* Most stop token ids one GENERATE may name (stop_ids_count). */
#define LLMQ_MAX_STOP_IDS	1024

/* Fixed-point unit of the sampling parameters: 1.0 == LLMQ_FP_ONE. */
#define LLMQ_FP_ONE		1000000

/* Opcodes (struct llmq_sqe.opcode). */
enum {
	LLMQ_OP_NOP		= 0,	/* completes at once with res 0 */
	LLMQ_OP_GENERATE	= 1,	/* run a prompt, stream the output */
	LLMQ_OP_CANCEL		= 2,	/* cancel requests with user_data == target */
	LLMQ_OP_LAST,
};

/* SQE flags (struct llmq_sqe.flags). */
#define LLMQ_SQE_STREAM		(1U << 0)	/* one CQE per token, as generated */
#define LLMQ_SQE_IGNORE_EOS	(1U << 1)	/* keep going past end-of-sequence */
#define LLMQ_SQE_FLAGS_ALL	(LLMQ_SQE_STREAM | LLMQ_SQE_IGNORE_EOS)

/**
 * struct llmq_sqe - submission queue entry, 128 bytes
 * @opcode:	LLMQ_OP_*
 * @flags:	LLMQ_SQE_*
 * @resv0:	must be zero
 * @priority:	scheduling priority, lower value runs first (vLLM's rule)
 * @user_data:	copied to every CQE of this request
 * @prompt_off:	GENERATE: prompt offset in the arena
 * @prompt_len:	GENERATE: prompt length in bytes, UTF-8, not NUL-terminated
 * @stop_off:	GENERATE: stop strings in the arena, each NUL-terminated
 * @stop_len:	GENERATE: total bytes of the stop list (0 = none)
 * @max_tokens:	GENERATE: tokens to generate at most (0 = 16)
 * @top_k:	GENERATE: keep the k most likely tokens (0 = all)
 * @temperature: GENERATE: fixed point, 0 = greedy
 * @top_p:	GENERATE: fixed point in (0, 1], 0 = 1.0
 * @min_p:	GENERATE: fixed point in [0, 1]
 * @repetition_penalty: GENERATE: fixed point in (0, 10], 0 = 1.0 (off)
 * @presence_penalty: GENERATE: fixed point in [-2, 2]
 * @frequency_penalty: GENERATE: fixed point in [-2, 2]
 * @seed:	GENERATE: sampler seed (same seed, same output)
 * @target:	CANCEL: the user_data of the request(s) to cancel
 * @stop_ids_off: GENERATE: __u32 stop token ids in the arena, 4-aligned
 * @stop_ids_count: GENERATE: how many stop token ids (0 = none), at most
 *		LLMQ_MAX_STOP_IDS
 * @resv:	must be zero
 *
 * Sampling fields are fixed point so that the kernel never touches floating
 * point; LLMQ_FP_ONE is 1.0.  Every field not used by an opcode must be zero.
 */
struct llmq_sqe {
	__u8	opcode;
	__u8	flags;
	__u16	resv0;
	__s32	priority;
	__u64	user_data;
	__u32	prompt_off;
	__u32	prompt_len;
	__u32	stop_off;
	__u32	stop_len;
	__u32	max_tokens;
	__u32	top_k;
	__u32	temperature;
	__u32	top_p;
	__u32	min_p;
	__u32	repetition_penalty;
	__s32	presence_penalty;
	__s32	frequency_penalty;
	__u64	seed;
	__u64	target;
	__u32	stop_ids_off;
	__u32	stop_ids_count;
	__u32	resv[10];
};

/* CQE flags (struct llmq_cqe.flags). */
#define LLMQ_CQE_F_MORE		(1U << 0)	/* further CQEs follow */
#define LLMQ_CQE_F_TOKEN	(1U << 1)	/* @token is a new token id */

/* Why a request ended (struct llmq_cqe.finish, final CQE only). */
enum {
	LLMQ_FINISH_NONE	= 0,	/* not final; or NOP / CANCEL done */
	LLMQ_FINISH_LENGTH	= 1,	/* max_tokens reached */
	LLMQ_FINISH_STOP	= 2,	/* stop string, stop id or end of sequence */
	LLMQ_FINISH_CANCELLED	= 3,	/* LLMQ_OP_CANCEL or client gone */
	LLMQ_FINISH_ERROR	= 4,	/* res holds -errno */
};

#define LLMQ_CQE_TEXT_MAX	32

/**
 * struct llmq_cqe - completion queue entry, 64 bytes
 * @user_data:	from the SQE
 * @res:	final CQE: tokens generated (>= 0) or -errno; others: 0
 * @flags:	LLMQ_CQE_F_*
 * @token:	token id when LLMQ_CQE_F_TOKEN; final CQE: prompt tokens
 * @index:	position of this output among the request's outputs, from 0;
 *		final CQE: number of non-final CQEs that preceded it
 * @text_len:	valid bytes in @text
 * @finish:	LLMQ_FINISH_* on the final CQE
 * @resv0:	zero
 * @logprob:	log-probability of @token, fixed point (LLMQ_FP_ONE)
 * @text:	UTF-8 text, never split inside a character across CQEs
 *
 * A streamed token whose text is longer than LLMQ_CQE_TEXT_MAX continues in
 * further CQEs without LLMQ_CQE_F_TOKEN.  Without LLMQ_SQE_STREAM, the text
 * arrives packed into as few CQEs as possible when the request finishes.
 * Every request ends with exactly one CQE without LLMQ_CQE_F_MORE.
 */
struct llmq_cqe {
	__u64	user_data;
	__s32	res;
	__u32	flags;
	__u32	token;
	__u32	index;
	__u8	text_len;
	__u8	finish;
	__u16	resv0;
	__s32	logprob;
	__u8	text[LLMQ_CQE_TEXT_MAX];
};

/* Runtime-written ring flags (struct llmq_ring_hdr.rt_flags). */
#define LLMQ_RING_CQ_OVERFLOW	(1U << 0)	/* CQEs wait in the runtime */
#define LLMQ_RING_DEAD		(1U << 1)	/* runtime gone; see rt_errno */
#define LLMQ_RING_BROKEN	(1U << 2)	/* the runtime dropped this ring */
#define LLMQ_RING_NEED_WAKEUP	(1U << 3)	/* runtime asleep: ring the doorbell */

/* Client-written flags (struct llmq_ring_hdr.cl_flags). */
#define LLMQ_CL_WAITING		(1U << 0)	/* asleep on the wake eventfd */

/**
 * struct llmq_ring_hdr - first page of the shared mapping
 * @magic:	LLMQ_MAGIC, written by whoever lays the ring out
 * @version:	LLMQ_ABI_VERSION
 * @sq_entries:	SQ size, a power of two
 * @cq_entries:	CQ size, a power of two
 * @arena_size:	arena bytes
 * @sq_off:	SQ array offset from the start of the mapping
 * @cq_off:	CQ array offset
 * @arena_off:	arena offset
 * @map_size:	total mapping size
 * @resv:	zero
 * @sq_head:	runtime: SQEs consumed (free running)
 * @sq_tail:	client: SQEs published
 * @cl_flags:	client: LLMQ_CL_*
 * @cq_head:	client: CQEs consumed
 * @cq_tail:	runtime: CQEs published
 * @rt_flags:	runtime: LLMQ_RING_*
 * @rt_errno:	runtime: positive errno explaining LLMQ_RING_DEAD / _BROKEN
 * @cq_overflow: runtime: CQEs currently held back for lack of CQ space
 *
 * Each index sits on its own cache line so the two sides do not false-share.
 * The runtime keeps private copies of everything it needs and only ever
 * writes sq_head, cq_tail, cq_overflow and the rt_ fields.
 *
 * Wake-ups are skipped when the other side is awake, with the io_uring
 * SQPOLL rule on both sides: a sleeper sets its flag, issues a full memory
 * barrier, then looks at the ring once more before sleeping; a producer
 * publishes its tail, issues a full memory barrier, then reads the flag.
 * The client rings the doorbell only while LLMQ_RING_NEED_WAKEUP is set;
 * the runtime writes the wake eventfd only while LLMQ_CL_WAITING is set.
 */
struct llmq_ring_hdr {
	__u32	magic;
	__u32	version;
	__u32	sq_entries;
	__u32	cq_entries;
	__u32	arena_size;
	__u32	sq_off;
	__u32	cq_off;
	__u32	arena_off;
	__u32	map_size;
	__u32	resv[7];
	__u8	pad0[64];
	__u32	sq_head;
	__u8	pad1[60];
	__u32	sq_tail;
	__u32	cl_flags;
	__u8	pad2[56];
	__u32	cq_head;
	__u8	pad3[60];
	__u32	cq_tail;
	__u32	rt_flags;
	__u32	rt_errno;
	__u32	cq_overflow;
	__u8	pad4[48];
};

/* Offsets of the indices, for the ring layout documentation and tests. */
#define LLMQ_HDR_SQ_HEAD	128
#define LLMQ_HDR_SQ_TAIL	192
#define LLMQ_HDR_CQ_HEAD	256
#define LLMQ_HDR_CQ_TAIL	320

/**
 * struct llmq_params - ring geometry a client asks for
 * @sq_entries:	power of two in [LLMQ_MIN_ENTRIES, LLMQ_MAX_SQ_ENTRIES]
 * @cq_entries:	power of two, >= sq_entries, <= LLMQ_MAX_CQ_ENTRIES
 * @arena_size:	multiple of 4096 in [LLMQ_MIN_ARENA, LLMQ_MAX_ARENA]
 * @flags:	zero
 * @resv:	zero
 *
 * The layout follows from the sizes alone: header at 0, SQ at
 * LLMQ_HDR_SIZE, CQ after the SQ rounded up to 4096, arena after the CQ
 * rounded up to 4096.  Both sides compute it; neither trusts the other's.
 */
struct llmq_params {
	__u32	sq_entries;
	__u32	cq_entries;
	__u32	arena_size;
	__u32	flags;
	__u32	resv[4];
};

/*
 * Userspace transport: messages on the SOCK_SEQPACKET unix socket.  The
 * socket carries only the handshake and admin messages, never prompts or
 * tokens.  A client sends LLMQ_MSG_HELLO with SCM_RIGHTS carrying, in this
 * order, the ring memfd (sealed against shrinking and growing), the doorbell
 * eventfd (client writes, runtime reads) and the wake eventfd (runtime
 * writes, client reads).  The runtime answers with struct llmq_msg_reply.
 */
enum {
	LLMQ_MSG_HELLO		= 1,	/* attach a ring */
	LLMQ_MSG_STATS		= 2,	/* ask for struct llmq_stats */
};

/**
 * struct llmq_msg_hello - first message of a connection
 * @magic:	LLMQ_MAGIC
 * @version:	LLMQ_ABI_VERSION
 * @type:	LLMQ_MSG_*
 * @flags:	zero
 * @params:	ring geometry (LLMQ_MSG_HELLO)
 */
struct llmq_msg_hello {
	__u32	magic;
	__u32	version;
	__u32	type;
	__u32	flags;
	struct llmq_params params;
};

/**
 * struct llmq_msg_reply - the runtime's answer
 * @magic:	LLMQ_MAGIC
 * @version:	LLMQ_ABI_VERSION the runtime speaks
 * @type:	echo of the request type
 * @error:	0 or a positive errno saying why the request was refused
 * @client_id:	runtime-assigned id of the attached ring
 * @resv:	zero
 */
struct llmq_msg_reply {
	__u32	magic;
	__u32	version;
	__u32	type;
	__u32	error;
	__u64	client_id;
	__u64	resv;
};

/**
 * struct llmq_stats - runtime counters (LLMQ_MSG_STATS reply payload)
 * @clients_active:	rings attached now
 * @clients_total:	rings attached since start
 * @clients_broken:	rings dropped for corrupting their indices
 * @requests_active:	requests admitted and not finished
 * @requests_waiting:	of those, not yet scheduled
 * @requests_total:	SQEs consumed since start
 * @requests_failed:	final CQEs with res < 0 (cancellations excluded)
 * @requests_cancelled:	final CQEs with LLMQ_FINISH_CANCELLED, plus requests
 *			dropped without a CQE because their client left
 * @steps:		engine steps run
 * @tokens_generated:	tokens produced by the engine
 * @cqes_posted:	CQEs written to client CQs
 * @cqes_overflowed:	CQEs that had to wait for CQ space
 * @overflow_now:	CQEs waiting for CQ space now, all clients
 * @wakeups:		client wake-ups sent
 * @doorbells:		doorbell events read
 * @requests_running:	requests in the running batch
 * @kv_blocks_used:	KV cache blocks holding a running sequence's tokens
 * @kv_blocks_total:	KV cache blocks
 * @preemptions:	sequences preempted (blocks freed, recomputed later)
 * @prefix_cache_queries: prompt tokens looked up in the prefix cache
 * @prefix_cache_hits:	of those, tokens found (not computed again)
 * @prompt_tokens:	prompt tokens computed (recomputation included)
 * @ttft_p50_us:	time to first token, median, microseconds
 * @ttft_p99_us:	time to first token, 99th percentile
 * @itl_p50_us:		time between tokens of a request, median
 * @itl_p99_us:		time between tokens, 99th percentile
 * @e2e_p50_us:		arrival to final CQE, median
 * @e2e_p99_us:		arrival to final CQE, 99th percentile
 * @queue_p50_us:	arrival to first scheduled, median
 * @queue_p99_us:	arrival to first scheduled, 99th percentile
 * @graph_steps:	engine steps replayed from a captured graph (CUDA graphs)
 * @device_sampled_tokens: of @tokens_generated, those the engine drew itself
 *			(on the GPU) rather than llmqd's sampler
 * @steps_ahead:	steps planned and queued while the one before still ran
 * @resv:		zero
 *
 * Percentiles are upper bounds within 9% of the true value (log buckets).
 */
struct llmq_stats {
	__u64	clients_active;
	__u64	clients_total;
	__u64	clients_broken;
	__u64	requests_active;
	__u64	requests_waiting;
	__u64	requests_total;
	__u64	requests_failed;
	__u64	requests_cancelled;
	__u64	steps;
	__u64	tokens_generated;
	__u64	cqes_posted;
	__u64	cqes_overflowed;
	__u64	overflow_now;
	__u64	wakeups;
	__u64	doorbells;
	__u64	requests_running;
	__u64	kv_blocks_used;
	__u64	kv_blocks_total;
	__u64	preemptions;
	__u64	prefix_cache_queries;
	__u64	prefix_cache_hits;
	__u64	prompt_tokens;
	__u32	ttft_p50_us;
	__u32	ttft_p99_us;
	__u32	itl_p50_us;
	__u32	itl_p99_us;
	__u32	e2e_p50_us;
	__u32	e2e_p99_us;
	__u32	queue_p50_us;
	__u32	queue_p99_us;
	__u64	graph_steps;
	__u64	device_sampled_tokens;
	__u64	steps_ahead;
	__u64	resv[3];
};

/*
 * Kernel transport (/dev/llmq).  A client opens the device, lays its ring
 * out with LLMQ_IOC_SETUP, mmap()s exactly llmq_setup.map_size bytes at
 * offset 0, rings the doorbell with LLMQ_IOC_DOORBELL or an 8-byte write(),
 * and sleeps in poll() or an 8-byte read() for wake-ups.  The runtime opens
 * the device, attaches with LLMQ_IOC_ATTACH, read()s struct llmq_event
 * records, maps client rings at LLMQ_RT_MAP_OFF(client_id) and wakes clients
 * with LLMQ_IOC_WAKE or a write() of __u32 client ids.
 */
#define LLMQ_IOC_MAGIC		0xB8

/**
 * struct llmq_setup - LLMQ_IOC_SETUP argument
 * @magic:	LLMQ_MAGIC
 * @version:	LLMQ_ABI_VERSION
 * @params:	ring geometry, checked as for the userspace transport
 * @client_id:	out: this client's id, as the runtime's events name it
 * @map_size:	out: bytes to mmap() at offset 0
 * @flags:	zero
 * @resv:	zero
 */
struct llmq_setup {
	__u32	magic;
	__u32	version;
	struct llmq_params params;
	__u32	client_id;
	__u32	map_size;
	__u32	flags;
	__u32	resv[3];
};

/**
 * struct llmq_attach - LLMQ_IOC_ATTACH argument
 * @magic:	LLMQ_MAGIC
 * @version:	LLMQ_ABI_VERSION
 * @flags:	zero
 * @resv:	zero
 */
struct llmq_attach {
	__u32	magic;
	__u32	version;
	__u32	flags;
	__u32	resv[5];
};

/* At most this many client ids per LLMQ_IOC_WAKE. */
#define LLMQ_WAKE_MAX		4096

/**
 * struct llmq_wake - LLMQ_IOC_WAKE argument
 * @ids:	user pointer to @count __u32 client ids
 * @count:	ids in the array, at most LLMQ_WAKE_MAX
 * @flags:	zero
 */
struct llmq_wake {
	__u64	ids;
	__u32	count;
	__u32	flags;
};

/* Event types (struct llmq_event.type). */
enum {
	LLMQ_EV_OPEN		= 1,	/* a client set its ring up */
	LLMQ_EV_DOORBELL	= 2,	/* a client rang its doorbell */
	LLMQ_EV_CLOSE		= 3,	/* a client is gone */
};

/**
 * struct llmq_event - one record of the runtime's event stream
 * @type:	LLMQ_EV_*
 * @flags:	zero
 * @client_id:	the client
 * @pid:	OPEN: the client's process id in the reader's pid namespace
 * @uid:	OPEN: the client's effective uid in the reader's user namespace
 * @sq_entries:	OPEN: SQ entries
 * @cq_entries:	OPEN: CQ entries
 * @arena_size:	OPEN: arena bytes
 * @map_size:	OPEN: bytes to mmap() at LLMQ_RT_MAP_OFF(@client_id)
 * @resv:	zero
 *
 * Fields an event type does not use are zero.  Events of one client come in
 * the order OPEN, DOORBELL..., CLOSE; doorbells not yet read coalesce.
 */
struct llmq_event {
	__u32	type;
	__u32	flags;
	__u32	client_id;
	__u32	pid;
	__u32	uid;
	__u32	sq_entries;
	__u32	cq_entries;
	__u32	arena_size;
	__u32	map_size;
	__u32	resv[3];
};

/* The runtime maps client @id's ring at this mmap() offset. */
#define LLMQ_RT_MAP_SHIFT	32
#define LLMQ_RT_MAP_OFF(id)	((__u64)(id) << LLMQ_RT_MAP_SHIFT)

#define LLMQ_IOC_SETUP		_IOWR(LLMQ_IOC_MAGIC, 0x01, struct llmq_setup)
#define LLMQ_IOC_DOORBELL	_IO(LLMQ_IOC_MAGIC, 0x02)
#define LLMQ_IOC_ATTACH		_IOW(LLMQ_IOC_MAGIC, 0x10, struct llmq_attach)
#define LLMQ_IOC_WAKE		_IOW(LLMQ_IOC_MAGIC, 0x11, struct llmq_wake)

/*
 * The control plane: the generic netlink family "llmq".  In userspace mode
 * the same messages travel over llmqd's admin socket: the client connects,
 * sends one netlink message (struct nlmsghdr, struct genlmsghdr, attributes)
 * as one SOCK_SEQPACKET message with nlmsg_type LLMQ_GENL_SOCK_TYPE, and
 * gets one reply message of the same shape and command back; then the
 * connection is closed.  Every reply carries LLMQ_ATTR_ERRNO (0 or a
 * positive errno) and, on failure, may carry LLMQ_ATTR_ERRMSG.
 *
 * Reading (GET_*) is open to whoever can reach the socket; the others need
 * uid 0, CAP_NET_ADMIN or CAP_SYS_ADMIN in the peer, else EPERM.
 *
 * Over generic netlink (family LLMQ_GENL_NAME, llmq.ko loaded) the module
 * relays: the runtime attached to /dev/llmq sends LLMQ_CMD_REGISTER from
 * its netlink socket; a request (LLMQ_CMD_GET_STATUS .. LLMQ_CMD_SHUTDOWN)
 * is checked by the module (changes need CAP_NET_ADMIN or CAP_SYS_ADMIN)
 * and forwarded to that socket with the same command, its attributes and
 * LLMQ_ATTR_COOKIE; the runtime answers with LLMQ_CMD_REPLY carrying the
 * cookie and the reply's attributes, which the module returns to the
 * caller as the reply to its request.  With no runtime registered the
 * reply's LLMQ_ATTR_ERRNO is ENOTCONN.  The multicast group
 * LLMQ_GENL_MCGRP_EVENTS carries LLMQ_CMD_EVENT: the runtime registered
 * or went away.
 */
#define LLMQ_GENL_NAME		"llmq"
#define LLMQ_GENL_VERSION	1
#define LLMQ_GENL_SOCK_TYPE	0x4c51	/* nlmsg_type on the admin socket */
#define LLMQ_GENL_MCGRP_EVENTS	"events"

enum llmq_cmd {
	LLMQ_CMD_UNSPEC,
	LLMQ_CMD_GET_STATUS,	/* transport, model, engine, uptime, load */
	LLMQ_CMD_GET_STATS,	/* struct llmq_stats and the histograms */
	LLMQ_CMD_GET_CLIENTS,	/* one LLMQ_ATTR_CLIENT nest per client */
	LLMQ_CMD_GET_CONFIG,	/* LLMQ_ATTR_CONFIG */
	LLMQ_CMD_SET_CONFIG,	/* LLMQ_ATTR_CONFIG with the keys to change */
	LLMQ_CMD_CANCEL_CLIENT,	/* LLMQ_ATTR_CLIENT_PID; reply: LLMQ_ATTR_CANCELLED */
	LLMQ_CMD_DRAIN,		/* stop taking requests, finish the running */
	LLMQ_CMD_SHUTDOWN,	/* as SIGTERM */
	LLMQ_CMD_REGISTER,	/* genl: the runtime serves relayed requests */
	LLMQ_CMD_REPLY,		/* genl: LLMQ_ATTR_COOKIE and a relayed reply */
	LLMQ_CMD_EVENT,		/* genl multicast: LLMQ_ATTR_EVENT, RUNTIME_PID */
	__LLMQ_CMD_MAX,
};

#define LLMQ_CMD_MAX (__LLMQ_CMD_MAX - 1)

/*
 * A reply is at most 64 KiB.  GET_CLIENTS lists the clients in id order
 * from LLMQ_ATTR_CLIENTS_START (0 if absent) and stops before the reply
 * is full: LLMQ_ATTR_CLIENTS_NEXT then says where the next request starts.
 * Without it the list is complete.
 */
enum llmq_attr {
	LLMQ_ATTR_UNSPEC,
	LLMQ_ATTR_ERRNO,		/* u32: 0 or a positive errno */
	LLMQ_ATTR_ERRMSG,		/* string: what was wrong */
	LLMQ_ATTR_TRANSPORT,		/* string: "shm" or "kernel" */
	LLMQ_ATTR_ENGINE,		/* string: the backend's name */
	LLMQ_ATTR_MODEL,		/* string: the engine's description */
	LLMQ_ATTR_UPTIME_MS,		/* u64 */
	LLMQ_ATTR_REQUESTS_RUNNING,	/* u64 */
	LLMQ_ATTR_REQUESTS_WAITING,	/* u64 */
	LLMQ_ATTR_KV_BLOCKS_USED,	/* u64 */
	LLMQ_ATTR_KV_BLOCKS_TOTAL,	/* u64 */
	LLMQ_ATTR_TOKENS_PER_SEC_MILLI,	/* u64: tokens/s x 1000, last 5 s */
	LLMQ_ATTR_DRAINING,		/* u8: 1 after LLMQ_CMD_DRAIN */
	LLMQ_ATTR_STATS,		/* binary: struct llmq_stats */
	LLMQ_ATTR_HIST_TTFT,		/* binary: struct llmq_hist */
	LLMQ_ATTR_HIST_ITL,		/* binary: struct llmq_hist */
	LLMQ_ATTR_HIST_E2E,		/* binary: struct llmq_hist */
	LLMQ_ATTR_HIST_QUEUE,		/* binary: struct llmq_hist */
	LLMQ_ATTR_HIST_PREFILL,		/* binary: struct llmq_hist */
	LLMQ_ATTR_CLIENT,		/* nest: LLMQ_ATTR_CLIENT_* */
	LLMQ_ATTR_CLIENT_PID,		/* u32 */
	LLMQ_ATTR_CLIENT_UID,		/* u32 */
	LLMQ_ATTR_CLIENT_REQUESTS,	/* u32: requests in flight */
	LLMQ_ATTR_CLIENT_TOKENS,	/* u64: tokens served */
	LLMQ_ATTR_CLIENT_ID,		/* u64: the runtime's client id */
	LLMQ_ATTR_CONFIG,		/* nest: LLMQ_CFG_* */
	LLMQ_ATTR_CANCELLED,		/* u32: requests cancelled */
	LLMQ_ATTR_COOKIE,		/* u64: pairs a relayed request and reply */
	LLMQ_ATTR_PAD,			/* alignment of 64-bit attributes */
	LLMQ_ATTR_EVENT,		/* u32: LLMQ_EVENT_* */
	LLMQ_ATTR_RUNTIME_PID,		/* u32: the runtime's pid */
	LLMQ_ATTR_CLIENTS_START,	/* u64: GET_CLIENTS: list ids >= this */
	LLMQ_ATTR_CLIENTS_NEXT,		/* u64: the list was cut: ask again from this id */
	__LLMQ_ATTR_MAX,
};

#define LLMQ_ATTR_MAX (__LLMQ_ATTR_MAX - 1)

/* LLMQ_ATTR_EVENT of an LLMQ_CMD_EVENT. */
enum llmq_event_type {
	LLMQ_EVENT_RUNTIME_UP = 1,	/* a runtime registered */
	LLMQ_EVENT_RUNTIME_DOWN,	/* it detached or its socket closed */
};

/* Live settings, inside LLMQ_ATTR_CONFIG; each an s64 (8 bytes). */
enum llmq_cfg {
	LLMQ_CFG_UNSPEC,
	LLMQ_CFG_BATCH_TIMEOUT_MS,
	LLMQ_CFG_MAX_BATCH_SIZE,
	LLMQ_CFG_MAX_NUM_SEQS,
	LLMQ_CFG_MAX_NUM_BATCHED_TOKENS,
	LLMQ_CFG_MAX_QUEUED_REQUESTS,
	__LLMQ_CFG_MAX,
};

#define LLMQ_CFG_MAX (__LLMQ_CFG_MAX - 1)

#define LLMQ_HIST_BUCKETS	256

/**
 * struct llmq_hist - a latency histogram (LLMQ_ATTR_HIST_*)
 * @count:	samples
 * @sum_ns:	their sum in nanoseconds
 * @buckets:	samples per bucket; bucket i holds values up to
 *		1 us * 2^((i + 1) / 8)
 */
struct llmq_hist {
	__u64	count;
	__u64	sum_ns;
	__u64	buckets[LLMQ_HIST_BUCKETS];
};

#ifndef __KERNEL__
#define __LLMQ_ASSERT(c, m) _Static_assert(c, m)
#else
#define __LLMQ_ASSERT(c, m) static_assert(c, m)
#endif
__LLMQ_ASSERT(sizeof(struct llmq_sqe) == 128, "llmq_sqe must be 128 bytes");
__LLMQ_ASSERT(sizeof(struct llmq_cqe) == 64, "llmq_cqe must be 64 bytes");
__LLMQ_ASSERT(sizeof(struct llmq_ring_hdr) == 384, "llmq_ring_hdr layout");
__LLMQ_ASSERT(sizeof(struct llmq_params) == 32, "llmq_params layout");
__LLMQ_ASSERT(sizeof(struct llmq_msg_hello) == 48, "llmq_msg_hello layout");
__LLMQ_ASSERT(sizeof(struct llmq_msg_reply) == 32, "llmq_msg_reply layout");
__LLMQ_ASSERT(sizeof(struct llmq_stats) == 256, "llmq_stats layout");
__LLMQ_ASSERT(sizeof(struct llmq_setup) == 64, "llmq_setup layout");
__LLMQ_ASSERT(sizeof(struct llmq_attach) == 32, "llmq_attach layout");
__LLMQ_ASSERT(sizeof(struct llmq_wake) == 16, "llmq_wake layout");
__LLMQ_ASSERT(sizeof(struct llmq_event) == 48, "llmq_event layout");
__LLMQ_ASSERT(sizeof(struct llmq_hist) == 2064, "llmq_hist layout");
#undef __LLMQ_ASSERT

#endif /* _UAPI_LINUX_LLMQ_H */
