/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nvcuda::wmma (CUDA's mma.h) for the CUDA emulator, in the shapes and types
 * cuda/kernels/ uses: 16x16x16 fragments, BF16 for matrix_a and matrix_b,
 * FP32 for the accumulator.
 *
 * As on a GPU a fragment is spread over the warp, 8 elements per lane, in
 * an order CUDA leaves unspecified. Here it is a random one, drawn per
 * kind of fragment from the emulator's seed, so a kernel that assumes the
 * hardware's order reads the wrong elements and fails its test, while one
 * that only pairs elements of fragments of the same kind (x[i] of one with
 * x[i] of another) is right whatever the order. Loads, stores, and
 * mma_sync() are warp-collective, as on the hardware: every lane must
 * reach them together (a lane that does not deadlocks the emulated warp,
 * which stops the test), and mma_sync() reads the other lanes' elements.
 * Pointers must be 256-bit aligned and leading dimensions a multiple of 16
 * bytes, as CUDA requires.
 */
#ifndef LLMQ_CUDA_EMU_WMMA_H
#define LLMQ_CUDA_EMU_WMMA_H

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>

/* Kinds of fragment, each with its own element order. */
enum { EMU_FRAG_A_ROW, EMU_FRAG_A_COL, EMU_FRAG_B_ROW, EMU_FRAG_B_COL, EMU_FRAG_ACC,
       EMU_FRAG_KINDS };

/*
 * The element order of @kind: map[lane * 8 + i] is the matrix element
 * (row * 16 + column) that x[i] of that lane holds; inv is its inverse.
 */
const uint8_t *cuk_emu_frag_map(int kind);
const uint8_t *cuk_emu_frag_inv(int kind);
/* The calling thread's lane, and a barrier of its warp (all 32 lanes). */
unsigned int cuk_emu_lane(void);
void cuk_emu_warp_sync(void);
/* Two pointers per lane of the calling thread's warp, for mma_sync(). */
const void **cuk_emu_warp_slots(void);
/* Stop the test unless @p and @ldm elements of @size bytes suit wmma. */
void cuk_emu_wmma_check(const void *p, unsigned int ldm, size_t size);

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

/* A fragment's kind (see cuda_emu_frag_map()); col: column-major in memory. */
template <class Use, class Layout>
struct emu_kind {
	static const bool col = std::is_same<Layout, col_major>::value;
	static const int kind = std::is_same<Use, accumulator>::value ? EMU_FRAG_ACC :
				(std::is_same<Use, matrix_a>::value ? EMU_FRAG_A_ROW :
				 EMU_FRAG_B_ROW) + col;
};

/* Where element @e (row * 16 + column) lies in memory of leading dimension @ldm. */
static inline size_t emu_at(unsigned int e, unsigned int ldm, bool col)
{
	return col ? (size_t)(e % 16) * ldm + e / 16 : (size_t)(e / 16) * ldm + e % 16;
}

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
	static_assert(M == 16 && N == 16 && K == 16, "the emulator has 16x16x16 only");
	static const int num_elements = 8;
	T x[8];
};

typedef fragment<accumulator, 16, 16, 16, float> emu_acc;

template <class Use, class T, class L>
static inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, T v)
{
	for (int i = 0; i < 8; i++)
		f.x[i] = v;
}

/* matrix_a is (row, k), matrix_b (k, column); either row- or column-major. */
template <class Use, class L>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, L> &f,
				    const __nv_bfloat16 *p, unsigned int ldm)
{
	const uint8_t *map = cuk_emu_frag_map(emu_kind<Use, L>::kind);
	unsigned int lane = cuk_emu_lane();

	cuk_emu_wmma_check(p, ldm, sizeof(*p));
	cuk_emu_warp_sync();
	for (int i = 0; i < 8; i++)
		f.x[i] = p[emu_at(map[lane * 8 + i], ldm, emu_kind<Use, L>::col)];
	cuk_emu_warp_sync();
}

static inline void load_matrix_sync(emu_acc &f, const float *p, unsigned int ldm, layout_t l)
{
	const uint8_t *map = cuk_emu_frag_map(EMU_FRAG_ACC);
	unsigned int lane = cuk_emu_lane();

	cuk_emu_wmma_check(p, ldm, sizeof(*p));
	cuk_emu_warp_sync();
	for (int i = 0; i < 8; i++)
		f.x[i] = p[emu_at(map[lane * 8 + i], ldm, l == mem_col_major)];
	cuk_emu_warp_sync();
}

static inline void store_matrix_sync(float *p, const emu_acc &f, unsigned int ldm, layout_t l)
{
	const uint8_t *map = cuk_emu_frag_map(EMU_FRAG_ACC);
	unsigned int lane = cuk_emu_lane();

	cuk_emu_wmma_check(p, ldm, sizeof(*p));
	cuk_emu_warp_sync();
	for (int i = 0; i < 8; i++)
		p[emu_at(map[lane * 8 + i], ldm, l == mem_col_major)] = f.x[i];
	cuk_emu_warp_sync();
}

/*
 * d = a b + c over the warp: each lane computes its own elements of d from
 * every lane's a, b and c, summing the 16 products in FP32 (the hardware
 * sums in an order of its own). Every lane has read before any writes, so
 * d may be c.
 */
template <class LA, class LB>
static inline void mma_sync(emu_acc &d,
			    const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
			    const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
			    const emu_acc &c)
{
	typedef fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> frag_a;
	typedef fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> frag_b;
	const uint8_t *map = cuk_emu_frag_map(EMU_FRAG_ACC);
	const uint8_t *ia = cuk_emu_frag_inv(emu_kind<matrix_a, LA>::kind);
	const uint8_t *ib = cuk_emu_frag_inv(emu_kind<matrix_b, LB>::kind);
	const void **slot = cuk_emu_warp_slots();
	unsigned int lane = cuk_emu_lane();
	float out[8];

	slot[lane * 2] = &a;
	slot[lane * 2 + 1] = &b;
	cuk_emu_warp_sync();
	for (int i = 0; i < 8; i++) {
		unsigned int r = map[lane * 8 + i] / 16, col = map[lane * 8 + i] % 16;
		float s = 0.0f;

		for (unsigned int k = 0; k < 16; k++) {
			unsigned int ea = ia[r * 16 + k], eb = ib[k * 16 + col];
			const frag_a *fa = static_cast<const frag_a *>(slot[ea / 8 * 2]);
			const frag_b *fb = static_cast<const frag_b *>(slot[eb / 8 * 2 + 1]);

			s += __bfloat162float(fa->x[ea % 8]) * __bfloat162float(fb->x[eb % 8]);
		}
		out[i] = c.x[i] + s;
	}
	cuk_emu_warp_sync();
	for (int i = 0; i < 8; i++)
		d.x[i] = out[i];
}

} /* namespace wmma */
} /* namespace nvcuda */

#endif /* LLMQ_CUDA_EMU_WMMA_H */
