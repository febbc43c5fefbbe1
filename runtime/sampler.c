// SPDX-License-Identifier: GPL-2.0
/*
 * The per-request sampler: turns one row of logits into the next token the
 * way vLLM's SamplingParams describe (penalties, temperature, top-k, top-p,
 * min-p, a seeded generator) and decides, token by token, what text may be
 * emitted and when the request stops (end of sequence, stop ids, stop
 * strings, max_tokens).
 *
 * Semantics, and where they follow or differ from vLLM:
 *
 *  - Penalties (vLLM v1): the repetition penalty applies to every token seen
 *    in the prompt or the output (positive logit divided, otherwise
 *    multiplied); then logit -= frequency * count and logit -= presence
 *    (count > 0) for tokens of the output only.
 *  - A temperature below 1e-5 is greedy (vLLM's _SAMPLING_EPS): argmax of
 *    the penalised logits, the lowest id on ties.  top_k, top_p and min_p
 *    are then ignored.
 *  - Otherwise logits / temperature, then top-k (tokens tied with the k-th
 *    are kept, as vLLM does), top-p over the top-k distribution (the
 *    smallest prefix of the sorted probabilities whose sum reaches top_p,
 *    allowing 1e-6 for float rounding, never empty), then min-p (drop
 *    p < min_p * p_max).  This is vLLM v0's order; v1 applies min-p before
 *    top-k/top-p, which gives a different nucleus when both top_p and min_p
 *    are set.  Every stage keeps a prefix of the same descending order, so
 *    min-p can prune candidates early without changing the result.
 *  - The logprob is the log-softmax of the raw logits (before penalties and
 *    temperature) at the chosen token, vLLM v1's default.
 *  - Stop strings end the output before the first place where one of them
 *    is complete (the earliest end; on a tie, the longer one), even across
 *    token boundaries.  vLLM searches the new text string by string, in list
 *    order; the results differ only when two stop strings overlap.
 *
 * Cost per token, for a vocabulary of V: the logprob takes one pass with
 * an exponential per token; penalties touch only the tokens seen so far
 * (and are undone afterwards, so the caller's row comes back unchanged).
 * Nothing sorts the vocabulary: a small top-k runs a k-entry heap over the
 * row, a large one a quickselect; top-p alone takes one pass for the total
 * mass and a histogram of it by log-probability, gathers only the tokens
 * down to the band where the nucleus ends, and finds the nucleus among them
 * with a quickselect on the mass; min-p is a threshold on the logit.  Stop
 * strings are matched with one KMP automaton each, amortised O(1) per byte.
 * All buffers are allocated by sampler_create(); sampling allocates
 * nothing, accepting only when a text piece is longer than any before.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "sampler.h"

#define SAMPLER_MAX_STOP_LEN	256	/* bytes per stop string */
#define SAMPLER_EPS		1e-5f	/* lower temperatures are greedy */
#define TOP_P_SLACK		1e-6	/* float rounding allowed in top-p's sum */
#define SAMPLER_BUF_INIT	1024

/* A candidate token: a logit while selecting top-k, then a weight. */
struct cand {
	uint32_t	id;
	float		v;
};

/*
 * One stop string and its KMP matcher.  @state is how many bytes of the
 * string end the text so far; @fail[i] is the length of the longest proper
 * prefix of s[0..i] that is also a suffix of it.
 */
struct stop_str {
	const char	*s;
	uint32_t	len;
	uint32_t	state;
	uint16_t	fail[SAMPLER_MAX_STOP_LEN];
};

struct sampler {
	/* parameters */
	float		temperature;
	float		top_p;
	float		min_p;
	float		rep;
	float		pres;
	float		freq;
	uint32_t	top_k;
	uint32_t	max_tokens;
	uint32_t	vocab_size;
	bool		ignore_eos;
	bool		greedy;
	bool		penalties;

	uint64_t	rng[4];		/* xoshiro256** */

	uint32_t	*eos_ids;
	uint32_t	nr_eos_ids;
	uint32_t	*stop_ids;
	uint32_t	nr_stop_ids;
	struct stop_str	*stop;
	uint32_t	nr_stop;
	char		*stop_text;

	/* penalty state, only when a penalty is on */
	uint32_t	*pos;		/* [vocab] index in pen + 1, 0 = not seen */
	struct sampler_pen *pen;	/* distinct ids in prompt or output */
	float		*saved;		/* their raw logits during a sample */
	uint32_t	nr_touched;

