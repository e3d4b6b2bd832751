// cuDNN's fused attention (its flash-attention engine, reached through the
// graph API's SDPA node in cuDNN's C++ frontend): what the automatic choice
// takes first when a backward will run (src/ops/attention.cpp), and the peer
// loom's own flash attention (flash_attention.cu) is tested and timed
// against.
// Takes bf16 and f16 q [BH, Lq, D], k and v [BH, Lk, D] (as [BH, 1, L, D]
// for cuDNN), or [B, H, L, D] views with unit stride along D read and
// written in place (self_attention's heads inside one qkv buffer), with or
// without the causal mask (aligned at the end when Lq != Lk, as loom's); f32
// accumulation. Writes the row log-sum-exp of the
// scaled scores (cuDNN's "stats", natural log: the same quantity as loom's
// lse), which its backward reads. Declines a key mask (cuDNN's padding mask
// takes sequence lengths, not per-key flags), other dtypes, and any shape for
// which cuDNN builds no plan.
// Floor: 4 BH Lq Lk D FLOPs forward (2.5x that backward; halved when causal);
// reads q, k, v and writes out once.
// The graph for a shape is built once (plan_cache.hpp): a build costs tens of
// milliseconds. The backward's algorithm is cuDNN's deterministic one (on
// Hopper it keeps dP in a workspace of about 2 BH Lq Lk bytes; larger than
// 4 GiB, the forward declines). cuDNN has no causal mask for Lq > Lk without
// sequence lengths, nor a backward for Lq = Lk = 1: those decline too.
#if LOOM_WITH_CUDA && LOOM_WITH_CUDNN && LOOM_WITH_CUDNN_FRONTEND

#include <cudnn_frontend.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "cudnn_handle.hpp"
#include "kernels.hpp"
#include "loom/ops/creation.hpp"
#include "plan_cache.hpp"
#include "runtime.hpp"

namespace loom::cuda {

namespace {

namespace fe = cudnn_frontend;

// The deterministic backward keeps dP in its workspace (about
// 2 BH Lq Lk bytes on Hopper: 1 GiB at BH = 32, L = 4096); beyond this the
// forward declines rather than accept a backward that may not fit.
constexpr int64_t kMaxBackwardWorkspaceBytes = int64_t{4} << 30;

// The tensors of the graphs, by cuDNN uid.
enum Uid : int64_t { kQ = 1, kK, kV, kOut, kStats, kGradOut, kGradQ, kGradK, kGradV };

struct AttentionGraph {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace_bytes = 0;
};

// A tensor as cuDNN's [B, H, S, D]: a packed [BH, S, D] as H = 1, or a
// [B, H, S, D] view with unit stride along D, read and written in place (the
// heads of a fused qkv projection, an output in [B, S, H, D] memory).
struct Layout4 {
  int64_t dim[4], stride[4];
};

Layout4 layout_of(const Tensor& t) {
  if (t.dim() == 3) {
    const int64_t rows = t.size(1), d = t.size(2);
    return {{t.size(0), 1, rows, d}, {rows * d, rows * d, d, 1}};
  }
  return {{t.size(0), t.size(1), t.size(2), t.size(3)}, {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}};
}

struct Geometry {
  Layout4 q, k, v, out;
  int64_t b() const { return q.dim[0]; }
  int64_t h() const { return q.dim[1]; }
  int64_t lq() const { return q.dim[2]; }
  int64_t lk() const { return k.dim[2]; }
  std::string str() const {
    const auto one = [](const Layout4& l) {
      return "[" + std::to_string(l.dim[0]) + ", " + std::to_string(l.dim[1]) + ", " + std::to_string(l.dim[2]) +
             ", " + std::to_string(l.dim[3]) + "]";
    };
    return "q " + one(q) + ", k " + one(k);
  }
};

Geometry geometry_of(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  return {layout_of(q), layout_of(k), layout_of(v), layout_of(out)};
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& g, const char* name, Uid uid,
                                                    const Layout4& l) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({l.dim[0], l.dim[1], l.dim[2], l.dim[3]})
                      .set_stride({l.stride[0], l.stride[1], l.stride[2], l.stride[3]}));
}

