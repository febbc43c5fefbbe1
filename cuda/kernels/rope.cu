// SPDX-License-Identifier: GPL-2.0
/*
 * Rotary position embedding of q and k heads in place, LLaMA's adjacent
 * pairs or NeoX's halves, as runtime/cpu/ops.c's cpu_rope() computes it.
 */
#include "common.cuh"

/*
 * One thread per (row t, head h, pair i): head h < n_head_q is a q head at
 * column h * head_dim, later ones k heads from column k_off. The angle and
 * the rotation are computed in double and rounded once, like the CPU's, so
 * both agree to a float rounding.
 */
static __global__ void rope_kernel(struct cuk_rope r)
{
	const uint32_t half = r.n_rot / 2, heads = r.n_head_q + r.n_head_k;
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / ((uint64_t)heads * half);
	const uint32_t h = (uint32_t)(e / half % heads), i = (uint32_t)(e % half);
	uint32_t i0, i1;
	double th, c, sn, a, b;
	float *x;

	if (t >= r.n_rows)
		return;
	x = r.x + t * r.ld + (h < r.n_head_q ? (uint64_t)h * r.head_dim :
			      r.k_off + (uint64_t)(h - r.n_head_q) * r.head_dim);
	i0 = r.neox ? i : 2 * i;
	i1 = r.neox ? i + half : 2 * i + 1;
	th = (double)r.pos[t] * r.inv_freq[i];
	sincos(th, &sn, &c);
	a = x[i0];
	b = x[i1];
	x[i0] = (float)(a * c - b * sn);
	x[i1] = (float)(a * sn + b * c);
}

/**
 * cuk_rope() - rotate each row's q and k heads by its position
 * @s:		the stream
 * @r:		what to rotate (see &struct cuk_rope)
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_rope(cudaStream_t s, const struct cuk_rope *r)
{
	const uint64_t n = (uint64_t)r->n_rows * (r->n_head_q + r->n_head_k) * (r->n_rot / 2);

	if (!n)
		return cudaSuccess;
	CUK_LAUNCH(rope_kernel, cuk_blocks(n, 256), 256, s)(*r);
	return cudaGetLastError();
}