	struct cand	*cand;		/* [vocab], only when not greedy */
	float		*heap;		/* [top_k], for a small top_k */

	/* output */
	uint32_t	generated;
	int		finish;
	char		*buf;
	size_t		buf_cap;
	size_t		held_off;	/* held-back text: buf[held_off, +held_len) */
	size_t		held_len;
};

static int fail_msg(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/**
 * sampler_check() - validate one request's sampling parameters
 * @p:		the parameters
 * @err:	where to put a one-line message naming the bad parameter, or NULL
 * @errlen:	size of @err
 *
 * Numbers must lie in: temperature [0, 100] and finite, top_p (0, 1],
 * min_p [0, 1], repetition_penalty (0, 10], presence_penalty and
 * frequency_penalty [-2, 2], max_tokens >= 1.  Arrays must be non-NULL when
 * their count is not zero; at most 32 stop strings, each 1 to 256 bytes.
 *
 * Return: 0; -ERANGE for a number out of range; -EINVAL for a NULL @p, a
 * missing array or a malformed stop list.  @err is left alone on success.
 */
int sampler_check(const struct sampler_params *p, char *err, size_t errlen)
{
	uint32_t i;
	size_t len;

	if (!p)
		return fail_msg(err, errlen, -EINVAL, "no sampling parameters");
	if (!isfinite(p->temperature) || p->temperature < 0 || p->temperature > 100)
		return fail_msg(err, errlen, -ERANGE,
				"temperature %g out of range: finite, in [0, 100]",
				(double)p->temperature);
	if (!(p->top_p > 0 && p->top_p <= 1))
		return fail_msg(err, errlen, -ERANGE, "top_p %g out of range (0, 1]",
				(double)p->top_p);
	if (!(p->min_p >= 0 && p->min_p <= 1))
		return fail_msg(err, errlen, -ERANGE, "min_p %g out of range [0, 1]",
				(double)p->min_p);
	if (!(p->repetition_penalty > 0 && p->repetition_penalty <= 10))
		return fail_msg(err, errlen, -ERANGE,
				"repetition_penalty %g out of range (0, 10]",
				(double)p->repetition_penalty);
	if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2))
		return fail_msg(err, errlen, -ERANGE,
				"presence_penalty %g out of range [-2, 2]",
				(double)p->presence_penalty);
	if (!(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
		return fail_msg(err, errlen, -ERANGE,
				"frequency_penalty %g out of range [-2, 2]",
				(double)p->frequency_penalty);
	if (p->max_tokens < 1)
		return fail_msg(err, errlen, -ERANGE, "max_tokens must be at least 1");
	if (p->nr_eos_ids && !p->eos_ids)
		return fail_msg(err, errlen, -EINVAL, "eos_ids is NULL but nr_eos_ids is %u",
				p->nr_eos_ids);
	if (p->nr_stop_ids && !p->stop_ids)
		return fail_msg(err, errlen, -EINVAL, "stop_ids is NULL but nr_stop_ids is %u",
				p->nr_stop_ids);
	if (p->nr_stop && !p->stop)
		return fail_msg(err, errlen, -EINVAL, "stop is NULL but nr_stop is %u",
				p->nr_stop);
	if (p->nr_stop > SAMPLER_MAX_STOP)
		return fail_msg(err, errlen, -EINVAL, "stop: %u strings, at most %u allowed",
				p->nr_stop, SAMPLER_MAX_STOP);
	for (i = 0; i < p->nr_stop; i++) {
		if (!p->stop[i])
			return fail_msg(err, errlen, -EINVAL, "stop string %u is NULL", i);
		len = strnlen(p->stop[i], SAMPLER_MAX_STOP_LEN + 1);
		if (!len)
			return fail_msg(err, errlen, -EINVAL, "stop string %u is empty", i);
		if (len > SAMPLER_MAX_STOP_LEN)
			return fail_msg(err, errlen, -EINVAL,
					"stop string %u longer than %u bytes", i,
					SAMPLER_MAX_STOP_LEN);
	}
	return 0;
}

static void *dup_array(const void *src, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p && n)
		memcpy(p, src, n * size);
	return p;
}

static void kmp_build(struct stop_str *st)
{
	uint32_t i, k = 0;

	st->fail[0] = 0;
	for (i = 1; i < st->len; i++) {
		while (k && st->s[i] != st->s[k])
			k = st->fail[k - 1];
		if (st->s[i] == st->s[k])
			k++;
		st->fail[i] = (uint16_t)k;
	}
}

