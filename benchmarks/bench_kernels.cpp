// Memory-bound kernels (softmax, layer_norm, rms_norm, the residual add fused
// with layer_norm against the two ops, gelu, fused cross-entropy, AdamW,
// dropout's one-pass mask against rand + ge + where + mul, strided copies),
// convolutions and linear + GELU (fused entries beside the compositions they
// replace) and attention, each timed through
// loom's public ops: "fwd" under NoGradGuard, "fwd+bwd" as forward with grad
// plus backward(dY) (parameter gradients included, as in training).
//
// Bytes (memory-bound, f32 = 4 bytes): each kernel counts its inputs read once
// and its outputs written once; fwd+bwd is the sum of the forward and the
// backward kernel (e.g. softmax: fwd reads x, writes y; bwd reads y, dy,
// writes dx: 5 N elements). Small per-row vectors (mean, rstd) are ignored.
// FLOPs (conv, attention): 2 per multiply-add of the dense products; causal
// attention is counted dense too (loom computes the full score matrix).
#include <string>

#include "bench.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/ops/ops.hpp"
#include "loom/optim/optimizer.hpp"

namespace loom::bench {

namespace {

std::string dims(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out.push_back('x');
    out.append(std::to_string(s[i]));
  }
  return out;
}

// Times forward (no grad) and forward+backward of f over `inputs` (those with
// requires_grad get gradients), and emits two records.
void fwd_bwd(const Options& opt, const std::string& name, const std::string& shape, std::vector<Tensor> inputs,
             const std::function<Tensor(const std::vector<Tensor>&)>& f, double fwd_units, double bwd_units,
             bool flops, const std::string& pass_filter = "") {
  auto finish = [&](Record r, double units) {
    if (flops)
      add_gflops(r, units, opt);
    else
      add_gbps(r, units, opt);
    emit(r);
  };
  if (pass_filter.empty() || pass_filter == "fwd") {
    const double ms = median_ms(opt, [&] {
      NoGradGuard g;
      Tensor y = f(inputs);
    });
    Record r = record(name, shape, ms);
    r["pass"] = "fwd";
    finish(r, fwd_units);
  }
  if (pass_filter.empty() || pass_filter == "fwd+bwd") {
    Tensor dy;
    {
      NoGradGuard g;
      dy = randn(f(inputs).shape());
    }
    const double ms = median_ms(opt, [&] {
      for (auto& t : inputs)
        if (t.requires_grad()) t.zero_grad();
      Tensor y = f(inputs);
      y.backward(dy);
    });
    Record r = record(name, shape, ms);
    r["pass"] = "fwd+bwd";
    finish(r, fwd_units + bwd_units);
  }
}

constexpr double F = 4.0;  // bytes per f32

void softmax_case(const Options& opt, bool log, int64_t rows, int64_t cols) {
  const double n = static_cast<double>(rows * cols);
  fwd_bwd(opt, log ? "log_softmax" : "softmax", dims({rows, cols}), {randn({rows, cols}).requires_grad_()},
          [log](const std::vector<Tensor>& in) { return log ? log_softmax(in[0], -1) : softmax(in[0], -1); },
          2 * n * F, 3 * n * F, false);
}

void norm_case(const Options& opt, bool rms, int64_t rows, int64_t cols) {
  const double n = static_cast<double>(rows * cols);
  std::vector<Tensor> in{randn({rows, cols}).requires_grad_(), ones({cols}).requires_grad_()};
  if (!rms) in.push_back(zeros({cols}).requires_grad_());
  fwd_bwd(opt, rms ? "rms_norm" : "layer_norm", dims({rows, cols}), in,
          [rms, cols](const std::vector<Tensor>& t) {
            return rms ? rms_norm(t[0], {cols}, t[1]) : layer_norm(t[0], {cols}, t[1], t[2]);
          },
          2 * n * F, 3 * n * F, false);
}

// A pre-norm block's `h = x + r; y = norm(h); out = h + f(y)`, with f the
// identity: residual_layer_norm against add + layer_norm. Both count the fused
// kernels' traffic (fwd: x, r read, h, y written, then the trailing add's 3;
// bwd: g_y, h, g_h read, dh written), so their GB/s compare as speeds.
void residual_norm_case(const Options& opt, int64_t rows, int64_t cols) {
  const double n = static_cast<double>(rows * cols);
  std::vector<Tensor> in{randn({rows, cols}).requires_grad_(), randn({rows, cols}).requires_grad_(),
                         ones({cols}).requires_grad_(), zeros({cols}).requires_grad_()};
  for (bool fused : {true, false}) {
    fwd_bwd(opt, fused ? "residual_layer_norm" : "add+layer_norm", dims({rows, cols}), in,
            [fused, cols](const std::vector<Tensor>& t) {
              if (fused) {
                const ResidualNorm r = residual_layer_norm(t[0], t[1], {cols}, t[2], t[3]);
                return add(r.sum, r.normed);
              }
              Tensor h = add(t[0], t[1]);
              return add(h, layer_norm(h, {cols}, t[2], t[3]));
            },
            7 * n * F, 4 * n * F, false);
  }
}

void gelu_case(const Options& opt, GeluApprox approx, int64_t rows, int64_t cols) {
  const double n = static_cast<double>(rows * cols);
  fwd_bwd(opt, approx == GeluApprox::tanh ? "gelu_tanh" : "gelu_erf", dims({rows, cols}),
          {randn({rows, cols}).requires_grad_()},
          [approx](const std::vector<Tensor>& in) { return gelu(in[0], approx); }, 2 * n * F, 3 * n * F, false);
}

void cross_entropy_case(const Options& opt, int64_t rows, int64_t vocab) {
  const double n = static_cast<double>(rows * vocab);
  Tensor targets = randint(0, vocab, {rows});
  fwd_bwd(opt, "cross_entropy", dims({rows, vocab}), {randn({rows, vocab}).requires_grad_()},
          [targets](const std::vector<Tensor>& in) { return cross_entropy(in[0], targets); },
          n * F + rows * 8.0, 2 * n * F + rows * 8.0, false);
}

void adamw_case(const Options& opt, int64_t params) {
  Tensor p = randn({params});
  p.requires_grad_();
  p.set_grad(randn({params}));
  optim::ParamGroup g;
  g.name = "decay";
  g.params = {p};
  g.weight_decay = 0.1;
  optim::AdamW adam({g}, optim::AdamWOptions{0.9, 0.95, 1e-8});
  const double ms = median_ms(opt, [&] { adam.step(1e-3); });
  Record r = record("adamw", std::to_string(params), ms);
  r["pass"] = "step";
  add_gbps(r, 7.0 * static_cast<double>(params) * F, opt);  // reads p, g, m, v; writes p, m, v
  emit(r);
}

// dropout(x, p) against the composition it replaces, on the same Philox
// stream. Both count the one-pass form's traffic (fwd: x read, mask and y
// written; bwd: dy and mask read, dx written), so their GB/s compare as speeds.
void dropout_case(const Options& opt, int64_t rows, int64_t cols) {
  const double n = static_cast<double>(rows * cols), p = 0.1;
  Generator gen(1);
  for (bool fused : {true, false}) {
    fwd_bwd(opt, fused ? "dropout" : "rand+ge+where+mul", dims({rows, cols}), {randn({rows, cols}).requires_grad_()},
            [fused, p, &gen](const std::vector<Tensor>& t) {
              if (fused) return dropout(t[0], p, true, &gen);
              const Tensor keep = ge(rand(t[0].shape(), {}, &gen), full({}, p));
              return mul(t[0], where(keep, full({}, 1.0 / (1.0 - p)), zeros({})));
            },
            3 * n * F, 3 * n * F, false);
  }
}

// Strided copies (contiguous() of a permuted view), forward only: the
// copy's bytes (read once, written once) against the copy bandwidth. The
// contiguous clone is the baseline; the others differ in the length of the
// runs both sides agree on: a 2x2 patch row (2), a 16x16 one (16), an
// attention head (64), and a 2-D transpose (strided reads of 1).
void copy_case(const Options& opt, const std::string& name, const Tensor& x,
               const std::function<Tensor(const Tensor&)>& view) {
  const double n = static_cast<double>(x.numel());
  fwd_bwd(opt, name, dims(x.shape()), {x}, [view](const std::vector<Tensor>& t) { return view(t[0]).contiguous(); },
          2 * n * F, 0, false, "fwd");
}

double conv_flops(int64_t n, int64_t cin, int64_t cout, int64_t ho, int64_t wo, int64_t kh, int64_t kw) {
  return 2.0 * static_cast<double>(n * cout * ho * wo) * static_cast<double>(cin * kh * kw);
}

}  // namespace

