/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The engine backend interface: a paged KV cache and one forward step over a
 * batch of sequences (prefill chunks and decode tokens mixed), reading and
 * writing K/V through per-sequence block tables. It knows nothing of rings
 * or scheduling; the CPU backend implements it, the CUDA backend will.
 */
#ifndef LLMQD_BACKEND_H
#define LLMQD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "sampler.h"

#define BACKEND_DEFAULT_BLOCK_SIZE	16

/*
 * Element type of a KV cache. AUTO: the CPU backend keeps halves (F16, as
 * llama.cpp does by default) unless the model's matrices are F32, then F32;
 * the CUDA backend always keeps BF16.
 */
enum backend_kv_dtype {
	BACKEND_KV_AUTO = 0,
	BACKEND_KV_F32,
	BACKEND_KV_F16,
	BACKEND_KV_BF16,
};

/**
 * struct backend_params - what backend_cpu_create() is asked for
 * @n_threads:		worker threads including the caller; 0 = one per core
 * @block_size:		tokens per KV block; 0 = BACKEND_DEFAULT_BLOCK_SIZE
 * @kv_bytes:		byte budget of the KV cache (all layers, K and V); the
 *			number of blocks is the most that fit, at least one
 * @max_tokens:		most tokens in one step (sum over sequences); sizes the
 *			scratch buffers; 0 = 512
 * @max_context:	longest sequence (positions); 0 = the model's n_ctx_train
 * @kv_dtype:		the KV cache's element type (the CPU backend: AUTO, F32
 *			or F16; the CUDA backend: AUTO or BF16)
 */
struct backend_params {
	unsigned int	n_threads;
	uint32_t	block_size;
	size_t		kv_bytes;
	uint32_t	max_tokens;
	uint32_t	max_context;
	enum backend_kv_dtype kv_dtype;
};

enum backend_logits {
	BACKEND_LOGITS_LAST = 0,	/* one row, for the step's last token */
	BACKEND_LOGITS_NONE,		/* a prefill chunk that is not the last */
	BACKEND_LOGITS_ALL,		/* one row per token of the step */
};

/* &backend_sample.token before a backend has drawn it. */
#define BACKEND_NO_TOKEN	UINT32_MAX

/**
 * struct backend_sample - a sequence's next token, drawn by the backend
 * @set:	the penalties (repetition, presence, frequency, over the
 *		tokens @set.pen lists), temperature (0: greedy, the first
 *		largest penalised logit), top_k (0 = all; the ties of the k-th
 *		take part), min_p, top_p (then the smallest prefix, largest
 *		first, with this share of the top-k set's weight) and the draw
 *		u, from the request's sampler (sampler_next_draw()), as
 *		sampler_sample() reads them
 * @token:	out: the token
 * @logprob:	out: the log-softmax of the raw logits at @token
 *
 * Lets a backend whose logits live elsewhere (a GPU) send one id per
 * sequence back instead of a row of the vocabulary's size. A sequence
 * fed its token (&backend_seq.feed) counts that token once more in the
 * output, since its sampler has not seen it yet.
 */
struct backend_sample {
	struct sampler_draw	set;
	uint32_t		token;
	float			logprob;
};

/* Is a penalty on (a list given)? Then it takes n_pen + 1 of &backend.pen_room. */
static inline bool backend_draw_penalised(const struct sampler_draw *d)
{
	return d->pen;
}

/**
 * struct backend_seq - one sequence's part of a step
 * @block_table:	KV block ids: position p lives in block
 *			@block_table[p / block_size], slot p % block_size
 * @n_blocks:		entries in @block_table; must cover @pos + @n_tokens
 * @pos:		position of @tokens[0]: the tokens already in the cache
 *			(positions 0 .. @pos - 1 were written by earlier steps)
 * @tokens:		this step's tokens: a prefill chunk or one decode token
 * @n_tokens:		how many, >= 1
 * @logits:		which positions get a row of logits (enum backend_logits)
 * @sample:		NULL, or with BACKEND_LOGITS_LAST on a backend that
 *			&backend.draws_tokens: draw the next token from the
 *			last row as it says instead of returning the row
 *			(which keeps its place among the rows)
 * @feed:		0, or on a backend with &backend_ops.submit, i + 1: this
 *			one-token step's token is the one the backend drew for
 *			sequence i of the step submitted just before
 *			(&backend_seq.sample); @tokens[0] is not read
 */
struct backend_seq {
	const uint32_t		*block_table;
	uint32_t		n_blocks;
	uint32_t		pos;
	const uint32_t		*tokens;
	uint32_t		n_tokens;
	uint32_t		logits;
	struct backend_sample	*sample;
	uint32_t		feed;
};