static int copy_stop(struct sampler *s, const struct sampler_params *p)
{
	size_t total = 0, off = 0, len;
	uint32_t i;

	if (!p->nr_stop)
		return 0;
	for (i = 0; i < p->nr_stop; i++)
		total += strlen(p->stop[i]) + 1;
	s->stop_text = malloc(total);
	s->stop = calloc(p->nr_stop, sizeof(*s->stop));
	if (!s->stop_text || !s->stop)
		return -ENOMEM;
	for (i = 0; i < p->nr_stop; i++) {
		len = strlen(p->stop[i]);
		memcpy(s->stop_text + off, p->stop[i], len + 1);
		s->stop[i].s = s->stop_text + off;
		s->stop[i].len = (uint32_t)len;
		kmp_build(&s->stop[i]);
		off += len + 1;
	}
	s->nr_stop = p->nr_stop;
	return 0;
}

/* Count @token as seen: in the prompt when @prompt, else in the output. */
static void note_token(struct sampler *s, uint32_t token, bool prompt)
{
	struct sampler_pen *e;

	if (!s->pos[token]) {
		s->pen[s->nr_touched] = (struct sampler_pen){ .id = token };
		s->pos[token] = ++s->nr_touched;
	}
	e = &s->pen[s->pos[token] - 1];
	if (prompt)
		e->n |= SAMPLER_PEN_PROMPT;
	else
		e->n++;
}

/**
 * sampler_create() - a sampler for one request
 * @p:		sampling parameters; checked with sampler_check()
 * @vocab_size:	length of a logits row, > 0
 * @prompt:	the prompt's token ids (for the repetition penalty), each
 *		< @vocab_size
 * @nr_prompt:	how many
 *
 * Copies everything it keeps: @p's arrays and strings and @prompt may go
 * away once this returns.  Allocates all the scratch space sampling needs.
 *
 * Return: the sampler, or NULL with errno set: EINVAL or ERANGE (see
 * sampler_check()) for bad arguments, ENOMEM.
 */
struct sampler *sampler_create(const struct sampler_params *p, uint32_t vocab_size,
			       const uint32_t *prompt, uint32_t nr_prompt)
{
	struct sampler *s;
	uint32_t i;
	int err;

	err = sampler_check(p, NULL, 0);
	if (!err && (!vocab_size || (nr_prompt && !prompt)))
		err = -EINVAL;
	for (i = 0; !err && i < nr_prompt; i++)
		if (prompt[i] >= vocab_size)
			err = -EINVAL;
	if (err) {
		errno = -err;
		return NULL;
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->temperature = p->temperature;
	s->top_p = p->top_p;
	s->min_p = p->min_p;
	s->rep = p->repetition_penalty;
	s->pres = p->presence_penalty;
	s->freq = p->frequency_penalty;
	s->top_k = p->top_k;
	s->max_tokens = p->max_tokens;
	s->vocab_size = vocab_size;
	s->ignore_eos = p->ignore_eos;
	s->greedy = p->temperature < SAMPLER_EPS;
	s->penalties = p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
		       p->frequency_penalty != 0.0f;
	s->finish = SAMPLER_CONTINUE;

	rng_seed(s->rng, p->seed);

	s->eos_ids = dup_array(p->eos_ids, p->nr_eos_ids, sizeof(uint32_t));
	s->stop_ids = dup_array(p->stop_ids, p->nr_stop_ids, sizeof(uint32_t));
	if (!s->eos_ids || !s->stop_ids)
		goto nomem;
	s->nr_eos_ids = p->nr_eos_ids;
	s->nr_stop_ids = p->nr_stop_ids;
	if (copy_stop(s, p))
		goto nomem;

	if (s->penalties) {
		s->pos = calloc(vocab_size, sizeof(*s->pos));
		s->pen = calloc(vocab_size, sizeof(*s->pen));
		s->saved = calloc(vocab_size, sizeof(*s->saved));
		if (!s->pos || !s->pen || !s->saved)
			goto nomem;
		for (i = 0; i < nr_prompt; i++)
			note_token(s, prompt[i], true);
	}
	if (!s->greedy) {
		s->cand = calloc(vocab_size, sizeof(*s->cand));
		if (!s->cand)
			goto nomem;
		if (p->top_k && p->top_k <= vocab_size / 16) {
			s->heap = calloc(p->top_k, sizeof(*s->heap));
			if (!s->heap)
				goto nomem;
		}
	}
	s->buf_cap = SAMPLER_BUF_INIT;
	s->buf = malloc(s->buf_cap);
	if (!s->buf)
		goto nomem;
	return s;

nomem:
	sampler_free(s);
	errno = ENOMEM;
	return NULL;
}

/**
 * sampler_free() - free a sampler
 * @s:	the sampler, or NULL
 */
void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->eos_ids);
	free(s->stop_ids);
	free(s->stop);
	free(s->stop_text);
	free(s->pos);
	free(s->pen);
	free(s->saved);
	free(s->cand);
	free(s->heap);
	free(s->buf);
	free(s);
}

