// Threading of the f32 GEMM. The pool's threads share a batch of products in
// one of three ways, whichever a cost model (in cycles, below) finds fastest
// (multiply_summed, a batch summed into one product, splits by its own
// simpler rule, at its definition):
//  - serial: tiny products, where waking the pool costs more than it saves;
//  - whole products per thread, when the batch divides well;
//  - each product cut into a grid of one part per thread: tile-aligned row
//    ranges x column ranges x depth ranges. A depth split is what keeps every
//    thread busy when the output is small and the depth long (a weight
//    gradient such as 64 x 16 x 6272): the first depth part writes C, the
//    others write partial products that are added to C afterwards.
// The model counts 16 multiply-adds per cycle (one 16-lane FMA on AVX-512, two
// 8-lane ones on AVX2), the padding of ragged tiles (a part narrower than a
// tile costs a tile), a slower kernel when B's packed block overflows L2,
// the packing each part repeats (B once per part, A once per column block;
// half that, the reads alone, for an operand multiply_blocked reads in place),
// the C passes per depth block, the partial-sum reduction, and a fixed cost
// per parallel region.
#include "cpu/gemm_f32.hpp"

#if defined(LOOM_GEMM_F32_PACKED)

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "loom/core/threads.hpp"

namespace loom::cpu::gemm_f32 {

namespace {

constexpr double kFmaLanesPerCycle = 16;
constexpr double kPackCyclesPerFloat = 1.0;     // 1.3-1.9 measured from DRAM, less from cache
constexpr double kInPlaceCyclesPerFloat = 0.5;  // an operand read where it lies: the reads without the writes
constexpr double kOutputCyclesPerFloat = 0.25;  // one load + store of C per depth block
constexpr double kReduceCyclesPerFloat = 0.5;
// A packed B block past half of a 512 KiB L2 (Zen 3) slows the kernel: the
// weight gradient 4096x192x2048 split by columns (147 KiB of B per thread)
// ran at 136 GFLOP/s, split by rows (295 KiB) at 117, about 1.15x. Measured
// on AVX2 only; the AVX-512 model has no such term.
constexpr double kBBlockL2Bytes = kLanes == 8 ? 256.0 * 1024 : std::numeric_limits<double>::infinity();
constexpr double kBBlockOutOfL2 = 1.15;
constexpr double kParallelRegionCycles = 30000;  // wake the pool and wait for the last part
constexpr int64_t kReduceGrain = 1 << 14;         // outputs per thread of the reduction (serial up to one grain)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Parts along each axis of one product; parts() of them in all.
struct Split {
  int64_t rows = 1, cols = 1, depth = 1;
  int64_t parts() const { return rows * cols * depth; }
};

// Part `index` of a product cut by `split`: half-open ranges, rows and columns tile aligned.
struct Region {
  int64_t r0, r1, c0, c1, d0, d1, depth_part;
};

Region region(int64_t m, int64_t n, int64_t k, const Split& s, int64_t index) {
  const int64_t ri = index % s.rows, ci = index / s.rows % s.cols, di = index / (s.rows * s.cols);
  const int64_t row_tiles = ceil_div(m, kTileRows), col_units = ceil_div(n, kLanes);
  Region r;
  r.r0 = std::min(m, row_tiles * ri / s.rows * kTileRows);
  r.r1 = std::min(m, row_tiles * (ri + 1) / s.rows * kTileRows);
  r.c0 = std::min(n, col_units * ci / s.cols * kLanes);
  r.c1 = std::min(n, col_units * (ci + 1) / s.cols * kLanes);
  r.d0 = k * di / s.depth;
  r.d1 = k * (di + 1) / s.depth;
  r.depth_part = di;
  return r;
}

// Estimated cycles for the largest part of one product of a and b cut by `split`.
double part_cycles(const MatrixView& a, const MatrixView& b, const Split& s) {
  const int64_t m = a.rows, k = a.cols, n = b.cols;
  const int64_t part_rows = ceil_div(ceil_div(m, kTileRows), s.rows) * kTileRows;
  const int64_t part_cols = ceil_div(ceil_div(n, kLanes), s.cols) * kLanes;
  const double rows = static_cast<double>(part_rows), cols = static_cast<double>(part_cols);
  const int64_t depth = std::max<int64_t>(ceil_div(k, s.depth), 1);
  const double d = static_cast<double>(depth);
  // A part narrower than a tile runs the one-vector kernel, no faster per
  // row and step than the full tile: its multiply-adds count as a tile's.
  const double tile_cols = static_cast<double>(ceil_div(part_cols, kTileCols) * kTileCols);
  double fma = rows * tile_cols * d / kFmaLanesPerCycle;
  // Every A panel streams the whole packed B block; past half of L2 it
  // starts coming from L3.
  const double b_block_bytes = cols * static_cast<double>(std::min(depth, kDepthBlock)) * sizeof(float);
  if (b_block_bytes > kBBlockL2Bytes) fma *= kBBlockOutOfL2;
  const bool b_packed = !b_read_in_place(b, std::min(part_rows, m), std::min(part_cols, n));
  const double a_reads = rows * d * static_cast<double>(ceil_div(part_cols, kColumnBlock));
  const double pack_a = a_reads * (a_read_in_place(a) ? kInPlaceCyclesPerFloat : kPackCyclesPerFloat);
  const double pack_b = cols * d * (b_packed ? kPackCyclesPerFloat : kInPlaceCyclesPerFloat);
  const double output = rows * cols * static_cast<double>(ceil_div(depth, kDepthBlock));
  return fma + pack_a + pack_b + output * kOutputCyclesPerFloat;
}

// Estimated cycles of add_partials.
double reduce_cycles(int64_t outputs, int64_t depth_parts, int64_t threads) {
  const double adds = static_cast<double>(outputs * (depth_parts - 1)) * kReduceCyclesPerFloat;
  return outputs <= kReduceGrain ? adds : adds / static_cast<double>(threads) + kParallelRegionCycles;
}

struct Plan {
  enum class Mode { serial, whole_products, grid } mode = Mode::serial;
  Split split;
};

Plan choose_plan(int64_t batch, const MatrixView& a, const MatrixView& b, int64_t threads) {
  const int64_t m = a.rows, k = a.cols, n = b.cols;
  const Split whole;
  Plan best;
  double best_cycles = static_cast<double>(batch) * part_cycles(a, b, whole);
  if (threads <= 1) return best;
  if (batch > 1) {
    const double cycles = static_cast<double>(ceil_div(batch, threads)) * part_cycles(a, b, whole) +
                          kParallelRegionCycles;
    if (cycles < best_cycles) {
      best_cycles = cycles;
      best.mode = Plan::Mode::whole_products;
    }
  }
  const int64_t row_tiles = ceil_div(m, kTileRows), col_units = ceil_div(n, kLanes);
  for (int64_t rows = 1; rows <= threads; ++rows) {
    if (threads % rows != 0 || rows > row_tiles) continue;
    for (int64_t cols = 1; cols <= threads / rows; ++cols) {
      if ((threads / rows) % cols != 0 || cols > col_units) continue;
      const Split s{rows, cols, threads / rows / cols};
      if (s.depth > std::max<int64_t>(k, 1)) continue;
      double cycles = static_cast<double>(batch) * part_cycles(a, b, s) + kParallelRegionCycles;
      if (s.depth > 1) cycles += reduce_cycles(batch * m * n, s.depth, threads);
      if (cycles < best_cycles) {
        best_cycles = cycles;
        best = {Plan::Mode::grid, s};
      }
    }
  }
  return best;
}

MatrixView product_operand(const MatrixView& first, int64_t batch_stride, int64_t i) {
  MatrixView v = first;
  v.data += i * batch_stride;
  return v;
}

// Partial-product buffer of the calling thread; grows only.
std::vector<float>& partial_buffer() {
  thread_local std::vector<float> buffer;
  return buffer;
}

// C[i] += the partials of depth parts 1.. of every product i.
void add_partials(const BatchedProduct& p, int64_t depth_parts, const float* partials) {
  const int64_t size = p.a.rows * p.b.cols;
  parallel_for(0, p.batch * size, kReduceGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t e = lo; e < hi;) {
      const int64_t i = e / size, end = std::min(hi, (i + 1) * size);
      const float* first = partials + i * (depth_parts - 1) * size - i * size;
      for (int64_t part = 1; part < depth_parts; ++part) {
        const float* src = first + (part - 1) * size;
        for (int64_t x = e; x < end; ++x) p.c[x] += src[x];
      }
      e = end;
    }
  });
}

}  // namespace

