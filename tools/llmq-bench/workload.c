// SPDX-License-Identifier: GPL-2.0
/*
 * The workload: which prompts are sent, how long each answer must be, and
 * when each request arrives.
 *
 * The ring carries text, not token ids, so a random prompt of N tokens is
 * made of random common English words, and the words a token is worth are
 * measured on the runtime's own tokenizer first: three probes (the first
 * half of the word list, the second half, the whole list) give the fixed
 * cost of a prompt (BOS, a leading space marker) and the mean tokens per
 * word, whatever the model.  Since every word of the list is in the probes
 * exactly once, the mean is the exact expectation for uniformly drawn
 * words, not a sample of it.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define FILE_MAX_PROMPTS	1000000

static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "you", "that", "it", "he",
	"was", "for", "on", "are", "as", "with", "his", "they", "at", "be",
	"this", "have", "from", "or", "one", "had", "by", "word", "but", "not",
	"what", "all", "were", "we", "when", "your", "can", "said", "there", "use",
	"an", "each", "which", "she", "do", "how", "their", "if", "will", "up",
	"other", "about", "out", "many", "then", "them", "these", "so", "some", "her",
	"would", "make", "like", "him", "into", "time", "has", "look", "two", "more",
	"write", "go", "see", "number", "no", "way", "could", "people", "my", "than",
	"first", "water", "been", "call", "who", "oil", "its", "now", "find", "long",
	"down", "day", "did", "get", "come", "made", "may", "part", "over", "new",
	"sound", "take", "only", "little", "work", "know", "place", "year", "live", "me",
	"back", "give", "most", "very", "after", "thing", "our", "just", "name", "good",
	"sentence", "man", "think", "say", "great", "where", "help", "through", "much",
	"before", "line", "right", "too", "mean", "old", "any", "same", "tell", "boy",
	"follow", "came", "want", "show", "also", "around", "form", "three", "small",
	"set", "put", "end", "does", "another", "well", "large", "must", "big", "even",
	"such", "because", "turn", "here", "why", "ask", "went", "men", "read", "need",
	"land", "different", "home", "us", "move", "try", "kind", "hand", "picture",
	"again", "change", "off", "play", "spell", "air", "away", "animal", "house",
	"point", "page", "letter", "mother", "answer", "found", "study", "still", "learn",
	"should", "world", "high", "every", "near", "add", "food", "between", "own",
	"below", "country", "plant", "last", "school", "father", "keep", "tree", "never",
};

#define NR_WORDS	(sizeof(words) / sizeof(words[0]))

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/**
 * bench_rng_seed() - start a xoshiro256** stream
 * @r:		the generator
 * @seed:	any value; the same seed gives the same stream
 */
void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/**
 * bench_rng_next() - the next 64 random bits
 * @r:		the generator
 *
 * Return: the bits.
 */
uint64_t bench_rng_next(struct bench_rng *r)
{
	uint64_t res = rotl(r->s[1] * 5, 7) * 9, t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = rotl(r->s[3], 45);
	return res;
}

/**
 * bench_rng_uniform() - a uniform double
 * @r:		the generator
 *
 * Return: a value in [0, 1).
 */
double bench_rng_uniform(struct bench_rng *r)
{
	return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53;
}

/* A uniform integer in [lo, hi]. */
static unsigned long rng_between(struct bench_rng *r, unsigned long lo, unsigned long hi)
{
	return lo + (unsigned long)(bench_rng_uniform(r) * (double)(hi - lo + 1));
}

