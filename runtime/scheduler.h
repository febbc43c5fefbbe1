/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The scheduler: the batch window and continuous batching over the engine.
 * It knows requests and the engine interface, nothing of rings or CUDA.
 */
#ifndef LLMQD_SCHED_H
#define LLMQD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "list.h"

struct llmqd;
struct request;

enum sched_state {
	SCHED_S_IDLE,	/* nothing runs, nothing waits */
	SCHED_S_WINDOW,	/* the batch window is open */
	SCHED_S_STEP,	/* a step is under way */
};

/**
 * struct sched - scheduler state
 * @waiting:	requests not yet running, by priority then arrival
 * @running:	requests in the current batch
 * @state:	SCHED_*
 * @window_seq:	the armed batch-window timer
 * @step_seq:	the armed step timer (engines with a step delay)
 * @step_ready:	a zero-delay step should run at the loop's next turn
 * @seqs:	the engine batch, max_batch_size long
 * @reqs:	which request each entry of @seqs belongs to
 */
struct sched {
	struct list_head	waiting;
	struct list_head	running;
	uint32_t		nr_waiting;
	uint32_t		nr_running;
	enum sched_state	state;
	uint64_t		window_seq;
	uint64_t		step_seq;
	bool			step_ready;
	struct engine_seq	**seqs;
	struct request		**reqs;
};

int sched_init(struct llmqd *d);
void sched_fini(struct llmqd *d);
void sched_add(struct llmqd *d, struct request *r);
void sched_remove(struct llmqd *d, struct request *r);
void sched_on_timer(struct llmqd *d, int kind, uint64_t seq);
void sched_run_step(struct llmqd *d);

#endif /* LLMQD_SCHED_H */