void multiply_batched(const BatchedProduct& p) {
  const int64_t m = p.a.rows, k = p.a.cols, n = p.b.cols, size = m * n;
  if (p.batch == 0 || size == 0) return;
  auto whole_product = [&](int64_t i) {
    multiply_blocked(product_operand(p.a, p.a_batch_stride, i), product_operand(p.b, p.b_batch_stride, i),
                     p.c + i * size, n);
  };
  const Plan plan = choose_plan(p.batch, p.a, p.b, num_threads());
  switch (plan.mode) {
    case Plan::Mode::serial:
      for (int64_t i = 0; i < p.batch; ++i) whole_product(i);
      return;
    case Plan::Mode::whole_products:
      parallel_for(0, p.batch, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) whole_product(i);
      });
      return;
    case Plan::Mode::grid:
      break;
  }
  const Split s = plan.split;
  float* partials = nullptr;
  if (s.depth > 1) {
    std::vector<float>& buffer = partial_buffer();
    buffer.resize(static_cast<size_t>(p.batch * (s.depth - 1) * size));
    partials = buffer.data();
  }
  parallel_for(0, p.batch * s.parts(), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t i = task / s.parts();
      const Region r = region(m, n, k, s, task % s.parts());
      if (r.r0 >= r.r1 || r.c0 >= r.c1) continue;
      const MatrixView a = product_operand(p.a, p.a_batch_stride, i).block(r.r0, r.d0, r.r1 - r.r0, r.d1 - r.d0);
      const MatrixView b = product_operand(p.b, p.b_batch_stride, i).block(r.d0, r.c0, r.d1 - r.d0, r.c1 - r.c0);
      float* out = r.depth_part == 0 ? p.c + i * size : partials + (i * (s.depth - 1) + r.depth_part - 1) * size;
      multiply_blocked(a, b, out + r.r0 * n + r.c0, n);
    }
  });
  if (s.depth > 1) add_partials(p, s.depth, partials);
}

