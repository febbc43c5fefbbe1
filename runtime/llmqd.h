/* SPDX-License-Identifier: GPL-2.0 */
/*
 * llmqd's core objects: the daemon, its clients (one per attached ring) and
 * their requests, and the io_uring event tags that tie completions to them.
 */
#ifndef LLMQD_H
#define LLMQD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <liburing.h>
#include <linux/llmq.h>

#include "engine.h"
#include "kv_blocks.h"
#include "list.h"
#include "metrics.h"
#include "ring.h"
#include "scheduler.h"
#include "tokenizer.h"

struct sampler;
struct nl_sock;

/* Where clients come from (--transport). */
enum transport {
	TRANSPORT_AUTO,		/* the kernel's when /dev/llmq exists, else shm */
	TRANSPORT_SHM,		/* the unix socket only */
	TRANSPORT_KERNEL,	/* /dev/llmq, and the socket for admin requests */
};

/**
 * struct llmqd_config - everything the command line sets
 */
struct llmqd_config {
	const char	*socket_path;
	struct engine_config engine;
	struct sched_config sched;
	uint32_t	null_delay_us;
	uint32_t	batch_timeout_ms;
	uint32_t	kv_cache_mb;
	bool		prefix_caching;
	bool		prefix_salt_uid;
	uint32_t	max_client_requests;
	uint32_t	max_cq_overflow;
	uint32_t	max_prompt_bytes;
	uint32_t	max_tokens_limit;
	uint32_t	max_num_batched_tokens_limit;	/* sizes the step */
	uint32_t	shutdown_timeout_ms;
	uint32_t	handshake_timeout_ms;
	uint32_t	socket_mode;
	uint32_t	poll_us;
	bool		foreground;
	enum transport	transport;
};

/* What an io_uring completion is about; embedded in the owning object. */
enum ev_type {
	EV_ACCEPT = 1,
	EV_HELLO,
	EV_SOCK,
	EV_DOORBELL,
	EV_SIGNAL,
	EV_WAKE,
	EV_KEVENTS,
	EV_GENL,
};

struct ev {
	uint8_t type;
};

/*
 * Timers carry no pointer: user_data is TIMER_UD | kind << 48 | seq, and the
 * owner ignores a timer whose seq is no longer current.  User-space pointers
 * never have bit 63 set.
 */
#define TIMER_UD	(1ULL << 63)
#define IGNORE_UD	0ULL

enum timer_kind {
	TIMER_WINDOW = 1,
	TIMER_SHUTDOWN,
	TIMER_ACCEPT,
	TIMER_KINDS
};

/**
 * struct client - one attached ring
 *
 * Fields copied at attach time (sizes, layout) are the runtime's own and
 * never re-read from the shared header.
 */
struct client {
	struct ev		ev_door;
	struct ev		ev_sock;
	struct ev		ev_wake;
	struct list_head	link;		/* llmqd.clients */
	struct list_head	dirty_link;	/* llmqd.dirty, while dirty */
	struct llmqd		*d;
	uint64_t		id;
	uint32_t		kid;		/* /dev/llmq's id; 0 on the socket */
	pid_t			pid;
	uid_t			uid;
	int			sock_fd;
	int			door_fd;
	int			wake_fd;
	void			*map;
	size_t			map_size;
	struct llmq_ring_hdr	*hdr;
	struct llmq_sqe		*sqes;
	struct llmq_cqe		*cqes;
	uint8_t			*arena;
	uint32_t		sq_entries;
	uint32_t		cq_entries;
	uint32_t		arena_size;
	uint32_t		rt_flags;	/* private copy of hdr->rt_flags */
	uint32_t		sq_head;	/* private: SQEs consumed */
	uint32_t		cq_tail;	/* private: CQEs produced */
	struct llmq_cqe		*ovf;		/* CQEs waiting for CQ room */
	uint32_t		ovf_head;
	uint32_t		ovf_tail;
	uint32_t		ovf_size;	/* power of two */
	uint64_t		door_val;
	char			sock_buf[64];
	struct list_head	reqs;
	uint32_t		nr_reqs;
	uint64_t		tokens;		/* output tokens, all requests */
	unsigned int		ops;		/* io_uring ops pointing here */
	bool			dirty;
	bool			need_wake;
	bool			wake_inflight;	/* one wake write at a time */
	bool			closing;
	bool			nobufs;		/* overflow passed the cap */
	bool			stalled;	/* SQ left undrained for now */
};

/**
 * struct request - one GENERATE between its SQE and its final CQE
 */
struct request {
	struct list_head	clink;		/* client.reqs */
	struct client		*c;
	uint64_t		user_data;
	int32_t			priority;
	uint32_t		flags;
	uint32_t		max_tokens;
	uint32_t		generated;	/* tokens output */
	uint32_t		index;		/* CQEs posted so far */
	uint32_t		prompt_tokens;
	char			*prompt;
	uint32_t		prompt_len;
	uint32_t		*stop_ids;
	uint32_t		nr_stop_ids;
	char			*stop;		/* NUL-separated stop strings */
	uint32_t		stop_len;
	char			**stops;	/* pointers into @stop */
	uint32_t		nr_stops;
	char			*text;		/* non-streamed output */
	uint32_t		text_len;
	uint32_t		text_cap;
	struct sched_seq	seq;		/* tokens, blocks, state */
	struct sampler		*smp;
	struct tok_stream	ts;		/* UTF-8 held between tokens */
	uint32_t		flight_idx;	/* its place in the step out, while its
						 * token there is pending */
	uint64_t		t_arrival;
	uint64_t		t_last_token;
};

