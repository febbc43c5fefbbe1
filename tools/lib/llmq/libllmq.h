/* SPDX-License-Identifier: MIT */
/*
 * libllmq: the client library of llmq, shaped like liburing.  A process sets
 * up a ring with llmq_queue_init(), fills SQEs with the llmq_prep_*()
 * helpers, publishes them with llmq_submit() and reaps streamed completions
 * with llmq_wait_cqe() / llmq_peek_cqe() and llmq_cqe_seen().
 *
 * Thread safety: a struct llmq_ring belongs to one thread at a time; callers
 * that share one across threads serialise every call on it themselves.
 * Distinct rings are fully independent.  Functions return 0 or a count on
 * success and a negative errno on failure; they never print.
 *
 * Documentation/userspace-api/libllmq.rst documents each call.
 */
#ifndef LIBLLMQ_H
#define LIBLLMQ_H

#include <stddef.h>
#include <stdint.h>
#include <linux/llmq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where the runtime listens when nothing else is said. */
#define LLMQ_DEFAULT_SOCKET	"/run/llmq/llmq.sock"
#define LLMQ_DEVICE		"/dev/llmq"

#define LLMQ_DEFAULT_SQ_ENTRIES	64
#define LLMQ_DEFAULT_CQ_ENTRIES	1024
#define LLMQ_DEFAULT_ARENA	(1U << 20)

struct llmq_arena_slot {
	uint32_t seq;		/* SQ index the allocation belongs to */
	uint64_t end;		/* arena position just past it */
};

/**
 * struct llmq_ring - one client ring; the fields are private
 *
 * Embed it anywhere (stack, heap); only the library touches its fields.
 */
struct llmq_ring {
	struct llmq_ring_hdr	*hdr;
	struct llmq_sqe		*sqes;
	struct llmq_cqe		*cqes;
	uint8_t			*arena;
	void			*map;
	size_t			map_size;
	uint32_t		sq_entries;
	uint32_t		cq_entries;
	uint32_t		arena_size;
	uint32_t		sqe_tail;	/* handed out by llmq_get_sqe() */
	uint32_t		sq_tail;	/* published by llmq_submit() */
	uint32_t		cq_head;
	uint32_t		ovf_bell;	/* cq_head + 1 at the last overflow bell */
	uint32_t		spin_us;	/* busy-wait before sleeping */
	int			event_fd_used;	/* llmq_ring_fd() was called */
	int			sock_fd;
	int			doorbell_fd;
	int			wake_fd;
	uint64_t		client_id;
	uint64_t		arena_head;	/* reclaimed up to here */
	uint64_t		arena_tail;	/* allocated up to here */
	struct llmq_arena_slot	*slots;		/* FIFO, sq_entries long */
	uint32_t		slot_head;
	uint32_t		slot_tail;
};

/**
 * struct llmq_sampling - how one request samples, in natural units
 *
 * llmq_sampling_init() fills the defaults (greedy, 16 tokens, streamed).
 */
struct llmq_sampling {
	float		temperature;		/* 0 = greedy */
	float		top_p;			/* (0, 1] */
	float		min_p;			/* [0, 1] */
	float		repetition_penalty;	/* (0, 10], 1 = off */
	float		presence_penalty;	/* [-2, 2] */
	float		frequency_penalty;	/* [-2, 2] */
	uint32_t	top_k;			/* 0 = off */
	uint32_t	max_tokens;		/* 0 = the runtime's default, 16 */
	uint64_t	seed;
	int32_t		priority;		/* lower runs first */
	uint32_t	flags;			/* LLMQ_SQE_* */
	const char *const *stop;		/* NULL-terminated, or NULL */
	const uint32_t	*stop_ids;
	uint32_t	nr_stop_ids;
};

void llmq_sampling_init(struct llmq_sampling *sp);

const char *llmq_socket_path(const char *path);
int llmq_queue_init(struct llmq_ring *ring, const char *path, const struct llmq_params *p);
void llmq_queue_exit(struct llmq_ring *ring);

struct llmq_sqe *llmq_get_sqe(struct llmq_ring *ring);
void llmq_prep_nop(struct llmq_sqe *sqe, uint64_t user_data);
int llmq_prep_generate(struct llmq_ring *ring, struct llmq_sqe *sqe, const char *prompt,
		       size_t len, const struct llmq_sampling *sp, uint64_t user_data);
void llmq_prep_cancel(struct llmq_sqe *sqe, uint64_t target, uint64_t user_data);
int llmq_submit(struct llmq_ring *ring);

int llmq_peek_cqe(struct llmq_ring *ring, struct llmq_cqe **cqe);
int llmq_wait_cqe(struct llmq_ring *ring, struct llmq_cqe **cqe);
int llmq_wait_cqe_timeout(struct llmq_ring *ring, struct llmq_cqe **cqe, int timeout_ms);
void llmq_cqe_seen(struct llmq_ring *ring, struct llmq_cqe *cqe);
int llmq_cancel(struct llmq_ring *ring, uint64_t target, uint64_t user_data);
int llmq_ring_fd(struct llmq_ring *ring);
void llmq_set_spin(struct llmq_ring *ring, unsigned int usec);

/**
 * typedef llmq_token_cb - called by llmq_generate() for each piece of output
 * @token:	the token id, or UINT32_MAX for a continuation of the last one
 * @text:	its UTF-8 text (not NUL-terminated)
 * @len:	bytes of @text
 * @arg:	the caller's pointer
 *
 * Return: 0 to go on, non-zero to cancel the request.
 */
typedef int (*llmq_token_cb)(uint32_t token, const char *text, size_t len, void *arg);

int llmq_generate(struct llmq_ring *ring, const char *prompt, const struct llmq_sampling *sp,
		  llmq_token_cb cb, void *arg);

int llmq_get_stats(const char *path, struct llmq_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* LIBLLMQ_H */