struct backend;

/**
 * struct backend_ops - one backend's implementation
 * @name:	"cpu", "cuda"
 * @step:	run one step; see backend_step()
 * @submit:	NULL, or queue one step and return at once; see backend_submit()
 * @wait:	with @submit: wait for the oldest step queued; see backend_wait()
 * @destroy:	free everything; see backend_destroy()
 */
struct backend_ops {
	const char	*name;
	int		(*step)(struct backend *b, const struct backend_seq *seqs,
				uint32_t n_seqs, float *logits);
	int		(*submit)(struct backend *b, const struct backend_seq *seqs,
				  uint32_t n_seqs, float *logits);
	int		(*wait)(struct backend *b);
	void		(*destroy)(struct backend *b);
};

/**
 * struct backend - the part of a backend its users read
 * @ops:	the implementation
 * @model:	the model it runs (not owned)
 * @n_vocab:	floats per row of logits
 * @block_size:	tokens per KV block
 * @n_blocks:	KV blocks in the cache (ids 0 .. @n_blocks - 1)
 * @kv_bytes:	bytes the cache takes
 * @weight_bytes: bytes the backend's own copy of the weights takes (the
 *		CUDA backend's device memory; 0 where it reads them in place)
 * @kv_dtype:	its element type (never AUTO)
 * @max_tokens:	most tokens per step
 * @max_context: longest sequence
 * @n_threads:	threads it computes with
 * @draws_tokens: the backend draws tokens itself (&backend_seq.sample)
 * @pen_room:	with @draws_tokens, the most penalty entries one step's draws
 *		may list: n_pen + 1 for each penalised one
 * @graphs:	steps captured as replayable graphs (CUDA graphs), so far
 * @graph_steps: steps that ran by replaying one
 * @attn_split_steps: the CPU backend: layers of steps whose attention split
 *		a sequence over threads by span (for tests and tuning)
 * @attn_tiles:	the CUDA backend: query tiles its steps' attention took on
 *		tensor cores, counted once per step, not per layer (for
 *		tests and tuning)
 */
struct backend {
	const struct backend_ops *ops;
	const struct model	*model;
	uint32_t		n_vocab;
	uint32_t		block_size;
	uint32_t		n_blocks;
	size_t			kv_bytes;
	size_t			weight_bytes;
	enum backend_kv_dtype	kv_dtype;
	uint32_t		max_tokens;
	uint32_t		max_context;
	unsigned int		n_threads;
	bool			draws_tokens;
	uint32_t		pen_room;
	uint32_t		graphs;
	uint64_t		graph_steps;
	uint64_t		attn_split_steps;
	uint64_t		attn_tiles;
};

/**
 * struct backend_cuda_params - what the CUDA backend needs beyond &backend_params
 * @gpu_memory_utilization:	fraction of the GPU's memory llmq may hold in
 *				all (weights, scratch, KV cache); the KV cache
 *				gets what is left of it. 0 = 0.9
 * @n_blocks:			if not 0, exactly this many KV blocks instead
 * @device:			CUDA device ordinal
 * @enforce_eager:		launch every step's kernels one by one, never
 *				from a captured CUDA graph
 * @untiled:			attention takes prefill rows one by one too,
 *				not as tiles on tensor cores (to compare them)
 * @bf16_weights:		every weight widened to BF16 at load, quantised
 *				ones too; by default Q8_0, Q4_0, Q4_K, Q5_K and Q6_K stay
 *				as they are (a quarter to half the memory, and
 *				the bytes a decode step reads)
 * @widen_slice_bytes:		a step of many rows widens a quantised matrix
 *				to BF16 this many bytes at a time (at least a
 *				row); 0 = 16 MiB (for tests and tuning)
 * @matvec_rows:		a step of up to this many rows reads quantised
 *				weights as they are, 8 rows a pass; a longer
 *				one widens them; 0 = 16 (for tests and tuning)
 */
struct backend_cuda_params {
	double		gpu_memory_utilization;
	uint32_t	n_blocks;
	int		device;
	bool		enforce_eager;
	bool		untiled;
	bool		bf16_weights;
	size_t		widen_slice_bytes;
	uint32_t	matvec_rows;
};

struct backend *backend_cpu_create(const struct model *m, const struct backend_params *p,
				   char *err, size_t errlen);
struct backend *backend_cuda_create(const struct model *m, const struct backend_params *p,
				    const struct backend_cuda_params *cp, char *err,
				    size_t errlen);
size_t backend_cuda_kv_block_bytes(const struct model *m, uint32_t block_size);
size_t backend_kv_block_bytes(const struct model *m, uint32_t block_size,
			      enum backend_kv_dtype dtype);
