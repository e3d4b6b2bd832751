// Fused attention on the CPU: softmax(scale · q kᵀ + mask) v and its
// gradients without the [Lq, Lk] score matrix of every head in memory.
//
// A thread takes one block of kBlockRows queries of one head at a time: it
// forms their scores against the keys the block can see (kBlockRows x Lk
// floats, resident in L2 at the sequences this is for), takes each row's
// exact softmax (the whole row is at hand, so no online rescale is needed)
// and multiplies by v at once. The products are the backend's own
// single-thread blocked GEMM (Eigen on machines with neither AVX-512 nor
// AVX2). Under the causal mask a block stops at the last key its last query
// sees, which halves the work; the composition computes every score and then
// masks. Taken automatically for causal calls, and without the mask only
// for calls of 2^28 scores or more (kLeastScoresUnmasked): below that the
// composition's batched products are faster.
//
// Floor (BH heads, Lq queries, Lk keys, head dim D; about half under the
// causal mask): forward 4·BH·Lq·Lk·D FLOPs; backward 10·BH·Lq·Lk·D (S = q kᵀ
// recomputed, then dV, dP, dQ, dK: one product each). Bytes: q, k, v, out,
// dout and the gradients once per head, plus a block's scores in cache.
//
// Work split: the forward's (head, query block) pairs across the kernel
// threads; the backward's heads across them, each head's query blocks in
// order, so dK and dV (sums over the query blocks) are added in one fixed
// order and the result does not depend on the thread count.
//
// f32, bf16 and f16 inputs compute in f32 (halves widened once, each output
// rounded once); f64 is declined, so gradcheck keeps the composition. The
// masks and the row without any visible key follow the CUDA kernel: key j is
// visible to query i when key_keep[j] and (not causal or j <= i + Lk - Lq);
// a row that sees no key gets a NaN output and lse -inf, and adds nothing to
// dq and dk, nor to dv while its grad_out is finite (its zero probabilities
// times a NaN gradient give NaN, as on CUDA and in the composition).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/gemm_f32.hpp"
#if !defined(LOOM_GEMM_F32_PACKED)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
#endif

#include "cpu/exp_row.hpp"
#include "cpu/kernels.hpp"
#include "cpu/loops.hpp"
#include "cpu/vec_row.hpp"
#include "loom/core/threads.hpp"

