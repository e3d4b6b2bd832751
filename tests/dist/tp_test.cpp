// Tensor parallel against one process. On every rank of a TP group of 2:
// each TP layer (column, row, vocab embedding, vocab-parallel cross-entropy,
// MLP, attention, transformer block) built from the same seed as its nn
// counterpart has bitwise the sliced initial weights, and gives the same
// forward outputs and gradients (input and gathered parameter grads; f32,
// 1e-5 of the largest magnitude); full_state_dict/load_full_state_dict round
// trip. Then a tiny LM (vocab-parallel embedding, parallel block, column head,
// vocab-parallel CE) on a DP x TP grid (np 2: 1x2, np 4: 2x2, DataParallel
// over the DP group) matches one process after 3 AdamW steps.
#include <cmath>

#include <loom/dist/dist.hpp>
#include <loom/dist/tensor_parallel.hpp>
#include <loom/loom.hpp>

#include "dist_check.hpp"

using namespace loom;

namespace {

dist::ProcessGroupPtr tp;  // the TP group of this rank

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to(DType::f64).to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// Largest |a - b| relative to max(1, max|b|).
double rel_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  const auto va = a.to(DType::f64).to_vector<double>(), vb = b.to(DType::f64).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst / std::max(1.0, max_abs(b));
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what, double tol = 1e-5) {
  DCHECK(got.defined() && want.defined(), what, ": undefined");
  if (!got.defined() || !want.defined()) return;
  const double d = rel_diff(got, want);
  DCHECK(d <= tol, what, ": ", shape_str(got.shape()), " vs ", shape_str(want.shape()), " differ by ", d);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vector<float>() == b.to_vector<float>();
}

// Parameter gradients of a TP module, gathered into the TP=1 layout.
nn::NamedTensors full_grads(const nn::Module& m) {
  const auto specs = dist::sharded_parameters(m);
  nn::NamedTensors out;
  for (const auto& [name, p] : m.named_parameters()) {
    Tensor g = p.grad();
    DCHECK(g.defined(), name, " has no gradient");
    if (!g.defined()) g = zeros(p.shape());
    auto it = specs.find(name);
    if (it == specs.end()) { out.emplace_back(name, g); continue; }
    Tensor local = g.contiguous();
    Tensor buf = empty({tp->size() * local.numel()});
    tp->all_gather(local.reshape({-1}), buf);
    std::vector<Tensor> shards;
    for (int r = 0; r < tp->size(); ++r) shards.push_back(buf.narrow(0, r * local.numel(), local.numel()).reshape(local.shape()));
    out.emplace_back(name, dist::unshard(shards, it->second));
  }
  return out;
}

// Initial shards are bitwise slices; after backward, every gathered gradient matches.
void check_init(const nn::Module& par, const nn::Module& ref, const std::string& what) {
  const auto full = dist::full_state_dict(par, *tp), want = ref.state_dict();
  DCHECK(full.size() == want.size(), what, ": ", full.size(), " vs ", want.size(), " state entries");
  for (size_t i = 0; i < std::min(full.size(), want.size()); ++i) {
    DCHECK(full[i].first == want[i].first, what, ": name ", full[i].first, " vs ", want[i].first);
    DCHECK(bitwise_equal(full[i].second, want[i].second), what, ": ", full[i].first, " not bitwise the TP=1 init");
  }
}

void check_grads(const nn::Module& par, const nn::Module& ref, const std::string& what) {
  const auto got = full_grads(par);
  const auto want = ref.named_parameters();
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    expect_close(got[i].second, want[i].second.grad(), what + " grad " + got[i].first);
}

// A fixed random weighting of the output, so every output element matters.
Tensor probe_loss(const Tensor& y, uint64_t seed) {
  Generator gen(seed);
  return sum(mul(y, randn(y.shape(), {}, &gen)));
}

Tensor input(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, {}, &gen).requires_grad_();
}