/* log(sum(exp(x))) of the raw row, in double. */
static double log_sum_exp(const float *x, uint32_t n)
{
	float m = -INFINITY;
	double sum = 0;
	uint32_t i;

	for (i = 0; i < n; i++)
		if (x[i] > m)
			m = x[i];
	if (m == -INFINITY)
		return m;
	for (i = 0; i < n; i++)
		sum += expf(x[i] - m);
	return (double)m + log(sum);
}

/* Penalise @x in place, keeping the raw values in s->saved. */
static void apply_penalties(struct sampler *s, float *x)
{
	uint32_t j, id, n;
	float v;

	for (j = 0; j < s->nr_touched; j++) {
		id = s->pen[j].id;
		n = s->pen[j].n & ~SAMPLER_PEN_PROMPT;
		v = x[id];
		s->saved[j] = v;
		if (s->rep != 1.0f)
			v = v > 0 ? v / s->rep : v * s->rep;
		if (n) {
			v -= s->freq * (float)n;
			v -= s->pres;
		}
		x[id] = v;
	}
}

static void restore_logits(const struct sampler *s, float *x)
{
	uint32_t j;

	for (j = 0; j < s->nr_touched; j++)
		x[s->pen[j].id] = s->saved[j];
}

/* The index of the largest value, the lowest on ties; 0 when none is > -inf. */
static uint32_t argmax(const float *x, uint32_t n)
{
	float best = -INFINITY;
	uint32_t i, bi = 0;

	for (i = 0; i < n; i++) {
		if (x[i] > best) {
			best = x[i];
			bi = i;
		}
	}
	return bi;
}

static inline void cand_swap(struct cand *a, struct cand *b)
{
	struct cand t = *a;

	*a = *b;
	*b = t;
}

static float median3(float a, float b, float c)
{
	if (a > b) {
		float t = a;

		a = b;
		b = t;
	}
	/* now a <= b */
	if (c <= a)
		return a;
	if (c >= b)
		return b;
	return c;
}

static int cand_desc(const void *a, const void *b)
{
	float x = ((const struct cand *)a)->v, y = ((const struct cand *)b)->v;

	return (x < y) - (x > y);
}

/*
 * Reorder c[0, n) so that c[k - 1] holds the k-th largest value, c[0, k - 1)
 * nothing smaller and c[k, n) nothing larger (Wirth's selection, median of
 * three pivots, falling back to a sort of what is left when the pivots keep
 * going wrong).  0 < k <= n.
 */
static void select_top(struct cand *c, uint32_t n, uint32_t k)
{
	long lo = 0, hi = (long)n - 1, kth = (long)k - 1, i, j;
	int budget = 64;
	float pivot;

	while (lo < hi) {
		if (!budget--) {
			qsort(c + lo, (size_t)(hi - lo + 1), sizeof(*c), cand_desc);
			return;
		}
		pivot = median3(c[lo].v, c[lo + (hi - lo) / 2].v, c[hi].v);
		i = lo;
		j = hi;
		do {
			while (c[i].v > pivot)
				i++;
			while (c[j].v < pivot)
				j--;
			if (i <= j) {
				cand_swap(&c[i], &c[j]);
				i++;
				j--;
			}
		} while (i <= j);
		if (j < kth)
			lo = i;
		if (kth < i)
			hi = j;
	}
}

static uint32_t argmax_cand(const struct cand *c, uint32_t n)
{
	uint32_t i, bi = 0;

	for (i = 1; i < n; i++)
		if (c[i].v > c[bi].v)
			bi = i;
	return bi;
}

/*
 * The smallest prefix of c[0, n) in descending order of weight whose sum
 * reaches @target: moves it to the front, in no particular order, and
 * returns its length (at least 1, at most n).  A quickselect on the mass:
 * expected O(n), and only the last few candidates are ever sorted (or what
 * is left when the pivots keep going wrong).
 */
