// LoRA (apply, freeze, switch, merge, save/load, tensor-parallel layers),
// bottleneck adapters, prompt tuning and the trainable-parameter summary.
#include <catch2/catch.hpp>

#include <barrier>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include <loom/dist/dist.hpp>
#include <loom/dist/tensor_parallel.hpp>
#include <loom/io/safetensors.hpp>
#include <loom/loom.hpp>

#include "temp_dir.hpp"

using namespace loom;
using Catch::Contains;

namespace {

nn::TransformerBlockOptions small_block() {
  nn::TransformerBlockOptions o;
  o.dim = 8;
  o.heads = 2;
  return o;
}

nn::LoraOptions lora_options(std::vector<std::string> targets, int64_t rank = 4, double alpha = 8) {
  nn::LoraOptions o;
  o.rank = rank;
  o.alpha = alpha;
  o.targets = std::move(targets);
  return o;
}

// Fresh B is zero; give every B of every adapter random values so that the
// adapters change the output.
void randomize_lora_b(nn::Module& m, uint64_t seed) {
  Generator g(seed);
  NoGradGuard no_grad;
  for (auto& [name, p] : m.named_parameters())
    if (name.find("lora.") != std::string::npos && name.ends_with(".B"))
      p.copy_(mul(randn(p.shape(), p.dtype(), &g), 0.5));
}

std::vector<double> as_f64(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  const auto va = as_f64(a), vb = as_f64(b);
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst;
}

Tensor param(const nn::Module& m, const std::string& name) {
  for (const auto& [n, p] : m.named_parameters())
    if (n == name) return p;
  FAIL("no parameter " << name);
  return Tensor();
}

// The reference output of a Linear with the given adapters: x W^T + b + sum s B A x.
Tensor linear_with(const nn::Linear& lin, const Tensor& x, const std::vector<std::string>& adapters) {
  Tensor y = linear(x, lin.weight, lin.bias);
  for (const auto& name : adapters) {
    const nn::LoraAdapter* a = lin.lora_adapters()->find(name);
    y = add(y, mul(linear(linear(x, a->A), a->B), a->scale));
  }
  return y;
}

}  // namespace

TEST_CASE("a fresh LoRA adapter leaves the output unchanged", "[lora]") {
  Generator g(1);
  nn::TransformerBlock block(small_block(), &g);
  Tensor x = randn({2, 3, 8});
  Tensor before = block.forward(x);
  const int64_t base_params = block.num_parameters();

  Generator lg(2);
  auto wrapped = nn::apply_lora(block, "default", lora_options({"qkv", "fc1"}), &lg);
  CHECK(wrapped == std::vector<std::string>{"attn.qkv", "mlp.fc1"});
  CHECK(allclose(block.forward(x), before, 0, 0));

  CHECK(param(block, "attn.qkv.lora.default.A").shape() == Shape{4, 8});
  CHECK(param(block, "attn.qkv.lora.default.B").shape() == Shape{24, 4});
  CHECK(param(block, "mlp.fc1.lora.default.B").shape() == Shape{32, 4});
  CHECK(amax(abs(param(block, "attn.qkv.lora.default.A"))).item<float>() <= 1.0f / std::sqrt(8.0f));
  CHECK(block.num_parameters() == base_params + (4 * 8 + 24 * 4) + (4 * 8 + 32 * 4));
  CHECK(nn::lora_adapter_names(block) == std::vector<std::string>{"default"});

  // The same seed draws the same A.
  Generator g2(1), lg2(2);
  nn::TransformerBlock twin(small_block(), &g2);
  nn::apply_lora(twin, "default", lora_options({"qkv", "fc1"}), &lg2);
  CHECK(allclose(param(twin, "attn.qkv.lora.default.A"), param(block, "attn.qkv.lora.default.A"), 0, 0));
}

