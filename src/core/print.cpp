// Printing in the familiar nested-bracket form, summarised (first and last
// three entries per dim) when the tensor has more than 1000 elements.
#include <cmath>
#include <iomanip>
#include <sstream>

#include "loom/autograd/node.hpp"
#include "loom/core/tensor.hpp"

namespace loom {

namespace {

void print_values(std::ostream& os, const std::vector<double>& v, const Shape& shape, size_t dim, int64_t base,
                  bool summarise, bool integral, int indent) {
  const int64_t n = shape[dim];
  const int64_t inner = numel(Shape(shape.begin() + static_cast<long>(dim) + 1, shape.end()));
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarise && n > 6 && i == 3) {
      os << (dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - 3;
    }
    if (dim + 1 == shape.size()) {
      const double x = v[static_cast<size_t>(base + i)];
      if (integral) os << static_cast<int64_t>(x);
      else os << std::setprecision(4) << std::fixed << x;
    } else {
      print_values(os, v, shape, dim + 1, base + i * inner, summarise, integral, indent + 1);
    }
    if (i + 1 < n) os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  std::ostringstream os;
  if (!defined()) return "tensor(undefined)";
  const std::vector<double> v = to_vector<double>();
  os << "tensor(";
  if (dim() == 0) {
    os << std::setprecision(6) << v[0];
  } else {
    print_values(os, v, shape(), 0, 0, numel() > 1000, is_integral(dtype()), 7);
  }
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (grad_fn()) os << ", grad_fn=" << grad_fn()->name();
  else if (requires_grad()) os << ", requires_grad=true";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace loom
