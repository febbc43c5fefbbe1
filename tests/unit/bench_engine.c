// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark of the CPU backend on one model: copy bandwidth measured in the
 * same run, single-sequence decode against the floor it implies (weight
 * bytes per token / bandwidth), prefill of a 512-token prompt, and batched
 * decode throughput at batch 1, 8 and 32, each the best of a few runs; then
 * a long context: a 2048-token prompt (in steps of 512) and decode after it,
 * on the default KV cache and beside it on the other type (F16 / F32).
 *
 *   bench_engine MODEL.gguf [THREADS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cpu/threadpool.h"
#include "dtype.h"
#include "model.h"
#include "membw.h"

#define CTX_BLOCKS	8		/* 128 positions per batched sequence */
#define MAX_BATCH	32
#define PREFILL		512
#define DECODE_STEPS	48
#define LONG		2048
#define LONG_BLOCKS	((LONG + DECODE_STEPS) / 16)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Copy and read bandwidth over the pool, 256 MiB, best of 5, in GB/s. */
static void bandwidth(unsigned int threads, double *copy, double *read)
{
	struct threadpool *pool = threadpool_create(threads);
	unsigned int parts;

	if (!pool) {
		fprintf(stderr, "bench_engine: out of memory\n");
		exit(1);
	}
	parts = threadpool_size(pool) * 4;
	*copy = membw_copy(pool, 256u << 20, parts, 5);
	*read = membw_read(pool, 256u << 20, parts, 5);
	threadpool_destroy(pool);
}

static double weight_bytes(const struct model *m)
{
	double b = 0;
	uint64_t i;

	for (i = 0; i < m->gguf.n_tensors; i++)
		b += (double)m->gguf.tensors[i].size;
	if (m->output)		/* the embedding table is read one row at a time */
		b -= (double)m->tok_embd->size;
	return b;
}

static void step(struct backend *b, const struct backend_seq *s, uint32_t n, float *logits)
{
	int err = backend_step(b, s, n, logits);

	if (err) {
		fprintf(stderr, "bench_engine: step: %d\n", err);
		exit(1);
	}
}

/* B sequences of 16 prompt tokens, then DECODE_STEPS steps of B decode tokens. */
static double batched_decode(struct backend *b, uint32_t batch, float *logits)
{
	static uint32_t table[MAX_BATCH][CTX_BLOCKS], tok[MAX_BATCH][16 + DECODE_STEPS];
	struct backend_seq s[MAX_BATCH];
	uint32_t i, k, st;
	double t;

	for (i = 0; i < batch; i++) {
		for (k = 0; k < CTX_BLOCKS; k++)
			table[i][k] = i * CTX_BLOCKS + k;
		for (k = 0; k < 16 + DECODE_STEPS; k++)
			tok[i][k] = 3 + (i * 131 + k * 17) % (b->n_vocab - 3);
		s[i] = (struct backend_seq){ .block_table = table[i], .n_blocks = CTX_BLOCKS,
					     .pos = 0, .tokens = tok[i], .n_tokens = 16 };
	}
	step(b, s, batch, logits);
	t = now();
	for (st = 0; st < DECODE_STEPS; st++) {
		for (i = 0; i < batch; i++) {
			s[i].pos = 16 + st;
			s[i].tokens = &tok[i][16 + st];
			s[i].n_tokens = 1;
		}
		step(b, s, batch, logits);
	}
	return (double)batch * DECODE_STEPS / (now() - t);
}

/* The best of 3 runs: this machine may be shared. */
static double best_decode(struct backend *b, uint32_t batch, float *logits)
{
	double best = 0, r;
	int i;

	for (i = 0; i < 3; i++) {
		r = batched_decode(b, batch, logits);
		if (r > best)
			best = r;
	}
	return best;
}

static double prefill(struct backend *b, float *logits)
{
	uint32_t table[PREFILL / 16], tok[PREFILL], i;
	struct backend_seq s = { .block_table = table, .n_blocks = PREFILL / 16,
				 .tokens = tok, .n_tokens = PREFILL };
	double best = 1e30, t;
	int r;

	for (i = 0; i < PREFILL / 16; i++)
		table[i] = MAX_BATCH * CTX_BLOCKS + i;
	for (i = 0; i < PREFILL; i++)
		tok[i] = 3 + (i * 7919) % (b->n_vocab - 3);
	for (r = 0; r < 2; r++) {
		t = now();
		step(b, &s, 1, logits);
		t = now() - t;
		if (t < best)
			best = t;
	}
	return PREFILL / best;
}

/*
 * A LONG-token prompt in steps of PREFILL tokens, then DECODE_STEPS decodes
 * at positions LONG onwards: what attention over a long cache costs.
 */
static void long_context(struct backend *b, float *logits, double *pf, double *dec)
{
	static uint32_t table[LONG_BLOCKS], tok[LONG + DECODE_STEPS];
	struct backend_seq s = { .block_table = table, .n_blocks = LONG_BLOCKS };
	uint32_t i;
	double t;

	for (i = 0; i < LONG_BLOCKS; i++)
		table[i] = MAX_BATCH * CTX_BLOCKS + PREFILL / 16 + i;
	for (i = 0; i < LONG + DECODE_STEPS; i++)
		tok[i] = 3 + (i * 7919) % (b->n_vocab - 3);
	t = now();
	for (s.pos = 0; s.pos < LONG; s.pos += PREFILL) {
		s.tokens = tok + s.pos;
		s.n_tokens = PREFILL;
		step(b, &s, 1, logits);
	}
	*pf = LONG / (now() - t);
	t = now();
	for (s.n_tokens = 1; s.pos < LONG + DECODE_STEPS; s.pos++) {
		s.tokens = tok + s.pos;
		step(b, &s, 1, logits);
	}
	*dec = DECODE_STEPS / (now() - t);
}

/* long_context() on two backends alternately, best of 2 each. */
static void long_pair(struct backend *b[2], float *logits, double pf[2], double dec[2])
{
	double p, d;
	int r, i;

	pf[0] = pf[1] = dec[0] = dec[1] = 0;
	for (r = 0; r < 2; r++) {
		for (i = 0; i < 2; i++) {
			long_context(b[i], logits, &p, &d);
			pf[i] = p > pf[i] ? p : pf[i];
			dec[i] = d > dec[i] ? d : dec[i];
		}
	}
}

int main(int argc, char **argv)
{
	struct backend_params p = { .max_tokens = PREFILL, .max_context = LONG + DECODE_STEPS };
	double bw, rbw, wb, floor_tps, rfloor, dec1, d8, d32, pf, lpf[2], ldec[2];
	const char *ty = "?";
	struct backend *b, *kvb[2];
	char err[256];
	struct model m;
	float *logits;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench_engine MODEL.gguf [THREADS]\n");
		return 2;
	}
	p.n_threads = argc == 3 ? atoi(argv[2]) : 0;
	if (model_load(&m, argv[1])) {
		fprintf(stderr, "bench_engine: %s\n", m.err);
		return 1;
	}
	p.kv_bytes = (MAX_BATCH * CTX_BLOCKS + PREFILL / 16 + LONG_BLOCKS) *
		     backend_kv_block_bytes(&m, 16, BACKEND_KV_AUTO);
	b = backend_cpu_create(&m, &p, err, sizeof(err));
	if (!b) {
		fprintf(stderr, "bench_engine: %s\n", err);
		return 1;
	}
	/* The same on a cache of the other type, for the long context. */
	p.kv_dtype = b->kv_dtype == BACKEND_KV_F16 ? BACKEND_KV_F32 : BACKEND_KV_F16;
	p.kv_bytes = (MAX_BATCH * CTX_BLOCKS + PREFILL / 16 + LONG_BLOCKS) *
		     backend_kv_block_bytes(&m, 16, p.kv_dtype);
	kvb[0] = b;
	kvb[1] = backend_cpu_create(&m, &p, err, sizeof(err));
	if (!kvb[1]) {
		fprintf(stderr, "bench_engine: %s\n", err);
		return 1;
	}
	logits = malloc((size_t)MAX_BATCH * b->n_vocab * sizeof(float));
	if (m.layers[0].w_down)
		ty = dtype_info(m.layers[0].w_down->type)->name;
	bandwidth(b->n_threads, &bw, &rbw);
	wb = weight_bytes(&m);
	floor_tps = bw * 1e9 / wb;
	rfloor = rbw * 1e9 / wb;
	batched_decode(b, 1, logits);		/* warm the page cache and the pool */
	dec1 = best_decode(b, 1, logits);
	d8 = best_decode(b, 8, logits);
	d32 = best_decode(b, 32, logits);
	pf = prefill(b, logits);
	long_pair(kvb, logits, lpf, ldec);
	printf("%s (%s, %u threads)\n", argv[1], ty, b->n_threads);
	printf("  copy bandwidth          %8.2f GB/s (memcpy, bytes copied per second)\n", bw);
	printf("  read bandwidth          %8.2f GB/s\n", rbw);
	printf("  weight bytes per token  %8.1f MB\n", wb / 1e6);
	printf("  decode, 1 sequence      %8.2f tokens/s   floor %.2f tokens/s  "
	       "(%.0f%% of floor)\n", dec1, floor_tps, 100 * dec1 / floor_tps);
	printf("%41sread floor %.2f tokens/s  (%.0f%% of it)\n", "", rfloor,
	       100 * dec1 / rfloor);
	printf("  prefill, 512 tokens     %8.1f tokens/s\n", pf);
	printf("  batched decode b=1      %8.2f tokens/s\n", dec1);
	printf("  batched decode b=8      %8.2f tokens/s   (%.2fx b=1)\n", d8, d8 / dec1);
	printf("  batched decode b=32     %8.2f tokens/s   (%.2fx b=1)\n", d32, d32 / dec1);
	printf("  prefill, 2048 tokens    %8.1f tokens/s   (steps of %d, KV %s)\n", lpf[0],
	       PREFILL, backend_kv_dtype_name(kvb[0]->kv_dtype));
	printf("  decode at 2048          %8.2f tokens/s   (%.2fx decode at 16)\n", ldec[0],
	       ldec[0] / dec1);
	printf("  the same, KV %s:       %8.1f tokens/s prefill, %.2f tokens/s decode "
	       "(%.2fx KV %s)\n", backend_kv_dtype_name(kvb[1]->kv_dtype), lpf[1], ldec[1],
	       ldec[1] / ldec[0], backend_kv_dtype_name(kvb[0]->kv_dtype));
	free(logits);
	backend_destroy(kvb[1]);
	backend_destroy(b);
	model_free(&m);
	return 0;
}