static double rng_normal(struct bench_rng *r)
{
	double u1 = 1.0 - bench_rng_uniform(r), u2 = bench_rng_uniform(r);

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/**
 * bench_rng_gamma() - a gamma-distributed value (Marsaglia and Tsang)
 * @r:		the generator
 * @shape:	k > 0; 1 gives the exponential distribution
 * @scale:	theta > 0; the mean is k * theta
 *
 * Return: the value.
 */
double bench_rng_gamma(struct bench_rng *r, double shape, double scale)
{
	double d, c, x, v, u;

	if (shape < 1.0) {
		/* Boost: G(k) = G(k + 1) * U^(1/k). */
		u = 1.0 - bench_rng_uniform(r);
		return bench_rng_gamma(r, shape + 1.0, scale) * pow(u, 1.0 / shape);
	}
	d = shape - 1.0 / 3.0;
	c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		do {
			x = rng_normal(r);
			v = 1.0 + c * x;
		} while (v <= 0);
		v = v * v * v;
		u = 1.0 - bench_rng_uniform(r);
		if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
			return d * v * scale;
	}
}

/*
 * Append @nr words (each after a space unless @buf is empty) to @buf: drawn
 * from @r, or the word list in order from @first when @r is NULL.  Frees
 * @buf and returns NULL when memory runs out.
 */
static char *append_words(char *buf, size_t *len, size_t nr, struct bench_rng *r,
			  size_t first)
{
	size_t i, need = *len, at = *len, *idx;
	const char *w;
	char *nb;

	/* Pick the words first so the buffer is sized once. */
	idx = malloc((nr + 1) * sizeof(*idx));
	if (!idx) {
		free(buf);
		return NULL;
	}
	for (i = 0; i < nr; i++) {
		idx[i] = r ? (size_t)(bench_rng_next(r) % NR_WORDS) : (first + i) % NR_WORDS;
		need += strlen(words[idx[i]]) + 1;
	}
	nb = realloc(buf, need + 1);
	if (!nb) {
		free(buf);
		free(idx);
		return NULL;
	}
	for (i = 0; i < nr; i++) {
		w = words[idx[i]];
		if (at)
			nb[at++] = ' ';
		memcpy(nb + at, w, strlen(w));
		at += strlen(w);
	}
	nb[at] = '\0';
	*len = at;
	free(idx);
	return nb;
}

/**
 * bench_calib_prompt() - one of the three calibration prompts
 * @which:	0: the first half of the word list, 1: the second, 2: all of it
 *
 * Return: a malloc'd NUL-terminated prompt, or NULL without memory.
 */
char *bench_calib_prompt(int which)
{
	size_t half = NR_WORDS / 2, len = 0;

	switch (which) {
	case 0:
		return append_words(NULL, &len, half, NULL, 0);
	case 1:
		return append_words(NULL, &len, NR_WORDS - half, NULL, half);
	default:
		return append_words(NULL, &len, NR_WORDS, NULL, 0);
	}
}

/**
 * bench_calib_solve() - tokens per word from the three probes' token counts
 * @c:		probe_tokens[] filled in by the caller; the rest is computed
 *
 * With T(prompt) = overhead + the sum of its words' tokens, the two halves
 * pay the overhead twice and the whole list once.
 *
 * Return: 0, or -EINVAL when the counts make no sense (no token per word).
 */
int bench_calib_solve(struct bench_calib *c)
{
	double t0 = c->probe_tokens[0], t1 = c->probe_tokens[1], t2 = c->probe_tokens[2];

	c->overhead = t0 + t1 - t2;
	c->per_word = (t2 - c->overhead) / (double)NR_WORDS;
	if (!(c->per_word > 0))
		return -EINVAL;
	if (c->overhead < 0)
		c->overhead = 0;	/* merges across halves; the words carry it */
	return 0;
}

static void range_of(unsigned long len, double ratio, unsigned long *lo, unsigned long *hi)
{
	*lo = (unsigned long)((double)len * (1.0 - ratio));
	*hi = (unsigned long)((double)len * (1.0 + ratio));
	if (*lo < 1)
		*lo = 1;
	if (*hi < *lo)
		*hi = *lo;
}

/**
 * bench_workload_random() - prompts of random words, of calibrated length
 * @o:		--random-* lengths, --seed
 * @c:		the calibration
 * @n:		prompts to make
 * @out:	set to an array of @n prompts (bench_workload_free())
 *
 * Input and output lengths are drawn uniformly from
 * [len * (1 - ratio), len * (1 + ratio)] as vLLM's random dataset does;
 * every prompt starts with the same --random-prefix-len tokens of words.
 *
 * Return: 0, or -ENOMEM.
 */
