#include <catch2/catch.hpp>

#include <cmath>

#include <loom/loom.hpp>

using namespace loom;
using Catch::Contains;

namespace {
nn::TransformerBlockOptions small_block() {
  nn::TransformerBlockOptions o;
  o.dim = 8;
  o.heads = 2;
  return o;
}
}  // namespace

TEST_CASE("modules name their parameters with dotted paths", "[nn]") {
  nn::TransformerBlock block(small_block());
  std::vector<std::string> names;
  for (auto& [n, p] : block.named_parameters()) names.push_back(n);
  CHECK(names.front() == "norm1.weight");
  CHECK(std::find(names.begin(), names.end(), "attn.qkv.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "mlp.fc2.bias") != names.end());
  CHECK(block.num_parameters() == 8 * 2 + 24 * 8 + 24 + 8 * 8 + 8 + 8 * 2 + 32 * 8 + 32 + 8 * 32 + 8);
  CHECK(block.summary().find("MultiHeadAttention") != std::string::npos);
}

TEST_CASE("state dicts round-trip and strict loading lists every problem", "[nn]") {
  Generator g1(1), g2(2);
  nn::TransformerBlock a(small_block(), &g1), b(small_block(), &g2);
  Tensor x = randn({2, 3, 8});
  CHECK_FALSE(allclose(a.forward(x), b.forward(x)));
  b.load_state_dict(a.state_dict());
  CHECK(allclose(a.forward(x), b.forward(x), 0, 0));

  auto state = a.state_dict();
  state.erase(state.begin());                                  // missing norm1.weight
  state.emplace_back("extra.weight", zeros({1}));              // unexpected
  state[1].second = zeros({3, 3});                             // mis-shaped
  CHECK_THROWS_WITH(b.load_state_dict(state), Contains("missing: norm1.weight") && Contains("unexpected: extra.weight") &&
                                                  Contains("mis-shaped: attn.qkv.weight"));
  state[1].second = a.state_dict()[2].second;
  CHECK_NOTHROW(b.load_state_dict(state, false));
}

TEST_CASE("a stack of blocks on a pending residual stream equals the blocks one by one", "[nn]") {
  // forward_stream leaves each block's closing add to the next block's norm1
  // (and the last to the final norm): the same values and gradients as
  // forward() then norm(), in one fused pass fewer per block.
  Generator gen(7);
  nn::TransformerBlockOptions o = small_block();
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  for (int i = 0; i < 3; ++i) blocks.push_back(std::make_shared<nn::TransformerBlock>(o, &gen));
  nn::LayerNorm final_norm(8);
  Tensor x = randn({2, 5, 8}, DType::f32, &gen).requires_grad_();
  Tensor x2 = x.detach().clone().requires_grad_();

  nn::ResidualStream stream{x, Tensor()};
  for (auto& b : blocks) stream = b->forward_stream(stream, Tensor());
  const Tensor fused = stream.normed_by(final_norm);
  REQUIRE(fused.grad_fn() != nullptr);
  CHECK(fused.grad_fn()->name().find("residual") != std::string::npos);  // the last add went into the norm

  Tensor y = x2;
  for (auto& b : blocks) y = b->forward(y);
  const Tensor plain = final_norm.forward(y);
  CHECK(amax(abs(sub(fused, plain))).item<double>() < 1e-6);

  Tensor w = randn(fused.shape(), DType::f32, &gen);
  sum(mul(fused, w)).backward();
  std::vector<Tensor> fused_grads;
  for (auto& [name, p] : blocks[0]->named_parameters()) fused_grads.push_back(p.grad().clone());
  for (auto& b : blocks) b->zero_grad();
  sum(mul(plain, w)).backward();
  CHECK(amax(abs(sub(x.grad(), x2.grad()))).item<double>() < 1e-5);
  size_t i = 0;
  for (auto& [name, p] : blocks[0]->named_parameters()) {
    INFO(name);
    CHECK(amax(abs(sub(fused_grads[i++], p.grad()))).item<double>() < 1e-5);
  }
}

TEST_CASE("train and eval switch dropout", "[nn]") {
  Generator g(5);
  nn::MLP mlp(4, 16, nn::Activation::relu, 0.5, &g);
  Tensor x = randn({8, 4});
  mlp.eval();
  CHECK_FALSE(mlp.drop->is_training());
  CHECK(allclose(mlp.forward(x), mlp.forward(x), 0, 0));
  mlp.train();
  CHECK_FALSE(allclose(mlp.forward(x), mlp.forward(x)));
}

TEST_CASE("attention respects causal and padding masks", "[nn]") {
  nn::MultiHeadAttention attn(nn::AttentionOptions{8, 2});
  Tensor x = randn({1, 5, 8});
  Tensor y = attn.forward(x, Tensor(), Tensor(), true);
  // With a causal mask, changing the last token does not change earlier outputs.
  Tensor x2 = x.clone();
  {
    NoGradGuard g;
    x2.narrow(1, 4, 1).fill_(3.0);
  }
  Tensor y2 = attn.forward(x2, Tensor(), Tensor(), true);
  CHECK(allclose(y.narrow(1, 0, 4), y2.narrow(1, 0, 4), 1e-6, 1e-6));
  CHECK_FALSE(allclose(y.narrow(1, 4, 1), y2.narrow(1, 4, 1)));
  // A padding mask hides key 4 from every query.
  Tensor pad = from_vector<bool>({true, true, true, true, false}, {1, 1, 1, 5});
  Tensor z = attn.forward(x, Tensor(), pad), z2 = attn.forward(x2, Tensor(), pad);
  CHECK(allclose(z.narrow(1, 0, 4), z2.narrow(1, 0, 4), 1e-6, 1e-6));
}

TEST_CASE("cross-attention reads the context", "[nn]") {
  nn::TransformerBlockOptions o = small_block();
  o.cross_attention = true;
  o.context_dim = 6;
  nn::TransformerBlock block(o);
  Tensor x = randn({2, 3, 8}), ctx = randn({2, 4, 6});
  Tensor y = block.forward(x, Tensor(), ctx, Tensor());
  CHECK(y.shape() == Shape{2, 3, 8});
  CHECK_FALSE(allclose(y, block.forward(x, Tensor(), mul(ctx, 2.0), Tensor())));
  CHECK_THROWS_WITH(block.forward(x), Contains("context"));
}

TEST_CASE("conv layers and the patch stem produce the right shapes", "[nn]") {
  nn::Conv1d c1(3, 5, 3, 1, 1);
  CHECK(c1.forward(randn({2, 3, 10})).shape() == Shape{2, 5, 10});
  nn::Conv2d c2(1, 4, 3, 2, 1);
  CHECK(c2.forward(randn({2, 1, 28, 28})).shape() == Shape{2, 4, 14, 14});
  nn::PatchEmbed patches(1, 16, 4);
  CHECK(patches.forward(randn({2, 1, 28, 28})).shape() == Shape{2, 49, 16});
  CHECK_THROWS_WITH(patches.forward(randn({2, 1, 30, 30})), Contains("PatchEmbed") && Contains("[2, 1, 30, 30]"));
}

TEST_CASE("seeded initialisers are reproducible and have the right scale", "[nn]") {
  Generator a(9), b(9);
  nn::Linear l1(64, 32, true, &a), l2(64, 32, true, &b);
  CHECK(allclose(l1.weight, l2.weight, 0, 0));
  CHECK(amax(abs(l1.weight)).item<float>() <= 1.0f / 8.0f);
  Tensor w = empty({256, 512});
  nn::init::kaiming_normal_(w, std::sqrt(2.0), &a);
  CHECK(std::sqrt(var(w.reshape({-1}), {0}).item<float>()) == Approx(std::sqrt(2.0 / 512)).epsilon(0.02));
}

TEST_CASE("a Sequential MLP learns XOR with AdamW", "[nn][optim]") {
  Generator g(3);
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(2, 16, true, &g), std::make_shared<nn::LayerNorm>(16),
      std::make_shared<nn::MLP>(16, 32, nn::Activation::relu, 0.0, &g), std::make_shared<nn::Linear>(16, 2, true, &g)});
  optim::AdamW opt(optim::decay_groups(*model, 0.01));
  CHECK(opt.groups().size() == 2);  // matrices decay, biases and norm weights do not
  CHECK(opt.groups()[1].names.size() == 6);  // 4 biases + LayerNorm weight and bias
  Tensor x = from_vector<float>({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  Tensor y = from_vector<int64_t>({0, 1, 1, 0}, {4});
  float loss = 0;
  for (int step = 0; step < 300; ++step) {
    Tensor l = cross_entropy(model->forward(x), y);
    opt.zero_grad();
    l.backward();
    optim::clip_grad_norm(model->parameters(), 1.0);
    opt.step(0.05);
    loss = l.item<float>();
  }
  CHECK(loss < 0.05);
  CHECK(argmax(model->forward(x), 1).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 0});
}