TEST_CASE("target patterns match trailing name segments or globs", "[lora]") {
  auto wrapped_by = [](std::vector<std::string> targets, std::vector<std::string> exclude = {}) {
    nn::TransformerBlock block(small_block());
    nn::LoraOptions o = lora_options(std::move(targets));
    o.exclude = std::move(exclude);
    return nn::apply_lora(block, "default", o);
  };
  CHECK(wrapped_by({"attn.qkv"}) == std::vector<std::string>{"attn.qkv"});
  CHECK_THROWS(wrapped_by({"fc*"}));  // a glob covers the whole name
  CHECK(wrapped_by({"*fc*"}) == std::vector<std::string>{"mlp.fc1", "mlp.fc2"});
  CHECK(wrapped_by({"attn.*"}) == std::vector<std::string>{"attn.qkv", "attn.out"});
  CHECK(wrapped_by({}) == std::vector<std::string>{"attn.qkv", "attn.out", "mlp.fc1", "mlp.fc2"});
  CHECK(wrapped_by({}, {"fc2", "out"}) == std::vector<std::string>{"attn.qkv", "mlp.fc1"});
  // No substring matching without '*': "kv" is not a trailing segment of "attn.qkv".
  CHECK_THROWS_WITH(wrapped_by({"kv"}), Contains("no Linear layer matches targets ['kv']") && Contains("'attn.qkv'"));
}

TEST_CASE("after freezing only A and B get gradients, equal to the analytic ones", "[lora]") {
  Generator g(3);
  nn::Linear lin(5, 4, true, &g);
  nn::LoraOptions o = lora_options({}, 3, 6);  // scale 2
  CHECK(o.scale() == 2.0);
  CHECK(nn::apply_lora(lin, "default", o, &g) == std::vector<std::string>{""});
  randomize_lora_b(lin, 4);
  sum(lin.forward(randn({2, 5}, {}, &g))).backward();  // a stale gradient, dropped by the freeze
  nn::mark_only_lora_trainable(lin);
  CHECK_FALSE(lin.weight.grad().defined());
  lin.zero_grad();
  const nn::LoraAdapter* ad = lin.lora_adapters()->find("default");
  CHECK_FALSE(lin.weight.requires_grad());
  CHECK_FALSE(lin.bias.requires_grad());
  CHECK(ad->A.requires_grad());
  CHECK(ad->B.requires_grad());
  CHECK(nn::trainable_summary(lin).str() == "trainable 27 of 51 parameters (52.94%)");

  Tensor x = randn({6, 5}, {}, &g), c = randn({6, 4}, {}, &g);
  Tensor y = lin.forward(x);
  sum(mul(y, c)).backward();
  CHECK_FALSE(lin.weight.grad().defined());
  CHECK_FALSE(lin.bias.grad().defined());

  // Float64 reference: y = x W^T + b + s (x A^T) B^T, loss = sum(y * c), so
  // dB = s c^T (x A^T) and dA = s B^T c^T x.
  const auto X = as_f64(x), C = as_f64(c), W = as_f64(lin.weight), b = as_f64(lin.bias), A = as_f64(ad->A),
             B = as_f64(ad->B);
  const double s = 2.0;
  std::vector<double> xa(6 * 3, 0.0), want_y(6 * 4, 0.0), want_dA(3 * 5, 0.0), want_dB(4 * 3, 0.0);
  for (int n = 0; n < 6; ++n)
    for (int k = 0; k < 3; ++k)
      for (int i = 0; i < 5; ++i) xa[n * 3 + k] += X[n * 5 + i] * A[k * 5 + i];
  for (int n = 0; n < 6; ++n)
    for (int o2 = 0; o2 < 4; ++o2) {
      double v = b[o2];
      for (int i = 0; i < 5; ++i) v += X[n * 5 + i] * W[o2 * 5 + i];
      for (int k = 0; k < 3; ++k) v += s * xa[n * 3 + k] * B[o2 * 3 + k];
      want_y[n * 4 + o2] = v;
      for (int k = 0; k < 3; ++k) {
        want_dB[o2 * 3 + k] += s * C[n * 4 + o2] * xa[n * 3 + k];
        for (int i = 0; i < 5; ++i) want_dA[k * 5 + i] += s * B[o2 * 3 + k] * C[n * 4 + o2] * X[n * 5 + i];
      }
    }
  CHECK(max_abs_diff(y, from_vector(want_y, {6, 4})) < 1e-5);
  CHECK(max_abs_diff(ad->A.grad(), from_vector(want_dA, {3, 5})) < 1e-5);
  CHECK(max_abs_diff(ad->B.grad(), from_vector(want_dB, {4, 3})) < 1e-5);

  nn::LoraOptions rs = lora_options({}, 4, 8);
  rs.rslora = true;
  CHECK(rs.scale() == 4.0);
}