static uint32_t nucleus(struct cand *c, uint32_t n, double target)
{
	uint32_t lo = 0, hi = n, lt, gt, i, need;
	double acc = 0, up, eq;
	int budget = 64;	/* then sort what is left */
	float pivot;

	if (target <= 0) {
		cand_swap(&c[0], &c[argmax_cand(c, n)]);
		return 1;
	}
	/* [0, lo) is kept and outweighs [lo, hi); acc is its mass, < target */
	while (hi - lo > 16 && budget--) {
		pivot = median3(c[lo].v, c[lo + (hi - lo) / 2].v, c[hi - 1].v);
		lt = lo;
		i = lo;
		gt = hi;
		up = 0;
		while (i < gt) {
			if (c[i].v > pivot) {
				up += c[i].v;
				cand_swap(&c[lt++], &c[i++]);
			} else if (c[i].v < pivot) {
				cand_swap(&c[i], &c[--gt]);
			} else {
				i++;
			}
		}
		/* [lo, lt) > pivot, [lt, gt) == pivot, [gt, hi) < pivot */
		if (acc + up >= target) {
			hi = lt;
			continue;
		}
		acc += up;
		eq = (double)pivot * (gt - lt);
		if (acc + eq >= target) {
			need = (uint32_t)ceil((target - acc) / pivot);
			if (need < 1)
				need = 1;
			if (need > gt - lt)
				need = gt - lt;
			return lt + need;
		}
		acc += eq;
		lo = gt;
	}
	qsort(c + lo, hi - lo, sizeof(*c), cand_desc);
	for (i = lo; i < hi; i++) {
		acc += c[i].v;
		if (acc >= target)
			return i + 1;
	}
	return hi ? hi : 1;
}

/* Push @v onto the min-heap h[0, n). */
static void heap_push(float *h, uint32_t n, float v)
{
	uint32_t i = n, up;

	while (i) {
		up = (i - 1) / 2;
		if (!(h[up] > v))
			break;
		h[i] = h[up];
		i = up;
	}
	h[i] = v;
}

/* Replace the least value of the min-heap h[0, n) with @v. */
static void heap_replace_top(float *h, uint32_t n, float v)
{
	uint32_t i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1] < h[c])
			c++;
		if (!(h[c] < v))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
}

/*
 * Gather the top-k candidates of @x (finite ones only) as (id, logit),
 * keeping the tokens tied with the k-th, as vLLM does.  A small k runs a
 * k-entry heap over the row (the test against its least entry is almost
 * always false, so the pass is cheap) and then gathers everything at least
 * as large as that least entry; a large k gathers all and quickselects.
 */
static uint32_t gather_top_k(struct sampler *s, const float *x)
{
	const uint32_t nv = s->vocab_size, k = s->top_k;
	struct cand *c = s->cand;
	uint32_t i, j, n = 0, hn = 0;
	float v, kth;

	if (s->heap) {
		for (i = 0; i < nv; i++) {
			v = x[i];
			if (!(v > -INFINITY))
				continue;
			if (hn < k)
				heap_push(s->heap, hn++, v);
			else if (v > s->heap[0])
				heap_replace_top(s->heap, k, v);
		}
		kth = hn == k ? s->heap[0] : -INFINITY;
		for (i = 0; i < nv; i++) {
			v = x[i];
			if (v > -INFINITY && v >= kth) {
				c[n].id = i;
				c[n].v = v;
				n++;
			}
		}
		return n;
	}

	for (i = 0; i < nv; i++) {
		v = x[i];
		if (!(v > -INFINITY))
			continue;
		c[n].id = i;
		c[n].v = v;
		n++;
	}
	if (n > k) {
		select_top(c, n, k);
		kth = c[k - 1].v;
		j = k;
		for (i = k; i < n; i++)
			if (c[i].v == kth)
				cand_swap(&c[j++], &c[i]);
		n = j;
	}
	return n;
}

/*
 * The nucleus histogram: NUC_BUCKETS bands of log(p / p_max), each
 * 1 / NUC_SCALE wide, down to NUC_FLOOR.  Tokens below the floor weigh less
 * than e^-32 of the best each, so while the vocabulary has at most
 * NUC_FLOOR_VOCAB tokens their total is below 5e-8 of the mass: less than
 * TOP_P_SLACK, so they can never be part of a nucleus and are not counted.
 */
