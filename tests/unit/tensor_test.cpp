#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

#include <loom/loom.hpp>

using namespace loom;

TEST_CASE("dtypes have sizes and names", "[tensor]") {
  CHECK(itemsize(DType::f32) == 4);
  CHECK(itemsize(DType::bf16) == 2);
  CHECK(itemsize(DType::i64) == 8);
  CHECK(itemsize(DType::boolean) == 1);
  CHECK(dtype_from_name("float16") == DType::f16);
  CHECK_THROWS_WITH(dtype_from_name("f8"), Catch::Contains("unknown dtype 'f8'"));
}

TEST_CASE("bf16 and f16 round to nearest even", "[tensor]") {
  // 1 + 2^-8 is halfway between two bf16 values: ties to the even one (1.0).
  CHECK(static_cast<float>(bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(static_cast<float>(bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  CHECK(static_cast<float>(f16(65504.0f)) == 65504.0f);
  CHECK(std::isinf(static_cast<float>(f16(65536.0f))));
  CHECK(static_cast<float>(f16(5.960464477539063e-08f)) == 5.960464477539063e-08f);  // smallest subnormal
  CHECK(static_cast<float>(f16(1.0f + 1.0f / 2048)) == 1.0f);                         // tie -> even
  CHECK(std::isnan(static_cast<float>(f16(NAN))));
  // every f16 bit pattern survives a round trip through float
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    f16 h;
    h.bits = static_cast<uint16_t>(bits);
    const float f = h;
    if (std::isnan(f)) continue;
    REQUIRE(f16(f).bits == h.bits);
  }
}

TEST_CASE("conversions between all dtypes", "[tensor]") {
  Tensor x = from_vector<float>({-2.5f, 0.0f, 1.0f, 3.75f}, {4});
  CHECK(x.to(DType::i64).to_vector<int64_t>() == std::vector<int64_t>{-2, 0, 1, 3});
  CHECK(x.to(DType::boolean).to_vector<bool>() == std::vector<bool>{true, false, true, true});
  CHECK(x.to(DType::bf16).to(DType::f32).to_vector<float>() == x.to_vector<float>());
  CHECK(x.to(DType::f16).to(DType::f64).to_vector<double>() == std::vector<double>{-2.5, 0, 1, 3.75});
  CHECK(x.to(DType::u8).dtype() == DType::u8);
}

TEST_CASE("views share storage and follow strides", "[tensor]") {
  Tensor x = arange(12).reshape({3, 4});
  CHECK(x.is_contiguous());
  Tensor t = x.t();
  CHECK_FALSE(t.is_contiguous());
  CHECK(t.shape() == Shape{4, 3});
  CHECK(t.contiguous().to_vector<float>() ==
        std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  Tensor col = x.select(1, 2);
  CHECK(col.to_vector<float>() == std::vector<float>{2, 6, 10});
  Tensor sl = x.slice(1, 0, 4, 2);
  CHECK(sl.to_vector<float>() == std::vector<float>{0, 2, 4, 6, 8, 10});
  {
    NoGradGuard g;
    col.fill_(-1);
  }
  CHECK(x.to_vector<float>()[2] == -1);  // the view wrote through
  CHECK(x.version() == col.version());
  Tensor e = from_vector<float>({1, 2, 3}, {3, 1}).expand({3, 4});
  CHECK(e.stride(1) == 0);
  CHECK(sum(e).item<float>() == 24);
  CHECK_THROWS_WITH(t.view({12}), Catch::Contains("use reshape"));
  CHECK(t.reshape({12}).to_vector<float>()[1] == 4);
  CHECK(x.unsqueeze(0).shape() == Shape{1, 3, 4});
  CHECK(x.flatten().shape() == Shape{12});
}

TEST_CASE("joining and splitting", "[tensor]") {
  Tensor a = arange(6).reshape({2, 3});
  Tensor b = add(arange(3), 10.0).reshape({1, 3});
  Tensor c = cat({a, b}, 0);
  CHECK(c.shape() == Shape{3, 3});
  CHECK(c.to_vector<float>()[6] == 10);
  CHECK(stack({a, a}, 0).shape() == Shape{2, 2, 3});
  auto parts = split(arange(7), 3);
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].to_vector<float>() == std::vector<float>{6});
  CHECK(chunk(arange(6), 4).size() == 3);
}

TEST_CASE("indexing ops", "[tensor]") {
  Tensor x = arange(12).reshape({3, 4});
  Tensor idx = from_vector<int64_t>({2, 0}, {2});
  CHECK(index_select(x, 0, idx).to_vector<float>() == std::vector<float>{8, 9, 10, 11, 0, 1, 2, 3});
  Tensor g = gather(x, 1, from_vector<int64_t>({3, 0, 1}, {3, 1}));
  CHECK(g.to_vector<float>() == std::vector<float>{3, 4, 9});
  Tensor s = scatter_add(zeros({4}), 0, from_vector<int64_t>({1, 1, 3}, {3}), ones({3}));
  CHECK(s.to_vector<float>() == std::vector<float>{0, 2, 0, 1});
  Tensor m = masked_fill(x, gt(x, full({}, 5.0)), 0.0);
  CHECK(sum(m).item<float>() == 15);
  CHECK(argmax(from_vector<float>({1, 5, 5, 2}, {4}), 0).item<int64_t>() == 1);  // first maximum
}

TEST_CASE("creation ops", "[tensor]") {
  CHECK(zeros({2, 3}).to_vector<float>() == std::vector<float>(6, 0));
  CHECK(full({2}, 7.0, DType::i32).to_vector<int32_t>() == std::vector<int32_t>{7, 7});
  CHECK(arange(1.0, 2.0, 0.25).to_vector<float>() == std::vector<float>{1, 1.25, 1.5, 1.75});
  CHECK(arange(5, DType::i64).to_vector<int64_t>().back() == 4);
}

TEST_CASE("Philox streams are counter-based and reproducible", "[rng]") {
  // Known-answer test from the Random123 distribution (philox4x32_10, zero and all-ones inputs).
  auto zero = philox4x32({0, 0, 0, 0}, {0, 0});
  CHECK(zero == std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  auto ones = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  CHECK(ones == std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});

  Generator a(7), b(7);
  Tensor x = randn({1000}, {}, &a);
  Tensor y = randn({1000}, {}, &b);
  CHECK(x.to_vector<float>() == y.to_vector<float>());
  // the same draw split in two continues the same stream (block-aligned sizes)
  Generator c(7);
  Tensor first = randn({400}, {}, &c), second = randn({600}, {}, &c);
  CHECK(cat({first, second}).to_vector<float>() == x.to_vector<float>());
  // moments of a large draw
  Tensor big = randn({200000}, DType::f64, &a);
  CHECK(std::abs(mean(big).item<double>()) < 0.01);
  CHECK(std::abs(var(big, {0}).item<double>() - 1.0) < 0.02);
  Tensor u = rand({200000}, DType::f64, &a);
  CHECK(std::abs(mean(u).item<double>() - 0.5) < 0.005);
  CHECK(amax(u).item<double>() < 1.0);
}

TEST_CASE("bulk draws are the scalar Philox stream, across threads and counter carries", "[rng]") {
  // Starts just below a carry of the counter's low word into its high word,
  // and sizes that end mid-block and span several threads' shares.
  for (uint64_t start : {uint64_t{0}, uint64_t{3}, (uint64_t{1} << 32) - 40, (uint64_t{5} << 32) - 7}) {
    for (int64_t n : {int64_t{1}, int64_t{6}, int64_t{131}, int64_t{70001}}) {
      INFO("start block " << start << ", n " << n);
      Generator g(0xabcdef12345ULL);
      g.set_state(g.seed(), start);
      const std::vector<double> u = rand({n}, DType::f64, &g).to_vector<double>();
      g.set_state(g.seed(), start);
      const std::vector<double> z = randn({n}, DType::f64, &g).to_vector<double>();
      CHECK(g.offset() == start + static_cast<uint64_t>((n + 3) / 4));
      int64_t wrong_u = 0, wrong_z = 0;
      for (int64_t i = 0; i < n; i += 4) {
        const auto want = philox_uniform4(g.seed(), start + static_cast<uint64_t>(i / 4));
        for (int64_t l = 0; l < 4 && i + l < n; ++l) {
          wrong_u += u[static_cast<size_t>(i + l)] != static_cast<double>(want[static_cast<size_t>(l)]);
          // Box-Muller on the lane pairs (0,1) and (2,3)
          const size_t first = static_cast<size_t>(l & ~int64_t{1});
          const double radius = std::sqrt(-2.0 * std::log(1.0 - static_cast<double>(want[first])));
          const double angle = 6.28318530717958647692 * static_cast<double>(want[first + 1]);
          const double expected = radius * (l % 2 == 0 ? std::cos(angle) : std::sin(angle));
          wrong_z += z[static_cast<size_t>(i + l)] != expected;
        }
      }
      CHECK(wrong_u == 0);
      CHECK(wrong_z == 0);
    }
  }
}

TEST_CASE("dropout draws the mask rand() would draw, in every floating dtype", "[rng]") {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (double p : {0.1, 0.3, 0.5}) {
      INFO(dtype_name(t) << " p=" << p);
      const Tensor x = add(rand({37, 129}, t), 0.5);
      Generator a(21), b(21);
      a.advance(5);
      b.advance(5);
      const Tensor got = dropout(x, p, true, &a);
      // The composition it replaces: keep where u >= p, both in x's dtype.
      const Tensor keep = ge(rand(x.shape(), t, &b), full({}, p, t));
      const Tensor want = mul(x, where(keep, full({}, 1.0 / (1.0 - p), t), zeros({}, t)));
      CHECK(a.offset() == b.offset());
      CHECK(got.dtype() == t);
      CHECK(allclose(got, want, 0, 0));
    }
  }
  // a strided x and an empty one
  Generator a(8), b(8);
  const Tensor xt = add(rand({33, 17}), 1.0).t();
  const Tensor keep = ge(rand(xt.shape(), DType::f32, &b), full({}, 0.25));
  CHECK(allclose(dropout(xt, 0.25, true, &a), mul(xt, where(keep, full({}, 1.0 / 0.75), zeros({}))), 0, 0));
  CHECK(dropout(empty({0, 3}), 0.5, true, &a).shape() == Shape{0, 3});
  CHECK(a.offset() == b.offset());
  CHECK_THROWS_WITH(dropout(ones({4}, DType::i32), 0.5), Catch::Contains("dropout: x must be floating"));
}

TEST_CASE("dropout keeps 1-p of the elements, scaled", "[rng]") {
  Generator g(3);
  Tensor x = ones({100000});
  Tensor y = dropout(x, 0.25, true, &g);
  const auto v = y.to_vector<float>();
  int64_t kept = 0;
  for (float e : v) {
    REQUIRE((e == 0.0f || std::abs(e - 1.0f / 0.75f) < 1e-6));
    kept += e != 0.0f;
  }
  CHECK(std::abs(static_cast<double>(kept) / 100000 - 0.75) < 0.01);
  CHECK(dropout(x, 0.25, false, &g).is_same(x));
}

TEST_CASE("printing", "[tensor]") {
  std::ostringstream os;
  os << from_vector<float>({1, 2, 3, 4}, {2, 2});
  CHECK(os.str() == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2, 2], dtype=f32)");
  std::ostringstream big;
  big << arange(2000, DType::i64);
  CHECK(big.str().find("...") != std::string::npos);
  CHECK(big.str().find("1999") != std::string::npos);
}

TEST_CASE("half-precision tensors compute in f32", "[tensor]") {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2}).to(DType::bf16);
  Tensor b = matmul(a, a);
  CHECK(b.dtype() == DType::bf16);
  CHECK(b.to(DType::f32).to_vector<float>() == std::vector<float>{7, 10, 15, 22});
  CHECK(softmax(a.to(DType::f16), 1).dtype() == DType::f16);
  CHECK(sum(a).item<float>() == 10);
}