void run_memory(const std::string& which, const Options& opt) {
  const bool all = which == "memory";
  if (all || which == "softmax") {
    for (bool log : {false, true}) {
      softmax_case(opt, log, 8192, 1024);
      softmax_case(opt, log, 16 * 6 * 128, 128);  // poetry-gpt attention scores
    }
  }
  if (all || which == "layer_norm") {
    norm_case(opt, false, 8192, 1024);
    norm_case(opt, false, 2048, 192);  // poetry-gpt activations
  }
  if (all || which == "rms_norm") {
    norm_case(opt, true, 8192, 1024);
    norm_case(opt, true, 2048, 192);
  }
  if (all || which == "residual_norm") {
    residual_norm_case(opt, 8192, 1024);
    residual_norm_case(opt, 2048, 192);
  }
  if (all || which == "gelu") {
    for (GeluApprox approx : {GeluApprox::tanh, GeluApprox::none}) {
      gelu_case(opt, approx, 8192, 1024);
      gelu_case(opt, approx, 2048, 768);  // poetry-gpt MLP hidden
    }
  }
  if (all || which == "cross_entropy") cross_entropy_case(opt, 2048, 4096);  // poetry-gpt logits
  if (all || which == "adamw") adamw_case(opt, opt.integer("params", 4 << 20));
  if (all || which == "copy") {
    copy_case(opt, "copy.clone", randn({8192, 1024}), [](const Tensor& x) { return x.clone(); });
    copy_case(opt, "copy.patchify2", randn({32, 64, 16, 16}), [](const Tensor& x) { return patchify(x, 2); });
    copy_case(opt, "copy.patchify16", randn({8, 3, 224, 224}), [](const Tensor& x) { return patchify(x, 16); });
    copy_case(opt, "copy.heads", randn({8, 1024, 12, 64}), [](const Tensor& x) { return x.permute({0, 2, 1, 3}); });
    copy_case(opt, "copy.transpose", randn({4096, 4096}), [](const Tensor& x) { return x.t(); });
  }
  if (all || which == "dropout") {
    dropout_case(opt, 8192, 1024);
    dropout_case(opt, 2048, 128);  // poetry-gpt activations
  }
}