#define NUC_BUCKETS	64
#define NUC_SCALE	2.0f
#define NUC_FLOOR	(-32.0f)
#define NUC_FLOOR_VOCAB	(1U << 22)

static inline uint32_t nuc_bucket(float d)
{
	float f = -d * NUC_SCALE;

	return f < NUC_BUCKETS - 1 ? (uint32_t)f : NUC_BUCKETS - 1;
}

/*
 * top-p without top-k: one pass for the total mass (stored in @z) and a histogram of the
 * mass by log-probability, which tells which band the nucleus ends in; a
 * second pass gathers only the tokens down to that band, as (id, weight).
 * The nucleus itself is then chosen among them.
 */
static uint32_t gather_nucleus(struct sampler *s, const float *x, float m, float xcut,
			       double *z)
{
	const uint32_t nv = s->vocab_size;
	const float t = s->temperature;
	double mass[NUC_BUCKETS] = { 0 }, sum = 0, target, acc;
	struct cand *c = s->cand;
	uint32_t i, last, n = 0;
	float d, w, xfloor, xlast;

	xfloor = nv <= NUC_FLOOR_VOCAB ? m + t * NUC_FLOOR : -INFINITY;
	if (xcut < xfloor)
		xcut = xfloor;
	for (i = 0; i < nv; i++) {
		if (!(x[i] > xfloor))
			continue;
		d = (x[i] - m) / t;
		w = expf(d);
		sum += w;
		mass[nuc_bucket(d)] += w;
	}
	*z = sum;
	target = sum * ((double)s->top_p - TOP_P_SLACK);
	acc = 0;
	for (last = 0; last < NUC_BUCKETS - 1; last++) {
		acc += mass[last];
		if (acc >= target)
			break;
	}
	/* the bands up to @last, and a little more against rounding */
	if (last < NUC_BUCKETS - 1) {
		xlast = m - t * ((float)(last + 1) / NUC_SCALE + 0.01f);
		if (xcut < xlast)
			xcut = xlast;
	}
	for (i = 0; i < nv; i++) {
		/* xcut >= xfloor: test the rarely passed bound first */
		if (!(x[i] >= xcut) || !(x[i] > xfloor))
			continue;
		d = (x[i] - m) / t;
		w = expf(d);
		if (w > 0) {
			c[n].id = i;
			c[n].v = w;
			n++;
		}
	}
	return n;
}

/*
 * Draw from the penalised row @x with temperature, top-k, top-p and min-p.
 * min-p keeps x >= max + T * log(min_p), that is p >= min_p * p_max.  Every
 * stage keeps a prefix of the same descending order, so the result is the
 * shortest of the three prefixes, whatever the order of the cuts, except
 * that top-p measures mass within the top-k set.
 */
static uint32_t sample_random(struct sampler *s, const float *x)
{
	const uint32_t nv = s->vocab_size;
	const float t = s->temperature;
	const bool topk = s->top_k && s->top_k < nv;
	const bool topp = s->top_p < 1.0f;
	struct cand *c = s->cand;
	uint32_t i, j, n = 0, m_id;
	double z = 0, w_sum, u, acc;
	float m, w, xcut;

	if (topk) {
		/*
		 * min-p keeps a prefix of the same order as top-k, so it can
		 * cut the top-k set afterwards; top-p needs the mass of the
		 * whole top-k set first.
		 */
		n = gather_top_k(s, x);
		if (!n)
			return 0;	/* everything masked */
		m = c[0].v;
		for (i = 1; i < n; i++)
			if (c[i].v > m)
				m = c[i].v;
		xcut = s->min_p > 0 ? m + t * logf(s->min_p) : -INFINITY;
		for (i = 0, j = 0; i < n; i++) {
			w = expf((c[i].v - m) / t);
			z += w;
			if (c[i].v >= xcut && w > 0) {
				c[j].id = c[i].id;
				c[j].v = w;
				j++;
			}
		}
		n = j;
	} else {
		m_id = argmax(x, nv);
		m = x[m_id];
		if (!(m > -INFINITY))
			return m_id;	/* everything masked */
		xcut = s->min_p > 0 ? m + t * logf(s->min_p) : -INFINITY;
		if (topp) {
			n = gather_nucleus(s, x, m, xcut, &z);
		} else {
			for (i = 0; i < nv; i++) {
				if (!(x[i] > -INFINITY) || x[i] < xcut)
					continue;
				w = expf((x[i] - m) / t);
				if (w > 0) {
					c[n].id = i;
					c[n].v = w;
					n++;
				}
			}
		}
	}
	if (!n)
		return 0;	/* cannot happen: the maximum has weight 1 */

	if (topp)
		n = nucleus(c, n, z * ((double)s->top_p - TOP_P_SLACK));

	w_sum = 0;
	for (i = 0; i < n; i++)
		w_sum += c[i].v;
	u = rng_double(s->rng) * w_sum;
	acc = 0;
	for (i = 0; i < n; i++) {
		acc += c[i].v;
		if (acc > u)
			return c[i].id;
	}
	return c[n - 1].id;
}

