/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The matrix kernel body shared by every path, written once over a small
 * vector vocabulary that each path's file defines before including it:
 *
 *   vec, VL				vector type and its float lanes (8 or 16)
 *   TARGET				the function attribute enabling the ISA
 *   NR1, NR2, NR3, NR4		W rows per micro-tile for 1..4 rows of x
 *   PMR, PNR				x rows by W rows of a packed micro-tile
 *   v_zero() v_set1(f) v_load(p)	F32 vectors
 *   v_store(p, v)			a vector to p
 *   v_fma(a, b, c)			a * b + c
 *   v_mul(a, b) v_sub(a, b)		one rounding each
 *   v_keep(v)				an optimisation barrier (no FMA contraction)
 *   v_hsum(v)				sum of lanes, in a fixed order
 *   v_load_f16(p) v_load_bf16(p)	VL halves / bfloat16s at byte p, as floats
 *   v_load_i8(p)			VL int8 as floats
 *   v_load_u4(p, hi)			the low (hi = 0) or high nibbles of VL bytes
 *   v_load_u4h(p, hi, h, sh, mask)	those nibbles with (h[i] >> sh) & mask above
 *					them (bits 4, 5): Q5_K's and Q6_K's weights
 *   v_load_u4b(p, hi, qh, e)		those nibbles with bit e + i of qh above
 *					them: Q5_0's and Q5_1's weights
 *   s_f16(p)				one half at byte p, as float
 *
 * How the product is computed, for every weight type: each vector of W is
 * dequantised in registers to exactly the float dequantize() gives (d * q for
 * Q8_0, d * (q - 8) for Q4_0, d * (q - 16) for Q5_0, d * q + m for Q4_1
 * and Q5_1, d * sc * q - dmin * m for Q4_K and Q5_K, d * sc * (q - 32) for
 * Q6_K, in the same operations and roundings; F16 and BF16 widen exactly),
 * then multiplied into VL float partial sums per (x row, W row) with one FMA
 * per vector, walking k in order; the VL sums are added in a fixed order at
 * the end. Activations
 * stay float: no 8-bit quantisation of x, so every type is as accurate as F32
 * weights (errors of float accumulation only, ~1e-7 relative).
 *
 * Consequences the tests check:
 *   - a quantised W gives bit for bit the result of F32 W = dequantize(W);
 *   - y[m][n] depends only on x row m, W row n and the path: not on how many
 *     rows x has, which micro-tile computed it, nor on the thread split.
 *
 * Blocking, below PACK_MIN_M rows of x (decode): a micro-tile holds mr x nr
 * vector accumulators (mr <= 4 rows of x, nr rows of W) in registers over
 * all of k, dequantising W as it goes; W rows of a cache tile (about
 * TILE_BYTES) are reused from cache for every group of 4 rows of x, so W
 * streams from memory once per call whatever m is. Past the last W row a
 * micro-tile re-reads that row and drops the results. From PACK_MIN_M rows
 * (PACK_MIN_M_HALF for F16 and BF16; batches, prefill) the packed path below
 * dequantises each W element once per call instead of once per group of 4
 * rows, in the same values and the same order of operations, so it gives
 * the same bits.
 */

#define MR		4
#define NR_MAX		8
#define TILE_BYTES	(128 * 1024)
#define TILE_ALIGN	24		/* a multiple of every NR */

#define ALWAYS_INLINE	inline __attribute__((always_inline))
#define PRAGMA(x)	_Pragma(#x)
#define UNROLL(n)	PRAGMA(GCC unroll n)

