// One table of op cases, shared by every checker: finite-difference gradcheck
// (f64), PyTorch goldens (f32) and, on builds with more backends, each backend
// against the CPU. A case names its inputs by shape and kind and maps them to
// one output tensor.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <loom/loom.hpp>

namespace loom::testing {

struct InputSpec {
  enum class Kind {
    normal,          // standard normal
    positive,        // in [0.5, 2.0): log, sqrt, division
    away_from_zero,  // |x| >= 0.1: ops with a kink at 0
    index,           // i64 in [0, high)
    mask,            // bool, true with probability 1/2 (row 0 always true)
  };
  Shape shape;
  Kind kind = Kind::normal;
  bool non_contiguous = false;  // laid out transposed (or strided) in memory
  int64_t high = 0;             // for Kind::index

  bool differentiable() const { return kind != Kind::index && kind != Kind::mask; }
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  bool golden = true;  // false when PyTorch cannot produce the same values (own RNG stream)
};

const std::vector<OpCase>& op_cases();
const OpCase& find_case(const std::string& name);

// Creates the case's input tensors in `dtype` (floating inputs) from `gen`,
// honouring each spec's kind and layout.
std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Generator& gen);
// Copies `values` into a tensor with the spec's layout (non-contiguous if asked).
Tensor with_layout(const Tensor& values, const InputSpec& spec);

}  // namespace loom::testing
