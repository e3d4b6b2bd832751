// golden: nn modules and optimizers against PyTorch, from the same goldens.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include <loom/loom.hpp>

namespace loom::testing {
namespace {

nlohmann::json read_golden(const std::string& name) {
  const std::string path = std::string(LOOM_GOLDEN_DIR) + "/" + name + ".json";
  std::ifstream file(path);
  INFO("golden file " << path << " (regenerate with tests/golden/make_golden.py)");
  REQUIRE(file.good());
  return nlohmann::json::parse(file);
}

Tensor f32(const nlohmann::json& j) {
  return from_vector(j.at("data").get<std::vector<float>>(), j.at("shape").get<Shape>());
}

void expect_close(const Tensor& got, const Tensor& want, double rtol) {
  REQUIRE(got.shape() == want.shape());
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": loom " << g[i] << ", torch " << w[i]);
    REQUIRE(std::abs(g[i] - w[i]) <= rtol * (std::abs(w[i]) + scale) + 1e-7);
  }
}

TEST_CASE("golden.nn.TransformerBlock", "[golden]") {
  // The op-table transformer block, now as an nn::TransformerBlock with the same weights.
  const auto j = read_golden("transformer_block");
  const auto& in = j.at("inputs");
  nn::TransformerBlockOptions o;
  o.dim = 8;
  o.heads = 2;
  o.mlp_hidden = 32;
  o.causal = true;
  o.activation = nn::Activation::gelu_tanh;
  nn::TransformerBlock block(o);
  const std::vector<std::string> names = {"norm1.weight",    "norm1.bias",     "attn.qkv.weight", "attn.qkv.bias",
                                          "attn.out.weight", "attn.out.bias",  "norm2.weight",    "norm2.bias",
                                          "mlp.fc1.weight",  "mlp.fc1.bias",   "mlp.fc2.weight",  "mlp.fc2.bias"};
  nn::NamedTensors state;
  for (size_t i = 0; i < names.size(); ++i) state.emplace_back(names[i], f32(in.at(i + 1)));
  block.load_state_dict(state);
  Tensor x = f32(in.at(0)).requires_grad_();
  Tensor y = block.forward(x);
  expect_close(y, f32(j.at("output")), 1e-5);
  sum(mul(y, f32(j.at("weight")))).backward();
  expect_close(x.grad(), f32(j.at("grads").at(0)), 1e-5);
  auto params = block.named_parameters();
  for (size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    expect_close(params[i].second.grad(), f32(j.at("grads").at(i + 1)), 1e-5);
  }
}

void check_optimizer(const std::string& name, const std::function<std::unique_ptr<optim::Optimizer>(Tensor)>& make,
                     double lr) {
  const auto j = read_golden(name);
  Tensor p = f32(j.at("start")).requires_grad_();
  auto opt = make(p);
  for (size_t step = 0; step < j.at("grads").size(); ++step) {
    p.set_grad(f32(j.at("grads").at(step)));
    opt->step(lr);
    INFO(name << " step " << step);
    expect_close(p, f32(j.at("params").at(step)), 1e-6);
  }
}

optim::ParamGroup group(const Tensor& p, double wd) { return optim::ParamGroup{"all", {"p"}, {p}, 1.0, wd}; }

TEST_CASE("golden.optim.AdamW", "[golden]") {
  check_optimizer("optim_adamw", [](Tensor p) {
    return std::make_unique<optim::AdamW>(std::vector{group(p, 0.1)}, optim::AdamWOptions{0.9, 0.95, 1e-8});
  }, 0.01);
}

TEST_CASE("golden.optim.SGD_nesterov", "[golden]") {
  check_optimizer("optim_sgd_nesterov", [](Tensor p) {
    return std::make_unique<optim::SGD>(std::vector{group(p, 0.01)}, optim::SGDOptions{0.9, 0.0, true});
  }, 0.05);
}

TEST_CASE("golden.optim.SGD_momentum", "[golden]") {
  check_optimizer("optim_sgd_momentum", [](Tensor p) {
    return std::make_unique<optim::SGD>(std::vector{group(p, 0.0)}, optim::SGDOptions{0.8, 0.1, false});
  }, 0.05);
}

}  // namespace
}  // namespace loom::testing
