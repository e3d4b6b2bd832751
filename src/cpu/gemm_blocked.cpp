// The single-thread blocked product C = A B of the f32 GEMM. Loop order:
//   column block (NC) > depth block (KC) > row block (MC)
//     > A row panel (kTileRows rows) > B column panel (kTileCols columns)
// Each (KC, NC) block of B is packed once, each (MC, KC) block of A once per
// column block, unless the kernel reads them where they lie; each A panel is
// swept across every B panel of the block (sizes, and when an operand is read
// unpacked: gemm_f32.hpp). The first depth
// block overwrites C (or adds to it, when asked), later ones add to it.
// Blocks are split evenly (1100 deep runs as 550 + 550, not 1024 + 76).
// Packing buffers are per thread and only grow, so steady-state calls do not
// allocate.
#include "cpu/gemm_f32.hpp"

#if defined(LOOM_GEMM_F32_PACKED)

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "loom/core/error.hpp"

namespace loom::cpu::gemm_f32 {

namespace {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// A 64-byte aligned float buffer that keeps its largest size.
class AlignedBuffer {
 public:
  float* get(int64_t floats) {
    if (floats > capacity_) {
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      auto* grown = static_cast<float*>(std::aligned_alloc(64, bytes));
      LOOM_CHECK(grown != nullptr, "matmul: cannot allocate ", bytes, " bytes of packing buffer");
      data_.reset(grown);
      capacity_ = floats;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<float, FreeDeleter> data_;
  int64_t capacity_ = 0;
};

struct PackingBuffers {
  AlignedBuffer a_block, b_block;
};

PackingBuffers& thread_buffers() {
  thread_local PackingBuffers buffers;
  return buffers;
}

// `total` split into ceil(total / limit) near-equal blocks, each a multiple of `unit` where possible.
int64_t even_block(int64_t total, int64_t limit, int64_t unit) {
  const int64_t blocks = (total + limit - 1) / limit;
  const int64_t size = (total + blocks - 1) / blocks;
  return std::min(limit, (size + unit - 1) / unit * unit);
}

using TileKernel = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, int,
                           simd::Mask, bool);

TileKernel kernel_for(bool two_vectors, bool masked_b, bool strided_rows) {
  static constexpr TileKernel kernels[2][2][2] = {
      {{tile_kernel<1, false, false>, tile_kernel<1, false, true>},
       {tile_kernel<1, true, false>, tile_kernel<1, true, true>}},
      {{tile_kernel<2, false, false>, tile_kernel<2, false, true>},
       {tile_kernel<2, true, false>, tile_kernel<2, true, true>}},
  };
  return kernels[two_vectors][masked_b][strided_rows];
}

}  // namespace

void multiply_blocked(const MatrixView& a, const MatrixView& b, float* c, int64_t ldc, bool accumulate) {
  const int64_t m = a.rows, k = a.cols, n = b.cols;
  if (m == 0 || n == 0 || (k == 0 && accumulate)) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  if (m == 1) {
    multiply_row(a, b, c, accumulate);
    return;
  }
  // Operands the kernel reads where they lie (when that beats packing: gemm_f32.hpp).
  const bool a_in_place = a_read_in_place(a);
  const bool direct_a_rows = a_in_place && a.row_stride != 1;  // row-major: one stream per row
  const bool direct_b = b_read_in_place(b, m, n);
  const int64_t row_block = even_block(m, kRowBlock, kTileRows);
  const int64_t column_block = even_block(n, kColumnBlock, kTileCols);
  const int64_t depth_block = even_block(k, kDepthBlock, 1);
  PackingBuffers& buffers = thread_buffers();
  float* a_block = buffers.a_block.get(row_block * depth_block);
  float* b_block = direct_b ? nullptr : buffers.b_block.get(column_block * depth_block);

  for (int64_t j0 = 0; j0 < n; j0 += column_block) {
    const int64_t nc = std::min(column_block, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += depth_block) {
      const int64_t kc = std::min(depth_block, k - p0);
      const bool add = accumulate || p0 > 0;
      if (!direct_b) pack_panels(b.at(p0, j0), b.col_stride, b.row_stride, nc, kc, kTileCols, b_block);
      for (int64_t i0 = 0; i0 < m; i0 += row_block) {
        const int64_t mc = std::min(row_block, m - i0);
        if (!a_in_place) pack_panels(a.at(i0, p0), a.row_stride, a.col_stride, mc, kc, kTileRows, a_block);
        for (int64_t ip = 0; ip < mc; ip += kTileRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kTileRows, mc - ip));
          const float* a_panel = a_block + ip * kc;
          int64_t a_step = kTileRows, a_row = 1;
          bool strided_rows = false;
          if (a_in_place && rows == kTileRows) {
            a_panel = a.at(i0 + ip, p0);
            a_step = a.col_stride;
            a_row = a.row_stride;
            strided_rows = direct_a_rows;
          } else if (a_in_place) {  // a ragged last panel is packed, zero padded
            a_panel = a_block;
            pack_panels(a.at(i0 + ip, p0), a.row_stride, a.col_stride, rows, kc, kTileRows, a_block);
          }
          float* c_rows = c + (i0 + ip) * ldc + j0;
          for (int64_t jp = 0; jp < nc; jp += kTileCols) {
            const int64_t cols = std::min<int64_t>(kTileCols, nc - jp);
            const float* b_panel = direct_b ? b.at(p0, j0 + jp) : b_block + jp * kc;
            const int64_t b_step = direct_b ? b.row_stride : cols > kLanes ? kTileCols : kLanes;
            // Only B read in place has no padding past its last column to load.
            const bool masked_b = direct_b && cols % kLanes != 0;
            kernel_for(cols > kLanes, masked_b, strided_rows)(kc, a_panel, a_step, a_row, b_panel, b_step, c_rows + jp,
                                                              ldc, rows, simd::tail_lanes(cols), add);
          }
        }
      }
    }
  }
}

}  // namespace loom::cpu::gemm_f32

#endif  // LOOM_GEMM_F32_PACKED