void test_column() {
  for (bool gather : {true, false}) {
    Generator g1(11), g2(11);
    nn::Linear ref(6, 8, true, &g1);
    dist::ColumnParallelLinear par(6, 8, tp, gather, true, &g2);
    check_init(par, ref, "column");
    Tensor x1 = input({3, 4, 6}, 5), x2 = input({3, 4, 6}, 5);
    Tensor y1 = ref.forward(x1), y2 = par.forward(x2);
    probe_loss(y1, 9).backward();
    if (gather) {
      expect_close(y2, y1, "column gathered output");
      probe_loss(y2, 9).backward();
    } else {
      Tensor want = dist::shard_of(y1.detach(), {-1, 1}, tp->rank(), tp->size());
      expect_close(y2, want, "column local output");
      // The same loss: each rank weights its own columns.
      Generator gw(9);
      Tensor w = dist::shard_of(randn(y1.shape(), {}, &gw), {-1, 1}, tp->rank(), tp->size());
      sum(mul(y2, w)).backward();
    }
    expect_close(x2.grad(), x1.grad(), "column input grad");
    check_grads(par, ref, gather ? "column(gather)" : "column");
  }
}

void test_row() {
  for (bool parallel_in : {true, false}) {
    Generator g1(12), g2(12);
    nn::Linear ref(8, 5, true, &g1);
    dist::RowParallelLinear par(8, 5, tp, parallel_in, true, &g2);
    check_init(par, ref, "row");
    Tensor x1 = input({3, 8}, 6);
    Tensor x2 = parallel_in ? dist::shard_of(x1.detach(), {-1, 1}, tp->rank(), tp->size()).requires_grad_()
                            : input({3, 8}, 6);
    Tensor y1 = ref.forward(x1), y2 = par.forward(x2);
    expect_close(y2, y1, "row output");
    probe_loss(y1, 10).backward();
    probe_loss(y2, 10).backward();
    Tensor want_gx = parallel_in ? dist::shard_of(x1.grad(), {-1, 1}, tp->rank(), tp->size()) : x1.grad();
    expect_close(x2.grad(), want_gx, "row input grad");
    check_grads(par, ref, parallel_in ? "row" : "row(scatter)");
  }
}

void test_embedding() {
  Generator g1(13), g2(13);
  nn::Embedding ref(10, 4, 1.0, &g1);
  dist::VocabParallelEmbedding par(10, 4, tp, 1.0, &g2);
  check_init(par, ref, "embedding");
  Tensor ids = from_vector(std::vector<int64_t>{0, 9, 4, 5, 5, 1, 7, 3, 2, 8, 6, 4, 0, 9, 5}, {3, 5});
  Tensor y1 = ref.forward(ids), y2 = par.forward(ids);
  expect_close(y2, y1, "embedding output");
  probe_loss(y1, 14).backward();
  probe_loss(y2, 14).backward();
  check_grads(par, ref, "embedding");
  expect_error([&] { par.forward(from_vector(std::vector<int64_t>{10}, {1})); }, {"rank", "id 10", "[0, 10)"},
               "embedding range");
}

void test_cross_entropy() {
  const int64_t n = 7, v = 10;
  Tensor full = mul(input({n, v}, 15), 3.0).detach().requires_grad_();
  Tensor local = dist::shard_of(full.detach(), {1, 1}, tp->rank(), tp->size()).requires_grad_();
  Tensor targets = from_vector(std::vector<int64_t>{3, 9, 0, -100, 5, 4, 7}, {n});
  Tensor l1 = cross_entropy(full, targets), l2 = dist::vocab_parallel_cross_entropy(local, targets, tp);
  expect_close(l2, l1, "vocab CE loss");
  l1.backward();
  l2.backward();
  expect_close(local.grad(), dist::shard_of(full.grad(), {1, 1}, tp->rank(), tp->size()), "vocab CE grad");
  expect_error([&] { dist::vocab_parallel_cross_entropy(local, from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 10}, {n}), tp); },
               {"rank", "target 10", "row 6", "[0, 10)"}, "vocab CE range");
}

