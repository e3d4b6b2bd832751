// The packed, cache-blocked f32 GEMM used by the CPU backend on AVX-512 and
// AVX2 + FMA machines: the pieces shared by its files (operand views, tile and
// block sizes, packing, the register-tile kernel, the single-thread blocked
// product). The vector operations of each ISA are in gemm_simd.hpp.
//
// AVX-512 sizes, chosen for a core with a 32 KiB L1d, a 1 MiB L2, a shared L3
// and one 512-bit FMA per cycle at 4 cycles latency (Zen 4; they suit Intel
// cores too):
//  - register tile kTileRows x 32: 28 accumulators + 2 B vectors + 1 broadcast
//    of the 32 zmm registers; 28 independent FMA chains cover the latency many
//    times over, and each depth step does 28 FMAs for 2 loads + 14 broadcasts.
//    A tile only 16 columns wide (the n % 32 edge, or n = 16) keeps 14 chains,
//    still enough to stay FMA bound.
//  - the kernel reads A and B as two sequential streams at about 7 bytes per
//    cycle, which L2 (even L3) sustains with hardware prefetch, so the blocks
//    are sized to cut the work around the kernel rather than to sit in L1:
//    kDepthBlock (KC) sets how often C tiles are reloaded (k / KC passes over
//    C, the largest overhead at n = 2048); kColumnBlock (NC) sets how often A
//    is re-packed (n / NC times). KC = NC = 1024 keeps an A panel (56 KiB) in
//    L2 and a B block (4 MiB per thread) in L3; measured on 2048^3 against
//    KC in 256..2048 x NC in 256..1024, it was the fastest (256 x 512: -8%).
//    kRowBlock (MC) bounds the packed A block (448 x KC floats, 1.8 MiB).
//  - operands read in place, unpacked: a column-major A (a weight gradient's
//    dY^T) always, since its 14 values of a step are already side by side
//    (+5..45% on the recipes' weight-gradient shapes); a row-major B only
//    when m and n are both at most kDirectBMaxSide (+3..15% there; on wider
//    products its strided rows cost more than packing saves, -10..40%).
// AVX2 sizes, for a core with two 256-bit FMAs per cycle at 4 cycles latency
// and 16 ymm registers (Zen 3; Intel's Haswell to Alder Lake alike):
//  - register tile 6 x 16: 12 accumulators + 2 B vectors + 1 broadcast of the
//    16 registers (the tile BLIS and OpenBLAS use there); 12 chains cover
//    2 x 4 FMAs in flight. A step does 12 FMAs for 2 loads + 6 broadcasts.
//  - the kernel reads about 15 bytes per cycle, twice the AVX-512 kernel's
//    rate. KC = 384 keeps an A panel (9 KiB) and a B panel (24 KiB) near L1;
//    NC = 1024. Measured on a 2-core Zen 3 over the square sizes 256..2048
//    and the recipes' layer shapes (loom-bench gemm, best of 3 runs): KC in
//    256..768 x NC in 512..1024 were all within 5% of each other.
//  - operands read in place as on AVX-512, and a row-major A too: its 6 rows
//    are 6 sequential streams the kernel broadcasts from, which saves the
//    packing (one transposing pass over A per column block, up to a quarter
//    of the time at n = 64): +20..60% at the recipes' forward and
//    input-gradient shapes, 3.3x at n = 16, no shape slower (best of 3 runs).
#pragma once

#include "cpu/gemm_simd.hpp"

#if defined(LOOM_GEMM_F32_PACKED)

#include <cstdint>

namespace loom::cpu::gemm_f32 {

using simd::kLanes;
constexpr int kTileCols = 2 * kLanes;
// AVX-512 (16 lanes) : AVX2 (8), as explained above.
constexpr int kTileRows = kLanes == 16 ? 14 : 6;
constexpr int64_t kDepthBlock = kLanes == 16 ? 1024 : 384;
constexpr int64_t kColumnBlock = 1024;
constexpr int64_t kRowBlock = 32 * kTileRows;
constexpr int64_t kDirectBMaxSide = 256;
// A row-major A read in place (kTileRows row streams, one broadcast per row
// and step), not packed: on AVX2 only, where a panel's 6 row pointers fit the
// general registers beside the kernel's own (14 would not).
constexpr bool kRowMajorAInPlace = kTileRows <= 6;

// A read-only [rows, cols] matrix with element strides; a transposed or sliced
// view is just other strides.
struct MatrixView {
  const float* data;
  int64_t rows, cols;
  int64_t row_stride, col_stride;