namespace loom::cpu {

namespace {

// Query rows per block: whole register tiles of the GEMM (4 x 14 rows on
// AVX-512, 9 x 6 on AVX2), so a block's products have no ragged row panel;
// 56 rows of scores against 2048 keys are 448 KiB, within a 1 MiB L2.
#if defined(LOOM_GEMM_F32_PACKED)
constexpr int64_t kBlockRows = 56 / gemm_f32::kTileRows * gemm_f32::kTileRows;
#else
constexpr int64_t kBlockRows = 56;
#endif
// The products are cut into pieces of at most this many rows and columns:
// at these sizes the GEMM reads a row-major B in place instead of packing it
// (gemm_f32.hpp), and a column-major A is always read in place. With q, k, v
// and dout also held transposed ([BH, D, L]), no product of a block packs
// more than a [56, D] or [56, Lk] operand.
constexpr int64_t kPiece = 256;

// Unless asked for by name, the kernel takes a call with neither the causal
// mask nor a key mask only when the whole call has at least this many scores
// (1 GiB of f32, of which the composition holds several score-sized tensors
// for its backward):
// on time alone the composition's batched products are as fast or faster at
// every size measured (forward + backward 0.74-1.03x fused from 128 to 2048
// keys, docs/benchmarks.md), so below it the kernel's gain, memory, is not
// worth its time. With the causal mask it skips half the products and is faster
// at every size measured; with a key mask the composition pays a select over
// the scores each way (masked_fill), and the omni pretraining step (masked
// text and fusion attention, head dim 16) is 3-6% faster with those fused.
constexpr int64_t kLeastScoresUnmasked = int64_t{1} << 28;

// A masked score, and the lse of a row that sees no key.
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// A read-only [rows, cols] f32 matrix with element strides.
struct View {
  const float* data;
  int64_t rows, cols, row_stride, col_stride;
  View rows_from(int64_t r, int64_t n) const { return {data + r * row_stride, n, cols, row_stride, col_stride}; }
  View cols_from(int64_t c, int64_t n) const { return {data + c * col_stride, rows, n, row_stride, col_stride}; }
};

#if !defined(LOOM_GEMM_F32_PACKED)
// f(m) with m an Eigen map of v: row- or column-major with a unit inner
// stride where v is either (Eigen's GEMM packs those fast), else strided.
template <class F>
void with_eigen_map(const View& v, F&& f) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using ColMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  if (v.col_stride == 1) {
    f(Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>(v.data, v.rows, v.cols,
                                                                         Eigen::OuterStride<>(v.row_stride)));
  } else if (v.row_stride == 1) {
    f(Eigen::Map<const ColMajor, Eigen::Unaligned, Eigen::OuterStride<>>(v.data, v.rows, v.cols,
                                                                         Eigen::OuterStride<>(v.col_stride)));
  } else {
    using Strides = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
    f(Eigen::Map<const RowMajor, Eigen::Unaligned, Strides>(v.data, v.rows, v.cols, Strides(v.row_stride, v.col_stride)));
  }
}
#endif

// c[a.rows, b.cols] = a b (c += a b when accumulate) on the calling thread,
// row stride ldc. The packed GEMM takes it in pieces of at most kPiece rows
// and columns.
void product(const View& a, const View& b, float* c, int64_t ldc, bool accumulate = false) {
#if defined(LOOM_GEMM_F32_PACKED)
  for (int64_t i = 0; i < a.rows; i += kPiece)
    for (int64_t j = 0; j < b.cols; j += kPiece) {
      const View ap = a.rows_from(i, std::min(kPiece, a.rows - i)), bp = b.cols_from(j, std::min(kPiece, b.cols - j));
      gemm_f32::multiply_blocked({ap.data, ap.rows, ap.cols, ap.row_stride, ap.col_stride},
                                 {bp.data, bp.rows, bp.cols, bp.row_stride, bp.col_stride}, c + i * ldc + j, ldc,
                                 accumulate);
    }
#else
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>> out(c, a.rows, b.cols, Eigen::OuterStride<>(ldc));
  if (a.cols == 0) {
    if (!accumulate) out.setZero();
    return;
  }
  with_eigen_map(a, [&](const auto& lhs) {
    with_eigen_map(b, [&](const auto& rhs) {
      if (accumulate)
        out.noalias() += lhs * rhs;
      else
        out.noalias() = lhs * rhs;
    });
  });
#endif
}

// A thread's scratch: the block's scores (then probabilities) and its dP
// (then dS). Grows only.
struct Scratch {
  std::vector<float> scores, dp;
};

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

float* sized(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// The inputs as f32 (halves widened once), q and k also transposed when a
// head has several query blocks, and the shapes.
struct Problem {
  Tensor q, k, v, qt, kt;  // qt [bh, d, lq], kt [bh, d, lk]; undefined with one block per head
  const uint8_t* keep = nullptr;  // [bh, lk] or null
  int64_t bh = 0, lq = 0, lk = 0, d = 0;
  bool causal = false;
  float scale = 1.0f;

  // Query block b: its first row and row count, and the keys it can see
  // ([0, key_end)): under the causal mask, up to the last key its last
  // query sees.
  int64_t first_row(int64_t b) const { return b * kBlockRows; }
  int64_t rows(int64_t b) const { return std::min(kBlockRows, lq - first_row(b)); }
  int64_t key_end(int64_t b) const {
    if (!causal) return lk;
    return std::clamp<int64_t>(first_row(b) + rows(b) + (lk - lq), 0, lk);
  }
  int64_t blocks() const { return (lq + kBlockRows - 1) / kBlockRows; }

  // Head h of a [bh, len, d] tensor as a row-major [len, d] matrix, of a
  // [bh, d, len] one as [d, len].
  View by_rows(const Tensor& t, int64_t h, int64_t len) const { return {ptr<float>(t) + h * len * d, len, d, d, 1}; }
  View by_dims(const Tensor& t, int64_t h, int64_t len) const { return {ptr<float>(t) + h * len * d, d, len, len, 1}; }
  // Block b's rows of a transposed [bh, d, lq] tensor, as a column-major [rows, d] matrix.
  View block_of(const Tensor& t, int64_t h, int64_t b) const {
    return {ptr<float>(t) + h * lq * d + first_row(b), rows(b), d, 1, lq};
  }

  // Row i's scores s[0, n) scaled where key j is visible to query i, -inf
  // where it is not. Returns the row's maximum.
  float mask_row(int64_t h, int64_t i, float* s, int64_t n) const {
    const int64_t limit = causal ? std::clamp<int64_t>(i + (lk - lq) + 1, 0, n) : n;
    for (int64_t j = 0; j < limit; ++j) s[j] *= scale;
    for (int64_t j = limit; j < n; ++j) s[j] = kMinusInf;
    if (keep != nullptr) {
      const uint8_t* kept = keep + h * lk;
      for (int64_t j = 0; j < limit; ++j) s[j] = kept[j] ? s[j] : kMinusInf;
    }
    return lane_max(s, n);
  }

  // s [rows, n] = q_block kᵀ over the block's first n keys (before scale and
  // masks). Without the transposed copies (one block per head: a decoding
  // step, a short sequence) k is read in place as a column-major kᵀ, which
  // the GEMM packs once, as the copy would have cost.
  void scores(int64_t h, int64_t b, float* s, int64_t n) const {
    if (qt.defined()) {
      product(block_of(qt, h, b), by_dims(kt, h, lk).cols_from(0, n), s, n);
    } else {
      const View k_t{ptr<float>(k) + h * lk * d, d, n, 1, d};
      product(by_rows(q, h, lq).rows_from(first_row(b), rows(b)), k_t, s, n);
    }
  }
};

// f32 storage for a result: the output itself when it is f32, else a
// scratch tensor copied into it by finish().
Tensor f32_target(const Tensor& out) { return out.dtype() == DType::f32 ? out : empty(out.shape(), DType::f32); }

void finish(const Tensor& f, const Tensor& out) {
  if (f.raw_data() != out.raw_data()) copy(f, out);  // f is out itself when out is f32
}

// [bh, len, d] -> a contiguous [bh, d, len] copy.
Tensor transposed(const Tensor& x) {
  Tensor t = empty({x.size(0), x.size(2), x.size(1)}, DType::f32);
  copy(make_view(x, t.shape(), {x.stride(0), x.stride(2), x.stride(1)}, x.offset()), t);
  return t;
}

Problem problem(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const AttentionParams& p) {
  Problem pr;
  pr.q = as_f32(q);
  pr.k = as_f32(k);
  pr.v = as_f32(v);
  pr.keep = key_keep.defined() ? ptr<uint8_t>(key_keep) : nullptr;
  pr.bh = q.size(0);
  pr.lq = q.size(1);
  pr.lk = k.size(1);
  pr.d = q.size(2);
  pr.causal = p.causal;
  pr.scale = static_cast<float>(p.scale);
  if (pr.blocks() > 1) {  // each block reads q and k transposed in place, not packing k again
    pr.qt = transposed(pr.q);
    pr.kt = transposed(pr.k);
  }
  return pr;
}

void check_takes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const char* op) {
  const DType t = q.dtype();
  LOOM_CHECK(t == DType::f32 || t == DType::bf16 || t == DType::f16, op, ": the CPU kernel takes f32, bf16, f16, got ",
             dtype_name(t));
  LOOM_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
                 q.size(2) == k.size(2) && k.dtype() == t && v.dtype() == t,
             op, ": expected q [BH, Lq, D], k and v [BH, Lk, D] of one dtype, got q ", shape_str(q.shape()), ", k ",
             shape_str(k.shape()), ", v ", shape_str(v.shape()));
  LOOM_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous(), op, ": q, k, v must be contiguous");
  LOOM_CHECK(!key_keep.defined() || (key_keep.dtype() == DType::boolean && key_keep.is_contiguous() &&
                                     key_keep.numel() == k.size(0) * k.size(1)),
             op, ": key_keep must be a contiguous bool [", k.size(0), ", ", k.size(1), "]");
}

}  // namespace