namespace {

// conv2d through the backend's convolution entry (one node; the backward
// recomputes the columns) beside the composition it replaced, unfold2d +
// matmul + add, which keeps the columns alive for the backward.
void conv_pair(const Options& opt, const std::string& shape, std::vector<Tensor> in, std::vector<int64_t> stride,
               std::vector<int64_t> padding, double fwd_flops, double bwd_flops) {
  for (bool fused : {true, false}) {
    fwd_bwd(opt, fused ? "conv2d" : "conv2d_composed", shape, in,
            [fused, stride, padding](const std::vector<Tensor>& t) {
              if (fused) return conv2d(t[0], t[1], t[2], stride, padding);
              const int64_t o = t[1].size(0);
              const int64_t oh = (t[0].size(2) + 2 * padding[0] - t[1].size(2)) / stride[0] + 1;
              const int64_t ow = (t[0].size(3) + 2 * padding[1] - t[1].size(3)) / stride[1] + 1;
              Tensor cols = unfold2d(t[0], {t[1].size(2), t[1].size(3)}, stride, padding);
              Tensor y = matmul(t[1].reshape({o, -1}), cols).reshape({t[0].size(0), o, oh, ow});
              return add(y, t[2].reshape({1, o, 1, 1}));
            },
            fwd_flops, bwd_flops, true);
  }
  // A patch stem (kernel = stride, no padding) also as tokens [N, L, O], the
  // layout a transformer reads: conv2d with its output transposed into
  // tokens, against patch_embed (patchify and one GEMM, tokens out).
  const bool patch_stem = padding[0] == 0 && padding[1] == 0 && stride[0] == in[1].size(2) &&
                          stride[1] == in[1].size(3) && stride[0] == stride[1];
  if (!patch_stem) return;
  fwd_bwd(opt, "conv2d_tokens", shape, in,
          [stride](const std::vector<Tensor>& t) {
            return conv2d(t[0], t[1], t[2], stride, {0, 0}).flatten(2).transpose(1, 2).contiguous();
          },
          fwd_flops, bwd_flops, true);
  fwd_bwd(opt, "patch_embed", shape, in,
          [](const std::vector<Tensor>& t) { return patch_embed(t[0], t[1], t[2]); }, fwd_flops, bwd_flops, true);
}

}  // namespace

