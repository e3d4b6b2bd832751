// contiguous() and dtype casts of strided views, against a gather that walks
// the view's strides one element at a time. The shapes reach both of the
// CPU copy's paths (runs both sides walk together, and square blocks where
// the two sides' unit-stride dims differ), with block edges cut mid-way and
// tensors large enough to be split across threads.
#include <catch2/catch.hpp>

#include <loom/loom.hpp>

using namespace loom;

namespace {

// The view's elements in row-major order, read through its strides from
// element 0 of the view (no copy kernel involved).
std::vector<float> gather(const Tensor& view) {
  const float* base = static_cast<const float*>(view.raw_data());
  const Shape& shape = view.shape();
  const Strides& strides = view.strides();
  std::vector<int64_t> index(shape.size(), 0);
  std::vector<float> out;
  for (int64_t n = 0; n < view.numel(); ++n) {
    int64_t offset = 0;
    for (size_t d = 0; d < shape.size(); ++d) offset += index[d] * strides[d];
    out.push_back(base[offset]);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

// [37, 70] of integers in [-50, 50]: exact in every dtype, so each cast of
// them has one answer.
Tensor exact_integers() {
  std::vector<float> values(37 * 70);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(static_cast<int64_t>(i * 37 % 101) - 50);
  return from_vector(values, {37, 70});
}

struct ViewCase {
  const char* name;
  Shape shape;
  std::function<Tensor(const Tensor&)> view;
};

std::vector<ViewCase> view_cases() {
  return {
      {"2-D transpose, edges mid-block", {70, 45}, [](const Tensor& x) { return x.t(); }},
      {"2-D transpose split across threads", {300, 257}, [](const Tensor& x) { return x.t(); }},
      {"[N, C, L] -> [N, L, C]", {3, 40, 33}, [](const Tensor& x) { return x.transpose(1, 2); }},
      {"channels last with an outer dim between", {2, 12, 5, 9},
       [](const Tensor& x) { return x.permute({0, 2, 3, 1}); }},
      {"2x2 patches (runs of 2)", {2, 3, 8, 12},
       [](const Tensor& x) { return x.reshape({2, 3, 4, 2, 6, 2}).permute({0, 2, 4, 1, 3, 5}); }},
      {"attention heads (runs of 16)", {2, 9, 3, 16}, [](const Tensor& x) { return x.permute({0, 2, 1, 3}); }},
      {"a short unit dim moves as runs", {40, 5}, [](const Tensor& x) { return x.t(); }},
      {"stepped slice of a transpose", {64, 48}, [](const Tensor& x) { return x.t().slice(1, 1, 64, 3); }},
      {"broadcast source, transposed", {1, 40},
       [](const Tensor& x) { return x.expand({50, 40}).t(); }},
      {"a batch of small transposes split across threads", {300, 16, 20},
       [](const Tensor& x) { return x.transpose(1, 2); }},
      {"size-1 dims around a transpose", {1, 40, 1, 33}, [](const Tensor& x) { return x.transpose(1, 3); }},
  };
}

}  // namespace

TEST_CASE("contiguous() of strided views equals a gather through their strides", "[copy]") {
  for (const auto& c : view_cases()) {
    SECTION(c.name) {
      const Tensor x = randn(c.shape);
      const Tensor v = c.view(x);
      const Tensor y = v.contiguous();
      REQUIRE(y.is_contiguous());
      REQUIRE(y.shape() == v.shape());
      const std::vector<float> expected = gather(v);
      const float* got = y.data<float>();
      int64_t wrong = 0;
      for (size_t i = 0; i < expected.size(); ++i) wrong += got[i] != expected[i];
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("casts of strided views convert every element in place", "[copy]") {
  const Tensor x = exact_integers();
  const Tensor v = x.t();
  const std::vector<float> expected = gather(v);
  std::vector<double> expected_f64(expected.begin(), expected.end());
  std::vector<int64_t> expected_i64(expected.begin(), expected.end());
  CHECK(v.to(DType::f64).to_vector<double>() == expected_f64);
  CHECK(v.to(DType::i64).to_vector<int64_t>() == expected_i64);
  CHECK(v.to(DType::bf16).to(DType::f32).to_vector<float>() == expected);
  // and back from a transposed half tensor
  CHECK(x.to(DType::bf16).t().to(DType::f32).to_vector<float>() == expected);
}

TEST_CASE("a transposing copy into a strided destination, in every element width, and of empty tensors",
          "[copy]") {
  // copy_ into the transpose of a dense tensor: the destination's unit
  // stride is on dim 0, the source's on dim 1
  const Tensor x = randn({70, 45});
  Tensor z = empty({45, 70});
  {
    NoGradGuard g;
    z.t().copy_(x);
  }
  CHECK(z.to_vector<float>() == gather(x.t()));
  // f16, u8 and bool move as their own bits
  const Tensor small = exact_integers();
  const std::vector<float> want = gather(small.t());
  CHECK(small.to(DType::f16).t().contiguous().to(DType::f32).to_vector<float>() == want);
  std::vector<float> want_u8, want_bool;
  for (float v : want) {
    want_u8.push_back(static_cast<float>(static_cast<uint8_t>(v + 50)));
    want_bool.push_back(v > 0 ? 1.0f : 0.0f);
  }
  CHECK(add(small, full({}, 50.0)).to(DType::u8).t().contiguous().to(DType::f32).to_vector<float>() == want_u8);
  CHECK(gt(small, full({}, 0.0)).t().contiguous().to(DType::f32).to_vector<float>() == want_bool);
  // empty: nothing to move, the shapes still right
  CHECK(randn({0, 40}).t().contiguous().shape() == Shape{40, 0});
  CHECK(randn({40, 0, 33}).transpose(0, 2).contiguous().shape() == Shape{33, 0, 40});
}

TEST_CASE("a strided copy does not depend on the thread count", "[copy]") {
  // one large transpose (blocks of one matrix split) and a batch of small
  // ones (the batch split)
  for (const Tensor& view : {randn({513, 260}).t(), randn({300, 16, 20}).transpose(1, 2)}) {
    INFO(shape_str(view.shape()));
    const auto copy_with = [&](int threads) {
      set_num_threads(threads);
      std::vector<float> out = view.contiguous().to_vector<float>();
      set_num_threads(0);
      return out;
    };
    CHECK(copy_with(1) == copy_with(2));
    CHECK(copy_with(3) == gather(view));
  }
}