void mark_output(const std::shared_ptr<fe::graph::Tensor_attributes>& t, Uid uid, const Layout4& l) {
  t->set_output(true)
      .set_uid(uid)
      .set_dim({l.dim[0], l.dim[1], l.dim[2], l.dim[3]})
      .set_stride({l.stride[0], l.stride[1], l.stride[2], l.stride[3]});
}

// The row log-sum-exp, [B, H, Lq, 1] f32, packed.
template <class Attributes>
Attributes& as_stats(Attributes& t, const Geometry& s) {
  t.set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim({s.b(), s.h(), s.lq(), 1}).set_stride(
      {s.h() * s.lq(), s.lq(), 1, 1});
  return t;
}

// loom's causal mask (key j visible to query i when j <= i + Lk - Lq) is
// cuDNN's band with right bound 0, aligned bottom-right (top-left when
// Lq = Lk, the same mask, and the alignment every cuDNN 9 takes).
template <class Attributes>
void set_mask(Attributes& a, const Geometry& s, bool causal) {
  if (!causal) return;
  a.set_diagonal_alignment(s.lq() == s.lk() ? fe::DiagonalAlignment_t::TOP_LEFT : fe::DiagonalAlignment_t::BOTTOM_RIGHT)
      .set_diagonal_band_right_bound(0);
}