/* The 6-bit scale and min of sub-block j of a Q4_K block (ggml's layout). */
static ALWAYS_INLINE TARGET void q4k_sm(int j, const uint8_t *q, unsigned int *sc,
					unsigned int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/*
 * Q4_1, Q5_0, Q5_1: bytes of a block of 32, whether it has a min, and
 * where its nibbles start (after d, the min, Q5's 32-bit qh).
 */
static ALWAYS_INLINE int q32_bytes(const int type)
{
	return type == GGML_TYPE_Q4_1 ? 20 : type == GGML_TYPE_Q5_0 ? 22 : 24;
}

static ALWAYS_INLINE bool q32_min(const int type)
{
	return type != GGML_TYPE_Q5_0;
}

static ALWAYS_INLINE int q32_quants(const int type)
{
	return type == GGML_TYPE_Q4_1 ? 4 : type == GGML_TYPE_Q5_0 ? 6 : 8;
}

/*
 * Weights @e .. @e + VL - 1 of the Q4_1, Q5_0 or Q5_1 block at @blk, as the
 * small integers q (Q5_0: q - 16). As Q4_0: 0-15 are the low nibbles of
 * bytes 0-15, 16-31 the high ones; Q5's fifth bit of weight e is bit e of qh.
 */
static ALWAYS_INLINE TARGET vec q32_load(const int type, const uint8_t *blk, int e)
{
	const uint8_t *q = blk + q32_quants(type) + e % 16, *h = q - e % 16 - 4;
	uint32_t qh;

	if (type == GGML_TYPE_Q4_1)
		return v_load_u4(q, e / 16);
	qh = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
	if (type == GGML_TYPE_Q5_0)
		return v_sub(v_load_u4b(q, e / 16, qh, e), v_set1(16.0f));
	return v_load_u4b(q, e / 16, qh, e);
}

/*
 * Weights @e .. @e + VL - 1 of that block as dequantize() has them, from its
 * d and (Q4_1, Q5_1) its negated min @nm: d q less -m is d q + m, rounded
 * once each.
 */
static ALWAYS_INLINE TARGET vec q32_vec(const int type, const uint8_t *blk, int e, vec d, vec nm)
{
	vec q = q32_load(type, blk, e);

	return q32_min(type) ? v_sub(v_keep(v_mul(d, q)), nm) : v_mul(d, q);
}

/* Bytes of a Q4_K or Q5_K block, and where its nibbles start in it. */
static ALWAYS_INLINE int kq_bytes(const int type)
{
	return type == GGML_TYPE_Q5_K ? 176 : 144;
}

static ALWAYS_INLINE int kq_quants(const int type)
{
	return type == GGML_TYPE_Q5_K ? 48 : 16;
}

/*
 * VL weights of sub-block @s of the Q4_K or Q5_K block at @blk, from its
 * nibbles at byte @qoff (the block's) and weight @l of the sub-block on: the
 * nibble as it is, or with Q5_K's fifth bit (bit @s of qh[@l]) above it.
 */
static ALWAYS_INLINE TARGET vec kq_load(const int type, const uint8_t *blk, size_t qoff,
					int l, int s)
{
	if (type == GGML_TYPE_Q5_K)
		return v_load_u4h(blk + qoff, s & 1, blk + 16 + l, s, 1);
	return v_load_u4(blk + qoff, s & 1);
}

/*
 * Vector @v of Q6_K sub-block @s (16 weights) of the block at @blk, as
 * q - 32. Weight 16 s + t is weight 32 g + l of half n (s = 8 n + 2 g + l /
 * 16): nibble g / 2 of ql[64 n + 32 (g % 2) + l], bits 2g, 2g + 1 of
 * qh[32 n + l] above it.
 */
static ALWAYS_INLINE TARGET vec q6k_load(const uint8_t *blk, int s, int v)
{
	const int n = s / 8, g = (s % 8) / 2, l = 16 * (s % 2) + v * VL;

	return v_sub(v_load_u4h(blk + 64 * n + 32 * (g % 2) + l, g / 2, blk + 128 + 32 * n + l,
				2 * g, 3), v_set1(32.0f));
}

/* One weight of a dense type, for the zero-padded tail of k. */
static ALWAYS_INLINE TARGET float dense_elem(const int type, const uint8_t *row, size_t i)
{
	uint32_t u;
	float f;

	switch (type) {
	case GGML_TYPE_F16:
		return s_f16(row + 2 * i);
	case GGML_TYPE_BF16:
		u = (uint32_t)(row[2 * i] | row[2 * i + 1] << 8) << 16;
		memcpy(&f, &u, 4);
		return f;
	default:
		memcpy(&f, row + 4 * i, 4);
		return f;
	}
}

static ALWAYS_INLINE TARGET vec dense_vec(const int type, const uint8_t *row, size_t i)
{
	switch (type) {
	case GGML_TYPE_F16:
		return v_load_f16(row + 2 * i);
	case GGML_TYPE_BF16:
		return v_load_bf16(row + 2 * i);
	default:
		return v_load((const float *)(const void *)(row + 4 * i));
	}
}

/*
 * Bytes @off of the next micro-tile's W rows, which follow these @ahead bytes
 * on. In a model of width 768 a row is a few hundred bytes (816 in Q8_0),
 * too short for the hardware prefetcher to find each row's stream before it
 * ends: without this, M=1 Q8_0 at K = 768 ran at a third of the rate it
 * reached at K = 4096 (bench_kernels --k 768, on an AVX-512 EPYC).
 */
static ALWAYS_INLINE TARGET void read_ahead(const int nr, const uint8_t *const *wp,
					    size_t ahead, size_t off)
{
	int j;

	UNROLL(8)
	for (j = 0; j < nr; j++)
		__builtin_prefetch(wp[j] + ahead + off);
}

/*
 * y[i][j] for i < mr, j < nv (nv <= nr): rows i of x, rows j of W.
 * Constant type, mr and nr after inlining: the accumulators live in registers.
 */
static ALWAYS_INLINE TARGET void tile(const int type, const int mr, const int nr,
				      const uint8_t *w, size_t rb, size_t nv,
				      const float *x, size_t ldx, float *y, size_t ldy, size_t k)
{
	const size_t ahead = (size_t)nr * rb;
	const uint8_t *wp[NR_MAX];
	const float *xp[MR];
	vec acc[MR][NR_MAX];
	size_t kk, b;
	int i, j, v, s;

	UNROLL(8)
	for (j = 0; j < nr; j++)
		wp[j] = w + ((size_t)j < nv ? (size_t)j : nv - 1) * rb;
	UNROLL(4)
	for (i = 0; i < mr; i++) {
		xp[i] = x + (size_t)i * ldx;
		UNROLL(8)
		for (j = 0; j < nr; j++)
			acc[i][j] = v_zero();
	}

	switch (type) {
	case GGML_TYPE_F32:
	case GGML_TYPE_F16:
	case GGML_TYPE_BF16:
		for (kk = 0; kk + VL <= k; kk += VL) {
			read_ahead(nr, wp, ahead, kk * (type == GGML_TYPE_F32 ? 4 : 2));
			UNROLL(8)
			for (j = 0; j < nr; j++) {
				vec wv = dense_vec(type, wp[j], kk);

				UNROLL(4)
				for (i = 0; i < mr; i++)
					acc[i][j] = v_fma(wv, v_load(xp[i] + kk), acc[i][j]);
			}
		}
		if (kk < k) {
			/* the last k % VL, zero-padded to a vector */
			float xt[MR][VL], wt[VL];
			size_t rest = k - kk, t;

			UNROLL(4)
			for (i = 0; i < mr; i++) {
				for (t = 0; t < VL; t++)
					xt[i][t] = t < rest ? xp[i][kk + t] : 0.0f;
			}
			UNROLL(8)
			for (j = 0; j < nr; j++) {
				vec wv;

				for (t = 0; t < VL; t++)
					wt[t] = t < rest ? dense_elem(type, wp[j], kk + t) : 0.0f;
				wv = v_load(wt);
				UNROLL(4)
				for (i = 0; i < mr; i++)
					acc[i][j] = v_fma(wv, v_load(xt[i]), acc[i][j]);
			}
		}
		break;

	case GGML_TYPE_Q8_0:
		for (b = 0; b < k / 32; b++) {
			vec d[NR_MAX];

			read_ahead(nr, wp, ahead, b * 34);
			UNROLL(8)
			for (j = 0; j < nr; j++)
				d[j] = v_set1(s_f16(wp[j] + b * 34));
			UNROLL(4)
			for (v = 0; v < 32 / VL; v++) {
				UNROLL(8)
				for (j = 0; j < nr; j++) {
					vec wv = v_mul(d[j], v_load_i8(wp[j] + b * 34 + 2 + v * VL));

					UNROLL(4)
					for (i = 0; i < mr; i++)
						acc[i][j] = v_fma(wv, v_load(xp[i] + b * 32 + v * VL),
								  acc[i][j]);
				}
			}
		}
		break;

	case GGML_TYPE_Q4_0:
		for (b = 0; b < k / 32; b++) {
			vec d[NR_MAX];

			read_ahead(nr, wp, ahead, b * 18);
			UNROLL(8)
			for (j = 0; j < nr; j++)
				d[j] = v_set1(s_f16(wp[j] + b * 18));
			UNROLL(4)
			for (v = 0; v < 32 / VL; v++) {
				/* elements 0-15 are low nibbles of bytes 0-15, 16-31 high */
				const int off = (v * VL) % 16, hi = (v * VL) / 16;

				UNROLL(8)
				for (j = 0; j < nr; j++) {
					vec q = v_load_u4(wp[j] + b * 18 + 2 + off, hi);
					vec wv = v_mul(d[j], v_sub(q, v_set1(8.0f)));

					UNROLL(4)
					for (i = 0; i < mr; i++)
						acc[i][j] = v_fma(wv, v_load(xp[i] + b * 32 + v * VL),
								  acc[i][j]);
				}
			}
		}
		break;

	case GGML_TYPE_Q4_1:
	case GGML_TYPE_Q5_0:
	case GGML_TYPE_Q5_1:
		for (b = 0; b < k / 32; b++) {
			const size_t bo = b * q32_bytes(type);
			vec d[NR_MAX], m[NR_MAX];

			read_ahead(nr, wp, ahead, bo);
			UNROLL(8)
			for (j = 0; j < nr; j++) {
				d[j] = v_set1(s_f16(wp[j] + bo));
				m[j] = v_set1(q32_min(type) ? -s_f16(wp[j] + bo + 2) : 0.0f);
			}
			UNROLL(4)
			for (v = 0; v < 32 / VL; v++) {
				UNROLL(8)
				for (j = 0; j < nr; j++) {
					vec wv = q32_vec(type, wp[j] + bo, v * VL, d[j], m[j]);

					UNROLL(4)
					for (i = 0; i < mr; i++)
						acc[i][j] = v_fma(wv, v_load(xp[i] + b * 32 + v * VL),
								  acc[i][j]);
				}
			}
		}
		break;

	case GGML_TYPE_Q4_K:
	case GGML_TYPE_Q5_K:
		for (b = 0; b < k / 256; b++) {
			const size_t bo = b * kq_bytes(type);
			float dd[NR_MAX], dm[NR_MAX];

			UNROLL(8)
			for (j = 0; j < nr; j++) {
				dd[j] = s_f16(wp[j] + bo);
				dm[j] = s_f16(wp[j] + bo + 2);
			}
			for (s = 0; s < 8; s++) {
				/* sub-block s: 32 nibbles, low (s even) or high (s odd)
				 * halves of bytes 32 * (s / 2) ... of the quants; Q5_K's
				 * fifth bits are bit s of its 32 qh bytes */
				const size_t qoff = kq_quants(type) + 32 * (size_t)(s / 2);
				vec d1[NR_MAX], m1[NR_MAX];

				read_ahead(nr, wp, ahead, bo + s * kq_bytes(type) / 8);
				UNROLL(8)
				for (j = 0; j < nr; j++) {
					unsigned int sc, mn;

					q4k_sm(s, wp[j] + bo + 4, &sc, &mn);
					d1[j] = v_set1(dd[j] * (float)sc);
					m1[j] = v_set1(dm[j] * (float)mn);
				}
				UNROLL(4)
				for (v = 0; v < 32 / VL; v++) {
					UNROLL(8)
					for (j = 0; j < nr; j++) {
						vec q = kq_load(type, wp[j] + bo, qoff + v * VL, v * VL,
								s);
						vec wv = v_sub(v_keep(v_mul(d1[j], q)), m1[j]);

						UNROLL(4)
						for (i = 0; i < mr; i++)
							acc[i][j] = v_fma(wv, v_load(xp[i] + b * 256 +
										 s * 32 + v * VL),
									  acc[i][j]);
					}
				}
			}
		}
		break;

	case GGML_TYPE_Q6_K:
		for (b = 0; b < k / 256; b++) {
			float dd[NR_MAX];

			UNROLL(8)
			for (j = 0; j < nr; j++)
				dd[j] = s_f16(wp[j] + b * 210 + 208);
			for (s = 0; s < 16; s++) {
				vec d1[NR_MAX];

				read_ahead(nr, wp, ahead, b * 210 + s * 13);
				UNROLL(8)
				for (j = 0; j < nr; j++)
					d1[j] = v_set1(dd[j] * (float)(int8_t)wp[j][b * 210 + 192 + s]);
				UNROLL(4)
				for (v = 0; v < 16 / VL; v++) {
					UNROLL(8)
					for (j = 0; j < nr; j++) {
						vec wv = v_mul(d1[j], q6k_load(wp[j] + b * 210, s, v));

						UNROLL(4)
						for (i = 0; i < mr; i++)
							acc[i][j] = v_fma(wv, v_load(xp[i] + b * 256 +
										 s * 16 + v * VL),
									  acc[i][j]);
					}
				}
			}
		}
		break;
	}

	UNROLL(4)
	for (i = 0; i < mr; i++) {
		UNROLL(8)
		for (j = 0; j < nr; j++)
			if ((size_t)j < nv)
				y[(size_t)i * ldy + j] = v_hsum(acc[i][j]);
	}
}

/*
 * The packed path, for PACK_MIN_M rows of x or more: a panel of up to
 * PANEL_ROWS W rows is dequantised KBLK columns at a time into a float buffer
 * (exactly the values the registers get above, zero-padded past k like the
 * F32 tail), and that buffer, in L1, is reused for every row of x. Each
 * micro-tile of PMR x rows by PNR W rows then needs no conversion, and holds
 * more accumulators than the in-register tiles can beside their
 * dequantisation. Between K blocks the accumulators wait in memory: each is
 * the same chain of FMAs in the same k order as in tile(), so y is bit for
 * bit what tile() gives, and still depends only on its x row and W row.
 */
/*
 * Sizes: a 36 KB panel (12 rows of 768 floats) stays in L1 or close to it,
 * and with K blocks this long a model of width 768 keeps its accumulators in
 * registers over all of k (measured best of 256 x 24, 512 x 12, 768 x 12 and
 * 1024 x 6 on Zen 3). Panel and accumulators live on the stack: 36 KB plus
 * PACK_CHUNK * PANEL_ROWS vectors (24 KB on AVX2). The packed path pays from 5 rows
 * of x: up to 4 the in-register tiles dequantise each W vector once too.
 */
#define KBLK		768		/* a multiple of every block size and VL */
#define PANEL_ROWS	12		/* a multiple of every PNR */
#define PACK_CHUNK	64		/* x rows whose accumulators are kept */
#define PACK_MIN_M	(MR + 1)
/*
 * F16 and BF16 widen in one instruction, so a path with registers enough
 * for wide in-register tiles may keep them on that path for more rows
 * (the bits are the same either way).
 */
#ifndef PACK_MIN_M_HALF
#define PACK_MIN_M_HALF	PACK_MIN_M
#endif

/*
 * The bytes the packed path's next unpack will read, fetched a few lines at
 * a time between the micro-tiles of this panel. The unpack of a panel is a
 * burst of reads and the compute on it touches no memory, so the hardware
 * prefetcher stalls between panels; a burst of software prefetches during
 * the unpack fills the L1 miss buffers and stalls it instead. Spread over
 * the compute, the next panel arrives while the FMA units work.
 */
struct ahead {
	const uint8_t	*p;		/* first row */
	size_t		rb;		/* row stride */
	size_t		len;		/* bytes per row, rounded up to lines */
	size_t		rows;
	size_t		row, off;	/* the next line to fetch */
};

static ALWAYS_INLINE TARGET void ahead_fetch(struct ahead *a, size_t lines)
{
	for (; lines && a->row < a->rows; lines--) {
		__builtin_prefetch(a->p + a->row * a->rb + a->off);
		a->off += 64;
		if (a->off >= a->len) {
			a->off = 0;
			a->row++;
		}
	}
}

/* Columns k0 .. k0 + kc of one W row as floats at dst, zero-padded to VL. */
static ALWAYS_INLINE TARGET void unpack(const int type, const uint8_t *row, size_t k0,
				       size_t kc, float *dst)
{
	size_t kk, b, t;
	int v, s;

	switch (type) {
	case GGML_TYPE_F32:
	case GGML_TYPE_F16:
	case GGML_TYPE_BF16:
		for (kk = 0; kk + VL <= kc; kk += VL)
			v_store(dst + kk, dense_vec(type, row, k0 + kk));
		if (kk < kc) {
			for (t = 0; t < VL; t++)
				dst[kk + t] = kk + t < kc ? dense_elem(type, row, k0 + kk + t) :
				      0.0f;
		}
		break;

	case GGML_TYPE_Q8_0:
		for (b = k0 / 32; b < (k0 + kc) / 32; b++, dst += 32) {
			vec d = v_set1(s_f16(row + b * 34));

			UNROLL(4)
			for (v = 0; v < 32 / VL; v++)
				v_store(dst + v * VL, v_mul(d, v_load_i8(row + b * 34 + 2 + v * VL)));
		}
		break;

	case GGML_TYPE_Q4_0:
		for (b = k0 / 32; b < (k0 + kc) / 32; b++, dst += 32) {
			vec d = v_set1(s_f16(row + b * 18));

			UNROLL(4)
			for (v = 0; v < 32 / VL; v++) {
				const int off = (v * VL) % 16, hi = (v * VL) / 16;
				vec q = v_load_u4(row + b * 18 + 2 + off, hi);

				v_store(dst + v * VL, v_mul(d, v_sub(q, v_set1(8.0f))));
			}
		}
		break;

	case GGML_TYPE_Q4_1:
	case GGML_TYPE_Q5_0:
	case GGML_TYPE_Q5_1:
		for (b = k0 / 32; b < (k0 + kc) / 32; b++, dst += 32) {
			const uint8_t *blk = row + b * q32_bytes(type);
			vec d = v_set1(s_f16(blk)), m = v_set1(q32_min(type) ? -s_f16(blk + 2) : 0.0f);

			UNROLL(4)
			for (v = 0; v < 32 / VL; v++)
				v_store(dst + v * VL, q32_vec(type, blk, v * VL, d, m));
		}
		break;

	case GGML_TYPE_Q4_K:
	case GGML_TYPE_Q5_K:
		for (b = k0 / 256; b < (k0 + kc) / 256; b++) {
			const uint8_t *blk = row + b * kq_bytes(type);
			float dd = s_f16(blk), dm = s_f16(blk + 2);

			for (s = 0; s < 8; s++, dst += 32) {
				const size_t qoff = kq_quants(type) + 32 * (size_t)(s / 2);
				unsigned int sc, mn;
				vec d1, m1;

				q4k_sm(s, blk + 4, &sc, &mn);
				d1 = v_set1(dd * (float)sc);
				m1 = v_set1(dm * (float)mn);
				UNROLL(4)
				for (v = 0; v < 32 / VL; v++) {
					vec q = kq_load(type, blk, qoff + v * VL, v * VL, s);

					v_store(dst + v * VL, v_sub(v_keep(v_mul(d1, q)), m1));
				}
			}
		}
		break;

	case GGML_TYPE_Q6_K:
		for (b = k0 / 256; b < (k0 + kc) / 256; b++) {
			const uint8_t *blk = row + b * 210;
			float dd = s_f16(blk + 208);

			for (s = 0; s < 16; s++, dst += 16) {
				vec d1 = v_set1(dd * (float)(int8_t)blk[192 + s]);

				UNROLL(4)
				for (v = 0; v < 16 / VL; v++)
					v_store(dst + v * VL, v_mul(d1, q6k_load(blk, s, v)));
			}
		}
		break;
	}
}

/*
 * acc[i][j] (i < mr, j < nr; rows PANEL_ROWS vectors apart) over columns
 * 0 .. kc of the panel wb (rows KBLK floats apart, zero-padded) and of x;
 * from zero if @first; if @last, the sums go to y[i][j] for j < nv.
 */
static ALWAYS_INLINE TARGET void ptile(const int mr, const int nr, const float *wb, size_t nv,
				       const float *x, size_t ldx, size_t kc, vec *acc,
				       bool first, bool last, float *y, size_t ldy)
{
	vec a[PMR][PNR];
	size_t kk;
	int i, j;

	UNROLL(8)
	for (i = 0; i < mr; i++) {
		UNROLL(8)
		for (j = 0; j < nr; j++)
			a[i][j] = first ? v_zero() : acc[i * PANEL_ROWS + j];
	}
	for (kk = 0; kk + VL <= kc; kk += VL) {
		vec wv[PNR];

		UNROLL(8)
		for (j = 0; j < nr; j++)
			wv[j] = v_load(wb + (size_t)j * KBLK + kk);
		UNROLL(8)
		for (i = 0; i < mr; i++) {
			vec xv = v_load(x + (size_t)i * ldx + kk);

			UNROLL(8)
			for (j = 0; j < nr; j++)
				a[i][j] = v_fma(wv[j], xv, a[i][j]);
		}
	}
	if (kk < kc) {
		/* the last k % VL, zero-padded as tile() pads it */
		float xt[VL];
		size_t t;

		UNROLL(8)
		for (i = 0; i < mr; i++) {
			for (t = 0; t < VL; t++)
				xt[t] = kk + t < kc ? x[(size_t)i * ldx + kk + t] : 0.0f;
			UNROLL(8)
			for (j = 0; j < nr; j++)
				a[i][j] = v_fma(v_load(wb + (size_t)j * KBLK + kk), v_load(xt),
						a[i][j]);
		}
	}
	UNROLL(8)
	for (i = 0; i < mr; i++) {
		UNROLL(8)
		for (j = 0; j < nr; j++) {
			if (!last)
				acc[i * PANEL_ROWS + j] = a[i][j];
			else if ((size_t)j < nv)
				y[(size_t)i * ldy + j] = v_hsum(a[i][j]);
		}
	}
}

#define PMICRO(MRV)							\
	for (j = 0; j < np; j += PNR) {					\
		ahead_fetch(&ah, per);					\
		ptile(MRV, PNR, wb + j * KBLK, np - j < PNR ? np - j : PNR,	\
		      xm, ldx, kc, acc + i * PANEL_ROWS + j, first, last,	\
		      ym + j, ldy);					\
	}

static ALWAYS_INLINE TARGET void rows_packed(const int type, const uint8_t *w, size_t rb,
					     size_t n_rows, const float *x, size_t ldx,
					     size_t m, size_t k, float *y, size_t ldy)
{
	float wb[PANEL_ROWS * KBLK] __attribute__((aligned(64)));
	vec acc[PACK_CHUNK * PANEL_ROWS];
	size_t n0, m0, k0, i, j;

	for (n0 = 0; n0 < n_rows; n0 += PANEL_ROWS) {
		size_t np = n_rows - n0 < PANEL_ROWS ? n_rows - n0 : PANEL_ROWS;
		/* whole micro-tiles of rows: past np, repeat the last row */
		size_t npad = (np + PNR - 1) / PNR * PNR;

		for (m0 = 0; m0 < m; m0 += PACK_CHUNK) {
			size_t mc = m - m0 < PACK_CHUNK ? m - m0 : PACK_CHUNK;

			for (k0 = 0; k0 < k; k0 += KBLK) {
				size_t kc = k - k0 < KBLK ? k - k0 : KBLK;
				bool first = !k0, last = k0 + kc == k;

				/* the next K block of these rows, or the next panel's first */
				const bool more = k0 + kc < k;
				size_t nk = more ? k - k0 - kc : k, per;
				struct ahead ah = {
					.p = w + (more ? n0 : n0 + PANEL_ROWS) * rb +
					     (more ? (k0 + kc) * rb / k : 0),
					.rb = rb, .rows = PANEL_ROWS,
				};

				/* a row need not start on a line: one more */
				ah.len = ((nk < KBLK ? nk : KBLK) * rb / k + 127) / 64 * 64;
				per = (ah.rows * ah.len / 64) /
				      (((mc + PMR - 1) / PMR) * (npad / PNR)) + 1;
				/* one K block is still there from the last chunk */
				if (!m0 || k > KBLK) {
					for (j = 0; j < npad; j++)
						unpack(type, w + (n0 + (j < np ? j : np - 1)) * rb,
						       k0, kc, wb + j * KBLK);
				}
				for (i = 0; i < mc; i += PMR) {
					const float *xm = x + (m0 + i) * ldx + k0;
					float *ym = y + (m0 + i) * ldy + n0;

					switch (mc - i < PMR ? mc - i : PMR) {
					case 1:
						PMICRO(1);
						break;
					case 2:
						PMICRO(2);
						break;
					case 3:
						PMICRO(3);
						break;
					default:
						PMICRO(PMR);
						break;
					}
				}
			}
		}
	}
}

/* W rows per cache tile: about TILE_BYTES, a multiple of TILE_ALIGN. */
static size_t tile_rows(size_t rb)
{
	size_t t = TILE_BYTES / rb;

	t -= t % TILE_ALIGN;
	return t < TILE_ALIGN ? TILE_ALIGN : t;
}

#define MICRO(MRV, NRV)							\
	for (j = 0; j < nt; j += NRV)					\
		tile(type, MRV, NRV, wn + j * rb, rb,			\
		     nt - j < NRV ? nt - j : NRV, xm, ldx, ym + j, ldy, k)

static ALWAYS_INLINE TARGET void rows(const int type, const uint8_t *w, size_t rb,
				      size_t n_rows, const float *x, size_t ldx, size_t m,
				      size_t k, float *y, size_t ldy)
{
	size_t tr = tile_rows(rb), n0, m0, j;


	for (n0 = 0; n0 < n_rows; n0 += tr) {
		size_t nt = n_rows - n0 < tr ? n_rows - n0 : tr;
		const uint8_t *wn = w + n0 * rb;

		for (m0 = 0; m0 < m; m0 += MR) {
			const float *xm = x + m0 * ldx;
			float *ym = y + m0 * ldy + n0;

			switch (m - m0 < MR ? m - m0 : MR) {
			case 1:
				MICRO(1, NR1);
				break;
			case 2:
				MICRO(2, NR2);
				break;
			case 3:
				MICRO(3, NR3);
				break;
			default:
				MICRO(4, NR4);
				break;
			}
		}
	}
}

/*
 * The packed path in a function of its own: its 60 KB or more of stack and
 * its code stay out of the decode path's frame and loops.
 */
#define DEFINE_ROWS(name, type)						\
static __attribute__((noinline)) TARGET void				\
name##_packed(const uint8_t *w, size_t rb, size_t n_rows,		\
	      const float *x, size_t ldx, size_t m, size_t k,		\
	      float *y, size_t ldy)					\
{									\
	rows_packed(type, w, rb, n_rows, x, ldx, m, k, y, ldy);		\
}									\
									\
