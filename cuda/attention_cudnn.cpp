// cuDNN's fused attention (its flash-attention engine, reached through the
// graph API's SDPA node in cuDNN's C++ frontend): what the automatic choice
// takes first when a backward will run (src/ops/attention.cpp), and the peer
// loom's own flash attention (flash_attention.cu) is tested and timed
// against.
// Takes bf16 and f16 q [BH, Lq, D], k and v [BH, Lk, D] (as [BH, 1, L, D]
// for cuDNN), with or without the causal mask (aligned at the end when
// Lq != Lk, as loom's); f32 accumulation. Writes the row log-sum-exp of the
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

struct Shape3 {
  int64_t bh, lq, lk, d;
};

Shape3 shape_of(const Tensor& q, const Tensor& k) { return {q.size(0), q.size(1), k.size(1), q.size(2)}; }

// A packed [BH, L, D] tensor as cuDNN's [B, H, S, D] with H = 1.
std::shared_ptr<fe::graph::Tensor_attributes> packed(fe::graph::Graph& g, const char* name, Uid uid, int64_t bh,
                                                     int64_t rows, int64_t d) {
  return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim({bh, 1, rows, d}).set_stride(
      {rows * d, rows * d, d, 1}));
}

void mark_output(const std::shared_ptr<fe::graph::Tensor_attributes>& t, Uid uid, int64_t bh, int64_t rows,
                 int64_t d) {
  t->set_output(true).set_uid(uid).set_dim({bh, 1, rows, d}).set_stride({rows * d, rows * d, d, 1});
}

// loom's causal mask (key j visible to query i when j <= i + Lk - Lq) is
// cuDNN's band with right bound 0, aligned bottom-right (top-left when
// Lq = Lk, the same mask, and the alignment every cuDNN 9 takes).
template <class Attributes>
void set_mask(Attributes& a, const Shape3& s, bool causal) {
  if (!causal) return;
  a.set_diagonal_alignment(s.lq == s.lk ? fe::DiagonalAlignment_t::TOP_LEFT : fe::DiagonalAlignment_t::BOTTOM_RIGHT)
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
                                      const Shape3& s) {
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
  std::fprintf(stderr, "loom: cuDNN has no %s plan for [%lld, %lld, %lld] x [%lld, %lld, %lld] (%s); declined\n",
               what, static_cast<long long>(s.bh), static_cast<long long>(s.lq), static_cast<long long>(s.d),
               static_cast<long long>(s.bh), static_cast<long long>(s.lk), static_cast<long long>(s.d), why.c_str());
  return nullptr;
}

std::shared_ptr<AttentionGraph> forward_graph(cudnnHandle_t h, DType t, const Shape3& s, double scale, bool causal) {
  auto g = new_graph(t);
  auto q = packed(*g, "q", kQ, s.bh, s.lq, s.d), k = packed(*g, "k", kK, s.bh, s.lk, s.d),
       v = packed(*g, "v", kV, s.bh, s.lk, s.d);
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
  mark_output(out, kOut, s.bh, s.lq, s.d);
  stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim({s.bh, 1, s.lq, 1}).set_stride(
      {s.lq, s.lq, 1, 1});
  return built(g, h, "attention", s);
}

std::shared_ptr<AttentionGraph> backward_graph(cudnnHandle_t h, DType t, const Shape3& s, double scale, bool causal) {
  auto g = new_graph(t);
  auto q = packed(*g, "q", kQ, s.bh, s.lq, s.d), k = packed(*g, "k", kK, s.bh, s.lk, s.d),
       v = packed(*g, "v", kV, s.bh, s.lk, s.d), out = packed(*g, "out", kOut, s.bh, s.lq, s.d),
       grad_out = packed(*g, "grad_out", kGradOut, s.bh, s.lq, s.d);
  auto stats = g->tensor(fe::graph::Tensor_attributes()
                             .set_name("stats")
                             .set_uid(kStats)
                             .set_data_type(fe::DataType_t::FLOAT)
                             .set_dim({s.bh, 1, s.lq, 1})
                             .set_stride({s.lq, s.lq, 1, 1}));
  auto a = fe::graph::SDPA_backward_attributes()
               .set_name("attention_backward")
               .set_attn_scale(static_cast<float>(scale))
               .set_deterministic_algorithm(true);
  set_mask(a, s, causal);
  auto [grad_q, grad_k, grad_v] = g->sdpa_backward(q, k, v, out, grad_out, stats, a);
  mark_output(grad_q, kGradQ, s.bh, s.lq, s.d);
  mark_output(grad_k, kGradK, s.bh, s.lk, s.d);
  mark_output(grad_v, kGradV, s.bh, s.lk, s.d);
  return built(g, h, "attention backward", s);
}