TEST_CASE("merging LoRA gives the same outputs and unmerging restores the weight", "[lora]") {
  Generator g(5);
  nn::TransformerBlock block(small_block(), &g);
  nn::apply_lora(block, "default", lora_options({"qkv", "fc2"}), &g);
  randomize_lora_b(block, 6);
  Tensor x = randn({2, 3, 8}, {}, &g);
  Tensor y = block.forward(x);
  const Tensor w0 = block.attn->qkv->weight.clone(), f0 = block.mlp->fc2->weight.clone();

  nn::merge_lora(block, "default");
  CHECK(block.attn->qkv->lora_adapters()->find("default")->merged);
  CHECK(max_abs_diff(block.attn->qkv->weight, w0) > 1e-3);
  CHECK(max_abs_diff(block.forward(x), y) < 1e-5);
  // Switching the adapter off does not take a merged one out of the weight.
  nn::set_active_adapter(block, "");
  CHECK(max_abs_diff(block.forward(x), y) < 1e-5);
  nn::set_active_adapter(block, "default");
  CHECK_THROWS_WITH(nn::merge_lora(block, "default"), Contains("already merged") && Contains("attn.qkv"));

  nn::unmerge_lora(block, "default");
  CHECK(max_abs_diff(block.attn->qkv->weight, w0) < 1e-6);
  CHECK(max_abs_diff(block.mlp->fc2->weight, f0) < 1e-6);
  CHECK(max_abs_diff(block.forward(x), y) < 1e-5);
  CHECK_THROWS_WITH(nn::unmerge_lora(block, "default"), Contains("not merged"));
}

TEST_CASE("two named adapters switch and each equals its own reference", "[lora]") {
  Generator g(7);
  nn::Linear lin(6, 5, true, &g);
  nn::apply_lora(lin, "a", lora_options({}, 2, 4), &g);
  nn::apply_lora(lin, "b", lora_options({}, 3, 3), &g);
  randomize_lora_b(lin, 8);
  CHECK(lin.lora_adapters()->active() == std::vector<std::string>{"b"});  // the last applied
  CHECK(nn::lora_adapter_names(lin) == std::vector<std::string>{"a", "b"});
  Tensor x = randn({4, 6}, {}, &g);

  nn::set_active_adapter(lin, "a");
  Tensor ya = lin.forward(x);
  CHECK(max_abs_diff(ya, linear_with(lin, x, {"a"})) < 1e-5);
  nn::set_active_adapter(lin, "b");
  Tensor yb = lin.forward(x);
  CHECK(max_abs_diff(yb, linear_with(lin, x, {"b"})) < 1e-5);
  CHECK(max_abs_diff(ya, yb) > 1e-3);
  nn::set_active_adapters(lin, {"a", "b"});
  CHECK(max_abs_diff(lin.forward(x), linear_with(lin, x, {"a", "b"})) < 1e-5);
  nn::set_active_adapter(lin, "");
  CHECK(allclose(lin.forward(x), linear(x, lin.weight, lin.bias), 0, 0));
}

