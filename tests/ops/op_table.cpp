#include "op_table.hpp"

#include <loom/core/cuda.hpp>

namespace loom::testing {

namespace {

using K = InputSpec::Kind;
using V = std::vector<Tensor>;

InputSpec in(Shape s, K k = K::normal, bool nc = false, int64_t high = 0) { return InputSpec{std::move(s), k, nc, high}; }
InputSpec nc(Shape s, K k = K::normal) { return InputSpec{std::move(s), k, true, 0}; }
InputSpec idx(Shape s, int64_t high) { return InputSpec{std::move(s), K::index, false, high}; }

// The pre-norm transformer block used as a whole-model golden:
// x + attn(ln1(x)), then + mlp(ln2(x)); causal, 2 heads.
Tensor transformer_block(const V& p) {
  const Tensor& x = p[0];
  const int64_t b = x.size(0), t = x.size(1), d = x.size(2), h = 2;
  Tensor n1 = layer_norm(x, {d}, p[1], p[2]);
  Tensor qkv = linear(n1, p[3], p[4]);
  auto parts = split(qkv, d, -1);
  auto heads = [&](const Tensor& y) { return y.reshape({b, t, h, d / h}).transpose(1, 2); };
  Tensor a = scaled_dot_product_attention(heads(parts[0]), heads(parts[1]), heads(parts[2]), Tensor(), true);
  Tensor y = add(x, linear(a.transpose(1, 2).reshape({b, t, d}), p[5], p[6]));
  Tensor n2 = layer_norm(y, {d}, p[7], p[8]);
  return add(y, linear(gelu(linear(n2, p[9], p[10]), GeluApprox::tanh), p[11], p[12]));
}

std::vector<OpCase> build() {
  std::vector<OpCase> c;
  // pointwise, with broadcasting and non-contiguous operands
  c.push_back({"add", {in({3, 4}), in({4})}, [](const V& v) { return add(v[0], v[1]); }});
  c.push_back({"add_broadcast", {in({2, 1, 4}), nc({3, 1})}, [](const V& v) { return add(v[0], v[1]); }});
  c.push_back({"sub", {nc({3, 4}), in({3, 1})}, [](const V& v) { return sub(v[0], v[1]); }});
  c.push_back({"mul", {in({2, 3, 4}), in({3, 4})}, [](const V& v) { return mul(v[0], v[1]); }});
  c.push_back({"div", {in({3, 4}), in({3, 4}, K::positive, true)}, [](const V& v) { return div(v[0], v[1]); }});
  c.push_back({"neg", {nc({3, 4})}, [](const V& v) { return neg(v[0]); }});
  c.push_back({"exp", {in({3, 4})}, [](const V& v) { return exp(v[0]); }});
  c.push_back({"log", {in({3, 4}, K::positive)}, [](const V& v) { return log(v[0]); }});
  c.push_back({"sqrt", {in({3, 4}, K::positive, true)}, [](const V& v) { return sqrt(v[0]); }});
  c.push_back({"rsqrt", {in({3, 4}, K::positive)}, [](const V& v) { return rsqrt(v[0]); }});
  c.push_back({"pow_scalar", {in({3, 4}, K::positive)}, [](const V& v) { return pow(v[0], 2.5); }});
  c.push_back({"pow_tensor", {in({3, 4}, K::positive), in({4})}, [](const V& v) { return pow(v[0], v[1]); }});
  c.push_back({"abs", {in({3, 4}, K::away_from_zero)}, [](const V& v) { return abs(v[0]); }});
  c.push_back({"clamp", {in({4, 5})}, [](const V& v) { return clamp(v[0], -0.5, 0.7); }});
  c.push_back({"tanh", {nc({3, 4})}, [](const V& v) { return tanh(v[0]); }});
  c.push_back({"sigmoid", {in({3, 4})}, [](const V& v) { return sigmoid(v[0]); }});
  c.push_back({"relu", {in({3, 4}, K::away_from_zero)}, [](const V& v) { return relu(v[0]); }});
  c.push_back({"gelu_erf", {in({3, 4})}, [](const V& v) { return gelu(v[0]); }});
  c.push_back({"gelu_tanh", {in({3, 4})}, [](const V& v) { return gelu(v[0], GeluApprox::tanh); }});
  c.push_back({"silu", {nc({3, 4})}, [](const V& v) { return silu(v[0]); }});
  c.push_back({"maximum", {in({3, 4}), in({4})}, [](const V& v) { return maximum(v[0], v[1]); }});
  c.push_back({"where", {in({3, 4}, K::mask), in({3, 4}), in({4})}, [](const V& v) { return where(v[0], v[1], v[2]); }});
  c.push_back({"masked_fill", {in({3, 4}), in({1, 4}, K::mask)}, [](const V& v) { return masked_fill(v[0], v[1], 2.5); }});
  // reductions
  c.push_back({"sum_all", {nc({3, 4})}, [](const V& v) { return sum(v[0]); }});
  c.push_back({"sum_dim_keepdim", {in({2, 3, 4})}, [](const V& v) { return sum(v[0], {1}, true); }});
  c.push_back({"sum_dims", {nc({2, 3, 4})}, [](const V& v) { return sum(v[0], {0, 2}); }});
  c.push_back({"mean_dim", {in({3, 5})}, [](const V& v) { return mean(v[0], {-1}); }});
  c.push_back({"var_dim", {in({3, 5})}, [](const V& v) { return var(v[0], {1}); }});
  c.push_back({"amax_dim", {in({3, 5})}, [](const V& v) { return amax(v[0], {1}, true); }});
  c.push_back({"max_dim", {nc({4, 5})}, [](const V& v) { return max(v[0], 0).first; }});
  // softmax family
  c.push_back({"softmax", {in({3, 5})}, [](const V& v) { return softmax(v[0], -1); }});
  c.push_back({"softmax_dim0", {nc({4, 3})}, [](const V& v) { return softmax(v[0], 0); }});
  c.push_back({"log_softmax", {in({2, 3, 5})}, [](const V& v) { return log_softmax(v[0], -1); }});
  // products
  c.push_back({"matmul", {in({3, 4}), nc({4, 5})}, [](const V& v) { return matmul(v[0], v[1]); }});
  c.push_back({"matmul_broadcast", {in({2, 3, 4, 5}), in({5, 2})}, [](const V& v) { return matmul(v[0], v[1]); }});
  c.push_back({"matmul_vector", {in({4}), in({2, 4, 3})}, [](const V& v) { return matmul(v[0], v[1]); }});
  c.push_back({"bmm", {in({2, 3, 4}), in({2, 4, 5})}, [](const V& v) { return bmm(v[0], v[1]); }});
  c.push_back({"linear", {in({2, 3, 4}), in({5, 4}), in({5})}, [](const V& v) { return linear(v[0], v[1], v[2]); }});
  // 8 outputs: the width cuBLASLt's GELU epilogue takes; a strided weight is copied first
  c.push_back({"linear_gelu_tanh", {in({2, 3, 4}), nc({8, 4}), in({8})},
               [](const V& v) { return linear_gelu(v[0], v[1], v[2], GeluApprox::tanh); }});
  c.push_back({"linear_gelu_erf", {in({3, 4}), in({6, 4}), in({6})},
               [](const V& v) { return linear_gelu(v[0], v[1], v[2], GeluApprox::none); }});
  // normalisation, embedding, losses
  c.push_back({"layer_norm", {in({3, 6}), in({6}), in({6})}, [](const V& v) { return layer_norm(v[0], {6}, v[1], v[2]); }});
  c.push_back({"rms_norm", {nc({4, 6}), in({6})}, [](const V& v) { return rms_norm(v[0], {6}, v[1]); }});
  // both outputs carry gradient: the norm's, plus the sum's added in the fused backward
  c.push_back({"residual_layer_norm", {in({3, 6}), nc({3, 6}), in({6}), in({6})}, [](const V& v) {
                 const ResidualNorm r = residual_layer_norm(v[0], v[1], {6}, v[2], v[3]);
                 return add(mul(r.sum, 0.5), r.normed);
               }});
  c.push_back({"residual_rms_norm", {nc({4, 6}), in({4, 6}), in({6})},
               [](const V& v) { return residual_rms_norm(v[0], v[1], {6}, v[2]).normed; }});
  c.push_back({"embedding", {in({7, 4}), idx({2, 3}, 7)}, [](const V& v) { return embedding(v[0], v[1]); }});
  c.push_back({"cross_entropy", {in({5, 4}), idx({5}, 4)}, [](const V& v) { return cross_entropy(v[0], v[1]); }});
  c.push_back({"cross_entropy_smooth_ignore", {in({6, 5}), idx({6}, 5)}, [](const V& v) {
                 CrossEntropyOptions o;
                 o.label_smoothing = 0.1;
                 o.ignore_index = 2;
                 return cross_entropy(v[0], v[1], o);
               }});
  c.push_back({"dropout", {in({4, 5})}, [](const V& v) {
                 Generator g(1234);  // the same mask on every call
                 return dropout(v[0], 0.3, true, &g);
               }, false});
  // convolutions and attention
  c.push_back({"conv1d", {in({2, 3, 7}), in({4, 3, 3}), in({4})}, [](const V& v) { return conv1d(v[0], v[1], v[2], 2, 1); }});
  c.push_back({"conv2d", {in({2, 2, 5, 5}), in({3, 2, 3, 3}), in({3})},
               [](const V& v) { return conv2d(v[0], v[1], v[2], {2, 2}, {1, 1}); }});
  c.push_back({"conv2d_patch", {in({1, 3, 4, 4}), in({5, 3, 2, 2})},
               [](const V& v) { return conv2d(v[0], v[1], Tensor(), {2, 2}, {0, 0}); }});
  c.push_back({"patch_embed", {in({2, 3, 4, 6}), in({5, 3, 2, 2}), in({5})},
               [](const V& v) { return patch_embed(v[0], v[1], v[2]); }});
  c.push_back({"attention", {in({2, 3, 4}), in({2, 5, 4}), in({2, 5, 3})},
               [](const V& v) { return scaled_dot_product_attention(v[0], v[1], v[2]); }});
  c.push_back({"attention_causal", {in({1, 2, 4, 3}), nc({1, 2, 4, 3}), in({1, 2, 4, 3})},
               [](const V& v) { return scaled_dot_product_attention(v[0], v[1], v[2], Tensor(), true); }});
  c.push_back({"attention_padding_mask", {in({2, 1, 3, 4}), in({2, 1, 5, 4}), in({2, 1, 5, 4}), in({2, 1, 1, 5}, K::mask)},
               [](const V& v) { return scaled_dot_product_attention(v[0], v[1], v[2], v[3]); }});
  // head dims in whole 16-wide tiles and sequences over one 64-row tile: the
  // fused kernels' tiles (CUDA) and query blocks (CPU) cut mid-way
  c.push_back({"attention_tiles_causal_padding",
               {in({1, 2, 70, 16}), nc({1, 2, 70, 16}), in({1, 2, 70, 16}), in({1, 1, 1, 70}, K::mask)},
               [](const V& v) { return scaled_dot_product_attention(v[0], v[1], v[2], v[3], true); }});
  c.push_back({"attention_tiles_kv_cache", {in({2, 1, 9, 32}), in({2, 1, 75, 32}), in({2, 1, 75, 32})},
               [](const V& v) { return scaled_dot_product_attention(v[0], v[1], v[2], Tensor(), true); }});
  // views, indexing, joining
  c.push_back({"reshape", {nc({3, 4})}, [](const V& v) { return mul(v[0].reshape({2, 6}), v[0].reshape({2, 6})); }});
  c.push_back({"permute", {in({2, 3, 4})}, [](const V& v) { return v[0].permute({2, 0, 1}).contiguous(); }});
  c.push_back({"transpose", {in({3, 4})}, [](const V& v) { return exp(v[0].transpose(0, 1)); }});
  c.push_back({"narrow", {in({5, 4})}, [](const V& v) { return v[0].narrow(0, 1, 3); }});
  c.push_back({"slice_step", {nc({6, 4})}, [](const V& v) { return v[0].slice(0, 1, 6, 2); }});
  c.push_back({"expand", {in({3, 1})}, [](const V& v) { return mul(v[0].expand({2, 3, 4}), 1.5); }});
  c.push_back({"index_select", {in({5, 3}), idx({4}, 5)}, [](const V& v) { return index_select(v[0], 0, v[1]); }});
  c.push_back({"gather", {in({3, 4}), idx({3, 2}, 4)}, [](const V& v) { return gather(v[0], 1, v[1]); }});
  c.push_back({"scatter", {in({3, 4}), in({3, 1})}, [](const V& v) {
                 Tensor index = to_device(from_vector<int64_t>({2, 0, 3}, {3, 1}), v[0].device());
                 return scatter(v[0], 1, index, v[1]);
               }});
  c.push_back({"scatter_add", {in({3, 4}), in({3, 2}), idx({3, 2}, 4)},
               [](const V& v) { return scatter_add(v[0], 1, v[2], v[1]); }});
  c.push_back({"cat", {in({2, 3}), nc({4, 3})}, [](const V& v) { return cat({v[0], v[1]}, 0); }});
  c.push_back({"stack", {in({2, 3}), in({2, 3})}, [](const V& v) { return stack({v[0], v[1]}, 1); }});
  c.push_back({"split", {in({7, 2})}, [](const V& v) {
                 auto parts = split(v[0], 3, 0);
                 return cat({mul(parts[0], 2.0), parts[2], parts[1]}, 0);
               }});
  c.push_back({"chunk", {in({2, 6})}, [](const V& v) {
                 auto parts = chunk(v[0], 3, 1);
                 return mul(parts[0], parts[2]);
               }});
  // a whole pre-norm transformer block (d_model 8, 2 heads, MLP 32)
  c.push_back({"transformer_block",
               {in({2, 4, 8}), in({8}), in({8}), in({24, 8}), in({24}), in({8, 8}), in({8}), in({8}), in({8}),
                in({32, 8}), in({32}), in({8, 32}), in({8})},
               transformer_block});
  return c;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build();
  return cases;
}

const OpCase& find_case(const std::string& name) {
  for (const auto& c : op_cases())
    if (c.name == name) return c;
  LOOM_FAIL("no op case named '", name, "'");
}

Tensor with_layout(const Tensor& values, const InputSpec& spec) {
  if (!spec.non_contiguous) return values.contiguous();
  NoGradGuard guard;
  if (values.dim() >= 2) {
    // Store transposed, then view back: same values, non-contiguous strides.
    Tensor stored = values.transpose(-1, -2).contiguous();
    return stored.transpose(-1, -2);
  }
  Tensor wide = zeros({values.numel() * 2}, TensorOptions(values.dtype()).with_device(values.device()));
  wide.slice(0, 0, values.numel() * 2, 2).copy_(values);
  return wide.slice(0, 0, values.numel() * 2, 2);
}

std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Generator& gen) {
  std::vector<Tensor> out;
  for (const auto& spec : c.inputs) {
    Tensor t;
    switch (spec.kind) {
      case K::normal: t = randn(spec.shape, dtype, &gen); break;
      case K::positive: t = add(mul(rand(spec.shape, dtype, &gen), 1.5), 0.5); break;
      case K::away_from_zero: {
        Tensor n = randn(spec.shape, dtype, &gen);
        t = add(n, where(ge(n, zeros({}, dtype)), full({}, 0.1, dtype), full({}, -0.1, dtype)));
        break;
      }
      case K::index: t = randint(0, spec.high, spec.shape, DType::i64, &gen); break;
      case K::mask: {
        t = lt(rand(spec.shape, DType::f32, &gen), full({}, 0.5));
        if (t.numel() > 0) {
          NoGradGuard guard;
          t.narrow(-1, 0, 1).fill_(1.0);  // every row keeps at least one true position
        }
        break;
      }
    }
    out.push_back(with_layout(t, spec));
  }
  return out;
}

}  // namespace loom::testing
