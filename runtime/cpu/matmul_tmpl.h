/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The matrix kernel body shared by every path, written once over a small
 * vector vocabulary that each path's file defines before including it:
 *
 *   vec, VL				vector type and its float lanes (8 or 16)
 *   TARGET				the function attribute enabling the ISA
 *   NR1, NR2, NR3, NR4		W rows per micro-tile for 1..4 rows of x
 *   v_zero() v_set1(f) v_load(p)	F32 vectors
 *   v_fma(a, b, c)			a * b + c
 *   v_mul(a, b) v_sub(a, b)		one rounding each
 *   v_keep(v)				an optimisation barrier (no FMA contraction)
 *   v_hsum(v)				sum of lanes, in a fixed order
 *   v_load_f16(p) v_load_bf16(p)	VL halves / bfloat16s at byte p, as floats
 *   v_load_i8(p)			VL int8 as floats
 *   v_load_u4(p, hi)			the low (hi = 0) or high nibbles of VL bytes
 *   s_f16(p)				one half at byte p, as float
 *
 * How the product is computed, for every weight type: each vector of W is
 * dequantised in registers to exactly the float dequantize() gives (d * q for
 * Q8_0, d * (q - 8) for Q4_0, d * sc * q - dmin * m for Q4_K, in the same
 * operations and roundings; F16 and BF16 widen exactly), then multiplied into
 * VL float partial sums per (x row, W row) with one FMA per vector, walking k
 * in order; the VL sums are added in a fixed order at the end. Activations
 * stay float: no 8-bit quantisation of x, so every type is as accurate as F32
 * weights (errors of float accumulation only, ~1e-7 relative).
 *
 * Consequences the tests check:
 *   - a quantised W gives bit for bit the result of F32 W = dequantize(W);
 *   - y[m][n] depends only on x row m, W row n and the path: not on how many
 *     rows x has, which micro-tile computed it, nor on the thread split.
 *
 * Blocking: a micro-tile holds mr x nr vector accumulators (mr <= 4 rows of
 * x, nr rows of W) in registers over all of k; W rows of a cache tile (about
 * TILE_BYTES) are reused from cache for every group of 4 rows of x, so W
 * streams from memory once per call whatever m is. Past the last W row a
 * micro-tile re-reads that row and drops the results.
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
 * y[i][j] for i < mr, j < nv (nv <= nr): rows i of x, rows j of W.
 * Constant type, mr and nr after inlining: the accumulators live in registers.
 */
static ALWAYS_INLINE TARGET void tile(const int type, const int mr, const int nr,
				      const uint8_t *w, size_t rb, size_t nv,
				      const float *x, size_t ldx, float *y, size_t ldy, size_t k)
{
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

	case GGML_TYPE_Q4_K:
		for (b = 0; b < k / 256; b++) {
			float dd[NR_MAX], dm[NR_MAX];

			UNROLL(8)
			for (j = 0; j < nr; j++) {
				dd[j] = s_f16(wp[j] + b * 144);
				dm[j] = s_f16(wp[j] + b * 144 + 2);
			}
			for (s = 0; s < 8; s++) {
				/* sub-block s: 32 nibbles, low (s even) or high (s odd)
				 * halves of bytes 32 * (s / 2) ... of the quants */
				const size_t qoff = b * 144 + 16 + 32 * (size_t)(s / 2);
				vec d1[NR_MAX], m1[NR_MAX];

				UNROLL(8)
				for (j = 0; j < nr; j++) {
					unsigned int sc, mn;

					q4k_sm(s, wp[j] + b * 144 + 4, &sc, &mn);
					d1[j] = v_set1(dd[j] * (float)sc);
					m1[j] = v_set1(dm[j] * (float)mn);
				}
				UNROLL(4)
				for (v = 0; v < 32 / VL; v++) {
					UNROLL(8)
					for (j = 0; j < nr; j++) {
						vec q = v_load_u4(wp[j] + qoff + v * VL, s & 1);
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
	}

	UNROLL(4)
	for (i = 0; i < mr; i++) {
		UNROLL(8)
		for (j = 0; j < nr; j++)
			if ((size_t)j < nv)
				y[(size_t)i * ldy + j] = v_hsum(acc[i][j]);
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

#define DEFINE_ROWS(name, type)						\
static TARGET void name(const uint8_t *w, size_t rb, size_t n_rows,	\
			const float *x, size_t ldx, size_t m, size_t k,	\
			float *y, size_t ldy)				\
{									\
	ROWS_PROLOGUE();						\
	rows(type, w, rb, n_rows, x, ldx, m, k, y, ldy);		\
}

DEFINE_ROWS(rows_f32, GGML_TYPE_F32)
DEFINE_ROWS(rows_f16, GGML_TYPE_F16)
DEFINE_ROWS(rows_bf16, GGML_TYPE_BF16)
DEFINE_ROWS(rows_q8_0, GGML_TYPE_Q8_0)
DEFINE_ROWS(rows_q4_0, GGML_TYPE_Q4_0)
DEFINE_ROWS(rows_q4_k, GGML_TYPE_Q4_K)

#define MATMUL_KERNELS(path)						\
{									\
	.name = path, .lanes = VL,					\
	.f32 = rows_f32, .f16 = rows_f16, .bf16 = rows_bf16,		\
	.q8_0 = rows_q8_0, .q4_0 = rows_q4_0, .q4_k = rows_q4_k,	\
}