bool attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
               const Tensor& lse, const AttentionParams& p) {
  if (q.dtype() == DType::f64 || q.numel() == 0 || k.numel() == 0) return false;  // composed instead
  if (!p.required && !p.causal && !key_keep.defined() && q.size(0) * q.size(1) * k.size(1) < kLeastScoresUnmasked)
    return false;
  check_takes(q, k, v, key_keep, "attention");
  LOOM_CHECK(out.shape() == q.shape() && out.dtype() == q.dtype() && out.is_contiguous() &&
                 lse.dtype() == DType::f32 && lse.numel() == q.size(0) * q.size(1) && lse.is_contiguous(),
             "attention: out must be a contiguous ", dtype_name(q.dtype()), " ", shape_str(q.shape()),
             " and lse a contiguous f32 [", q.size(0), ", ", q.size(1), "]");
  const Problem pr = problem(q, k, v, key_keep, p);
  const Tensor out32 = f32_target(out);
  float* o = ptr<float>(out32);
  float* row_lse = ptr<float>(lse);
  const int64_t d = pr.d, blocks = pr.blocks();

  parallel_for(0, pr.bh * blocks, 1, [&](int64_t w0, int64_t w1) {
    Scratch& scratch = thread_scratch();
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t h = w / blocks, b = w % blocks, i0 = pr.first_row(b), rows = pr.rows(b), n = pr.key_end(b);
      float* lse_rows = row_lse + h * pr.lq + i0;
      std::fill(lse_rows, lse_rows + rows, kMinusInf);  // stays for a row that sees no key
      if (n > 0) {
        float* s = sized(scratch.scores, rows * n);
        pr.scores(h, b, s, n);
        for (int64_t r = 0; r < rows; ++r) {
          float* row = s + r * n;
          const float m = pr.mask_row(h, i0 + r, row, n);
          if (m == kMinusInf) {
            std::fill(row, row + n, 0.0f);
            continue;
          }
          const double total = exp_row_sum<float>(row, row, n, m);
          const float inv = static_cast<float>(1.0 / total);
          for (int64_t j = 0; j < n; ++j) row[j] *= inv;
          lse_rows[r] = m + static_cast<float>(std::log(total));
        }
        product({s, rows, n, n, 1}, pr.by_rows(pr.v, h, pr.lk).rows_from(0, n), o + (h * pr.lq + i0) * d, d);
      }
      for (int64_t r = 0; r < rows; ++r)  // a row that sees no key: NaN, as the composed softmax of -inf gives
        if (lse_rows[r] == kMinusInf)
          std::fill(o + (h * pr.lq + i0 + r) * d, o + (h * pr.lq + i0 + r + 1) * d,
                    std::numeric_limits<float>::quiet_NaN());
    }
  });
  finish(out32, out);
  return true;
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                        const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q, const Tensor& grad_k,
                        const Tensor& grad_v, const AttentionParams& p) {
  const char* op = "attention backward";
  check_takes(q, k, v, key_keep, op);
  LOOM_CHECK(out.shape() == q.shape() && grad_out.shape() == q.shape() && out.dtype() == q.dtype() &&
                 grad_out.dtype() == q.dtype() && out.is_contiguous() && grad_out.is_contiguous() &&
                 lse.dtype() == DType::f32 && lse.numel() == q.size(0) * q.size(1) && lse.is_contiguous(),
             op, ": out and grad_out must be contiguous ", dtype_name(q.dtype()), " ", shape_str(q.shape()),
             " and lse a contiguous f32 [", q.size(0), ", ", q.size(1), "]");
  LOOM_CHECK(grad_q.shape() == q.shape() && grad_k.shape() == k.shape() && grad_v.shape() == v.shape() &&
                 grad_q.dtype() == q.dtype() && grad_k.dtype() == q.dtype() && grad_v.dtype() == q.dtype() &&
                 grad_q.is_contiguous() && grad_k.is_contiguous() && grad_v.is_contiguous(),
             op, ": gradients must be contiguous and shaped and typed like q, k, v");
  const Problem pr = problem(q, k, v, key_keep, p);
  const Tensor o32 = as_f32(out), dout32 = as_f32(grad_out);
  const Tensor vt = transposed(pr.v), doutt = transposed(dout32);
  const Tensor gq32 = f32_target(grad_q), gk32 = f32_target(grad_k), gv32 = f32_target(grad_v);
  const float* row_lse = ptr<float>(lse);
  const int64_t d = pr.d, lq = pr.lq, lk = pr.lk, blocks = pr.blocks();

  parallel_for(0, pr.bh, 1, [&](int64_t h0, int64_t h1) {
    Scratch& scratch = thread_scratch();
    for (int64_t h = h0; h < h1; ++h) {
      const float* oh = ptr<float>(o32) + h * lq * d;
      const View douth = pr.by_rows(dout32, h, lq);
      float* dq = ptr<float>(gq32) + h * lq * d;
      float* dk = ptr<float>(gk32) + h * lk * d;
      float* dv = ptr<float>(gv32) + h * lk * d;
      std::fill(dk, dk + lk * d, 0.0f);
      std::fill(dv, dv + lk * d, 0.0f);

      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t i0 = pr.first_row(b), rows = pr.rows(b), n = pr.key_end(b);
        if (n == 0) {  // no query of the block sees a key
          std::fill(dq + i0 * d, dq + (i0 + rows) * d, 0.0f);
          continue;
        }
        float* s = sized(scratch.scores, rows * n);
        float* dp = sized(scratch.dp, rows * n);
        // P = exp(S − lse), 0 where a key is not seen (and on a row that sees none)
        pr.scores(h, b, s, n);
        for (int64_t r = 0; r < rows; ++r) {
          float* row = s + r * n;
          pr.mask_row(h, i0 + r, row, n);
          const float l = row_lse[h * lq + i0 + r];
          if (l == kMinusInf) {
            std::fill(row, row + n, 0.0f);
            continue;
          }
          exp_row_affine(row, row, n, l, 1.0f, 0.0f);
        }
        // dV += Pᵀ dout
        const View dout_block = douth.rows_from(i0, rows);
        product({s, n, rows, 1, n}, dout_block, dv, d, true);
        // dP = dout vᵀ, then dS = P ∘ (dP − delta) · scale, delta_i = dout_i · out_i
        product(pr.block_of(doutt, h, b), pr.by_dims(vt, h, lk).cols_from(0, n), dp, n);
        for (int64_t r = 0; r < rows; ++r) {
          const float* prow = s + r * n;
          float* row = dp + r * n;
          if (row_lse[h * lq + i0 + r] == kMinusInf) {
            std::fill(row, row + n, 0.0f);  // delta is NaN there; the row adds nothing
            continue;
          }
          const float* oi = oh + (i0 + r) * d;
          const float* gi = douth.data + (i0 + r) * d;
          const float delta = static_cast<float>(lane_sum<float>(d, [&](int64_t c) { return gi[c] * oi[c]; }));
          for (int64_t j = 0; j < n; ++j) row[j] = prow[j] * (row[j] - delta) * pr.scale;
        }
        // dQ = dS k;  dK += dSᵀ q
        product({dp, rows, n, n, 1}, pr.by_rows(pr.k, h, lk).rows_from(0, n), dq + i0 * d, d);
        product({dp, n, rows, 1, n}, pr.by_rows(pr.q, h, lq).rows_from(i0, rows), dk, d, true);
      }
    }
  });
  finish(gq32, grad_q);
  finish(gk32, grad_k);
  finish(gv32, grad_v);
}

}  // namespace loom::cpu