TEST_CASE("LoRA on the fused qkv of a TransformerBlock trains only the adapter", "[lora]") {
  Generator g(9);
  nn::TransformerBlock block(small_block(), &g);
  CHECK(nn::apply_lora(block, "default", lora_options({"qkv"}), &g) == std::vector<std::string>{"attn.qkv"});
  nn::mark_only_lora_trainable(block);
  CHECK(nn::trainable_summary(block).trainable == 4 * 8 + 24 * 4);
  nn::NamedTensors base;
  for (const auto& [n, p] : block.named_parameters())
    if (n.find(".lora.") == std::string::npos) base.emplace_back(n, p.clone());

  Tensor x = randn({2, 3, 8}, {}, &g), target = randn({2, 3, 8}, {}, &g);
  optim::AdamW opt(optim::decay_groups(block, 0.01));
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    Tensor d = sub(block.forward(x), target);
    Tensor loss = mean(mul(d, d));
    opt.zero_grad();
    loss.backward();
    for (const auto& [n, p] : block.named_parameters())
      if (n.find(".lora.") == std::string::npos) CHECK_FALSE(p.grad().defined());
    opt.step(0.01);
    (step == 0 ? first : last) = loss.item<float>();
  }
  CHECK(last < first);
  for (const auto& [n, p] : base) CHECK(allclose(param(block, n), p, 0, 0));
  CHECK(amax(abs(param(block, "attn.qkv.lora.default.B"))).item<float>() > 0);
}

TEST_CASE("a checkpoint without LoRA loads into a model with LoRA", "[lora]") {
  Generator g1(1), g2(2);
  nn::TransformerBlock plain(small_block(), &g1), tuned(small_block(), &g2);
  nn::apply_lora(tuned, "default", lora_options({"qkv"}), &g2);
  randomize_lora_b(tuned, 3);
  const Tensor b_before = param(tuned, "attn.qkv.lora.default.B").clone();
  CHECK_THROWS_WITH(tuned.load_state_dict(plain.state_dict()), Contains("missing: attn.qkv.lora.default.A"));
  nn::load_base_state_dict(tuned, plain.state_dict());
  CHECK(allclose(tuned.attn->qkv->weight, plain.attn->qkv->weight, 0, 0));
  CHECK(allclose(param(tuned, "attn.qkv.lora.default.B"), b_before, 0, 0));
  // Strict for everything else.
  auto state = plain.state_dict();
  state.erase(state.begin());
  CHECK_THROWS_WITH(nn::load_base_state_dict(tuned, state), Contains("missing: norm1.weight"));
}

TEST_CASE("an adapter saved alone loads into a fresh model with identical outputs", "[lora][io]") {
  testing::TempDir dir("lora");
  const std::string out = dir.file("adapter");
  Generator g1(11), lg(12);
  nn::TransformerBlock tuned(small_block(), &g1);
  nn::LoraOptions o = lora_options({"qkv", "*fc*"}, 2, 5);
  o.exclude = {"fc2"};
  o.rslora = true;
  nn::apply_lora(tuned, "ft", o, &lg);
  randomize_lora_b(tuned, 13);
  nn::save_adapter(tuned, "ft", out);

  const auto saved = io::load_safetensors(out + "/adapter.safetensors");
  std::vector<std::string> keys;
  for (const auto& [k, t] : saved) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"attn.qkv.lora_A", "attn.qkv.lora_B", "mlp.fc1.lora_A", "mlp.fc1.lora_B"});
  std::ifstream config_file(out + "/adapter_config.json");
  const auto config = nlohmann::json::parse(config_file);
  CHECK(config.at("rank") == 2);
  CHECK(config.at("alpha") == 5.0);
  CHECK(config.at("rslora") == true);
  CHECK(config.at("exclude") == nlohmann::json::array({"fc2"}));
  CHECK(config.at("modules") == nlohmann::json::array({"attn.qkv", "mlp.fc1"}));

  Generator g2(11);
  nn::TransformerBlock fresh(small_block(), &g2);
  nn::load_adapter(fresh, "loaded", out);
  CHECK(nn::lora_adapter_names(fresh) == std::vector<std::string>{"loaded"});
  CHECK(fresh.attn->qkv->lora_adapters()->find("loaded")->scale == Approx(5.0 / std::sqrt(2.0)));
  Tensor x = randn({2, 3, 8});
  CHECK(allclose(fresh.forward(x), tuned.forward(x), 0, 0));
}