/**
 * sampler_sample() - choose the next token from one row of logits
 * @s:		the sampler
 * @logits:	vocab_size raw logits; finite or -INFINITY (masked), at least
 *		one finite.  Penalties are applied in place while sampling and
 *		undone before returning, so the row is unchanged afterwards.
 * @logprob:	where to store the log-softmax of the raw row at the chosen
 *		token, or NULL to skip computing it
 *
 * Applies the penalties, then greedy or random choice as the file comment
 * describes.  Does not record the token: call sampler_accept() with it.
 * Allocates nothing.
 *
 * Return: the token id, < vocab_size.
 */
uint32_t sampler_sample(struct sampler *s, float *logits, float *logprob)
{
	double lse = 0;
	uint32_t tok;

	if (logprob)
		lse = log_sum_exp(logits, s->vocab_size);
	if (s->penalties)
		apply_penalties(s, logits);
	if (s->greedy)
		tok = argmax(logits, s->vocab_size);
	else
		tok = sample_random(s, logits);
	if (s->penalties)
		restore_logits(s, logits);
	if (logprob)
		*logprob = (float)((double)logits[tok] - lse);
	return tok;
}

/**
 * sampler_pen_room() - how much of a drawer's penalty room the next draw takes
 * @s:		the sampler
 *
 * Return: with a penalty on, the tokens it touches so far plus one (for
 * one more the drawer may count itself: see &struct backend_sample);
 * else 0.
 */
uint32_t sampler_pen_room(const struct sampler *s)
{
	return s->penalties ? s->nr_touched + 1 : 0;
}

/**
 * sampler_next_draw() - the next draw's settings, for a drawer elsewhere
 * @s:		the sampler
 * @p:		out: temperature (0 = greedy), top_k, top_p, min_p, the draw and
 *		the penalties with the tokens they touch
 *
 * A backend that keeps its logits on a device draws the token itself, as
 * sampler_sample() would from the same row; this gives it what that
 * takes. The draw comes from the request's own generator, so a seeded
 * request stays repeatable on that backend (not token for token across
 * backends: the two sum the weights in other orders and walk the kept
 * tokens in other orders). Greedy takes no draw. A caller that cannot
 * hand a penalised draw's list on (see sampler_pen_room()) asks
 * sampler_sample() instead, without calling this.
 */
void sampler_next_draw(struct sampler *s, struct sampler_draw *p)
{
	double u;

	*p = (struct sampler_draw){ .top_p = 1.0f, .rep = 1.0f };
	if (s->penalties) {
		p->rep = s->rep;
		p->pres = s->pres;
		p->freq = s->freq;
		p->pen = s->pen;
		p->n_pen = s->nr_touched;
	}
	if (s->greedy)
		return;
	u = rng_double(s->rng);
	p->temperature = s->temperature;
	p->top_k = s->top_k < s->vocab_size ? s->top_k : 0;
	p->top_p = s->top_p;
	p->min_p = s->min_p;
	/* A double just below 1 rounds to 1.0f: keep the draw in [0, 1). */
	p->u = (float)u < 1.0f ? (float)u : nextafterf(1.0f, 0.0f);
}

static bool in_list(const uint32_t *ids, uint32_t n, uint32_t token)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == token)
			return true;
	return false;
}

static void stop_reset(struct sampler *s)
{
	uint32_t i;

	for (i = 0; i < s->nr_stop; i++)
		s->stop[i].state = 0;
}

/* Emit everything held back and finish with @finish. */
static int finish_all(struct sampler *s, int finish, size_t len,
		      const char **emit, size_t *emit_len)
{
	*emit = s->buf;
	*emit_len = len;
	s->held_off = 0;
	s->held_len = 0;
	s->finish = finish;
	stop_reset(s);
	return finish;
}