static TARGET void name(const uint8_t *w, size_t rb, size_t n_rows,	\
			const float *x, size_t ldx, size_t m, size_t k,	\
			float *y, size_t ldy)				\
{									\
	ROWS_PROLOGUE();						\
	if (m >= (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ?	\
		  PACK_MIN_M_HALF : PACK_MIN_M))			\
		name##_packed(w, rb, n_rows, x, ldx, m, k, y, ldy);	\
	else								\
		rows(type, w, rb, n_rows, x, ldx, m, k, y, ldy);	\
}

DEFINE_ROWS(rows_f32, GGML_TYPE_F32)
DEFINE_ROWS(rows_f16, GGML_TYPE_F16)
DEFINE_ROWS(rows_bf16, GGML_TYPE_BF16)
DEFINE_ROWS(rows_q8_0, GGML_TYPE_Q8_0)
DEFINE_ROWS(rows_q4_0, GGML_TYPE_Q4_0)
DEFINE_ROWS(rows_q4_1, GGML_TYPE_Q4_1)
DEFINE_ROWS(rows_q5_0, GGML_TYPE_Q5_0)
DEFINE_ROWS(rows_q5_1, GGML_TYPE_Q5_1)
DEFINE_ROWS(rows_q4_k, GGML_TYPE_Q4_K)
DEFINE_ROWS(rows_q5_k, GGML_TYPE_Q5_K)
DEFINE_ROWS(rows_q6_k, GGML_TYPE_Q6_K)

#define MATMUL_KERNELS(path)						\
{									\
	.name = path, .lanes = VL,					\
	.f32 = rows_f32, .f16 = rows_f16, .bf16 = rows_bf16,		\
	.q8_0 = rows_q8_0, .q4_0 = rows_q4_0, .q4_k = rows_q4_k,	\
	.q4_1 = rows_q4_1, .q5_0 = rows_q5_0, .q5_1 = rows_q5_1,	\
	.q5_k = rows_q5_k, .q6_k = rows_q6_k,				\
}
