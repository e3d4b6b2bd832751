// golden: every op of the table against PyTorch. tests/golden/make_golden.py
// wrote, per case, the f32 inputs, the output and the gradients of
// sum(output * weight); here the same inputs (in the case's memory layout) go
// through loom and must agree within 1e-5 relative.
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "register.hpp"

#ifndef LOOM_GOLDEN_DIR
#error "LOOM_GOLDEN_DIR must point at tests/golden/data"
#endif

namespace loom::testing {
namespace {

Tensor tensor_from_json(const nlohmann::json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const std::string dtype = j.at("dtype");
  if (dtype == "i64") return from_vector(j.at("data").get<std::vector<int64_t>>(), shape);
  if (dtype == "bool") {
    const auto v = j.at("data").get<std::vector<int>>();
    return from_vector(std::vector<bool>(v.begin(), v.end()), shape);
  }
  REQUIRE(dtype == "f32");
  return from_vector(j.at("data").get<std::vector<float>>(), shape);
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what << ": got shape " << shape_str(got.shape()) << ", want " << shape_str(want.shape()));
  REQUIRE(got.shape() == want.shape());
  const auto g = got.contiguous().to_vector<double>();
  const auto w = want.to_vector<double>();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < g.size(); ++i) {
    // 1e-5 relative to the element, with a floor of 1e-5 of the tensor's
    // largest magnitude for elements that cancel to near zero.
    const double tol = 1e-5 * std::abs(w[i]) + 1e-5 * scale + 1e-7;
    INFO(what << " element " << i << ": loom " << g[i] << ", torch " << w[i]);
    REQUIRE(std::abs(g[i] - w[i]) <= tol);
  }
}

void golden(const OpCase& c) {
  const std::string path = std::string(LOOM_GOLDEN_DIR) + "/" + c.name + ".json";
  std::ifstream file(path);
  INFO("golden file " << path << " (regenerate with tests/golden/make_golden.py)");
  REQUIRE(file.good());
  const nlohmann::json j = nlohmann::json::parse(file);
  const auto& jin = j.at("inputs");
  REQUIRE(jin.size() == c.inputs.size());
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < jin.size(); ++i) {
    Tensor t = with_layout(tensor_from_json(jin[i]), c.inputs[i]);
    if (c.inputs[i].differentiable()) t.requires_grad_(true);
    inputs.push_back(t);
  }
  Tensor out = c.fn(inputs);
  expect_close(out, tensor_from_json(j.at("output")), "output");
  Tensor w = tensor_from_json(j.at("weight"));
  sum(mul(out, w)).backward();
  const auto& jgrads = j.at("grads");
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!c.inputs[i].differentiable()) continue;
    REQUIRE(inputs[i].grad().defined());
    expect_close(inputs[i].grad(), tensor_from_json(jgrads.at(i)), "grad of input " + std::to_string(i));
  }
}

const bool registered = register_cases(
    "golden.", "[golden]", [](const OpCase& c) { return c.golden; }, golden);

}  // namespace
}  // namespace loom::testing