/**
 * sampler_accept() - record a generated token and decide what to emit
 * @s:		the sampler
 * @token:	the token id, < vocab_size
 * @piece:	its text (may be NULL when @len is 0)
 * @len:	bytes of @piece
 * @emit:	set to the text that may be sent to the client now
 * @emit_len:	set to its length (possibly 0)
 *
 * Counts @token for the penalties and for max_tokens.  An end-of-sequence
 * id (unless ignore_eos) or a stop id finishes the request without its
 * text.  Text that might begin a stop string is held back until it is
 * known not to; a completed stop string finishes the request, and neither
 * it nor anything after it is emitted.  Whenever the result is not
 * SAMPLER_CONTINUE, @emit includes all text still held back, so nothing is
 * left for sampler_flush().  Once finished, further calls emit nothing and
 * return the same result.  *@emit points into the sampler's buffer and stays
 * valid until the next call on @s.
 *
 * Return: SAMPLER_CONTINUE, SAMPLER_STOP (end of sequence, stop id or stop
 * string), SAMPLER_LENGTH (max_tokens tokens accepted), -EINVAL for a
 * token outside the vocabulary or a NULL @piece with @len > 0 (nothing is
 * recorded), -ENOMEM.
 */
int sampler_accept(struct sampler *s, uint32_t token, const char *piece, size_t len,
		   const char **emit, size_t *emit_len)
{
	size_t total, b, hold, best_len, cap;
	struct stop_str *st;
	uint32_t i, q;
	char *nb, ch;

	*emit = s->buf;
	*emit_len = 0;
	if (s->finish != SAMPLER_CONTINUE)
		return s->finish;
	if (token >= s->vocab_size || (len && !piece))
		return -EINVAL;
	if (len > SIZE_MAX / 4)
		return -ENOMEM;
	if (s->held_len + len > s->buf_cap) {
		cap = s->buf_cap;
		while (cap < s->held_len + len)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb)
			return -ENOMEM;
		s->buf = nb;
		s->buf_cap = cap;
		*emit = s->buf;
	}
	memmove(s->buf, s->buf + s->held_off, s->held_len);
	s->held_off = 0;

	s->generated++;
	if (s->penalties)
		note_token(s, token, false);
	if ((!s->ignore_eos && in_list(s->eos_ids, s->nr_eos_ids, token)) ||
	    in_list(s->stop_ids, s->nr_stop_ids, token))
		return finish_all(s, SAMPLER_STOP, s->held_len, emit, emit_len);

	if (len)
		memcpy(s->buf + s->held_len, piece, len);
	total = s->held_len + len;

	/* Feed the new bytes to every stop string's matcher. */
	hold = 0;
	for (b = s->held_len; b < total && s->nr_stop; b++) {
		ch = s->buf[b];
		best_len = 0;
		for (i = 0; i < s->nr_stop; i++) {
			st = &s->stop[i];
			q = st->state;
			while (q && st->s[q] != ch)
				q = st->fail[q - 1];
			if (st->s[q] == ch)
				q++;
			if (q == st->len) {
				if (q > best_len)
					best_len = q;
				q = st->fail[q - 1];
			}
			st->state = q;
		}
		if (best_len)
			return finish_all(s, SAMPLER_STOP, b + 1 - best_len, emit, emit_len);
	}
	for (i = 0; i < s->nr_stop; i++)
		if (s->stop[i].state > hold)
			hold = s->stop[i].state;

	if (s->generated >= s->max_tokens)
		return finish_all(s, SAMPLER_LENGTH, total, emit, emit_len);

	*emit_len = total - hold;
	s->held_off = total - hold;
	s->held_len = hold;
	return SAMPLER_CONTINUE;
}

/**
 * sampler_flush() - emit the text held back for possible stop strings
 * @s:		the sampler
 * @emit:	set to the held-back text
 * @emit_len:	set to its length (possibly 0)
 *
 * For a request that ends for a reason the sampler did not see (cancel,
 * error, context full).  Matching starts afresh afterwards.  *@emit stays
 * valid until the next call on @s.
 *
 * Return: 0.
 */
int sampler_flush(struct sampler *s, const char **emit, size_t *emit_len)
{
	*emit = s->buf + s->held_off;
	*emit_len = s->held_len;
	s->held_off += s->held_len;
	s->held_len = 0;
	stop_reset(s);
	return 0;
}
