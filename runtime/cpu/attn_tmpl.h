/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The attention kernel body shared by every path, in GCC vector extensions;
 * the path's file defines VL (4, 8 or 16 floats), TARGET (the function
 * attribute enabling its ISA) and KERNELS_NAME / PATH_NAME, and may define
 * LOAD_F16(p) (VL halves at p as a vf, exactly) with its ISA's conversion
 * and VMAX(a, b) (its maxps), then includes it. With an FMA target GCC
 * contracts a * b + c into one FMA (-std=gnu11). K and V rows are floats or
 * halves (an F16 cache); halves are widened exactly, so the arithmetic is
 * the same on their values. A call of ATTN_WIDEN_MIN queries or more (a
 * prefill tile) widens each chunk once into the work area, which every query
 * then reads as floats; a call of fewer (a decode: one row's few GQA heads)
 * widens as it loads, since widening a chunk for a few readers measured
 * slower than converting it in each.
 *
 * How a query head's output is computed (flash-attention's online softmax):
 * positions are taken in chunks of ATTN_CHUNK from position 0. For a chunk,
 * the scores s = (q . k) * scale, each dot product VL partial sums walking d
 * in order and then added in a fixed tree; the chunk's largest score c; if c
 * beats the running maximum m, the output so far and the running sum are
 * scaled by exp(m - c) and m = c; then p = exp(s - m), the sum (VL lanes)
 * += p, and out += p[j] * v[j] for each position in order. That runs within
 * a span of ATTN_SPAN positions (spans too start at 0); each span's (m, sum,
 * out) is then folded into the total in span order (fold()), and at the end
 * the total is divided by its sum, lanes added in order. A call may instead
 * keep its spans' results apart (&cpu_attn.part) for other calls to take
 * the later spans of the same rows on other threads; the merge then folds
 * them in the same order with the same code, so splitting a long sequence
 * over threads changes no bit either.
 *
 * So a head's result depends only on its query, the K/V rows of positions 0
 * .. its own, and the path: not on which other rows or heads share the call
 * (positions past a row's own are skipped, never weighted by zero), so a
 * sequence gives the same bits alone, in a batch, or fed in any chunks.
 *
 * Work: every row of the call reads a chunk's K and V rows while they are in
 * L1, so a group of GQA heads and a tile of prefill rows read the cache once
 * per tile instead of once per head and row. Up to ATTN_GROUP consecutive
 * queries that see the same positions of a chunk (a row's heads, or whole
 * rows) take their p * V together: each V vector is loaded (and widened)
 * once for the group, and the group's 3 x 4 accumulators keep both FMA pipes
 * busy where one query's 4 would wait on each FMA's latency. Each output is
 * still the same chain of FMAs, so grouping changes no bit.
 */

#define CH		ATTN_CHUNK
#define NV		(CH / VL)
#define ALWAYS_INLINE	inline __attribute__((always_inline))
#define VI		static ALWAYS_INLINE TARGET
#define PRAGMA(x)	_Pragma(#x)
#define UNROLL(n)	PRAGMA(GCC unroll n)

typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));

VI vf vload(const float *p)
{
	vf v;

	memcpy(&v, p, sizeof(v));
	return v;
}

VI void vstore(float *p, vf v)
{
	memcpy(p, &v, sizeof(v));
}

#ifndef LOAD_F16
#define LOAD_F16(p)	load_f16(p)

VI vf load_f16(const uint16_t *p)
{
	vf v;
	int j;

	for (j = 0; j < VL; j++)
		v[j] = fp16_to_fp32(p[j]);
	return v;
}
#endif

/* VL elements of a K or V row from element i; f16 is a constant. */
VI vf kv_load(const void *row, uint32_t i, const bool f16)
{
	if (f16)
		return LOAD_F16((const uint16_t *)row + i);
	return vload((const float *)row + i);
}

VI float kv_get(const void *row, uint32_t i, const bool f16)
{
	if (f16)
		return fp16_to_fp32(((const uint16_t *)row)[i]);
	return ((const float *)row)[i];
}

VI vf vset1(float f)
{
	vf v;
	int j;

	for (j = 0; j < VL; j++)
		v[j] = f;
	return v;
}

/* Lanes of @a where @keep is all ones, of @b elsewhere. */
VI vf vselect(vi keep, vf a, vf b)
{
	return (vf)(((vi)a & keep) | ((vi)b & ~keep));
}

/* a > b ? a : b lanewise (b where either is a NaN), as maxps computes it. */
VI vf vmax(vf a, vf b)
{
#ifdef VMAX
	return VMAX(a, b);
#else
	return vselect(a > b, a, b);
#endif
}