void run_conv(const Options& opt) {
  struct Case {
    const char* name;
    int64_t n, c, h, w, o, kh, kw, sh, sw, ph, pw;
    bool input_grad;  // images need none: their backward is dW and db only
  };
  const Case cases[] = {
      // fashion-vit's patch stem: 1 -> 64 channels, 4x4 stride 4
      {"x128x1x28x28_w64x1x4x4_s4", 128, 1, 28, 28, 64, 4, 4, 4, 4, 0, 0, false},
      // omni-tiny's patch stem after its conv stem: 64 channels, 2x2 stride 2
      {"x32x64x16x16_w64x64x2x2_s2", 32, 64, 16, 16, 64, 2, 2, 2, 2, 0, 0, true},
      // ViT-B/16's stem on a small batch: 224x224 RGB -> 768 channels
      {"x8x3x224x224_w768x3x16x16_s16", 8, 3, 224, 224, 768, 16, 16, 16, 16, 0, 0, false},
      // a 3x3 stride-2 convolution of the CNN recipe arch: 32 -> 64 channels, 28x28 -> 14x14
      {"x128x32x28x28_w64x32x3x3_s2p1", 128, 32, 28, 28, 64, 3, 3, 2, 2, 1, 1, true},
      // omni-tiny, batch 32: the image stem (64x64 RGB -> 32 channels -> 64,
      // both 3x3 stride 2) and the audio encoder's first conv1d over 512
      // log-mel frames of 80 bins, as conv2d sees it ([N, C, 1, L])
      {"x32x3x64x64_w32x3x3x3_s2p1", 32, 3, 64, 64, 32, 3, 3, 2, 2, 1, 1, false},
      {"x32x32x32x32_w64x32x3x3_s2p1", 32, 32, 32, 32, 64, 3, 3, 2, 2, 1, 1, true},
      {"x32x80x1x512_w64x80x1x3_s1x2p0x1", 32, 80, 1, 512, 64, 1, 3, 1, 2, 0, 1, true},
  };
  for (const Case& c : cases) {
    const int64_t oh = (c.h + 2 * c.ph - c.kh) / c.sh + 1, ow = (c.w + 2 * c.pw - c.kw) / c.sw + 1;
    const double fl = conv_flops(c.n, c.c, c.o, oh, ow, c.kh, c.kw);
    Tensor x = randn({c.n, c.c, c.h, c.w});
    if (c.input_grad) x.requires_grad_();
    conv_pair(opt, c.name, {x, randn({c.o, c.c, c.kh, c.kw}).requires_grad_(), zeros({c.o}).requires_grad_()},
              {c.sh, c.sw}, {c.ph, c.pw}, fl, c.input_grad ? 2 * fl : fl);
  }
}

