// gradcheck: every differentiable op of the table against central finite
// differences in f64, on the table's shapes (broadcasting, non-contiguous).
#include "gradcheck.hpp"
#include "register.hpp"

namespace loom::testing {
namespace {

void gradcheck_case(const OpCase& c) {
  Generator gen(20261128);
  std::vector<bool> differentiable;
  for (const auto& spec : c.inputs) differentiable.push_back(spec.differentiable());
  gradcheck(c.fn, make_inputs(c, DType::f64, gen), differentiable, gen);
}

const bool registered = register_cases("gradcheck.", "[gradcheck]", [](const OpCase&) { return true; }, gradcheck_case);

}  // namespace
}  // namespace loom::testing