void test_mlp() {
  Generator g1(16), g2(16);
  nn::MLP ref(8, 16, nn::Activation::gelu, 0.0, &g1);
  dist::ParallelMLP par(8, 16, tp, nn::Activation::gelu, 0.0, &g2);
  check_init(par, ref, "mlp");
  Tensor x1 = input({2, 3, 8}, 17), x2 = input({2, 3, 8}, 17);
  Tensor y1 = ref.forward(x1), y2 = par.forward(x2);
  expect_close(y2, y1, "mlp output");
  probe_loss(y1, 18).backward();
  probe_loss(y2, 18).backward();
  expect_close(x2.grad(), x1.grad(), "mlp input grad");
  check_grads(par, ref, "mlp");
}

void test_attention() {
  nn::AttentionOptions o{8, 4, 0, false, true, 0.0};
  Generator g1(19), g2(19);
  nn::MultiHeadAttention ref(o, &g1);
  dist::ParallelAttention par(o, tp, &g2);
  check_init(par, ref, "attention");
  Tensor x1 = input({2, 5, 8}, 20), x2 = input({2, 5, 8}, 20);
  Tensor y1 = ref.forward(x1, Tensor(), Tensor(), true), y2 = par.forward(x2, Tensor(), true);
  expect_close(y2, y1, "attention output");
  probe_loss(y1, 21).backward();
  probe_loss(y2, 21).backward();
  expect_close(x2.grad(), x1.grad(), "attention input grad");
  check_grads(par, ref, "attention");
}

void test_block() {
  nn::TransformerBlockOptions o;
  o.dim = 8;
  o.heads = 2;
  o.mlp_hidden = 16;
  o.causal = true;
  Generator g1(22), g2(22);
  nn::TransformerBlock ref(o, &g1);
  dist::ParallelTransformerBlock par(o, tp, &g2);
  check_init(par, ref, "block");
  Tensor x1 = input({2, 5, 8}, 23), x2 = input({2, 5, 8}, 23);
  Tensor y1 = ref.forward(x1), y2 = par.forward(x2);
  expect_close(y2, y1, "block output");
  probe_loss(y1, 24).backward();
  probe_loss(y2, 24).backward();
  expect_close(x2.grad(), x1.grad(), "block input grad");
  check_grads(par, ref, "block");

  // Round trip: a changed full state dict loads into the shards and gathers back.
  nn::NamedTensors changed;
  for (const auto& [name, t] : ref.state_dict()) changed.emplace_back(name, add(t.detach(), 0.25));
  dist::load_full_state_dict(par, changed, *tp);
  const auto back = dist::full_state_dict(par, *tp);
  for (size_t i = 0; i < back.size(); ++i)
    DCHECK(bitwise_equal(back[i].second, changed[i].second), "round trip of ", back[i].first);
  expect_error([&] { dist::load_full_state_dict(par, {{"attn.qkv.weight", zeros({25, 8})}}, *tp, false); },
               {"rank", "attn.qkv.weight", "[25, 8]"}, "load_full_state_dict shape");
}

// --- DP x TP: a tiny LM ---
constexpr int64_t kVocab = 16, kDim = 8, kBatch = 4, kSeq = 5;

nn::TransformerBlockOptions lm_block() {
  nn::TransformerBlockOptions o;
  o.dim = kDim;
  o.heads = 2;
  o.mlp_hidden = 16;
  o.causal = true;
  return o;
}

struct RefLM : nn::Module {
  std::shared_ptr<nn::Embedding> emb;
  std::shared_ptr<nn::TransformerBlock> block;
  std::shared_ptr<nn::Linear> head;
  explicit RefLM(Generator* gen) {
    emb = register_module("emb", std::make_shared<nn::Embedding>(kVocab, kDim, 0.5, gen));
    block = register_module("block", std::make_shared<nn::TransformerBlock>(lm_block(), gen));
    head = register_module("head", std::make_shared<nn::Linear>(kDim, kVocab, true, gen));
  }
  Tensor loss(const Tensor& ids, const Tensor& targets) {
    Tensor logits = head->forward(block->forward(emb->forward(ids)));
    return cross_entropy(logits.reshape({-1, kVocab}), targets.reshape({-1}));
  }
};