int bench_workload_random(const struct bench_opts *o, const struct bench_calib *c, size_t n,
			  struct bench_prompt **out)
{
	unsigned long in_lo, in_hi, out_lo, out_hi, in;
	struct bench_prompt *p;
	struct bench_rng r;
	char *prefix = NULL;
	size_t i, plen = 0, pw = 0, len;
	long bw;

	bench_rng_seed(&r, o->seed);
	p = calloc(n ? n : 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (o->prefix_len) {
		pw = (size_t)lround((double)o->prefix_len / c->per_word);
		if (pw < 1)
			pw = 1;
		prefix = append_words(NULL, &plen, pw, &r, 0);
		if (!prefix)
			goto nomem;
	}
	range_of(o->input_len, o->range_ratio, &in_lo, &in_hi);
	range_of(o->output_len, o->range_ratio, &out_lo, &out_hi);
	for (i = 0; i < n; i++) {
		in = rng_between(&r, in_lo, in_hi);
		p[i].max_tokens = (uint32_t)rng_between(&r, out_lo, out_hi);
		/* The overhead is paid once per prompt, prefix or not. */
		bw = lround(((double)(o->prefix_len + in) - c->overhead) / c->per_word) - (long)pw;
		if (bw < 1)
			bw = 1;
		len = plen;
		p[i].text = prefix ? strdup(prefix) : NULL;
		if (prefix && !p[i].text)
			goto nomem;
		p[i].text = append_words(p[i].text, &len, (size_t)bw, &r, 0);
		if (!p[i].text)
			goto nomem;
		p[i].len = (uint32_t)len;
	}
	free(prefix);
	*out = p;
	return 0;
nomem:
	free(prefix);
	bench_workload_free(p, n);
	return -ENOMEM;
}

/* One JSONL line into @p; a message in @why if it is not a prompt. */
static int parse_line(const struct bench_opts *o, const char *line, size_t len,
		      struct bench_prompt *p, char *why, size_t why_len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj, *pv, *v;
	enum json_tokener_error jerr;
	size_t end;
	int64_t ol;
	int err = -EINVAL;

	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	if (!obj || jerr != json_tokener_success) {
		snprintf(why, why_len, "is not JSON (%s)", jerr == json_tokener_continue ?
			 "it ends too early" : json_tokener_error_desc(jerr));
		goto out;
	}
	end = json_tokener_get_parse_end(tok);
	if (end < len && strspn(line + end, " \t") != len - end) {
		snprintf(why, why_len, "has text after the JSON value");
		goto out;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(why, why_len, "is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(obj, "prompt", &pv) ||
	    !json_object_is_type(pv, json_type_string) || !json_object_get_string_len(pv)) {
		snprintf(why, why_len, "has no non-empty \"prompt\" string");
		goto out;
	}
	p->len = (uint32_t)json_object_get_string_len(pv);
	p->max_tokens = (uint32_t)o->output_len;
	if (json_object_object_get_ex(obj, "output_len", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		ol = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
		if (ol < 1 || ol > BENCH_MAX_OUTPUT_LEN) {
			snprintf(why, why_len, "\"output_len\" is not an integer in 1..%d",
				 BENCH_MAX_OUTPUT_LEN);
			goto out;
		}
		p->max_tokens = (uint32_t)ol;
	}
	p->text = malloc(p->len + 1);
	if (!p->text) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(p->text, json_object_get_string(pv), p->len + 1);
	err = 0;
out:
	json_object_put(obj);
	json_tokener_free(tok);
	return err;
}

/**
 * bench_workload_file() - prompts from a JSONL file
 * @o:		--dataset-path; --random-output-len for lines without output_len
 * @n:		prompts wanted (0: one per line); set to the number made
 * @out:	set to the prompts (bench_workload_free())
 * @why:	what is wrong with the file, on -EINVAL or -errno
 * @why_len:	its size
 *
 * Each non-blank line is {"prompt": "...", "output_len": N}, output_len
 * optional, other keys ignored.  Asking for more prompts than there are
 * lines goes round the file again.
 *
 * Return: 0, -EINVAL for a malformed file, -ENOMEM, or -errno from reading.
 */
int bench_workload_file(const struct bench_opts *o, size_t *n, struct bench_prompt **out,
			char *why, size_t why_len)
{
	struct bench_prompt *lines = NULL, *p, *np;
	size_t nr = 0, cap = 0, lineno = 0, i, want, llen = 0;
	char *line = NULL, msg[160];
	ssize_t got;
	FILE *f;
	int err = 0;

	f = fopen(o->dataset_path, "r");
	if (!f) {
		err = -errno;
		snprintf(why, why_len, "cannot be opened: %s", strerror(errno));
		return err;
	}
	while ((got = getline(&line, &llen, f)) >= 0) {
		lineno++;
		while (got && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = '\0';
		if (strspn(line, " \t") == (size_t)got)
			continue;
		if (nr == FILE_MAX_PROMPTS) {
			snprintf(why, why_len, "has more than %d prompts", FILE_MAX_PROMPTS);
			err = -EINVAL;
			goto out;
		}
		if (nr == cap) {
			cap = cap ? cap * 2 : 64;
			np = realloc(lines, cap * sizeof(*np));
			if (!np) {
				err = -ENOMEM;
				goto out;
			}
			lines = np;
		}
		err = parse_line(o, line, (size_t)got, &lines[nr], msg, sizeof(msg));
		if (err) {
			if (err == -EINVAL)
				snprintf(why, why_len, "line %zu %s", lineno, msg);
			goto out;
		}
		nr++;
	}
	if (ferror(f)) {
		err = -EIO;
		snprintf(why, why_len, "cannot be read: %s", strerror(EIO));
		goto out;
	}
	if (!nr) {
		snprintf(why, why_len, "has no prompts");
		err = -EINVAL;
		goto out;
	}
	want = *n ? *n : nr;
	p = calloc(want, sizeof(*p));
	if (!p) {
		err = -ENOMEM;
		goto out;
	}
	/* Copies, so that a file shorter than the run can go round again. */
	for (i = 0; i < want; i++) {
		p[i] = lines[i % nr];
		p[i].text = strdup(lines[i % nr].text);
		if (!p[i].text) {
			bench_workload_free(p, i);
			err = -ENOMEM;
			goto out;
		}
	}
	*n = want;
	*out = p;
out:
	for (i = 0; i < nr; i++)
		free(lines[i].text);
	free(lines);
	free(line);
	fclose(f);
	return err;
}

/**
 * bench_workload_free() - free prompts from bench_workload_*()
 * @p:		the array, or NULL
 * @n:		its length
 */
void bench_workload_free(struct bench_prompt *p, size_t n)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < n; i++)
		free(p[i].text);
	free(p);
}

/**
 * bench_arrivals() - when each request of an open-loop run is due
 * @reqs:	the requests; arrival_ns is set
 * @n:		how many
 * @rate:	mean requests per second; INFINITY sends all at once
 * @burstiness:	gamma shape: 1 is a Poisson process, lower is burstier
 * @seed:	--seed
 *
 * As vLLM: the first request at 0, then gaps drawn from a gamma
 * distribution of shape @burstiness and mean 1 / @rate.
 */
void bench_arrivals(struct bench_req *reqs, size_t n, double rate, double burstiness,
		    uint64_t seed)
{
	struct bench_rng r;
	double t = 0;
	size_t i;

	/* A stream of its own: the prompts stay the same whatever the rate. */
	bench_rng_seed(&r, seed ^ 0x61727269766c73ULL);
	for (i = 0; i < n; i++) {
		reqs[i].arrival_ns = (uint64_t)(t * 1e9);
		if (isfinite(rate))
			t += bench_rng_gamma(&r, burstiness, 1.0 / (rate * burstiness));
	}
}