/* The largest lane of @v, by halves (a NaN lane may or may not win). */
VI float vhmax(vf v)
{
#if VL == 16
	const vi h8 = { 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7 };
	const vi h4 = { 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11 };
	const vi h2 = { 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13 };

	v = vmax(v, __builtin_shuffle(v, h8));
	v = vmax(v, __builtin_shuffle(v, h4));
#elif VL == 8
	const vi h4 = { 4, 5, 6, 7, 0, 1, 2, 3 }, h2 = { 2, 3, 0, 1, 6, 7, 4, 5 };

	v = vmax(v, __builtin_shuffle(v, h4));
#else
	const vi h2 = { 2, 3, 0, 1 };
#endif
	v = vmax(v, __builtin_shuffle(v, h2));
	return v[0] > v[1] ? v[0] : v[1];
}

/* x[0 .. n) *= f, each product rounded once as the scalar loop would. */
VI void vscale(float *x, float f, uint32_t n)
{
	uint32_t i;

	for (i = 0; i + VL <= n; i += VL)
		vstore(x + i, vload(x + i) * f);
	for (; i < n; i++)
		x[i] *= f;
}

VI vi viota(void)
{
#if VL == 4
	return (vi){ 0, 1, 2, 3 };
#elif VL == 8
	return (vi){ 0, 1, 2, 3, 4, 5, 6, 7 };
#else
	return (vi){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
#endif
}

/*
 * exp(x) for x <= 0 (Cephes' expf: Cody-Waite reduction by ln 2, a degree-5
 * polynomial; about 1 ulp), exactly 0 below -87.3 (so -inf gives 0, and no
 * result is subnormal) and exactly 1 at 0.
 */
VI vf vexp(vf x)
{
	const vf lo = vset1(-87.3f), magic = vset1(12582912.0f);
	vi keep = x >= lo;
	vf n, r, p, y;
	vi e;

	x = vmax(x, lo);
	n = (x * 1.44269504088896341f + magic) - magic;	/* round to nearest */
	r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	p = vset1(1.9875691500e-4f);
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	y = p * (r * r) + r + 1.0f;
	e = (__builtin_convertvector(n, vi) + 127) << 23;
	return (vf)((vi)(y * (vf)e) & keep);
}

/* Lane i: x or y's lane a[i], plus its lane b[i] (a step of vreduce's tree). */
VI vf pair(vf x, vf y, vi a, vi b)
{
	return __builtin_shuffle(x, y, a) + __builtin_shuffle(x, y, b);
}

/*
 * Lane j of the result: the sum of the lanes of acc[j], in a fixed tree
 * (adjacent lanes first, within 128 bits, then across), the same for every
 * j. Each step's shuffles are single x86 instructions (shufps, vperm2f128).
 */
VI vf vreduce(vf *acc)
{
#if VL == 4
	const vi a = { 0, 2, 4, 6 }, b = { 1, 3, 5, 7 };

	return pair(pair(acc[0], acc[1], a, b), pair(acc[2], acc[3], a, b), a, b);
#elif VL == 8
	const vi a = { 0, 2, 8, 10, 4, 6, 12, 14 }, b = { 1, 3, 9, 11, 5, 7, 13, 15 };
	const vi c = { 0, 1, 2, 3, 8, 9, 10, 11 }, d = { 4, 5, 6, 7, 12, 13, 14, 15 };
	vf t[4], u[2];
	int j;

	UNROLL(4)
	for (j = 0; j < 4; j++)
		t[j] = pair(acc[2 * j], acc[2 * j + 1], a, b);
	u[0] = pair(t[0], t[1], a, b);
	u[1] = pair(t[2], t[3], a, b);
	return pair(u[0], u[1], c, d);
#else
	const vi a = { 0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30 };
	const vi b = { 1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31 };
	const vi c = { 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27 };
	const vi d = { 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31 };
	const vi e = { 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23 };
	const vi f = { 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31 };
	vf t[8], u[4];
	int j;

	UNROLL(8)
	for (j = 0; j < 8; j++)
		t[j] = pair(acc[2 * j], acc[2 * j + 1], a, b);
	UNROLL(4)
	for (j = 0; j < 4; j++)
		u[j] = pair(t[2 * j], t[2 * j + 1], a, b);
	t[0] = pair(u[0], u[1], c, d);
	t[1] = pair(u[2], u[3], c, d);
	return pair(t[0], t[1], e, f);
#endif
}

/*
 * Scores of one query against VL positions: VL partial sums per position
 * over d (the tail past a whole number of vectors zero-padded), reduced.
 */
VI vf scores(const float *q, const void * const *kp, uint32_t d, const bool f16)
{
	vf acc[VL];
	uint32_t i, j;

	UNROLL(16)
	for (j = 0; j < VL; j++)
		acc[j] = vset1(0.0f);
	for (i = 0; i + VL <= d; i += VL) {
		vf qv = vload(q + i);

		UNROLL(16)
		for (j = 0; j < VL; j++)
			acc[j] += qv * kv_load(kp[j], i, f16);
	}
	if (i < d) {
		float qt[VL] = { 0 }, kt[VL] = { 0 };
		uint32_t t;
		vf qv;

		memcpy(qt, q + i, (d - i) * sizeof(float));
		qv = vload(qt);
		for (j = 0; j < VL; j++) {
			for (t = i; t < d; t++)
				kt[t - i] = kv_get(kp[j], t, f16);
			acc[j] += qv * vload(kt);
		}
	}
	return vreduce(acc);
}

/*
 * out[g][o .. o + nb VL) += sum over j < n of p[g CH + j] * v[j][o ..] for
 * the gq queries g of a group; gq and nb constant. Each output is the same
 * chain of FMAs, j in order, for any gq: a group only shares the loads (and
 * the widening) of V and keeps gq * nb chains in flight instead of nb.
 */
VI void pv(float * const *out, const float *p, const void * const *vp, uint32_t o,
	   uint32_t n, const int gq, const int nb, const bool f16)
{
	vf acc[ATTN_GROUP][4];
	uint32_t j;
	int g, w;

	UNROLL(4)
	for (g = 0; g < gq; g++) {
		UNROLL(4)
		for (w = 0; w < nb; w++)
			acc[g][w] = vload(out[g] + o + w * VL);
	}
	for (j = 0; j < n; j++) {
		vf pj[ATTN_GROUP];

		UNROLL(4)
		for (g = 0; g < gq; g++)
			pj[g] = vset1(p[g * CH + j]);
		UNROLL(4)
		for (w = 0; w < nb; w++) {
			vf vv = kv_load(vp[j], o + w * VL, f16);

			UNROLL(4)
			for (g = 0; g < gq; g++)
				acc[g][w] += pj[g] * vv;
		}
	}
	UNROLL(4)
	for (g = 0; g < gq; g++) {
		UNROLL(4)
		for (w = 0; w < nb; w++)
			vstore(out[g] + o + w * VL, acc[g][w]);
	}
}

VI void pv_rows(float * const *out, const float *p, const void * const *vp, uint32_t n,
		uint32_t d, const int gq, const bool f16)
{
	uint32_t o, j;
	int g;

	for (o = 0; o + 4 * VL <= d; o += 4 * VL)
		pv(out, p, vp, o, n, gq, 4, f16);
	for (; o + VL <= d; o += VL)
		pv(out, p, vp, o, n, gq, 1, f16);
	for (; o < d; o++)
		for (g = 0; g < gq; g++)
			for (j = 0; j < n; j++)
				out[g][o] += p[g * CH + j] * kv_get(vp[j], o, f16);
}

/*
 * One query head's scores over one chunk of @n valid positions (kp: CH
 * pointers, those past @n pointing at any readable row), then its online
 * softmax step: the running maximum @m, its output @out rescaled if that
 * grows, the weights p = exp(s - m) (CH floats) and their sum @l.
 */
VI void chunk(const struct cpu_attn *a, const float *q, float *out, float *m, vf *l,
	      const void * const *kp, uint32_t n, float *p, const bool f16)
{
	vf s[NV], top;
	float c;
	uint32_t g;

	for (g = 0; g < NV; g++) {
		vi keep = viota() + (int32_t)(g * VL) < (int32_t)n;

		s[g] = scores(q, kp + g * VL, a->d, f16) * a->scale;
		s[g] = vselect(keep, s[g], vset1(-INFINITY));
	}
	top = s[0];
	for (g = 1; g < NV; g++)
		top = vmax(top, s[g]);
	c = vhmax(top);
	if (c > *m) {
		if (*m != -INFINITY) {
			float alpha = expf(*m - c);

			vscale(out, alpha, a->d);
			*l *= alpha;
		}
		*m = c;
	}
	for (g = 0; g < NV; g++) {
		vf e = vexp(s[g] - *m);

		*l += e;
		vstore(p + g * VL, e);
	}
}

/*
 * Queries q0 .. q0 + gq of the call (row-major: row * heads + head), which
 * all see @n positions of the chunk: each query's softmax step, then their
 * p * V together.
 */
VI void chunk_group(const struct cpu_attn *a, uint32_t q0, const int gq, float *o, float *m,
		    vf *l, const void * const *kp, const void * const *vp, uint32_t n,
		    float *p, const bool f16)
{
	float *out[ATTN_GROUP];
	int g;

	UNROLL(4)
	for (g = 0; g < gq; g++) {
		uint32_t qi = q0 + g, r = qi / a->heads, h = qi % a->heads;

		out[g] = o + (size_t)qi * a->d;
		chunk(a, a->q + r * a->ldq + (size_t)h * a->d, out[g], &m[qi], &l[qi], kp, n,
		      p + g * CH, f16);
	}
	pv_rows(out, p, vp, n, a->d, gq, f16);
}

/*
 * Every query of the call over the chunk at @c0: consecutive queries that
 * see the same positions of it (the heads of a row; whole rows, unless the
 * chunk holds their own positions) go in groups of up to ATTN_GROUP.
 */
VI void chunk_all(const struct cpu_attn *a, uint32_t c0, float *o, float *m, vf *l,
		  const void * const *kp, const void * const *vp, float *p, const bool f16)
{
	uint32_t nq = a->rows * a->heads, qi = 0, n, gq;

	while (qi < nq) {
		n = a->pos + qi / a->heads + 1;		/* the row's positions */
		if (n <= c0) {				/* none in this chunk */
			qi = (qi / a->heads + 1) * a->heads;
			continue;
		}
		n = n - c0 < CH ? n - c0 : CH;
		for (gq = 1; gq < ATTN_GROUP && qi + gq < nq; gq++) {
			uint32_t next = a->pos + (qi + gq) / a->heads + 1 - c0;

			if ((next < CH ? next : CH) != n)
				break;
		}
		switch (gq) {
		case ATTN_GROUP:
			chunk_group(a, qi, ATTN_GROUP, o, m, l, kp, vp, n, p, f16);
			break;
		case 2:
			chunk_group(a, qi, 2, o, m, l, kp, vp, n, p, f16);
			break;
		default:
			chunk_group(a, qi, 1, o, m, l, kp, vp, n, p, f16);
			break;
		}
		qi += gq;
	}
}

/*
 * Folds one span's result (m, l, o) into the running one (M, L, O), spans
 * taken in order from the first. Not inlined: the kernel and the merge of
 * split spans run this same code, so the two give the same bits.
 */
static __attribute__((noinline)) TARGET void fold(float *M, vf *L, float *O, float m,
						   const vf *l, const float *o, uint32_t d)
{
	float top, a, b;
	uint32_t j;

	if (m == -INFINITY)
		return;
	if (*M == -INFINITY) {
		*M = m;
		*L = *l;
		memcpy(O, o, d * sizeof(float));
		return;
	}
	top = m > *M ? m : *M;
	a = expf(*M - top);
	b = expf(m - top);
	for (j = 0; j < d; j++)
		O[j] = O[j] * a + o[j] * b;
	*L = *L * a + *l * b;
	*M = top;
}

/*
 * O /= the sum of L's lanes, in order. M still -inf: no position had a
 * number for a score (a NaN or infinite query or key), and O was never
 * written: zeros then, as a fully masked softmax gives.
 */
static __attribute__((noinline)) TARGET void finish(float *O, float M, const vf *L,
						     uint32_t d)
{
	float sum = 0, inv;
	uint32_t j;

	if (M == -INFINITY) {
		memset(O, 0, d * sizeof(float));
		return;
	}
	for (j = 0; j < VL; j++)
		sum += (*L)[j];
	inv = 1.0f / sum;
	for (j = 0; j < d; j++)
		O[j] *= inv;
}

/* @n halves at @src as floats at @dst, exactly. */
VI void widen(float *dst, const uint16_t *src, uint32_t n)
{
	uint32_t i;

	for (i = 0; i + VL <= n; i += VL)
		vstore(dst + i, LOAD_F16(src + i));
	for (; i < n; i++)
		dst[i] = fp16_to_fp32(src[i]);
}

/*
 * The work area's next 64-byte boundary: vectors that straddle cache lines
 * cost two loads (cpu_attn_work_floats() counts the padding).
 */
static inline float *align16(float *f)
{
	return (float *)(((uintptr_t)f + 63) & ~(uintptr_t)63);
}

/* Floats of one query's span result in &cpu_attn.part: m, l, o. */
#define PART(d)		cpu_attn_part_floats(d)

VI void attn(const struct cpu_attn *a, const bool f16)
{
	uint32_t nq = a->rows * a->heads, end = a->pos + a->rows, c0, j, lo, hi;
	size_t esz = f16 ? 2 : 4;
	vf *l = (vf *)(void *)a->work, *L = l + nq;
	float *m = (float *)(L + nq), *M = m + nq, *o = align16(M + nq);
	float *p = align16(o + (size_t)nq * a->d);
	/* a tile of an F16 cache: the chunk widened once, at kw and vw */
	const bool wide = f16 && nq >= ATTN_WIDEN_MIN;
	float *kw = align16(p + ATTN_GROUP * CH), *vw = kw + CH * a->d;
	const void *kp[CH], *vp[CH];

	lo = a->span_lo * ATTN_SPAN;
	hi = a->span_hi && a->span_hi * ATTN_SPAN < end ? a->span_hi * ATTN_SPAN : end;
	for (j = 0; j < nq; j++) {
		l[j] = L[j] = vset1(0.0f);
		m[j] = M[j] = -INFINITY;
	}
	memset(o, 0, (size_t)nq * a->d * sizeof(float));
	for (c0 = lo; c0 < hi; c0 += CH) {
		uint32_t cn = hi - c0 < CH ? hi - c0 : CH, s0 = c0 - c0 % ATTN_SPAN;

		for (j = 0; j < CH; j++) {
			kp[j] = a->k[c0 + (j < cn ? j : 0)];
			vp[j] = a->v[c0 + (j < cn ? j : 0)];
			if (!wide)
				continue;
			if (j < cn) {
				widen(kw + j * a->d, kp[j], a->d);
				widen(vw + j * a->d, vp[j], a->d);
			}
			kp[j] = kw + (j < cn ? j : 0) * a->d;
			vp[j] = vw + (j < cn ? j : 0) * a->d;
		}
		/* The next chunk's rows: each is a few lines, far from the last. */
		for (j = c0 + CH; j < c0 + 2 * CH && j < hi; j++) {
			uint32_t i;

			for (i = 0; i < a->d * esz; i += 64) {
				__builtin_prefetch((const uint8_t *)a->k[j] + i);
				__builtin_prefetch((const uint8_t *)a->v[j] + i);
			}
		}
		if (wide || !f16)
			chunk_all(a, c0, o, m, l, kp, vp, p, false);
		else
			chunk_all(a, c0, o, m, l, kp, vp, p, true);
		if (c0 + CH < hi && (c0 + CH) % ATTN_SPAN)
			continue;
		/* A span ends: each query's result for it is folded in or kept. */
		for (j = 0; j < nq; j++) {
			float *oj = o + (size_t)j * a->d;

			if (a->part) {
				float *dst = a->part + ((size_t)j * a->part_spans + s0 / ATTN_SPAN) *
						       PART(a->d);

				dst[0] = m[j];
				vstore(dst + 1, l[j]);
				memcpy(dst + 1 + ATTN_MAX_LANES, oj, a->d * sizeof(float));
			} else {
				fold(&M[j], &L[j], a->out + j / a->heads * a->ldo +
				     (size_t)(j % a->heads) * a->d, m[j], &l[j], oj, a->d);
			}
			l[j] = vset1(0.0f);
			m[j] = -INFINITY;
			memset(oj, 0, a->d * sizeof(float));
		}
	}
	if (a->part)
		return;
	for (j = 0; j < nq; j++)
		finish(a->out + j / a->heads * a->ldo + (size_t)(j % a->heads) * a->d, M[j], &L[j],
		       a->d);
}

/* Two copies of the body, each with the row type a constant. */
static TARGET void attn_run(const struct cpu_attn *a)
{
	if (a->f16)
		attn(a, true);
	else
		attn(a, false);
}

static TARGET void attn_merge(const struct cpu_attn *a)
{
	uint32_t nq = a->rows * a->heads, j, s;

	for (j = 0; j < nq; j++) {
		float *out = a->out + j / a->heads * a->ldo + (size_t)(j % a->heads) * a->d;
		float M = -INFINITY;
		vf L = vset1(0.0f);

		for (s = 0; s < a->part_spans; s++) {
			const float *src = a->part + ((size_t)j * a->part_spans + s) * PART(a->d);
			vf l = vload(src + 1);

			fold(&M, &L, out, src[0], &l, src + 1 + ATTN_MAX_LANES, a->d);
		}
		finish(out, M, &L, a->d);
	}
}

const struct attn_kernels KERNELS_NAME = {
	.name	= PATH_NAME,
	.lanes	= VL,
	.run	= attn_run,
	.merge	= attn_merge,
};