TEST_CASE("LoRA errors name the adapter, the pattern, the file and the key", "[lora][io]") {
  testing::TempDir dir("lora-errors");
  const std::string out = dir.file("adapter");
  nn::TransformerBlock block(small_block());
  CHECK_THROWS_WITH(nn::apply_lora(block, "x", lora_options({"q_proj", "v_proj"})),
                    Contains("['q_proj', 'v_proj']") && Contains("'attn.qkv'") && Contains("'mlp.fc2'"));
  CHECK_THROWS_WITH(nn::apply_lora(block, "a.b", lora_options({})), Contains("'a.b'") && Contains("no dots"));
  CHECK_THROWS_WITH(nn::apply_lora(block, "x", lora_options({}, 0)), Contains("rank must be >= 1"));
  CHECK(nn::lora_adapter_names(block).empty());  // nothing applied by the failures

  nn::apply_lora(block, "default", lora_options({"fc1"}));
  CHECK_THROWS_WITH(nn::apply_lora(block, "default", lora_options({"qkv"})),
                    Contains("already has a LoRA adapter named 'default'"));
  CHECK_THROWS_WITH(nn::set_active_adapter(block, "other"), Contains("'other'") && Contains("['default']"));
  CHECK_THROWS_WITH(nn::merge_lora(block, "other"), Contains("merge_lora") && Contains("'other'"));
  CHECK_THROWS_WITH(nn::save_adapter(block, "other", out), Contains("save_adapter") && Contains("'other'"));
  CHECK_THROWS_WITH(nn::load_adapter(block, "more", dir.file("nowhere")),
                    Contains("cannot open") && Contains("nowhere"));

  nn::save_adapter(block, "default", out);
  // A model whose fc1 is narrower: B does not fit, the message names file and key,
  // and the model is left without the adapter.
  nn::TransformerBlockOptions narrow = small_block();
  narrow.mlp_hidden = 16;
  nn::TransformerBlock other(narrow);
  CHECK_THROWS_WITH(nn::load_adapter(other, "default", out), Contains("adapter.safetensors") &&
                                                                 Contains("'mlp.fc1.lora_B' has shape [32, 4]") &&
                                                                 Contains("needs [16, 4]"));
  CHECK(nn::lora_adapter_names(other).empty());
  // A model without that layer.
  nn::MLP mlp(8, 32);
  CHECK_THROWS_WITH(nn::load_adapter(mlp, "default", out), Contains("adapter_config.json") &&
                                                               Contains("'mlp.fc1' is not a Linear layer") &&
                                                               Contains("'fc1'"));
  // A key missing from the weights file.
  auto tensors = io::load_safetensors(out + "/adapter.safetensors");
  tensors.erase(tensors.begin());
  io::save_safetensors(out + "/adapter.safetensors", tensors);
  nn::TransformerBlock again(small_block());
  CHECK_THROWS_WITH(nn::load_adapter(again, "default", out), Contains("missing 'mlp.fc1.lora_A'"));
}

TEST_CASE("a bottleneck adapter starts as the identity and prompt tuning prepends its tokens", "[lora][peft]") {
  Generator g(21);
  nn::BottleneckAdapter adapter(8, 2, &g);
  Tensor x = randn({2, 3, 8}, {}, &g);
  CHECK(allclose(adapter.forward(x), x, 0, 0));
  CHECK(adapter.num_parameters() == 8 * 2 + 2 + 2 * 8 + 8);
  sum(adapter.forward(x)).backward();
  CHECK(amax(abs(adapter.up->weight.grad())).item<float>() > 0);  // it can learn away from the identity

  nn::PromptTuning prompt(3, 8, &g);
  Tensor y = prompt.forward(x);
  CHECK(y.shape() == Shape{2, 6, 8});
  CHECK(allclose(y.narrow(1, 3, 3), x, 0, 0));
  CHECK(allclose(y.narrow(1, 0, 3).select(0, 1), prompt.prompt, 0, 0));
  sum(y).backward();
  CHECK(allclose(prompt.prompt.grad(), full({3, 8}, 2.0), 0, 0));  // one per batch row

  Tensor mask = from_vector<bool>({true, true, false, true, false, false}, {2, 3});
  Tensor m = prompt.extend_mask(mask);
  CHECK(m.shape() == Shape{2, 6});
  CHECK(m.to_vector<bool>() ==
        std::vector<bool>{true, true, true, true, true, false, true, true, true, true, false, false});
  CHECK_THROWS_WITH(prompt.forward(randn({2, 3, 7})), Contains("PromptTuning") && Contains("[2, 3, 7]"));
  CHECK_THROWS_WITH(prompt.extend_mask(ones({2, 3})), Contains("bool [B, T]"));

  CHECK(nn::trainable_summary(nn::Linear(1000, 1000)).str() == "trainable 1,001,000 of 1,001,000 parameters (100.00%)");
}