enum backend_kv_dtype backend_kv_dtype_cpu(const struct model *m, enum backend_kv_dtype dtype);
int backend_kv_dtype_parse(const char *s, enum backend_kv_dtype *dtype);
const char *backend_kv_dtype_name(enum backend_kv_dtype dtype);
void backend_init(struct backend *b, const struct backend_ops *ops, const struct model *m,
		  const struct backend_params *p, uint32_t max_tokens);
int backend_check_model(const struct model *m, char *err, size_t len);

/**
 * struct backend_step_counts - the size of a step, from backend_check_step()
 * @rows:	tokens, at most max_tokens
 * @out:	rows of logits it returns
 * @bt:		block-table entries its sequences use
 * @pen:	penalty entries its draws list (see backend_draw_penalised())
 */
struct backend_step_counts {
	uint32_t	rows;
	uint32_t	out;
	uint64_t	bt;
	uint64_t	pen;
};

int backend_check_step(const struct backend *b, const struct backend_seq *seqs, uint32_t n_seqs,
		       struct backend_step_counts *c);

__attribute__((format(printf, 4, 5)))
int backend_errf(char *err, size_t len, int ret, const char *fmt, ...);

/*
 * Raised whenever a structure a plugin shares with its loader changes
 * (struct model, struct backend and what they hold, the params above): a
 * plugin of another build is refused rather than misread.
 */
#define BACKEND_PLUGIN_ABI	6

/**
 * struct backend_plugin - what a backend plugin exports as "llmq_backend_plugin"
 * @abi:		BACKEND_PLUGIN_ABI of the build that made it
 * @create:		backend_cuda_create()
 * @kv_block_bytes:	backend_cuda_kv_block_bytes()
 */
struct backend_plugin {
	unsigned int	abi;
	struct backend	*(*create)(const struct model *m, const struct backend_params *p,
				   const struct backend_cuda_params *cp, char *err,
				   size_t errlen);
	size_t		(*kv_block_bytes)(const struct model *m, uint32_t block_size);
};

/**
 * backend_step() - run one forward step over a batch of sequences
 * @b:		the backend
 * @seqs:	the sequences of the step, each with distinct KV blocks for the
 *		positions it writes
 * @n_seqs:	how many, >= 1
 * @logits:	out: rows of @b->n_vocab floats, in the order of @seqs, as each
 *		sequence's &backend_seq.logits asks; a row whose token the
 *		backend drew (&backend_seq.sample) is left as it was
 *
 * Writes the K/V of every token of the step into its block, then attends
 * causally over all positions 0 .. pos + i of its sequence. The result for a
 * sequence does not depend on the other sequences of the step, nor on how
 * its prompt was split into chunks, nor on where its blocks lie. One step
 * at a time per backend: a step uses the backend's scratch buffers.
 *
 * Return: 0, -EINVAL for a bad token, block id, table or sampling setting,
 * -E2BIG when the step has more than max_tokens tokens, a sequence grows
 * past max_context or the draws list more penalty entries than pen_room.
 */
static inline int backend_step(struct backend *b, const struct backend_seq *seqs,
			       uint32_t n_seqs, float *logits)
{
	return b->ops->step(b, seqs, n_seqs, logits);
}

/**
 * backend_submit() - queue a step and return before it has run
 * @b:		a backend with &backend_ops.submit
 * @seqs:	as for backend_step(); it and what it points to (tokens, block
 *		tables, samples) must stay as they are until backend_wait()
 *		has returned for this step
 * @n_seqs:	how many
 * @logits:	as for backend_step(), written by the time backend_wait() returns
 *
 * At most two steps are out at once: the host plans and queues step N + 1
 * while the device runs step N, and a one-token sequence of N + 1 may take
 * the token N draws for it without the host knowing it (&backend_seq.feed).
 * Steps run in the order submitted.
 *
 * Return: 0, the errors of backend_step(), -EINVAL for a bad feed, -EBUSY
 * with two steps out.
 */
static inline int backend_submit(struct backend *b, const struct backend_seq *seqs,
				 uint32_t n_seqs, float *logits)
{
	return b->ops->submit(b, seqs, n_seqs, logits);
}

/**
 * backend_wait() - wait for the oldest submitted step and deliver its results
 * @b:		a backend with &backend_ops.wait
 *
 * Return: 0, -EIO if the step failed, -EINVAL with no step out.
 */
static inline int backend_wait(struct backend *b)
{
	return b->ops->wait(b);
}

/**
 * backend_destroy() - free a backend and its KV cache
 * @b:	the backend, or NULL
 */
static inline void backend_destroy(struct backend *b)
{
	if (b)
		b->ops->destroy(b);
}

#endif /* LLMQD_BACKEND_H */