// A transformer MLP's first layer with its activation: linear_gelu (the
// backend's fused entry: bias and GELU applied as the product is written)
// beside matmul + add + gelu. FLOPs count the products only (2 M N K
// forward, twice that backward).
void run_linear(const Options& opt) {
  struct Case {
    int64_t m, k, n;
  };
  // GPT-2 124M's MLP over 2048 tokens; poetry-gpt's
  for (const Case& c : {Case{2048, 768, 3072}, Case{2048, 192, 768}}) {
    const double fl = 2.0 * static_cast<double>(c.m) * static_cast<double>(c.k) * static_cast<double>(c.n);
    std::vector<Tensor> in{randn({c.m, c.k}).requires_grad_(), mul(randn({c.n, c.k}), 0.03).requires_grad_(),
                           zeros({c.n}).requires_grad_()};
    for (bool fused : {true, false}) {
      fwd_bwd(opt, fused ? "linear_gelu" : "matmul+add+gelu", dims({c.m, c.k, c.n}), in,
              [fused](const std::vector<Tensor>& t) {
                if (fused) return linear_gelu(t[0], t[1], t[2], GeluApprox::tanh);
                return gelu(add(matmul(t[0], t[1].t()), t[2]), GeluApprox::tanh);
              },
              fl, 2 * fl, true);
    }
  }
}

void run_attention(const Options& opt) {
  struct Case {
    int64_t b, h, lq, t, d;  // t keys; lq queries (the last lq positions when causal, as in decoding)
    bool causal;
  };
  std::vector<Case> cases;
  if (opt.has("seq")) {
    const int64_t t = opt.integer("seq", 256);
    cases.push_back({opt.integer("batch", 2), opt.integer("heads", 8), opt.integer("queries", t), t,
                     opt.integer("head-dim", 64), opt.integer("causal", 0) != 0});
  } else {
    for (int64_t t : {128, 256, 512, 1024, 2048})
      for (bool c : {false, true}) cases.push_back({2, 8, t, t, 64, c});
    cases.push_back({16, 6, 128, 128, 32, true});  // poetry-gpt
    cases.push_back({128, 4, 49, 49, 16, false});  // fashion-vit
    cases.push_back({1, 4, 1, 128, 32, true});     // poetry-gpt decoding one token from a full KV cache
  }
  for (const auto& c : cases) {
    const double fl = 4.0 * static_cast<double>(c.b * c.h) * static_cast<double>(c.lq * c.t) * static_cast<double>(c.d);
    const bool causal = c.causal;
    const std::vector<Tensor> in{randn({c.b, c.h, c.lq, c.d}).requires_grad_(),
                                 randn({c.b, c.h, c.t, c.d}).requires_grad_(),
                                 randn({c.b, c.h, c.t, c.d}).requires_grad_()};
    const std::string shape = dims({c.b, c.h, c.lq, c.d}) + (c.lq != c.t ? " keys " + std::to_string(c.t) : "");
    // The fused kernel and the composition (matmul, mask, softmax, matmul) on the same inputs.
    for (AttentionKernel kernel : {AttentionKernel::fused, AttentionKernel::composed}) {
      const std::string name = std::string(causal ? "attention_causal" : "attention") +
                               (kernel == AttentionKernel::composed ? "_composed" : "");
      fwd_bwd(opt, name, shape, in,
              [causal, kernel](const std::vector<Tensor>& t) {
                AttentionKernelGuard use(kernel);
                return scaled_dot_product_attention(t[0], t[1], t[2], Tensor(), causal);
              },
              fl, 2 * fl, true);
    }
  }
}

}  // namespace loom::bench