namespace {

// A tensor-parallel group of threads in this process: each collective
// deposits every rank's tensor, waits for all, and reads them.
struct ThreadRendezvous {
  explicit ThreadRendezvous(int n) : sync(n), slots(static_cast<size_t>(n)) {}
  std::barrier<> sync;
  std::vector<Tensor> slots;
};

class DoneWork : public dist::Work {
 public:
  void wait() override {}
  bool is_completed() override { return true; }
};

class ThreadGroup : public dist::ProcessGroup {
 public:
  ThreadGroup(int rank, std::shared_ptr<ThreadRendezvous> r) : rank_(rank), r_(std::move(r)) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(r_->slots.size()); }
  std::string backend() const override { return "threads"; }
  dist::WorkPtr start_all_reduce(const Tensor& t, dist::ReduceOp op) override {
    LOOM_CHECK(op == dist::ReduceOp::sum, "ThreadGroup: only sum reductions");
    return exchange(t, [&](const std::vector<Tensor>& all) {
      Tensor s = all[0];
      for (size_t i = 1; i < all.size(); ++i) s = add(s, all[i]);
      Tensor(t).copy_(s.reshape(t.shape()));
    });
  }
  dist::WorkPtr start_all_gather(const Tensor& in, const Tensor& out) override {
    return exchange(in, [&](const std::vector<Tensor>& all) {
      std::vector<Tensor> flat;
      for (const auto& a : all) flat.push_back(a.reshape({-1}));
      Tensor(out).copy_(cat(flat, 0).reshape(out.shape()));
    });
  }
  dist::WorkPtr start_reduce_scatter(const Tensor&, const Tensor&, dist::ReduceOp) override { return unsupported(); }
  dist::WorkPtr start_broadcast(const Tensor&, int) override { return unsupported(); }
  dist::WorkPtr start_barrier() override { return unsupported(); }
  dist::WorkPtr start_send(const Tensor&, int, int) override { return unsupported(); }
  dist::WorkPtr start_recv(const Tensor&, int, int) override { return unsupported(); }
  std::shared_ptr<dist::ProcessGroup> split(int, int) override { LOOM_FAIL("ThreadGroup: split"); }
  [[noreturn]] void abort(int) override { std::abort(); }
  void drop() { r_->sync.arrive_and_drop(); }

 private:
  dist::WorkPtr unsupported() { LOOM_FAIL("ThreadGroup: collective not used by these tests"); }
  dist::WorkPtr exchange(const Tensor& mine, const std::function<void(const std::vector<Tensor>&)>& read) {
    NoGradGuard no_grad;
    r_->slots[static_cast<size_t>(rank_)] = mine.contiguous().clone();
    r_->sync.arrive_and_wait();
    read(r_->slots);
    r_->sync.arrive_and_wait();  // nobody overwrites a slot still being read
    return std::make_shared<DoneWork>();
  }
  int rank_;
  std::shared_ptr<ThreadRendezvous> r_;
};

struct RankResult {
  std::vector<std::pair<std::string, double>> diffs;  // what -> max |TP - reference|
  std::string error;
};