std::shared_ptr<fe::graph::Graph> new_graph(DType t) {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(t == DType::bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

// Validates and builds g with cuDNN's heuristics; null when cuDNN has no plan
// for it, after saying why on stderr (once per shape: the cache remembers).
std::shared_ptr<AttentionGraph> built(const std::shared_ptr<fe::graph::Graph>& g, cudnnHandle_t h, const char* what,
                                      const Geometry& s) {
  std::string why;
  auto step = [&](fe::error_t e, const char* stage) {
    if (!e.is_good() && why.empty()) why = std::string(stage) + ": " + e.get_message();
    return e.is_good();
  };
  auto plan = std::make_shared<AttentionGraph>();
  plan->graph = g;
  if (step(g->validate(), "validate") && step(g->build_operation_graph(h), "operation graph") &&
      step(g->create_execution_plans({fe::HeurMode_t::A}), "execution plans") &&
      step(g->check_support(h), "support") && step(g->build_plans(h), "plans") &&
      step(g->get_workspace_size(plan->workspace_bytes), "workspace"))
    return plan;
  std::fprintf(stderr, "loom: cuDNN has no %s plan for %s (%s); declined\n", what, s.str().c_str(), why.c_str());
  return nullptr;
}

std::shared_ptr<AttentionGraph> forward_graph(cudnnHandle_t h, DType t, const Geometry& s, double scale, bool causal) {
  auto g = new_graph(t);
  auto q = input(*g, "q", kQ, s.q), k = input(*g, "k", kK, s.k), v = input(*g, "v", kV, s.v);
  // The composite graph (matmul, scale, mask, softmax, matmul) for every
  // mask: the pattern cuDNN's Hopper flash engine matches, and the one its
  // backward is built from (the frontend would pick the newer unified node
  // for an unmasked forward on cuDNN >= 9.13).
  auto a = fe::graph::SDPA_attributes()
               .set_name("attention")
               .set_implementation(fe::AttentionImplementation_t::COMPOSITE)
               .set_generate_stats(true)
               .set_attn_scale(static_cast<float>(scale));
  set_mask(a, s, causal);
  auto [out, stats] = g->sdpa(q, k, v, a);
  mark_output(out, kOut, s.out);
  as_stats(*stats, s).set_output(true);
  return built(g, h, "attention", s);
}

// The gradients take the strides of q, k and v; grad_out those of out.
std::shared_ptr<AttentionGraph> backward_graph(cudnnHandle_t h, DType t, const Geometry& s, double scale,
                                               bool causal) {
  auto g = new_graph(t);
  auto q = input(*g, "q", kQ, s.q), k = input(*g, "k", kK, s.k), v = input(*g, "v", kV, s.v),
       out = input(*g, "out", kOut, s.out), grad_out = input(*g, "grad_out", kGradOut, s.out);
  fe::graph::Tensor_attributes stats_in;
  auto stats = g->tensor(as_stats(stats_in, s).set_name("stats"));
  auto a = fe::graph::SDPA_backward_attributes()
               .set_name("attention_backward")
               .set_attn_scale(static_cast<float>(scale))
               .set_deterministic_algorithm(true);
  set_mask(a, s, causal);
  auto [grad_q, grad_k, grad_v] = g->sdpa_backward(q, k, v, out, grad_out, stats, a);
  mark_output(grad_q, kGradQ, s.q);
  mark_output(grad_k, kGradK, s.k);
  mark_output(grad_v, kGradV, s.v);
  return built(g, h, "attention backward", s);
}

// The graph for one direction and shape, built once (null: cuDNN declines).
std::shared_ptr<AttentionGraph> graph_for(bool backward, cudnnHandle_t h, DType t, const Geometry& s,
                                          const kernels::AttentionParams& p, int device) {
  static auto* graphs = new PlanCache<AttentionGraph>(256);
  const double scale = p.scale;
  int64_t scale_bits = 0;
  static_assert(sizeof(scale_bits) == sizeof(scale));
  std::memcpy(&scale_bits, &scale, sizeof(scale));
  PlanKey key{backward, device, static_cast<int64_t>(t), p.causal, scale_bits};
  for (const Layout4* l : {&s.q, &s.k, &s.v, &s.out}) {
    key.insert(key.end(), std::begin(l->dim), std::end(l->dim));
    key.insert(key.end(), std::begin(l->stride), std::end(l->stride));
  }
  return graphs->get(key, [&] {
    return backward ? backward_graph(h, t, s, p.scale, p.causal) : forward_graph(h, t, s, p.scale, p.causal);
  });
}

void execute(AttentionGraph& plan, cudnnHandle_t h, std::unordered_map<int64_t, void*>& pointers, Device dev,
             const char* what, const Geometry& s) {
  const Tensor workspace =
      empty({std::max<int64_t>(plan.workspace_bytes, 1)}, TensorOptions(DType::u8).with_device(dev));
  fe::error_t e = plan.graph->execute(h, pointers, workspace.raw_data());
  LOOM_CHECK(e.is_good(), what, " (cuDNN) failed for ", s.str(), ": ", e.get_message());
}

// Rows cuDNN reads or writes in place: 16-byte aligned, unit stride along D,
// no broadcast dim (a gradient written through a stride 0 would lose all but
// one of the rows that share it).
bool rows_in_place(const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.raw_data()) % 16 != 0) return false;
  if (t.dim() == 3) return t.is_contiguous();
  if (t.dim() != 4 || t.stride(3) != 1) return false;
  for (int64_t i = 0; i < 3; ++i)
    if (t.stride(i) <= 0 || t.stride(i) % 8 != 0) return false;  // 16 bytes of bf16 or f16
  return true;
}

bool takes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep) {
  const DType t = q.dtype();
  if ((t != DType::bf16 && t != DType::f16) || k.dtype() != t || v.dtype() != t || key_keep.defined()) return false;
  if ((q.dim() != 3 && q.dim() != 4) || k.dim() != q.dim() || k.shape() != v.shape() || q.size(-1) != k.size(-1))
    return false;
  for (int64_t i = 0; i + 2 < q.dim(); ++i)
    if (q.size(i) != k.size(i)) return false;
  if (q.numel() == 0 || k.numel() == 0) return false;
  return rows_in_place(q) && rows_in_place(k) && rows_in_place(v);
}

bool same_layout(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.strides() == b.strides(); }

