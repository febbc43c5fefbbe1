// SPDX-License-Identifier: GPL-2.0
/*
 * bench_cuda MODEL.gguf: the CUDA backend against the two ceilings of the
 * GPU it runs on, measured there and then: device-to-device copy bandwidth
 * (bytes read + written) and the BF16 cuBLAS matmul rate. Then decode
 * tokens/s at batch 1 beside the bandwidth floor (weight bytes per token /
 * bandwidth), decode throughput at batch 64 and 256, and prefill TFLOP/s for
 * a 2048-token prompt beside the matmul rate, and again with attention
 * untiled (row by row, no tensor cores). For a model of quantised weights
 * that the backend keeps as they are (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), decode
 * again at batch 1 and 64 with them widened to BF16 at load (bf16_weights),
 * to compare. scripts/bench-cuda.sh runs it on a llama3-8b preset in BF16
 * (issue 10's table), or in DTYPE.
 *
 * Every time is a wall-clock time around whole backend steps, which
 * synchronise; each figure is the median of REPS runs after a warm-up.
 * LLMQ_BENCH_QUICK=1 shrinks every size, to try the program itself on a
 * tiny model (bench_cuda_emu runs it so on the CUDA emulator).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "../../cuda/kernels.h"
#include "backend.h"
#include "dtype.h"
#include "model.h"

#define REPS		5

/* Sizes; LLMQ_BENCH_QUICK=1 makes them small. */
static size_t copy_bytes = 1ull << 30;
static int gemm_n = 8192;
static uint32_t decode_steps = 32;
static uint32_t ctx_len = 512;		/* prompt positions before the timed decodes */
static uint32_t prefill_len = 2048;
static uint32_t batches[] = { 1, 64, 256 };
static uint32_t mid_batch = 16;		/* past one pass of the quantised product */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[n / 2];
}

#define CK(call)							\
	do {								\
		cudaError_t e_ = (call);				\
		if (e_ != cudaSuccess) {				\
			fprintf(stderr, "bench_cuda: %s: %s\n", #call,	\
				cudaGetErrorString(e_));		\
			exit(1);					\
		}							\
	} while (0)

/* Copy bandwidth: 1 GiB device to device, bytes read plus written, GB/s. */
static double copy_bw(void)
{
	size_t n = copy_bytes;
	cudaEvent_t a, b;
	double t[REPS];
	void *x, *y;
	float ms;
	int i;

	CK(cudaMalloc(&x, n));
	CK(cudaMalloc(&y, n));
	CK(cudaMemset(x, 1, n));
	CK(cudaEventCreate(&a));
	CK(cudaEventCreate(&b));
	CK(cudaMemcpy(y, x, n, cudaMemcpyDeviceToDevice));
	for (i = 0; i < REPS; i++) {
		CK(cudaEventRecord(a, 0));
		CK(cudaMemcpy(y, x, n, cudaMemcpyDeviceToDevice));
		CK(cudaEventRecord(b, 0));
		CK(cudaEventSynchronize(b));
		CK(cudaEventElapsedTime(&ms, a, b));
		t[i] = 2.0 * n / (ms / 1e3) / 1e9;
	}
	cudaFree(x);
	cudaFree(y);
	return median(t, REPS);
}