// On one rank: a ParallelTransformerBlock and a TransformerBlock from the same
// seed, LoRA on every linear layer of both, the same random B; outputs and
// every gradient must match, before and after merging.
void run_rank(int rank, std::shared_ptr<ThreadRendezvous> r, RankResult& result) {
  SerialKernels serial;
  auto group = std::make_shared<ThreadGroup>(rank, r);
  try {
    nn::TransformerBlockOptions o = small_block();
    o.heads = 4;
    Generator g1(31), g2(31);
    nn::TransformerBlock ref(o, &g1);
    dist::ParallelTransformerBlock par(o, group, &g2);
    Generator l1(32), l2(32);
    const auto want = nn::apply_lora(ref, "default", lora_options({}, 2, 4), &l1);
    const auto got = nn::apply_lora(par, "default", lora_options({}, 2, 4), &l2);
    result.diffs.emplace_back(got == want ? "wrapped layers" : "wrapped layers differ", got == want ? 0.0 : 1.0);
    randomize_lora_b(ref, 33);
    dist::load_full_state_dict(par, ref.state_dict(), *group);
    const auto full = dist::full_state_dict(par, *group), ref_state = ref.state_dict();
    double state_diff = full.size() == ref_state.size() ? 0.0 : 1.0;
    for (size_t i = 0; i < std::min(full.size(), ref_state.size()); ++i)
      state_diff = std::max(
          state_diff, full[i].first == ref_state[i].first ? max_abs_diff(full[i].second, ref_state[i].second) : 1.0);
    result.diffs.emplace_back("full_state_dict", state_diff);

    Generator xg(34);
    Tensor x = randn({2, 3, 8}, {}, &xg), c = randn({2, 3, 8}, {}, &xg);
    Tensor xr = x.clone().requires_grad_(), xp = x.clone().requires_grad_();
    Tensor yr = ref.forward(xr), yp = par.forward(xp);
    sum(mul(yr, c)).backward();
    sum(mul(yp, c)).backward();
    result.diffs.emplace_back("output", max_abs_diff(yp, yr));
    result.diffs.emplace_back("input grad", max_abs_diff(xp.grad(), xr.grad()));
    const auto specs = dist::sharded_parameters(par);
    for (const auto& [name, p] : par.named_parameters()) {
      Tensor want_grad = param(ref, name).grad();
      auto it = specs.find(name);
      if (it != specs.end()) want_grad = dist::shard_of(want_grad, it->second, rank, group->size());
      result.diffs.emplace_back(name + " grad", p.grad().defined() ? max_abs_diff(p.grad(), want_grad) : 1.0);
    }
    nn::merge_lora(par, "default");
    NoGradGuard no_grad;
    result.diffs.emplace_back("merged output", max_abs_diff(par.forward(x), yr));
  } catch (const std::exception& e) {
    result.error = e.what();
    group->drop();  // let the other rank run on rather than wait for this one
  }
}

}  // namespace

TEST_CASE("LoRA on tensor-parallel layers matches the TP=1 block", "[lora][tp]") {
  auto rendezvous = std::make_shared<ThreadRendezvous>(2);
  std::vector<RankResult> results(2);
  std::thread t0(run_rank, 0, rendezvous, std::ref(results[0])), t1(run_rank, 1, rendezvous, std::ref(results[1]));
  t0.join();
  t1.join();
  for (int rank = 0; rank < 2; ++rank) {
    INFO("rank " << rank << ": " << results[rank].error);
    CHECK(results[rank].error.empty());
    CHECK(results[rank].diffs.size() > 20);
    for (const auto& [what, diff] : results[rank].diffs) {
      INFO(what);
      CHECK(diff < 1e-5);
    }
  }
}

TEST_CASE("save_adapter refuses tensor-parallel shards", "[lora][tp]") {
  testing::TempDir dir("lora-tp");
  auto group = std::make_shared<dist::LocalProcessGroup>();
  dist::ColumnParallelLinear col(4, 6, group);
  nn::apply_lora(col, "default", lora_options({}));
  CHECK(col.lora_adapters()->find("default")->B.shape() == Shape{6, 4});
  CHECK_THROWS_WITH(nn::save_adapter(col, "default", dir.file("a")),
                    Contains("tensor-parallel") && Contains("full_state_dict"));
}