void* ptr(const Tensor& t) { return const_cast<void*>(t.raw_data()); }

}  // namespace

bool vendor_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                      const Tensor& lse, const kernels::AttentionParams& p) {
  const Device dev = out.device();
  for (const auto& [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&lse, "lse"}})
    check_on_device(*t, dev, "attention (cuDNN)", name);
  if (!takes(q, k, v, key_keep)) return false;
  LOOM_CHECK(out.dtype() == q.dtype() && out.shape() == q.shape() && rows_in_place(out),
             "attention (cuDNN): out must be ", dtype_name(q.dtype()), " ", shape_str(q.shape()),
             " with 16-byte aligned rows of unit stride, got ", dtype_name(out.dtype()), " ", shape_str(out.shape()));
  const Geometry s = geometry_of(q, k, v, out);
  LOOM_CHECK(lse.dtype() == DType::f32 && lse.is_contiguous() && lse.numel() == s.b() * s.h() * s.lq(),
             "attention (cuDNN): lse must be a contiguous f32 of ", s.b() * s.h() * s.lq(), " elements");
  DeviceGuard guard(dev.index);
  cudnnHandle_t h = cudnn(dev.index);
  const std::shared_ptr<AttentionGraph> plan = graph_for(false, h, q.dtype(), s, p, dev.index);
  // Accepting promises the backward: decline unless cuDNN has both, and the
  // deterministic backward's scratch (it grows with Lq x Lk) stays bounded.
  if (plan == nullptr) return false;
  const std::shared_ptr<AttentionGraph> backward = graph_for(true, h, q.dtype(), s, p, dev.index);
  if (backward == nullptr || backward->workspace_bytes > kMaxBackwardWorkspaceBytes) return false;
  std::unordered_map<int64_t, void*> pointers{
      {kQ, ptr(q)}, {kK, ptr(k)}, {kV, ptr(v)}, {kOut, ptr(out)}, {kStats, ptr(lse)}};
  execute(*plan, h, pointers, dev, "attention", s);
  return true;
}

void vendor_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep,
                               const Tensor& out, const Tensor& grad_out, const Tensor& lse, const Tensor& grad_q,
                               const Tensor& grad_k, const Tensor& grad_v, const kernels::AttentionParams& p) {
  const Device dev = grad_q.device();
  const char* op = "attention backward (cuDNN)";
  LOOM_CHECK(takes(q, k, v, key_keep), op, ": inputs its forward would have declined: q ", dtype_name(q.dtype()),
             " ", shape_str(q.shape()), ", k ", shape_str(k.shape()));
  LOOM_CHECK(same_layout(grad_q, q) && same_layout(grad_k, k) && same_layout(grad_v, v) &&
                 same_layout(grad_out, out) && grad_q.dtype() == q.dtype() && grad_k.dtype() == q.dtype() &&
                 grad_v.dtype() == q.dtype() && grad_out.dtype() == q.dtype(),
             op, ": the gradients must have the shapes, strides and dtype of q, k, v, and grad_out those of out");
  DeviceGuard guard(dev.index);
  cudnnHandle_t h = cudnn(dev.index);
  const Geometry s = geometry_of(q, k, v, out);
  const std::shared_ptr<AttentionGraph> plan = graph_for(true, h, q.dtype(), s, p, dev.index);
  LOOM_CHECK(plan != nullptr, op, ": no plan for ", s.str());
  std::unordered_map<int64_t, void*> pointers{{kQ, ptr(q)},           {kK, ptr(k)},          {kV, ptr(v)},
                                              {kOut, ptr(out)},       {kStats, ptr(lse)},    {kGradOut, ptr(grad_out)},
                                              {kGradQ, ptr(grad_q)},  {kGradK, ptr(grad_k)}, {kGradV, ptr(grad_v)}};
  execute(*plan, h, pointers, dev, "attention backward", s);
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA && LOOM_WITH_CUDNN && LOOM_WITH_CUDNN_FRONTEND