  const float* at(int64_t r, int64_t c) const { return data + r * row_stride + c * col_stride; }
  MatrixView block(int64_t r, int64_t c, int64_t nr, int64_t nc) const {
    return {at(r, c), nr, nc, row_stride, col_stride};
  }
};

// Which operands of an m x n product multiply_blocked reads where they lie
// instead of packing them (the rules above); the thread split's cost model
// asks the same questions.
inline bool a_read_in_place(const MatrixView& a) {
  return a.row_stride == 1 || (kRowMajorAInPlace && a.col_stride == 1);
}
inline bool b_read_in_place(const MatrixView& b, int64_t m, int64_t n) {
  return b.col_stride == 1 && m <= kDirectBMaxSide && n <= kDirectBMaxSide;
}

// Packs `width` lines of `depth` values into panels of `panel_width` lines:
// panel p starts at out + p * panel_width * depth and holds, for each depth
// step d, its lines' values side by side (padded with zeros to panel_width,
// the last panel only to a multiple of kLanes when that is less). Value (w, d)
// of the source is at src[w * width_stride + d * depth_stride].
// panel_width <= kTileCols.
// A row block is (lines = rows, depth = k, panel_width = kTileRows); a B
// column block is (lines = columns, depth = k, panel_width = kTileCols).
void pack_panels(const float* src, int64_t width_stride, int64_t depth_stride, int64_t width, int64_t depth,
                 int64_t panel_width, float* out);

// c[r, 0:cols] (+)= sum_d A(r, d) * b[d * b_step + 0:cols] for r < rows, where
// A(r, d) = a[d * a_step + r], or a[d * a_step + r * a_row] when StridedRows
// (a row-major A read in place), and cols = kLanes * (Vectors - 1) + the lanes
// of last_mask. All kTileRows rows of a step of A are read; so are all
// kLanes * Vectors values of a step of B unless MaskedB (then only cols of
// them: B read in place, with no padding). Overwrites C unless accumulate.
template <int Vectors, bool MaskedB, bool StridedRows>
void tile_kernel(int64_t depth, const float* a_panel, int64_t a_step, int64_t a_row, const float* b_panel,
                 int64_t b_step, float* c, int64_t ldc, int rows, simd::Mask last_mask, bool accumulate);

// c[0:b.cols] = a B (+= when accumulate) for a single row a (a.rows == 1,
// a.cols == b.rows >= 1), without the register tile's padding rows
// (gemm_row.cpp).
void multiply_row(const MatrixView& a, const MatrixView& b, float* c, bool accumulate);

// C[a.rows, b.cols] = A B on the calling thread (row stride ldc), or C += A B
// when accumulate. a.cols == b.rows; k == 0 gives zeros (leaves C as it is).
void multiply_blocked(const MatrixView& a, const MatrixView& b, float* c, int64_t ldc, bool accumulate = false);

// C[i] = A[i] B[i] for i < batch, C contiguous [batch, a.rows, b.cols]; product i
// reads its operands `a_batch_stride` / `b_batch_stride` elements after product 0.
// Runs on the kernel thread pool.
struct BatchedProduct {
  MatrixView a, b;
  int64_t a_batch_stride, b_batch_stride;
  int64_t batch;
  float* c;
};
void multiply_batched(const BatchedProduct& p);

// C[a.rows, b.cols] = sum over i < batch of A[i] B[i]: one product whose
// depth runs through the batch (a convolution's weight gradient, summed over
// the images), with no buffer per product. The kernel threads each own a
// tile-aligned block of C's columns (or rows, where that packs less); with
// fewer blocks than threads, each sums a share of the batch into its own
// copy of C instead, and the copies are added.
void multiply_summed(const BatchedProduct& p);

}  // namespace loom::cpu::gemm_f32

#endif  // LOOM_GEMM_F32_PACKED