/* BF16 GEMM 8192^3, FP32 accumulation, random-ish data, TFLOP/s. */
static double matmul_rate(void)
{
	const int n = gemm_n;
	cublasHandle_t h;
	cudaEvent_t a, b;
	double t[REPS];
	uint16_t *host;
	float alpha = 1, beta = 0, ms;
	void *A, *B, *C;
	size_t i;
	int r;

	host = malloc((size_t)n * n * 2);
	for (i = 0; i < (size_t)n * n; i++)
		host[i] = 0x3c00 + (uint16_t)(rand() & 0xff);	/* about 0.0078..0.016 */
	CK(cudaMalloc(&A, (size_t)n * n * 2));
	CK(cudaMalloc(&B, (size_t)n * n * 2));
	CK(cudaMalloc(&C, (size_t)n * n * 4));
	CK(cudaMemcpy(A, host, (size_t)n * n * 2, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(B, host, (size_t)n * n * 2, cudaMemcpyHostToDevice));
	free(host);
	if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
		exit(1);
	CK(cudaEventCreate(&a));
	CK(cudaEventCreate(&b));
	for (r = -1; r < REPS; r++) {
		CK(cudaEventRecord(a, 0));
		if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, A, CUDA_R_16BF, n, B,
				 CUDA_R_16BF, n, &beta, C, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
				 CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
			exit(1);
		CK(cudaEventRecord(b, 0));
		CK(cudaEventSynchronize(b));
		CK(cudaEventElapsedTime(&ms, a, b));
		if (r >= 0)
			t[r] = 2.0 * n * n * (double)n / (ms / 1e3) / 1e12;
	}
	cublasDestroy(h);
	cudaFree(A);
	cudaFree(B);
	cudaFree(C);
	return median(t, REPS);
}

/* Weights one token multiplies: every matrix but the embedding table. */
static double weight_params(const struct model *m)
{
	const struct model_hparams *hp = &m->hp;
	double per_layer = (double)hp->n_embd * (hp->n_head + 2 * hp->n_head_kv) * hp->head_dim +
			   (double)hp->n_head * hp->head_dim * hp->n_embd +
			   3.0 * hp->n_embd * hp->n_ff;

	return per_layer * hp->n_layer + (double)hp->n_vocab * hp->n_embd;
}

/* Does the backend keep weights of @type as they are? */
static bool kept(uint32_t type)
{
	return cuk_qtype(type) != NULL;
}

/*
 * The model's matrix types, as "Q4_K" or, for a mix, "Q4_K+Q6_K" (in the
 * order the file first has them), in @buf.
 */
static const char *matrix_types(const struct model *m, char *buf, size_t len)
{
	uint32_t seen[8], n = 0, j;
	uint64_t i;
	size_t at = 0;

	for (i = 0; i < m->gguf.n_tensors; i++) {
		const struct gguf_tensor *t = &m->gguf.tensors[i];

		for (j = 0; j < n && seen[j] != t->type; j++)
			;
		if (t->n_dims == 2 && j == n && n < 8)
			seen[n++] = t->type;
	}
	buf[0] = 0;
	for (j = 0; j < n && at < len; j++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", j ? "+" : "",
				       dtype_info(seen[j])->name);
	return buf;
}

/*
 * Weight bytes one token reads on the device: all the backend holds, less
 * the embedding table (a token reads one row of it) unless it is the LM
 * head too. A kept type has its blocks' bytes, BF16 2 a weight.
 */
static double read_bytes(const struct backend *b, const struct model *m, bool keep)
{
	const struct dtype_info *t = dtype_info(m->tok_embd->type);
	double table = (double)m->hp.n_vocab * m->hp.n_embd;

	table *= keep && kept(m->tok_embd->type) ? (double)t->size / t->block : 2.0;
	return (double)b->weight_bytes - (m->output ? table : 0);
}

/*
 * @batch sequences, each with a ctx_len-token prompt (prefilled in chunks, not
 * timed), then decode_steps steps of one token each for all of them, drawn
 * greedily on the device as llmqd has them drawn (one id per sequence comes
 * back, not its row of logits): decoded tokens/s, the median of REPS.
 */
static double decode(struct backend *b, uint32_t batch, float *logits)
{
	uint32_t per_seq = (ctx_len + decode_steps + b->block_size - 1) / b->block_size;
	uint32_t *tables = malloc((size_t)batch * per_seq * 4), *tok = calloc(ctx_len, 4);
	struct backend_seq *s = calloc(batch, sizeof(*s));
	struct backend_sample *bs = calloc(batch, sizeof(*bs));
	double t[REPS], t0;
	uint32_t i, j, r;

	for (i = 0; i < ctx_len; i++)
		tok[i] = 3 + i % (b->n_vocab - 3);
	for (i = 0; i < batch * per_seq; i++)
		tables[i] = i;
	for (i = 0; i < batch; i++) {
		/* Prompts in chunks of at most max_tokens, logits of none. */
		for (j = 0; j < ctx_len; j += b->max_tokens) {
			s[0] = (struct backend_seq){
				.block_table = tables + (size_t)i * per_seq, .n_blocks = per_seq,
				.pos = j, .tokens = tok + j,
				.n_tokens = ctx_len - j < b->max_tokens ? ctx_len - j : b->max_tokens,
				.logits = BACKEND_LOGITS_NONE,
			};
			if (backend_step(b, s, 1, NULL))
				return -1;
		}
	}
	for (r = 0; r <= REPS; r++) {
		t0 = now();
		for (j = 0; j < decode_steps; j++) {
			for (i = 0; i < batch; i++) {
				bs[i] = (struct backend_sample){ .set = { .top_p = 1.0f } };
				s[i] = (struct backend_seq){
					.block_table = tables + (size_t)i * per_seq,
					.n_blocks = per_seq, .pos = ctx_len + j, .tokens = tok + j,
					.n_tokens = 1, .sample = &bs[i],
				};
			}
			if (backend_step(b, s, batch, logits))
				return -1;
		}
		if (r)		/* the first round warms up */
			t[r - 1] = (double)batch * decode_steps / (now() - t0);
	}
	free(tables);
	free(tok);
	free(s);
	free(bs);
	return median(t, REPS);
}

/* A prefill_len-token prompt in one step: seconds, the median of REPS. */
static double prefill(struct backend *b)
{
	uint32_t n_blocks = prefill_len / b->block_size, *table = malloc(n_blocks * 4);
	uint32_t *tok = malloc(prefill_len * 4), i, r;
	struct backend_seq s;
	double t[REPS], t0;

	for (i = 0; i < n_blocks; i++)
		table[i] = i;
	for (i = 0; i < prefill_len; i++)
		tok[i] = 3 + (i * 7) % (b->n_vocab - 3);
	s = (struct backend_seq){ .block_table = table, .n_blocks = n_blocks, .tokens = tok,
				  .n_tokens = prefill_len, .logits = BACKEND_LOGITS_NONE };
	for (r = 0; r <= REPS; r++) {
		t0 = now();
		if (backend_step(b, &s, 1, NULL))
			return -1;
		if (r)
			t[r - 1] = now() - t0;
	}
	free(table);
	free(tok);
	return median(t, REPS);
}

/*
 * A model of kept quantised weights, after its decodes at batch 1 (@tp1
 * tokens/s) and 64 (@tp64): the same decodes with every weight widened to
 * BF16 at load; 16 rows read as they are in two passes of the product (the
 * default) against widened (matvec_rows 8), to set CUDA_QMATVEC_ROWS; and
 * batch 64 with the widened slices at other sizes than the default 16 MiB
 * (L2 residency against launches), to set CUDA_WIDEN_SLICE_BYTES. Return:
 * 0, or 1 with a message.
 */
static int quant_compare(const struct model *m, const struct backend_params *bp, double tp1,
			 double tp64)
{
	char name[64];
	const struct {
		struct backend_cuda_params	cp;
		uint32_t			batch;
		const char			*what;
	} runs[] = {
		{ { .bf16_weights = true }, batches[0], "weights BF16" },
		{ { .bf16_weights = true }, batches[1], "weights BF16" },
		{ { .matvec_rows = 0 }, mid_batch, "2 passes" },
		{ { .matvec_rows = 8 }, mid_batch, "widened" },
		{ { .widen_slice_bytes = 4u << 20 }, batches[1], "4 MiB slices" },
		{ { .widen_slice_bytes = 8u << 20 }, batches[1], "8 MiB slices" },
		{ { .widen_slice_bytes = 32u << 20 }, batches[1], "32 MiB slices" },
	};
	double tp[sizeof(runs) / sizeof(runs[0])];
	struct backend *b;
	float *logits;
	char err[512];
	unsigned int i;

	matrix_types(m, name, sizeof(name));
	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		b = backend_cuda_create(m, bp, &runs[i].cp, err, sizeof(err));
		if (!b) {
			fprintf(stderr, "bench_cuda: %s\n", err);
			return 1;
		}
		logits = malloc((size_t)runs[i].batch * b->n_vocab * sizeof(float));
		tp[i] = decode(b, runs[i].batch, logits);
		free(logits);
		backend_destroy(b);
		if (tp[i] < 0) {
			fprintf(stderr, "bench_cuda: decode failed\n");
			return 1;
		}
		printf("decode b=%-3u %-14s %8.1f tokens/s", runs[i].batch, runs[i].what, tp[i]);
		if (i < 2)
			printf("  (%s kept: %.2fx as fast)\n", name, (i ? tp64 : tp1) / tp[i]);
		else if (i == 3)
			printf("  (2 passes: %.2fx as fast)\n", tp[2] / tp[i]);
		else if (i > 3)
			printf("  (16 MiB: %.2fx as fast)\n", tp64 / tp[i]);
		else
			printf("\n");
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct backend_params bp = { 0 };
	struct backend_cuda_params cp = { 0 };
	const char *quick = getenv("LLMQ_BENCH_QUICK");
	struct cudaDeviceProp prop;
	double bw, tf, wb, floor_tps, fl, tp, tp1 = 1, tp64 = 1, sec, untiled;
	bool quant;
	struct backend *b;
	struct model m;
	float *logits;
	char err[512], types[64];
	unsigned int i;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_cuda MODEL.gguf\n");
		return 2;
	}
	if (quick && *quick == '1') {
		copy_bytes = 64 << 20;
		gemm_n = 256;
		decode_steps = 4;
		ctx_len = 40;
		prefill_len = 96;
		batches[1] = 4;
		batches[2] = 8;
		mid_batch = 12;
	}
	bp.max_tokens = prefill_len;
	bp.max_context = prefill_len + 64;
	CK(cudaGetDeviceProperties(&prop, 0));
	printf("GPU: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount,
	       prop.totalGlobalMem / 1073741824.0);
	bw = copy_bw();
	tf = matmul_rate();
	printf("device copy bandwidth        %8.0f GB/s (read + write)\n", bw);
	printf("BF16 matmul %d^3 (cuBLAS)  %8.1f TFLOP/s\n", gemm_n, tf);

	if (model_load(&m, argv[1])) {
		fprintf(stderr, "bench_cuda: %s\n", m.err);
		return 1;
	}
	b = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	if (!b) {
		fprintf(stderr, "bench_cuda: %s\n", err);
		return 1;
	}
	logits = malloc((size_t)batches[2] * b->n_vocab * sizeof(float));
	quant = kept(m.layers[0].wq->type);
	wb = read_bytes(b, &m, quant);
	floor_tps = bw * 1e9 / wb;
	printf("model %s: %.2f GB of weights on the device (%s), %.2f GB read a token; KV "
	       "cache %u blocks of %u (%.1f GiB)\n", m.name, b->weight_bytes / 1e9,
	       quant ? matrix_types(&m, types, sizeof(types)) : "BF16", wb / 1e9, b->n_blocks,
	       b->block_size, b->kv_bytes / 1073741824.0);
	for (i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		tp = decode(b, batches[i], logits);
		if (tp < 0) {
			fprintf(stderr, "bench_cuda: decode at batch %u failed\n", batches[i]);
			return 1;
		}
		if (batches[i] == 1)
			printf("decode b=1 at %u context   %8.1f tokens/s  (floor %.1f: %.0f%%)\n",
			       ctx_len, tp, floor_tps, 100 * tp / floor_tps);
		else
			printf("decode b=%-3u               %8.1f tokens/s  (%.1fx b=1)\n", batches[i],
			       tp, tp / tp1);
		if (batches[i] == 1)
			tp1 = tp;
		if (i == 1)
			tp64 = tp;
	}
	printf("decode steps from CUDA graphs: %llu (%u graphs captured)\n",
	       (unsigned long long)b->graph_steps, b->graphs);
	sec = prefill(b);
	if (sec < 0) {
		fprintf(stderr, "bench_cuda: prefill failed\n");
		return 1;
	}
	/* 2 flops per weight per token, and causal attention: QK^T and PV. */
	fl = 2.0 * weight_params(&m) * prefill_len + 2.0 * 2 * m.hp.n_layer * (double)m.hp.n_head *
	     m.hp.head_dim * prefill_len * (prefill_len + 1) / 2;
	printf("prefill %u tokens          %8.1f TFLOP/s  (%.0f%% of the matmul rate; %.0f "
	       "tokens/s)\n", prefill_len, fl / sec / 1e12, 100 * fl / sec / 1e12 / tf,
	       prefill_len / sec);
	/* The same prefill with attention row by row: what the tiles bring. */
	cp.untiled = true;
	cp.n_blocks = prefill_len / b->block_size + 1;
	free(logits);
	backend_destroy(b);
	b = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	if (!b) {
		fprintf(stderr, "bench_cuda: untiled: %s\n", err);
		return 1;
	}
	untiled = prefill(b);
	if (untiled < 0) {
		fprintf(stderr, "bench_cuda: untiled prefill failed\n");
		return 1;
	}
	printf("prefill, attention untiled  %8.1f TFLOP/s  (tiles: %.2fx as fast)\n",
	       fl / untiled / 1e12, untiled / sec);
	backend_destroy(b);
	if (quant && quant_compare(&m, &bp, tp1, tp64))
		return 1;
	model_free(&m);
	return 0;
}
