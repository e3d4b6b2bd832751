// gradcheck on random shapes: for several seeds, draw ranks and sizes, make
// broadcast partners (size-1 and missing leading dims), and lay operands out
// non-contiguously at random.
#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "op_table.hpp"

namespace loom::testing {
namespace {

using V = std::vector<Tensor>;

int64_t draw(Generator& g, int64_t lo, int64_t hi) { return randint(lo, hi, {1}, DType::i64, &g).item<int64_t>(); }

Shape random_shape(Generator& g, int64_t min_rank = 1) {
  Shape s(static_cast<size_t>(draw(g, min_rank, 5)));
  for (auto& d : s) d = draw(g, 1, 4);
  return s;
}

// A shape that broadcasts against `s`: some dims set to 1, some leading dims dropped.
Shape broadcast_partner(const Shape& s, Generator& g) {
  Shape p = s;
  for (auto& d : p)
    if (draw(g, 0, 3) == 0) d = 1;
  const int64_t drop = draw(g, 0, static_cast<int64_t>(p.size()));
  return Shape(p.begin() + drop, p.end());
}

Tensor operand(const Shape& s, Generator& g, bool positive = false) {
  Tensor t = positive ? add(mul(rand(s, DType::f64, &g), 1.5), 0.5) : randn(s, DType::f64, &g);
  InputSpec spec{s, InputSpec::Kind::normal, draw(g, 0, 2) == 1, 0};
  return with_layout(t, spec);
}

std::vector<int64_t> random_dims(int64_t rank, Generator& g) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d)
    if (draw(g, 0, 2) == 1) dims.push_back(draw(g, 0, 2) == 1 ? d : d - rank);  // some as negative dims
  if (dims.empty()) dims.push_back(draw(g, 0, rank));
  return dims;
}

TEST_CASE("gradcheck.random_shapes.binary", "[gradcheck]") {
  const std::vector<std::pair<const char*, OpFn>> ops = {
      {"add", [](const V& v) { return add(v[0], v[1]); }},
      {"sub", [](const V& v) { return sub(v[0], v[1]); }},
      {"mul", [](const V& v) { return mul(v[0], v[1]); }},
      {"div", [](const V& v) { return div(v[0], v[1]); }},
      {"pow", [](const V& v) { return pow(v[0], v[1]); }},
      {"maximum", [](const V& v) { return maximum(v[0], v[1]); }},
  };
  for (uint64_t seed = 0; seed < 8; ++seed) {
    for (const auto& [name, fn] : ops) {
      Generator g(seed);
      Shape a = random_shape(g), b = broadcast_partner(a, g);
      if (draw(g, 0, 2) == 1) std::swap(a, b);
      const bool positive = std::string(name) == "pow" || std::string(name) == "div";
      INFO(name << " " << shape_str(a) << " x " << shape_str(b) << " seed " << seed);
      gradcheck(fn, {operand(a, g, positive), operand(b, g, positive)}, {true, true}, g);
    }
  }
}

TEST_CASE("gradcheck.random_shapes.dim_ops", "[gradcheck]") {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Generator g(100 + seed);
    const Shape s = random_shape(g);
    const int64_t rank = static_cast<int64_t>(s.size());
    const int64_t dim = draw(g, -rank, rank);
    const auto dims = random_dims(rank, g);
    const bool keep = draw(g, 0, 2) == 1;
    INFO(shape_str(s) << " dim " << dim << " keepdim " << keep << " seed " << seed);
    gradcheck([dim](const V& v) { return softmax(v[0], dim); }, {operand(s, g)}, {true}, g);
    gradcheck([dim](const V& v) { return log_softmax(v[0], dim); }, {operand(s, g)}, {true}, g);
    gradcheck([&](const V& v) { return sum(v[0], dims, keep); }, {operand(s, g)}, {true}, g);
    gradcheck([&](const V& v) { return mean(v[0], dims, keep); }, {operand(s, g)}, {true}, g);
    gradcheck([&](const V& v) { return amax(v[0], dims, keep); }, {operand(s, g)}, {true}, g);
    Shape wide = s;
    wide.back() += 1;  // at least 2 elements so the variance is defined
    gradcheck([&](const V& v) { return var(v[0], {-1}, 1, keep); }, {operand(wide, g)}, {true}, g);
    gradcheck([](const V& v) { return gelu(v[0], GeluApprox::tanh); }, {operand(s, g)}, {true}, g);
  }
}

TEST_CASE("gradcheck.random_shapes.matmul", "[gradcheck]") {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Generator g(200 + seed);
    const int64_t m = draw(g, 1, 4), k = draw(g, 1, 4), n = draw(g, 1, 4);
    Shape batch = random_shape(g);
    batch.resize(std::min<size_t>(batch.size(), 2));
    Shape other = broadcast_partner(batch, g);
    Shape a = batch, b = other;
    a.insert(a.end(), {m, k});
    b.insert(b.end(), {k, n});
    if (draw(g, 0, 2) == 1) {  // broadcast on the other side
      a = other, b = batch;
      a.insert(a.end(), {m, k});
      b.insert(b.end(), {k, n});
    }
    INFO(shape_str(a) << " x " << shape_str(b) << " seed " << seed);
    gradcheck([](const V& v) { return matmul(v[0], v[1]); }, {operand(a, g), operand(b, g)}, {true, true}, g);
  }
}

}  // namespace
}  // namespace loom::testing