void multiply_summed(const BatchedProduct& p) {
  const int64_t m = p.a.rows, n = p.b.cols, size = m * n;
  if (size == 0) return;
  if (p.batch == 0) {
    std::fill(p.c, p.c + size, 0.0f);
    return;
  }
  const auto product = [&](int64_t i) {
    return std::pair{product_operand(p.a, p.a_batch_stride, i), product_operand(p.b, p.b_batch_stride, i)};
  };
  // Each thread packs, for every product, its part of the operand it owns
  // and all of the other one: split C's columns unless that repeats packing
  // A while B would not need any, or leaves threads without a column block.
  const int64_t threads = num_threads(), k = p.a.cols;
  const int64_t row_units = (m + kTileRows - 1) / kTileRows, col_units = (n + kTileCols - 1) / kTileCols;
  const int64_t repeat_if_rows = b_read_in_place(p.b, m, n) ? 0 : k * n, repeat_if_cols = a_read_in_place(p.a) ? 0 : m * k;
  const bool by_rows = col_units < threads ? row_units > col_units : repeat_if_rows < repeat_if_cols;
  const int64_t unit = by_rows ? kTileRows : kTileCols, side = by_rows ? m : n, units = (side + unit - 1) / unit;
  if (units >= threads || p.batch == 1) {
    parallel_for(0, units, 1, [&](int64_t lo, int64_t hi) {
      const int64_t first = lo * unit, count = std::min(side, hi * unit) - first;
      for (int64_t i = 0; i < p.batch; ++i) {
        const auto [a, b] = product(i);
        if (by_rows) {
          multiply_blocked(a.block(first, 0, count, a.cols), b, p.c + first * n, n, i > 0);
        } else {
          multiply_blocked(a, b.block(0, first, b.rows, count), p.c + first, n, i > 0);
        }
      }
    });
    return;
  }
  // Fewer tile blocks than threads: each thread sums a share of the batch
  // into its own copy of C (the first into C itself), and the copies are
  // added at the end.
  const int64_t groups = std::min(threads, p.batch);
  std::vector<float>& partials = partial_buffer();
  partials.resize(static_cast<size_t>((groups - 1) * size));
  parallel_for(0, groups, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      float* out = g == 0 ? p.c : partials.data() + (g - 1) * size;
      const int64_t first = g * p.batch / groups, last = (g + 1) * p.batch / groups;
      for (int64_t i = first; i < last; ++i) {
        const auto [a, b] = product(i);
        multiply_blocked(a, b, out, n, i > first);
      }
    }
  });
  for (int64_t g = 1; g < groups; ++g) {
    const float* part = partials.data() + (g - 1) * size;
    for (int64_t e = 0; e < size; ++e) p.c[e] += part[e];
  }
}

}  // namespace loom::cpu::gemm_f32

#endif  // LOOM_GEMM_F32_PACKED