/**
 * struct serve_step - a step given to the engine, as serve.c keeps it
 * @seqs:	its sequences, NULL where one has ended since
 * @bseqs:	what the backend was given, in the same order
 * @samples:	the draws asked of the backend
 * @n:		how many
 * @out:	submitted and not yet waited for
 */
struct serve_step {
	struct sched_seq	**seqs;
	struct backend_seq	*bseqs;
	struct backend_sample	*samples;
	uint32_t		n;
	bool			out;
};

/**
 * struct llmqd - the daemon
 */
struct llmqd {
	struct llmqd_config	cfg;
	struct io_uring		ring;
	struct engine		engine;
	struct kv_blocks	*kv;
	struct sched		sched;
	float			*logits;	/* max_num_seqs rows */
	/*
	 * Steps in the making and out: two, as a backend that runs ahead
	 * (backend_submit()) takes the next while one runs; @flight is the
	 * one out whose tokens are pending, or NULL.
	 */
	struct serve_step	steps[2];
	struct serve_step	*flight;
	uint64_t		n_steps;
	uint64_t		window_deadline; /* armed TIMER_WINDOW, 0 = none */
	struct serve_metrics	metrics;
	struct llmq_stats	stats;
	struct list_head	clients;
	struct list_head	dirty;
	int			listen_fd;
	int			signal_fd;
	struct ev		ev_accept;
	struct ev		ev_signal;
	struct signalfd_siginfo	sigbuf;
	uint64_t		next_client_id;
	int			dev_fd;		/* /dev/llmq, attached; or -1 */
	struct ev		ev_kevents;
	struct llmq_event	kev[32];
	struct nl_sock		*genl_sk;	/* registered with llmq.ko; or NULL */
	int			genl_family;
	struct ev		ev_genl;
	struct client		**kclients;	/* by kid */
	uint32_t		nr_kclients;
	uint32_t		*kwake;		/* kids to wake this turn */
	uint32_t		nr_kwake;
	uint64_t		shutdown_seq;
	uint64_t		accept_seq;	/* armed TIMER_ACCEPT, 0 = none */
	uint64_t		accept_warned;	/* now_ns() of the last warning */
	uint64_t		accept_failed;	/* failures not warned of since */
	uint64_t		t_start;	/* now_ns() at start */
	uint64_t		tps_sec[8];	/* second of each slot */
	uint64_t		tps_tok[8];	/* tokens output in it */
	bool			draining;	/* admin DRAIN: no new requests */
	bool			stopping;
	bool			accepting;
};

/* loop.c */
uint64_t now_ns(void);
struct io_uring_sqe *loop_sqe(struct llmqd *d);
uint64_t loop_timer_arm(struct llmqd *d, enum timer_kind kind, uint64_t ns);
int loop_run(struct llmqd *d);
void llmqd_stop(struct llmqd *d, bool now);

/* transport_user.c */
int user_listen(struct llmqd *d);
void user_on_accept(struct llmqd *d, int res, bool more);
void user_on_hello(struct llmqd *d, struct ev *ev, int res);
void user_on_accept_timer(struct llmqd *d, uint64_t seq);
void user_close_listener(struct llmqd *d);

/* transport_kernel.c */
int kernel_attach(struct llmqd *d);
void kernel_on_events(struct llmqd *d, int res);
void kernel_wake(struct llmqd *d, struct client *c);
void kernel_wake_flush(struct llmqd *d);

/* admin.c: room for the largest reply (stats: five 2 KiB histograms) */
#define ADMIN_REPLY_MAX	(64 * 1024)
struct nl_msg;
struct nlmsghdr;
int admin_serve(struct llmqd *d, const struct nlmsghdr *req, struct nl_msg *rep,
		bool may_change, const char *who);
void admin_handle(struct llmqd *d, int fd, const void *buf, size_t len, pid_t pid, uid_t uid);
bool admin_is_netlink(const void *buf, size_t len);

/* admin_genl.c */
int admin_genl_open(struct llmqd *d);
void admin_genl_on_poll(struct llmqd *d, int res);
void admin_genl_close(struct llmqd *d);

/* client.c */
struct client *client_new(struct llmqd *d, void *map, const struct llmq_layout *lay,
			  const struct llmq_params *p, pid_t pid, uid_t uid);
int client_attach(struct llmqd *d, int sock_fd, const int fds[3],
		  const struct llmq_params *p, pid_t pid, uid_t uid, struct client **out);
void client_doorbell(struct client *c);
void client_close(struct client *c);
void client_on_doorbell(struct client *c, int res);
void client_on_sock(struct client *c, int res);
void client_on_wake(struct client *c, int res);
void client_post(struct client *c, const struct llmq_cqe *cqe);
void client_flush(struct llmqd *d);
void client_req_done(struct client *c);
void client_kill_all(struct llmqd *d, int err);
bool client_poll_all(struct llmqd *d);
void client_set_need_wakeup(struct llmqd *d, bool on);

/* request.c */
int req_create(struct client *c, const struct llmq_sqe *sqe, struct request **out);
int req_output(struct request *r, bool is_token, uint32_t token, float logprob,
	       const char *text, uint32_t len);
void req_finish(struct request *r, int res, uint8_t finish);
void req_free_silent(struct request *r);

/* serve.c */
int serve_init(struct llmqd *d, char *err, size_t errlen);
void serve_fini(struct llmqd *d);
int serve_submit(struct llmqd *d, struct request *r);
void serve_remove(struct llmqd *d, struct request *r);
bool serve_poll(struct llmqd *d);
void serve_step(struct llmqd *d);
void serve_update_stats(struct llmqd *d);
void serve_dump_metrics(struct llmqd *d, FILE *f);

#endif /* LLMQD_H */