// The graph for one direction and shape, built once (null: cuDNN declines).
std::shared_ptr<AttentionGraph> graph_for(bool backward, cudnnHandle_t h, DType t, const Shape3& s,
                                          const kernels::AttentionParams& p, int device) {
  static auto* graphs = new PlanCache<AttentionGraph>(256);
  const double scale = p.scale;
  int64_t scale_bits = 0;
  static_assert(sizeof(scale_bits) == sizeof(scale));
  std::memcpy(&scale_bits, &scale, sizeof(scale));
  const PlanKey key{backward, device, static_cast<int64_t>(t), s.bh, s.lq, s.lk, s.d, p.causal, scale_bits};
  return graphs->get(key, [&] {
    return backward ? backward_graph(h, t, s, p.scale, p.causal) : forward_graph(h, t, s, p.scale, p.causal);
  });
}

void execute(AttentionGraph& plan, cudnnHandle_t h, std::unordered_map<int64_t, void*>& pointers, Device dev,
             const char* what, const Shape3& s) {
  const Tensor workspace =
      empty({std::max<int64_t>(plan.workspace_bytes, 1)}, TensorOptions(DType::u8).with_device(dev));
  fe::error_t e = plan.graph->execute(h, pointers, workspace.raw_data());
  LOOM_CHECK(e.is_good(), what, " (cuDNN) failed for [", s.bh, ", ", s.lq, ", ", s.d, "] x [", s.bh, ", ", s.lk,
             ", ", s.d, "]: ", e.get_message());
}

bool takes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep) {
  const DType t = q.dtype();
  if ((t != DType::bf16 && t != DType::f16) || k.dtype() != t || v.dtype() != t || key_keep.defined()) return false;
  if (q.dim() != 3 || k.dim() != 3 || k.shape() != v.shape() || q.size(0) != k.size(0) || q.size(2) != k.size(2))
    return false;
  if (q.numel() == 0 || k.numel() == 0) return false;
  for (const Tensor* t3 : {&q, &k, &v})
    if (!t3->is_contiguous() || reinterpret_cast<uintptr_t>(t3->raw_data()) % 16 != 0) return false;
  return true;
}

void* ptr(const Tensor& t) { return const_cast<void*>(t.raw_data()); }

}  // namespace

bool vendor_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_keep, const Tensor& out,
                      const Tensor& lse, const kernels::AttentionParams& p) {
  const Device dev = out.device();
  for (const auto& [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&lse, "lse"}})
    check_on_device(*t, dev, "attention (cuDNN)", name);
  if (!takes(q, k, v, key_keep)) return false;
  DeviceGuard guard(dev.index);
  cudnnHandle_t h = cudnn(dev.index);
  const Shape3 s = shape_of(q, k);
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
  LOOM_CHECK(takes(q, k, v, key_keep), "attention backward (cuDNN): inputs its forward would have declined: q ",
             dtype_name(q.dtype()), " ", shape_str(q.shape()), ", k ", shape_str(k.shape()));
  DeviceGuard guard(dev.index);
  cudnnHandle_t h = cudnn(dev.index);
  const Shape3 s = shape_of(q, k);
  const std::shared_ptr<AttentionGraph> plan = graph_for(true, h, q.dtype(), s, p, dev.index);
  LOOM_CHECK(plan != nullptr, "attention backward (cuDNN): no plan for q ", shape_str(q.shape()), ", k ",
             shape_str(k.shape()));
  std::unordered_map<int64_t, void*> pointers{{kQ, ptr(q)},           {kK, ptr(k)},          {kV, ptr(v)},
                                              {kOut, ptr(out)},       {kStats, ptr(lse)},    {kGradOut, ptr(grad_out)},
                                              {kGradQ, ptr(grad_q)},  {kGradK, ptr(grad_k)}, {kGradV, ptr(grad_v)}};
  execute(*plan, h, pointers, dev, "attention backward", s);
}

}  // namespace loom::cuda

#endif  // LOOM_WITH_CUDA && LOOM_WITH_CUDNN && LOOM_WITH_CUDNN_FRONTEND
