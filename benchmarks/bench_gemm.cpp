// `loom-bench gemm`: C[m,n] = op(A) op(B) through loom::matmul (f32), where
// op transposes a view in place (no copy) when --trans-a / --trans-b is 1.
// Without --m/--n/--k: squares 256..max-square (default 2048), then the
// linear layers of recipes/poetry-gpt.json and recipes/fashion-vit.json, each
// as its forward product x W^T and both backward products (dX = dY W,
// dW = dY^T X). FLOPs are 2 m n k; fraction_of_peak is against the FMA peak.
#include <string>

#include "bench.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/ops.hpp"

namespace loom::bench {

namespace {

void one(const Options& opt, int64_t m, int64_t n, int64_t k, bool ta, bool tb, const std::string& layer,
         const std::string& pass) {
  NoGradGuard guard;
  Generator gen(1);
  // A is [m,k] (stored [k,m] when transposed), B is [k,n] (stored [n,k] when transposed).
  Tensor a = ta ? randn({k, m}, {}, &gen).t() : randn({m, k}, {}, &gen);
  Tensor b = tb ? randn({n, k}, {}, &gen).t() : randn({k, n}, {}, &gen);
  const double ms = median_ms(opt, [&] { Tensor c = matmul(a, b); });
  Record r = record("gemm", std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k), ms);
  r["m"] = m;
  r["n"] = n;
  r["k"] = k;
  r["trans_a"] = ta;
  r["trans_b"] = tb;
  if (!layer.empty()) {
    r["layer"] = layer;
    r["pass"] = pass;
  }
  add_gflops(r, 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k), opt);
  emit(r);
}

// A linear layer with `tokens` rows, in -> out features: the three products of a training step.
void linear_layer(const Options& opt, const std::string& name, int64_t tokens, int64_t in, int64_t out) {
  one(opt, tokens, out, in, false, true, name, "fwd");    // Y[T,out] = X[T,in] W[out,in]^T
  one(opt, tokens, in, out, false, false, name, "dgrad");  // dX[T,in] = dY[T,out] W[out,in]
  one(opt, out, in, tokens, true, false, name, "wgrad");   // dW[out,in] = dY^T[out,T] X[T,in]
}

}  // namespace

void run_gemm(const Options& opt) {
  if (opt.has("m") || opt.has("n") || opt.has("k")) {
    const int64_t m = opt.integer("m", 1024), n = opt.integer("n", m), k = opt.integer("k", m);
    one(opt, m, n, k, opt.integer("trans-a", 0) != 0, opt.integer("trans-b", 0) != 0, "", "");
    return;
  }
  const int64_t max_square = opt.integer("max-square", 2048);
  for (int64_t s = 256; s <= max_square; s *= 2) one(opt, s, s, s, false, false, "square", "");
  if (opt.integer("recipes", 1) == 0) return;
  // poetry-gpt: batch 16 x seq 128 = 2048 tokens, d_model 192, mlp 4x, vocab 4096 (tied head).
  const int64_t gt = 16 * 128, gd = 192;
  linear_layer(opt, "gpt.qkv", gt, gd, 3 * gd);
  linear_layer(opt, "gpt.attn_out", gt, gd, gd);
  linear_layer(opt, "gpt.mlp_fc1", gt, gd, 4 * gd);
  linear_layer(opt, "gpt.mlp_fc2", gt, 4 * gd, gd);
  linear_layer(opt, "gpt.lm_head", gt, gd, 4096);
  // fashion-vit: batch 128 x 49 patches = 6272 tokens, d_model 64, mlp 2x; the patch stem is im2col + GEMM.
  const int64_t vt = 128 * 49, vd = 64;
  linear_layer(opt, "vit.patch_embed", vt, 16, vd);
  linear_layer(opt, "vit.qkv", vt, vd, 3 * vd);
  linear_layer(opt, "vit.attn_out", vt, vd, vd);
  linear_layer(opt, "vit.mlp_fc1", vt, vd, 2 * vd);
  linear_layer(opt, "vit.mlp_fc2", vt, 2 * vd, vd);
}

}  // namespace loom::bench