struct ParLM : nn::Module {
  std::shared_ptr<dist::VocabParallelEmbedding> emb;
  std::shared_ptr<dist::ParallelTransformerBlock> block;
  std::shared_ptr<dist::ColumnParallelLinear> head;
  dist::ProcessGroupPtr group;
  ParLM(dist::ProcessGroupPtr g, Generator* gen) : group(g) {
    emb = register_module("emb", std::make_shared<dist::VocabParallelEmbedding>(kVocab, kDim, g, 0.5, gen));
    block = register_module("block", std::make_shared<dist::ParallelTransformerBlock>(lm_block(), g, gen));
    head = register_module("head", std::make_shared<dist::ColumnParallelLinear>(kDim, kVocab, g, false, true, gen));
  }
  Tensor loss(const Tensor& ids, const Tensor& targets) {
    Tensor local_logits = head->forward(block->forward(emb->forward(ids)));
    return dist::vocab_parallel_cross_entropy(local_logits, targets, group);
  }
};

void batch(int step, Tensor& ids, Tensor& targets) {
  Generator gen(300 + static_cast<uint64_t>(step));
  ids = randint(0, kVocab, {kBatch, kSeq}, DType::i64, &gen);
  targets = randint(0, kVocab, {kBatch, kSeq}, DType::i64, &gen);
}

void test_dp_tp(const dist::ProcessGroupPtr& dp) {
  const int steps = 3;
  Generator g1(31), g2(31);
  RefLM ref(&g1);
  optim::AdamW ref_opt(optim::decay_groups(ref, 0.1));
  ParLM par(tp, &g2);
  check_init(par, ref, "lm");
  dist::DataParallel ddp(par, dp);
  optim::AdamW par_opt(optim::decay_groups(par, 0.1));
  const int64_t local = kBatch / dp->size();
  for (int s = 0; s < steps; ++s) {
    Tensor ids, targets;
    batch(s, ids, targets);
    Tensor l1 = ref.loss(ids, targets);
    l1.backward();
    ref_opt.step(0.01);
    ref_opt.zero_grad();
    Tensor l2 = par.loss(ids.narrow(0, dp->rank() * local, local), targets.narrow(0, dp->rank() * local, local));
    l2.backward();
    ddp.finish();
    par_opt.step(0.01);
    par_opt.zero_grad();
    Tensor global = l2.detach().clone();
    dp->all_reduce(global, dist::ReduceOp::avg);
    expect_close(global, l1, "dp x tp loss at step " + std::to_string(s));
  }
  const auto got = dist::full_state_dict(par, *tp), want = ref.state_dict();
  for (size_t i = 0; i < got.size(); ++i) {
    Tensor a = got[i].second, b = want[i].second;
    if (got[i].first == "block.attn.qkv.bias") {
      // The key bias has a zero true gradient (softmax ignores a per-query
      // shift), so AdamW turns rounding noise of ~1e-9 into steps of +-lr:
      // compare q and v only.
      a = cat({a.narrow(0, 0, kDim), a.narrow(0, 2 * kDim, kDim)});
      b = cat({b.narrow(0, 0, kDim), b.narrow(0, 2 * kDim, kDim)});
    }
    expect_close(a, b, "dp x tp " + got[i].first);
  }
}

}  // namespace

int main() {
  return dist_test::run_checks("tensor parallel", [](const dist::ProcessGroupPtr& world) {
    const int W = world->size(), R = world->rank();
    DCHECK(W % 2 == 0, "needs an even number of ranks, got ", W);
    constexpr int kTp = 2;
    tp = world->split(R / kTp, R);  // ranks {0,1}, {2,3}, ...
    auto dp = world->split(R % kTp, R);  // ranks {0,2}, {1,3}
    DCHECK(tp->size() == kTp && dp->size() == W / kTp, "grid ", tp->size(), " x ", dp->size());
    test_column();
    test_row();
    test_embedding();
    test_cross_entropy();
    test_mlp();
    test_attention();
    test_block();
    test_dp_tp(dp);
  });
}
